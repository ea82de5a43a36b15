"""Inference exports: what synthesis needs, written so that an interruption never leaves a
broken one.

An export holds a method's `export_variables` (the generators' parameters and BatchNorm
statistics) as an Orbax checkpoint in params/, the config.json that built them, export.json
(the step exported) and the self-contained jax.export programs (programs.py). No optimizer
state.

Atomicity: `<dir>` is a symbolic link to a complete version in `<dir>_versions/`. A new
export is written whole into a fresh version folder, then the link is replaced in one
rename, and only then are older versions removed; a process killed at any moment leaves
`<dir>` pointing at a complete export (the old or the new one). A plain folder at `<dir>`
(an export from before this scheme) is moved into `<dir>_versions/` first.

Variables are restored into an abstract target built from the method on the reading
process's first device, so an export written on N devices (or hosts) loads anywhere.
"""
import json
import os
import pathlib
import shutil

import jax
import ml_collections
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from fproi_jax import atomic
from fproi_jax.methods import Method, get_method
from fproi_jax.store import config_file, programs
from fproi_jax.store.checkpoints import ensure_writable, restore_variables

INFO = "export.json"


def _versions(directory: pathlib.Path) -> pathlib.Path:
    return directory.with_name(f"{directory.name}_versions")


def _new_version(directory: pathlib.Path, step: int) -> pathlib.Path:
    """A version folder name no other export used, the same on every process."""
    versions = _versions(directory)
    taken = {p.name for p in versions.iterdir()} if versions.is_dir() else set()
    n = 0
    while f"step_{step}.{n}" in taken:
        n += 1
    name = multihost_utils.broadcast_one_to_all(n) if jax.process_count() > 1 else n
    return versions / f"step_{step}.{int(name)}"


def export_inference(directory, variables: dict, config: ml_collections.ConfigDict, step: int):
    """Writes an export of `variables` (the run's `step`) and makes `directory` point at it."""
    directory = pathlib.Path(directory).absolute()
    ensure_writable(_versions(directory))
    version = _new_version(directory, step)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(version / "params", variables)
    if jax.process_index() == 0:
        atomic.write_text(version / config_file.CONFIG, config.to_json_best_effort(indent=2))
        programs.write_programs(version, get_method(config), variables, config.data.image_size)
        atomic.write_text(version / INFO, json.dumps({"step": step}) + "\n")
        _point(directory, version)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("fproi_jax_export_written")


def export_run(workdir) -> int:
    """Exports the newest checkpoint of a training workdir into `<workdir>/export` with the
    config it was trained with; returns its step."""
    workdir = pathlib.Path(workdir)
    config = config_file.load(workdir)
    ensure_writable(_versions(workdir / "export"))  # before the minutes a restore can take
    step, variables = restore_variables(workdir)
    method = get_method(config)
    export_inference(workdir / "export", method.export_variables(
        variables["params"], variables["batch_stats"]), config, step)
    return step


def _point(directory: pathlib.Path, version: pathlib.Path):
    """Replaces `directory` by a link to `version` in one rename; removes the versions it
    no longer points at."""
    versions = version.parent
    if directory.is_dir() and not directory.is_symlink():  # an export of the old scheme
        os.replace(directory, versions / f"legacy.{os.getpid()}")
    link = directory.with_name(f".{directory.name}.{os.getpid()}.link")
    link.unlink(missing_ok=True)
    link.symlink_to(os.path.relpath(version, directory.parent))
    os.replace(link, directory)
    for old in versions.iterdir():
        if old != version:
            shutil.rmtree(old)


def exported_step(directory) -> int | None:
    """The step recorded in an export (None for an export without export.json)."""
    path = pathlib.Path(directory) / INFO
    return json.loads(path.read_text())["step"] if path.is_file() else None


def load_inference_variables(directory, method: Method, image_size: int) -> dict:
    """The export variables ({'params', 'batch_stats'}) of an export, on this process's
    first device."""
    shapes = jax.eval_shape(lambda: method.export_variables(
        *method.init(jax.random.PRNGKey(0), (image_size, image_size))))
    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype,
                                                              sharding=sharding), shapes)
    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore(pathlib.Path(directory).absolute() / "params", abstract)
