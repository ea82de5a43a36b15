"""Orbax checkpoints of training runs, and inference exports.

A training checkpoint holds the whole TrainState (params, BatchNorm statistics, the four
optimizer states, step, RNG key, image pools) and the input iterator's position, so a
resumed run continues exactly where the saved one stood. Orbax writes each step into a temporary
directory and renames it when complete, so a process killed mid-save (even by SIGKILL)
leaves the previous checkpoint as the latest.

An inference export holds only what synthesis needs: the method's `export_variables`
(the generators' parameters and BatchNorm statistics) and the config that built them.
Both are restored into an abstract target built from the method on the devices of the
reading process, so a checkpoint or export written on N devices (or hosts) loads on any
other number of devices or platform.
"""
import json
import pathlib

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding, PartitionSpec as P

from fproi_jax.mesh import data_mesh
from fproi_jax.methods import Method, get_method
from fproi_jax.train import programs
from fproi_jax.train import state as state_lib


class TrainCheckpointer:
    """Saves every `every` steps into `directory`, keeping the last `keep`."""

    def __init__(self, directory: pathlib.Path, every: int, keep: int):
        self.manager = ocp.CheckpointManager(
            pathlib.Path(directory).absolute(),
            options=ocp.CheckpointManagerOptions(save_interval_steps=every, max_to_keep=keep,
                                                 create=True),
            item_handlers={"state": ocp.StandardCheckpointHandler(),
                           "data": grain.checkpoint.CheckpointHandler()})

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, state, data_iterator, step: int | None = None):
        """Restores `step` (default: the latest) into the shapes and shardings of `state`.

        `data_iterator` is moved to the saved position in place; returns the state.
        """
        step = self.manager.latest_step() if step is None else step
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
        items = {"state": ocp.args.StandardRestore(abstract)}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
        return self.manager.restore(step, args=ocp.args.Composite(**items))["state"]

    def save(self, step: int, state, data_iterator, force: bool = False) -> bool:
        """Starts an asynchronous save if `step` is due (or `force`); returns whether it did."""
        return self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=grain.checkpoint.CheckpointSave(data_iterator)), force=force)

    def close(self):
        """Waits for pending saves to finish."""
        self.manager.wait_until_finished()
        self.manager.close()


def _abstract(tree, sharding):
    return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype,
                                                          sharding=sharding), tree)


def restore_train_state(config: ml_collections.ConfigDict, workdir: pathlib.Path):
    """(TrainState, step) of the latest training checkpoint in `workdir`, replicated on
    this process's mesh."""
    directory = pathlib.Path(workdir) / "checkpoints"
    checkpointer = TrainCheckpointer(directory, 1, None)
    step = checkpointer.latest_step()
    if step is None:
        checkpointer.close()
        raise FileNotFoundError(f"no training checkpoint in {directory}")
    method = get_method(config)
    optimizer = state_lib.make_optimizer(config.train, 1)
    abstract = _abstract(jax.eval_shape(lambda: state_lib.create_train_state(
        method, optimizer, jax.random.PRNGKey(0), config.data.image_size)),
        NamedSharding(data_mesh(), P()))
    state = checkpointer.restore(abstract, None, step)
    checkpointer.close()
    return state, step


def export_inference(directory: pathlib.Path, variables: dict,
                     config: ml_collections.ConfigDict):
    """Writes a method's export variables, the config and the self-contained synthesis
    programs (programs.py) to `directory` (no optimizer state)."""
    directory = pathlib.Path(directory).absolute()
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(directory / "params", variables, force=True)
    if jax.process_index() == 0:
        (directory / "config.json").write_text(config.to_json_best_effort(indent=2))
        programs.write_programs(directory, get_method(config), variables,
                                config.data.image_size)


def load_config(path: pathlib.Path) -> ml_collections.ConfigDict:
    """The config saved beside an export or a training run."""
    return ml_collections.ConfigDict(json.loads((pathlib.Path(path) / "config.json").read_text()))


def load_inference_variables(directory: pathlib.Path, method: Method, image_size: int) -> dict:
    """The export variables ({'params', 'batch_stats'}) of an export, on this process's
    first device."""
    shapes = jax.eval_shape(lambda: method.export_variables(
        *method.init(jax.random.PRNGKey(0), (image_size, image_size))))
    abstract = _abstract(shapes, jax.sharding.SingleDeviceSharding(jax.local_devices()[0]))
    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore(pathlib.Path(directory).absolute() / "params", abstract)
