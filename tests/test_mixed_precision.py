"""config.train.compute_dtype: a bfloat16 train step against the float32 one, on CPU.

One jitted step per (method, dtype) from the same initial state and batch (test_methods'
32x32 discs, tiny widths, Adam eps 1 so the update is proportional to the gradient).
Fproi-GAN, and DCGAN for the BatchNorm statistics; the other methods share the same
`Networks` casting and are left out for time (about 40-70 s of compilation each).
"""
import functools
import re

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

METHODS = ("fproi_gan", "dcgan")


@functools.cache
def _step(name, dtype):
    """(initial params, state after one step, metrics, lowered program text)."""
    config = _config(name)
    config.train.compute_dtype = dtype
    mesh = data_mesh(jax.devices()[:1])
    method = get_method(config)
    optimizer = state_lib.make_optimizer(config.train, 100)
    schedule = state_lib.learning_rate_schedule(config.train, 100)
    state = loop.initial_state(config, method, optimizer, mesh)
    step = make_train_step(method, optimizer, schedule, mesh)
    batch = pipeline.to_global_batch(disc_batch(), mesh)
    program = step.lower(state, batch).as_text()
    initial = jax.device_get(state.params)
    state, metrics = step(state, batch)  # donates the initial state
    return initial, jax.device_get(state), jax.device_get(metrics), program


def _convolutions(program):
    return [line for line in program.splitlines() if re.search(r"\bconvolution\b", line)]


@pytest.mark.parametrize("name", METHODS)
def test_bfloat16_convolutions_run_in_bfloat16(name):
    """Every convolution of the bfloat16 step (forward and gradients) takes and gives
    bfloat16; the float32 step has none."""
    bf16 = _convolutions(_step(name, "bfloat16")[3])
    f32 = _convolutions(_step(name, "float32")[3])
    assert len(bf16) == len(f32) > 0
    assert all("bf16" in line and "f32" not in line for line in bf16), next(
        line for line in bf16 if "bf16" not in line or "f32" in line)
    assert not any("bf16" in line for line in f32)


@pytest.mark.parametrize("name", METHODS)
def test_bfloat16_step_keeps_float32_state_and_losses(name):
    _, state, metrics, _ = _step(name, "bfloat16")
    for key, value in metrics.items():
        assert value.dtype == np.float32 and np.isfinite(value), key
    kept = {"params": state.params, "opt_state": state.opt_state,
            "batch_stats": state.batch_stats, "pools": state.pools}
    for path, leaf in jax.tree_util.tree_flatten_with_path(kept)[0]:
        if np.issubdtype(leaf.dtype, np.floating):
            assert leaf.dtype == np.float32, jax.tree_util.keystr(path)
    assert bool(state.batch_stats) == (name == "dcgan")


@pytest.mark.parametrize("name", METHODS)
def test_bfloat16_step_is_close_to_float32(name):
    """The bfloat16 step's losses and parameter updates against the float32 step's.

    Losses: bfloat16 keeps 8 significant bits (relative rounding 2^-9); the losses are means
    over thousands of pixels of float32 copies of bfloat16 outputs, so they agree to within
    two bfloat16 ulps, rtol 2^-7 (measured: 3e-4 at most).
    Updates: each network's whole update u (all its parameters) against the float32 one.
    Rounding every activation and its gradient to 8 bits, through ~10 layers and back, and
    the cancelling sums that make a gradient at initialisation (and the L1 terms' signs
    where a reconstruction meets its target) move u by 2-10% of its norm for Fproi-GAN and
    up to 31% for DCGAN's generators (measured). The bound, half of |u|, leaves margin
    while a missing, zero or reversed update (|du| >= |u|) fails; the cosine bound 0.9
    (measured >= 0.95) checks the direction.
    """
    initial, f32, f32_metrics, _ = _step(name, "float32")
    _, bf16, bf16_metrics, _ = _step(name, "bfloat16")
    for key in f32_metrics:
        np.testing.assert_allclose(bf16_metrics[key], f32_metrics[key], rtol=2.0 ** -7,
                                   err_msg=key)
    flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])  # noqa: E731
    for network in initial:
        start = flat(initial[network])
        u32, u16 = flat(f32.params[network]) - start, flat(bf16.params[network]) - start
        assert np.linalg.norm(u32) > 0, network
        relative = np.linalg.norm(u16 - u32) / np.linalg.norm(u32)
        cosine = u16 @ u32 / (np.linalg.norm(u16) * np.linalg.norm(u32))
        assert relative < 0.5 and cosine > 0.9, (network, relative, cosine)
    # BatchNorm running averages: one update from equal initial values, in float32.
    for path, a in jax.tree_util.tree_flatten_with_path(f32.batch_stats)[0]:
        b = _lookup_path(bf16.batch_stats, path)
        np.testing.assert_allclose(b, a, rtol=2.0 ** -7, atol=2.0 ** -7 * np.abs(a).max(),
                                   err_msg=jax.tree_util.keystr(path))


def _lookup_path(tree, path):
    for key in path:
        tree = tree[key.key]
    return tree


def test_evaluation_runs_in_float32():
    """A bfloat16-trained method synthesizes (evaluation, export, samples) in float32."""
    config = _config("fproi_gan")
    config.train.compute_dtype = "bfloat16"
    method = get_method(config)
    params, batch_stats = jax.eval_shape(lambda: method.init(jax.random.key(0), (32, 32)))
    x = jax.ShapeDtypeStruct((2, 32, 32, 1), np.float32)
    program = jax.jit(method.image_synthesis).lower(
        {"params": params, "batch_stats": batch_stats}, x, x).as_text()
    assert _convolutions(program) and "bf16" not in program


def test_unknown_compute_dtype_is_named():
    config = _config("fproi_gan")
    config.train.compute_dtype = "float16"
    with pytest.raises(ValueError, match="config.train.compute_dtype='float16' is not "
                                         "supported; choose one of float32, bfloat16"):
        get_method(config)
