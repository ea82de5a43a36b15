"""One owner per workdir: an exclusive, advisory lock on `<workdir>/.lock`.

The lock is `fcntl.flock` on an open file, so the kernel releases it when its process exits
in any way (kill -9 included): a lock file left by a dead process is stale by construction
and the next owner takes it over, saying whose it was. The file records the holder's pid,
host and start time, which the error of a second process names. In a multi-host run only
process 0 takes it, once for all processes (the workdir is shared), and the others learn
the outcome from it.
"""
import datetime
import fcntl
import json
import os
import pathlib
import socket

from absl import logging

LOCK = ".lock"


class WorkdirLockedError(RuntimeError):
    """Another process owns the workdir."""


class WorkdirLock:
    """Context manager: holds `<workdir>/.lock` for the block (or raises WorkdirLockedError)."""

    def __init__(self, workdir):
        self.path = pathlib.Path(workdir) / LOCK
        self._file = None

    def acquire(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _describe(handle.read())
            handle.close()
            raise WorkdirLockedError(
                f"{self.path.parent} is in use by {holder}; wait for it to finish or choose "
                f"another --workdir") from None
        handle.seek(0)
        previous = handle.read()
        if previous.strip():
            logging.info("Taking over %s from %s, which has ended", self.path,
                         _describe(previous))
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(),
            "since": datetime.datetime.now().isoformat(timespec="seconds")}) + "\n")
        handle.flush()
        self._file = handle
        return self

    def release(self):
        if self._file is not None:
            self._file.truncate(0)
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _describe(text: str) -> str:
    try:
        holder = json.loads(text)
        return f"process {holder['pid']} on host {holder['host']} (since {holder['since']})"
    except (ValueError, KeyError, TypeError):
        return "another process"
