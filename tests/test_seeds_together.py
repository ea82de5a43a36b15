"""Seeds trained together (train/step.py, seeds_form): a stacked state of several runs,
updated by one program on the same batches, gives each run what it gets alone."""
import jax
import numpy as np
import pytest

from test_methods import _config, disc_batch
from fproi_jax.data import pipeline
from fproi_jax.mesh import data_mesh
from fproi_jax.methods import get_method
from fproi_jax.train import loop
from fproi_jax.train import state as state_lib
from fproi_jax.train.step import make_train_step

SEEDS = (0, 3)
STEPS = 2
BATCH = 2  # still several examples: the CPU convolution forms of training batches


def _train(config, seeds_form, seeds, steps=STEPS):
    """`steps` steps on the disc batch: of the stacked runs `seeds` (seeds_form), or of
    the run of config.seed alone (seeds_form None)."""
    mesh = data_mesh(jax.devices()[:1])
    method = get_method(config)
    optimizer = state_lib.make_optimizer(config.train, 100)
    schedule = state_lib.learning_rate_schedule(config.train, 100)
    state = (loop.initial_state(config, method, optimizer, mesh) if seeds_form is None else
             loop.initial_states(config, seeds, method, optimizer, mesh))
    step = make_train_step(method, optimizer, schedule, mesh, seeds_form=seeds_form)
    for _ in range(steps):
        state, metrics = step(state, pipeline.to_global_batch(disc_batch(BATCH), mesh))
    return jax.device_get(state), jax.device_get(metrics)


# Not bitwise: 'unrolled' repeats one seed's operations, but XLA fuses the larger program
# otherwise (measured: one BatchNorm mean one rounding apart, 1.2e-10; Fproi-GAN bitwise
# equal); 'vmap's grouped convolutions sum in another order (at most 8.2e-8 apart, 34 of
# 168 leaves bitwise equal). One float32 rounding of values of order 1 is 6e-8: 1e-6.
@pytest.mark.parametrize("seeds_form", ["unrolled", "vmap"])
def test_each_seed_trained_together_matches_it_trained_alone(seeds_form, atol=1e-6, rtol=1e-5):
    """Parameters, BatchNorm statistics (DCGAN's, synchronised over the data axis inside
    the group), Adam states, keys and losses of run k of the group against the run of
    seed k alone, after two steps."""
    config = _config("dcgan")
    config.train.batch_size = BATCH
    group, group_metrics = _train(config, seeds_form, SEEDS)
    for k, seed in enumerate(SEEDS):
        config.seed = seed
        alone, metrics = _train(config, None, None)
        for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(alone)[0],
                                jax.tree.leaves(group)):
            np.testing.assert_allclose(a, b[k], atol=atol, rtol=rtol,
                                       err_msg=f"seed {seed}: {jax.tree_util.keystr(path)}")
        for key, value in metrics.items():
            np.testing.assert_allclose(value, group_metrics[key][k], atol=atol, rtol=rtol,
                                       err_msg=key)
    first = jax.tree.leaves(group.params)[0]  # the runs differ: each has its own start
    assert not np.allclose(first[0], first[1])
