"""A method is what it declares: a method of one network and one update group (a toy
segmenter trained with soft Dice + BCE) trains through the same sharded step as the
paper's four-network methods, and exports and draws its one synthesis direction."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import base
from conftest import assert_trees_close
from fproi_jax.data import pipeline
from fproi_jax.mesh import data_mesh
from fproi_jax.methods.base import Method, Networks, Synthesis, UpdateGroup, init_networks
from fproi_jax.models.layers import batch_norm
from fproi_jax.store import programs
from fproi_jax.train import loop
from fproi_jax.train import state as state_lib
from fproi_jax.train.step import make_train_step


class TinySegmenter(nn.Module):
    """conv - BatchNorm - ReLU - conv: one logit per pixel."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(batch_norm(train)(nn.Conv(4, (3, 3))(x)))
        return nn.Conv(1, (1, 1))(x)


class ToySegmentation(Method):
    """S: image -> ROI, trained on the per-example soft Dice loss + BCE."""

    networks = ("S",)
    label = "toy segmentation"

    def __init__(self):
        self.modules = {"S": TinySegmenter()}

    def init(self, rng, image_shape):
        return init_networks(self.modules, rng, {"S": jnp.zeros((1, *image_shape, 1))})

    @property
    def update_groups(self):
        return (UpdateGroup("segmenter", ("S",), self.objective),)

    @property
    def syntheses(self):
        return (Synthesis("segmentation", "x", ("S(x)",), self.segment),)

    def objective(self, own_params, params, batch_stats, batch, earlier, rng):
        assert earlier == {}  # the first group sees no earlier outputs
        nets = Networks(self.modules, {**params, **own_params}, batch_stats, True, rng)
        logits, y = nets("S", batch["image"]), batch["roi"]
        p = jax.nn.sigmoid(logits)
        # Per example, so that the mean over the devices is the mean over the batch.
        dice = 2 * (p * y).sum((1, 2, 3)) / (p.sum((1, 2, 3)) + y.sum((1, 2, 3)) + 1e-6)
        terms = {"dice_loss": jnp.mean(1 - dice),
                 "bce": optax.sigmoid_binary_cross_entropy(logits, y).mean()}
        return terms["dice_loss"] + terms["bce"], (terms, {}, nets.batch_stats)

    def segment(self, variables, x):
        nets = Networks(self.modules, variables["params"], variables["batch_stats"], False)
        return (jax.nn.sigmoid(nets("S", x)),)


def disc_batch(n=4, size=16):
    """Noisy images with a brighter disc, the disc as ROI; fixed."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    centres = rng.uniform(5, size - 5, (n, 2))
    roi = ((yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2 <= 9)
    roi = roi[..., None].astype(np.float32)
    image = np.clip(0.3 + 0.1 * rng.standard_normal(roi.shape) + 0.5 * roi, 0, 1)
    return {"image": image.astype(np.float32), "roi": roi}


def _config(**train):
    """Adam with a large eps (update proportional to the gradient; see test_methods.py)
    unless `train` says otherwise."""
    config = base.get_config()
    config.data.image_size = 16
    config.train.update(learning_rate=0.01, adam_eps=1.0, lr_schedule="constant")
    config.train.update(train)
    return config


def _run(method, devices, steps, **train):
    config = _config(**train)
    mesh = data_mesh(devices)
    optimizer = state_lib.make_optimizer(config.train, steps)
    state = loop.initial_state(config, method, optimizer, mesh)
    step = make_train_step(method, optimizer,
                           state_lib.learning_rate_schedule(config.train, steps), mesh)
    history = []
    for _ in range(steps):
        state, metrics = step(state, pipeline.to_global_batch(disc_batch(), mesh))
        history.append({k: float(v) for k, v in jax.device_get(metrics).items()})
    return jax.device_get(state), history


def test_one_network_one_group_learns_through_the_sharded_step():
    state, history = _run(ToySegmentation(), jax.devices()[:1], 30, adam_eps=1e-8)
    assert set(state.params) == set(state.opt_state) == {"S"} and state.pools == {}
    assert set(state.batch_stats) == {"S"}
    assert set(history[0]) == {"dice_loss", "bce", "segmenter_total", "learning_rate"}
    total = [m["segmenter_total"] for m in history]
    assert total[-1] < 0.7 * total[0], total
    assert ToySegmentation().progress_terms == {"segmenter": "segmenter_total"}


def test_one_network_one_group_two_devices_update_as_one():
    initial, _ = _run(ToySegmentation(), jax.devices()[:1], 0)
    one, one_metrics = _run(ToySegmentation(), jax.devices()[:1], 3)
    two, two_metrics = _run(ToySegmentation(), jax.devices()[:2], 3)
    assert_trees_close(one.params, two.params, atol=1e-6, rtol=1e-5)
    assert_trees_close(one.batch_stats, two.batch_stats, atol=1e-6, rtol=1e-5)
    change = max(float(np.max(np.abs(a - b)))
                 for a, b in zip(jax.tree.leaves(initial.params), jax.tree.leaves(one.params)))
    assert change > 1e-3  # the steps moved the parameters far beyond the tolerance
    for m1, m2 in zip(one_metrics, two_metrics):
        for key in m1:
            np.testing.assert_allclose(m1[key], m2[key], rtol=1e-5, err_msg=key)


def test_a_network_no_group_updates_is_refused():
    class Frozen(ToySegmentation):
        networks = ("S", "T")

    config = _config()
    optimizer = state_lib.make_optimizer(config.train, 1)
    with pytest.raises(ValueError, match=r"update \['S'\], not each of the networks "
                                         r"\['S', 'T'\] once"):
        make_train_step(Frozen(), optimizer, state_lib.learning_rate_schedule(config.train, 1),
                        data_mesh(jax.devices()[:1]))


def test_its_one_synthesis_is_drawn_and_exported(tmp_path):
    method = ToySegmentation()
    params, batch_stats = method.init(jax.random.key(0), (16, 16))
    variables = {"params": params, "batch_stats": batch_stats}
    batch = disc_batch()
    samples = method.samples(variables, batch)
    assert method.sample_names == ("x", "S(x)") and set(samples) == {"x", "S(x)"}
    programs.write_programs(tmp_path, method, variables, 16)
    assert [p.name for p in tmp_path.iterdir()] == ["segmentation.jaxexport"]
    program = jax.export.deserialize((tmp_path / "segmentation.jaxexport").read_bytes())
    (got,) = program.call(batch["image"])
    np.testing.assert_allclose(got, samples["S(x)"], atol=1e-6)
