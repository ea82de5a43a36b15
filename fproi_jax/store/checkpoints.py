"""Orbax training checkpoints: saved so that nothing is lost, restored from the newest one
that reads.

A checkpoint holds the whole TrainState (params, BatchNorm statistics, the optimizer
states, step, RNG key, image pools) and the input iterator's position, so a resumed run
continues exactly where the saved one stood. Orbax writes each step into a temporary
folder and renames it when complete, so a process killed mid-save leaves the previous
checkpoint as the latest. Beyond Orbax:

- A folder that cannot be written is reported at once with its path (`ensure_writable`),
  not after Orbax's five-minute wait for a step directory.
- A save that fails (a full disk) is raised by the next `check_for_errors`, which the
  loop calls every step, naming the folder and the cause; the previous checkpoint stays.
- `restore` falls back to the newest checkpoint that restores, saying which newer ones were
  skipped and why. A trainer (writer=True) moves those aside into
  `<checkpoints>_unreadable/` (never deletes them) so that its own saves of those steps
  can be written; a reader leaves them in place.
- `restore_variables` reads the parameters and BatchNorm statistics alone, in the shapes
  the checkpoint records: no optimizer or TrainState is built to read them.
"""
import os
import pathlib
import shutil
import tempfile

import grain
import jax
import orbax.checkpoint as ocp
from absl import logging
from jax.sharding import NamedSharding, PartitionSpec as P

from fproi_jax.mesh import data_mesh


class CheckpointError(RuntimeError):
    """No checkpoint restores, or a save failed."""


class UnwritableError(OSError):
    """An output folder cannot be written."""


def ensure_writable(directory) -> pathlib.Path:
    """Creates `directory` and writes (then removes) a probe file in it; raises
    UnwritableError naming it otherwise."""
    directory = pathlib.Path(directory).absolute()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write_probe_"):
            pass
    except OSError as e:
        raise UnwritableError(f"{directory} cannot be written: {e.strerror or e}") from None
    return directory


