"""The training loop: data, state, step, checkpoints and what the user sees.

Run by `launch.py --mode=train`. Every process of a multi-host run executes the same
loop; only process 0 writes TensorBoard events, metrics.jsonl, sample grids and the
progress bar, and takes the workdir's lock (store/lock.py) for all of them.

Before anything is built the workdir is checked: writable, owned by no other process, and
holding the same run as the command's config (store/config_file.py). Divergence: at every
log, sample or checkpoint step the losses and the updated parameters must be finite; a
checkpoint is kept only once the step after it has been seen finite too (its parameters
can be finite but so large that the next loss overflows), else it is moved aside into
checkpoints_diverged/.
"""
import pathlib
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import tensorboardX
import tqdm
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

from fproi_jax.data import pipeline
from fproi_jax.mesh import DATA_AXIS, data_mesh
from fproi_jax.methods import Method, get_method
from fproi_jax.store import config_file
from fproi_jax.store.checkpoints import TrainCheckpointer, ensure_writable
from fproi_jax.store.lock import WorkdirLock
from fproi_jax.store.metrics_log import MetricsLog
from fproi_jax.train import state as state_lib
from fproi_jax.train.samples import write_sample_grid
from fproi_jax.train.step import make_train_step


class NonFiniteLossError(RuntimeError):
    """A loss or an updated parameter became NaN or Inf; the last good checkpoint is kept."""


def check_length(train: ml_collections.ConfigDict):
    """Raises InvalidConfigError for a num_steps or num_epochs that is not positive."""
    for field in ("num_steps", "num_epochs"):
        value = train[field]
        if value is not None and value <= 0:
            raise config_file.InvalidConfigError(f"train.{field}={value} must be > 0"
                             + (" (or unset: train.num_epochs passes over the train split)"
                                if field == "num_steps" else ""))


def total_steps(train: ml_collections.ConfigDict, train_examples: int) -> int:
    """train.num_steps if set (not None), else train.num_epochs passes over the train split."""
    check_length(train)
    if train.num_steps is not None:
        return train.num_steps
    steps_per_epoch = train_examples // train.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"train.batch_size={train.batch_size} exceeds the "
                         f"{train_examples} training examples")
    return train.num_epochs * steps_per_epoch


def initial_state(config: ml_collections.ConfigDict, method: Method, optimizer, mesh):
    """A fresh TrainState, created under jit directly as replicated arrays on the mesh."""
    create = jax.jit(
        lambda rng: state_lib.create_train_state(method, optimizer, rng, config.data.image_size),
        out_shardings=NamedSharding(mesh, P()))
    return create(jax.random.PRNGKey(config.seed))


def initial_states(config: ml_collections.ConfigDict, seeds, method: Method, optimizer, mesh):
    """The fresh TrainStates of runs with these seeds, stacked along a leading axis: entry k
    equals `initial_state` of the config with seed seeds[k]."""
    create = jax.jit(jax.vmap(
        lambda rng: state_lib.create_train_state(method, optimizer, rng, config.data.image_size)),
        out_shardings=NamedSharding(mesh, P()))
    return create(jnp.stack([jax.random.PRNGKey(seed) for seed in seeds]))


def _compile_everywhere(train_step, state, batch_size: int, image_size: int, mesh):
    """Compiles the step ahead, then waits until every process has: the first step's
    collectives then start together, not while one process is still compiling."""
    sharding = NamedSharding(mesh, P(DATA_AXIS))
    pixels = jax.ShapeDtypeStruct((batch_size, image_size, image_size, 1), np.float32,
                                  sharding=sharding)
    batch = {**{key: pixels for key in pipeline.BATCH_KEYS},   # as pipeline.to_global_batch
             "index": jax.ShapeDtypeStruct((batch_size,), np.int32, sharding=sharding)}
    compiled = train_step.lower(state, batch).compile()
    ocp.multihost.sync_global_processes("fproi_jax_train_step_compiled")
    return compiled


