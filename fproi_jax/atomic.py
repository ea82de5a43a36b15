"""Atomic file writes: every output goes to a temporary name in its own folder and is
renamed into place, so neither a reader nor a crash ever sees half a file."""
import contextlib
import os
import pathlib


@contextlib.contextmanager
def replacing(path):
    """Yields a temporary path beside `path` (same suffix) to write; renames it over `path`
    when the block succeeds and removes it when the block fails. Creates the folder."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path, text: str):
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:  # open() honours the umask
        f.write(text)


def write_bytes(path, data: bytes):
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def save_figure(figure, path, **savefig_kwargs):
    """matplotlib `figure.savefig`, atomically (the format from the suffix of `path`)."""
    with replacing(path) as tmp:
        figure.savefig(tmp, **savefig_kwargs)