def _cause(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


class TrainCheckpointer:
    """Saves every `every` steps into `directory`, keeping the last `keep` (None: all)."""

    def __init__(self, directory, every: int = 1, keep: int | None = None,
                 writer: bool = False):
        self.directory = pathlib.Path(directory).absolute()
        self.writer = writer
        if writer:
            ensure_writable(self.directory)
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(save_interval_steps=every, max_to_keep=keep,
                                                 create=writer),
            item_handlers={"state": ocp.StandardCheckpointHandler(),
                           "data": grain.checkpoint.CheckpointHandler()})
        self._saved = None

    def steps(self) -> list[int]:
        """Every checkpointed step, newest first."""
        return sorted(self.manager.all_steps(), reverse=True) if self.directory.is_dir() else []

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[0] if steps else None

    def _newest_that_restores(self, restore_one):
        """(step, restore_one(step)) of the newest step that restores; the newer ones that
        fail are reported (and, by a writer, moved aside). (None, None) without steps."""
        failures = []
        for step in self.steps():
            try:
                restored = restore_one(step)
            except Exception as e:  # Orbax and TensorStore raise many types for bad files
                failures.append(f"step {step}: {_cause(e)}")
                logging.warning("Checkpoint %s/%d does not restore (%s); trying the one "
                                "before", self.directory, step, _cause(e))
                continue
            if failures:
                logging.warning("Restored step %d of %s; skipped %s", step, self.directory,
                                "; ".join(failures))
                if self.writer:  # only once an older one restored: never all of them
                    for newer in self.steps()[:len(failures)]:
                        self.set_aside(newer, "unreadable")
            return step, restored
        if failures:
            raise CheckpointError(f"no checkpoint in {self.directory} restores: "
                                  + "; ".join(failures))
        return None, None

    def restore(self, state, data_iterator):
        """The newest checkpoint that restores, into the shapes and shardings of `state`;
        `data_iterator` is moved to its position in place. Returns the state, or None
        without checkpoints."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)

        def restore_one(step):
            items = {"state": ocp.args.StandardRestore(abstract)}
            if data_iterator is not None:
                items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
            return self.manager.restore(step, args=ocp.args.Composite(**items))["state"]

        return self._newest_that_restores(restore_one)[1]

    def restore_variables(self, sharding) -> tuple[int, dict]:
        """(step, {'params', 'batch_stats'}) of the newest checkpoint that restores, placed
        with `sharding`, read in the shapes its metadata records."""
        def restore_one(step):
            target = jax.tree.map(
                lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding),
                self.manager.item_metadata(step)["state"].tree)
            restored = self.manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target)))["state"]
            return {"params": restored["params"], "batch_stats": restored["batch_stats"]}

        step, variables = self._newest_that_restores(restore_one)
        if step is None:
            raise FileNotFoundError(f"no training checkpoint in {self.directory}")
        return step, variables

    def save(self, step: int, state, data_iterator, force: bool = False) -> bool:
        """Starts an asynchronous save if `step` is due (or `force`); returns whether it did.
        A save still running is waited for and checked first, as its own."""
        if self._saved is not None and (force or self.manager.should_save(step)):
            self.wait()
        try:
            started = self.manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=grain.checkpoint.CheckpointSave(data_iterator)), force=force)
        except Exception as e:  # the parts Orbax writes before returning (a full disk)
            self._saved = step
            self._raise_failed_save(_cause(e))
        if started:
            self._saved = step
        return started

    def check_for_errors(self):
        """Raises CheckpointError if the last save has ended without its step folder.

        Orbax logs a failed background write and skips the step, raising nothing until
        the next save; so a finished save is checked by the folder it must have committed
        (by process 0, which commits it).
        """
        if self._saved is None or self.manager.is_saving_in_progress():
            return
        try:
            self.manager.check_for_errors()
        except Exception as e:
            self._raise_failed_save(_cause(e))
        if jax.process_index() == 0 and not (self.directory / str(self._saved)).is_dir():
            free = shutil.disk_usage(self.directory).free
            self._raise_failed_save(f"in the background, see Orbax's error logged above; "
                                    f"{free / 2**20:.1f} MiB free on its filesystem")
        self._saved = None

    def _raise_failed_save(self, cause: str):
        kept = [s for s in self.steps() if s != self._saved]
        raise CheckpointError(
            f"saving step {self._saved} into {self.directory} failed ({cause}); stopping. "
            + (f"The checkpoint of step {kept[0]} is kept." if kept
               else "No earlier checkpoint exists."))

    def set_aside(self, step: int, why: str):
        """Moves checkpoint `step` into `<checkpoints>_<why>/<step>` (never deletes it)."""
        source = self.directory / str(step)
        target = self.directory.with_name(f"{self.directory.name}_{why}") / str(step)
        if target.exists():
            target = target.with_name(f"{step}.{os.getpid()}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)
        logging.warning("Moved checkpoint %s aside to %s (%s)", source, target, why)
        self.manager.reload()

    def wait(self):
        """Waits for pending saves; raises CheckpointError if one failed."""
        try:
            self.manager.wait_until_finished()
        except Exception as e:
            self._raise_failed_save(_cause(e))
        self.check_for_errors()

    def close(self):
        """Waits for pending saves and closes; raises CheckpointError if one failed."""
        try:
            self.wait()
        finally:
            self.manager.close()


def restore_variables(workdir) -> tuple[int, dict]:
    """(step, {'params', 'batch_stats'}) of a training workdir's newest checkpoint that
    restores, replicated on this process's devices."""
    checkpointer = TrainCheckpointer(pathlib.Path(workdir) / "checkpoints")
    try:
        return checkpointer.restore_variables(NamedSharding(data_mesh(), P()))
    finally:
        checkpointer.close()