def restore_train_state(config: ml_collections.ConfigDict, workdir: pathlib.Path):
    """(TrainState, step) of the newest training checkpoint in `workdir` that restores,
    replicated on this process's mesh."""
    directory = pathlib.Path(workdir) / "checkpoints"
    checkpointer = TrainCheckpointer(directory)
    replicated = NamedSharding(data_mesh(), P())
    shapes = jax.eval_shape(lambda: state_lib.create_train_state(
        get_method(config), state_lib.make_optimizer(config.train, 1), jax.random.PRNGKey(0),
        config.data.image_size))
    template = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), shapes)
    try:
        state = checkpointer.restore(template, None)
    finally:
        checkpointer.close()
    if state is None:
        raise FileNotFoundError(f"no training checkpoint in {directory}")
    return state, int(state.step)


@jax.jit
def _all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def _check_finite(step: int, metrics: dict, state, checkpointer: TrainCheckpointer,
                  unverified: int | None):
    """Raises NonFiniteLossError if a loss or an updated parameter is not finite; the
    checkpoint `unverified` (saved at the step before) then goes aside."""
    bad = {k: v for k, v in metrics.items() if not np.isfinite(v)}
    if not bad and bool(_all_finite((state.params, state.batch_stats))):
        return
    what = f"non-finite loss {bad}" if bad else "non-finite parameters after the update"
    if unverified is not None:
        checkpointer.wait()
        checkpointer.set_aside(unverified, "diverged")
    kept = checkpointer.latest_step()
    raise NonFiniteLossError(
        f"step {step}: {what}; stopping. "
        + (f"Checkpoint {unverified}, the step before, was moved to "
           f"{checkpointer.directory}_diverged/. " if unverified is not None else "")
        + (f"The last good checkpoint, step {kept}, is kept; " if kept is not None
           else "No good checkpoint remains; ")
        + "lower train.learning_rate or check the data.")


