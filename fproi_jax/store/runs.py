"""Reading a run back, and the folders and markers of what was done with it.

- `load_generators`: (config, method, inference variables) of an inference export (a
  folder with params/, `launch.py --mode=export`) or a training workdir (checkpoints/, its
  latest restorable step, restored without building an optimizer). Both hold the
  config.json that built the networks, so the method, its networks and the image size
  come from the run itself, never from the command line.
- `latest_step`: the step of a workdir's latest training checkpoint.
- `eval_dir`: where a run's evaluation under a table label goes, <workdir>/eval/<label>.
- `is_done` / `mark_done`: a JSON marker recording what produced a folder's files (the
  experiment's "this run was evaluated at this step with these settings"), written
  atomically after the files it vouches for.
"""
import json
import pathlib

from fproi_jax import atomic
from fproi_jax.methods import get_method
from fproi_jax.store import config_file, export
from fproi_jax.store.checkpoints import TrainCheckpointer, restore_variables

CHECKPOINTS = "checkpoints"
EVAL = "eval"


def load_generators(path):
    """Returns (config of the run, its Method, export variables {'params', 'batch_stats'})
    of an export or a training workdir."""
    path = pathlib.Path(path)
    config = config_file.load(path)
    method = get_method(config)
    if (path / "params").is_dir():
        variables = export.load_inference_variables(path, method, config.data.image_size)
    elif (path / CHECKPOINTS).is_dir():
        _, variables = restore_variables(path)
        variables = method.export_variables(variables["params"], variables["batch_stats"])
    else:
        raise FileNotFoundError(
            f"{path}: neither an export (params/) nor a training workdir ({CHECKPOINTS}/)")
    return config, method, variables


def latest_step(workdir):
    """The step of the latest training checkpoint of a run, None if it has none."""
    checkpoints = pathlib.Path(workdir) / CHECKPOINTS
    if not checkpoints.is_dir():
        return None
    checkpointer = TrainCheckpointer(checkpoints, 1, None)
    try:
        return checkpointer.latest_step()
    finally:
        checkpointer.close()


def eval_dir(workdir, label: str) -> pathlib.Path:
    """<workdir>/eval/<label>, a "/" of the label ("Fproi-GAN w/o RFB") written as "_"."""
    return pathlib.Path(workdir) / EVAL / label.replace("/", "_")


def is_done(marker: pathlib.Path, done: dict, files=()) -> bool:
    """Whether `marker` records exactly `done` and every one of `files` (beside it) exists."""
    marker = pathlib.Path(marker)
    return (marker.is_file() and json.loads(marker.read_text()) == done
            and all((marker.parent / name).is_file() for name in files))


def mark_done(marker: pathlib.Path, done: dict) -> None:
    atomic.write_text(marker, json.dumps(done) + "\n")