def _claim_workdir(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> WorkdirLock:
    """Process 0 checks and locks the workdir for every process of the run, before anything
    is built; the others stop too if it cannot."""
    lock, error = WorkdirLock(workdir), None
    if jax.process_index() == 0:
        try:
            ensure_writable(workdir)
            lock.acquire()
            config_file.check(config, workdir)
        except Exception as e:
            lock.release()
            error = e
    if jax.process_count() > 1 and not multihost_utils.broadcast_one_to_all(error is None):
        if error is None:
            raise RuntimeError("process 0 could not take the workdir; see its log")
    if error is not None:
        raise error
    return lock


def train(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> state_lib.TrainState:
    """Trains (or resumes) the run in `workdir` to its last step; returns the final state."""
    workdir = pathlib.Path(workdir)
    check_length(config.train)
    train_source = pipeline.load_split(config.data, config.data.train_split)  # built at all?
    lock = _claim_workdir(config, workdir)
    try:
        return _train(config, workdir, train_source)
    finally:
        lock.release()


def _train(config: ml_collections.ConfigDict, workdir: pathlib.Path,
           train_source) -> state_lib.TrainState:
    chief = jax.process_index() == 0
    mesh = data_mesh()
    if config.train.batch_size % mesh.size:
        raise ValueError(f"train.batch_size={config.train.batch_size} must be divisible by "
                         f"the {mesh.size} devices")
    num_steps = total_steps(config.train, len(train_source))
    method = get_method(config)
    optimizer = state_lib.make_optimizer(config.train, num_steps)
    learning_rate = state_lib.learning_rate_schedule(config.train, num_steps)
    state = initial_state(config, method, optimizer, mesh)
    data_iterator = iter(pipeline.train_dataset(train_source, config.data, config.train.batch_size))

    checkpointer = TrainCheckpointer(workdir / "checkpoints", config.train.checkpoint_every,
                                     config.train.keep_checkpoints, writer=True)
    restored = checkpointer.restore(state, data_iterator)
    if restored is not None:
        state = restored
        logging.info("Resumed from step %d in %s", int(state.step), workdir)
    if chief:
        config_file.write(config, workdir, int(state.step))

    train_step = make_train_step(method, optimizer, learning_rate, mesh)
    if jax.process_count() > 1:
        train_step = _compile_everywhere(train_step, state, config.train.batch_size,
                                         config.data.image_size, mesh)
    samples = jax.jit(method.samples)
    sample_split = config.data.test_split
    if sample_split not in train_source.dataset_info.splits:  # e.g. synthetic_pairs: 'train'
        logging.info("%s has no split %r: the sample grids show the first examples of %r",
                     config.data.name, sample_split, config.data.train_split)
        sample_split = config.data.train_split
    sample_batch = next(pipeline.eval_batches(
        pipeline.load_split(config.data, sample_split), config.data, config.train.num_samples))
    sample_batch = {key: sample_batch[key] for key in pipeline.BATCH_KEYS}
    writer = tensorboardX.SummaryWriter(str(workdir / "tensorboard")) if chief else None
    metrics_log = MetricsLog(workdir, int(state.step)) if chief else None
    if writer is not None:
        writer.add_text("config", "```json\n" + config.to_json_best_effort(indent=2) + "\n```",
                        int(state.step))

    start = int(state.step)
    logging.info("Training %s, steps %d..%d on %d devices (%d processes), global batch %d",
                 method.label, start + 1, num_steps, mesh.size, jax.process_count(),
                 config.train.batch_size)
    progress = tqdm.tqdm(total=num_steps, initial=start, disable=not chief, unit="step",
                         dynamic_ncols=True)
    last_time, last_step = time.perf_counter(), start
    last_logged = start
    previous = None
    unverified = None   # a checkpoint saved at the step before, until this step's check
    interval_sum = None  # the losses summed on the device since the last log
    for step in range(start + 1, num_steps + 1):
        batch = pipeline.to_global_batch(next(data_iterator), mesh)
        state, metrics = train_step(state, batch)
        interval_sum = metrics if interval_sum is None else jax.tree.map(
            jnp.add, interval_sum, metrics)
        # At most two steps in flight: the bar counts finished steps (true step/s and ETA)
        # while the next batch is read and dispatched during the current step.
        if previous is not None:
            jax.block_until_ready(previous)
            progress.update(1)
        previous = metrics
        checkpointer.check_for_errors()   # a failed background save stops the run now
        final = step == num_steps
        due = {name: final or step % every == 0 for name, every in (
            ("log", config.train.log_every), ("sample", config.train.sample_every),
            ("checkpoint", config.train.checkpoint_every))}
        if not any(due.values()) and unverified is None:
            continue
        # Losses are fetched (a host sync) only here, and checked before any save.
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        _check_finite(step, metrics, state, checkpointer, unverified)
        unverified = None
        if not any(due.values()):
            continue
        now = time.perf_counter()
        metrics["step_time_s"] = (now - last_time) / (step - last_step)
        last_time, last_step = now, step
        if due["log"]:
            # Logged: each loss's mean over the steps since the last log (as the Flax
            # examples log), so a curve of a few points is not one noisy step per point.
            means = {k: float(v) / (step - last_logged)
                     for k, v in jax.device_get(interval_sum).items()}
            interval_sum, last_logged = None, step
        if due["log"] and chief:
            scalars = {**means, "step_time_s": metrics["step_time_s"]}
            metrics_log.write(step, scalars)
            for name, value in scalars.items():
                writer.add_scalar(f"train/{name}", value, step)
            progress.set_postfix({label: f"{means[name]:.3f}"
                                  for label, name in method.progress_terms.items()})
        if due["sample"]:
            variables = {"params": state.params, "batch_stats": state.batch_stats}
            grid = jax.device_get(samples(variables, sample_batch))
            if chief:
                rgb = write_sample_grid(workdir / "samples" / f"step_{step:07d}.png",
                                        {name: grid[name] for name in method.sample_names},
                                        title=f"step {step}")
                writer.add_image("samples", rgb, step, dataformats="HWC")
        if due["checkpoint"] and checkpointer.save(step, state, data_iterator, force=final):
            unverified = None if final else step
    progress.update(num_steps - progress.n)
    progress.close()
    checkpointer.close()
    if writer is not None:
        writer.close()
        metrics_log.close()
    return state
