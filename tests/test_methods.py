"""Every method of the registry: networks, objective, sharded step, resume and export.

The train steps run on a fixed 32x32 batch of discs (no dataset needed); resume and
export use the tiny phantom BRATS build.
"""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from configs import base
from conftest import REPO, assert_trees_close, tiny_config, train_and_resume
from fproi_jax.data import pipeline
from fproi_jax.store.runs import load_generators
from fproi_jax.mesh import data_mesh
from fproi_jax.methods import COMPARISON, REGISTRY, get_method
from fproi_jax.methods.base import Networks
from fproi_jax.methods.paired import GENERATORS
from fproi_jax.store import export as export_lib, runs
from fproi_jax.train import loop
from fproi_jax.train import state as state_lib
from fproi_jax.train.step import make_train_step

METHODS = tuple(REGISTRY)
LABELS = {"fproi_gan": "Fproi-GAN", "fproi_gan_no_rfb": "Fproi-GAN w/o RFB",
          "cycle_gan": "CycleGAN", "pix2pix": "Pix2Pix", "dcgan": "DCGAN",
          "fproi_gan_context": "Fproi-GAN + context"}


def disc_batch(n=4, size=32):
    """Images with a brighter disc and the disc as ROI; fixed, so results are repeatable."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    images, rois = [], []
    for i in range(n):
        cy, cx, r = 10 + 3 * i, 20 - 2 * i, 5 + i
        roi = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.float32)
        image = np.clip(0.3 + 0.1 * rng.standard_normal((size, size)) + 0.5 * roi, 0, 1)
        rois.append(roi[..., None])
        images.append(image[..., None].astype(np.float32))
    return {"image": np.stack(images), "roi": np.stack(rois), "index": np.arange(n)}


def _config(name):
    config = tiny_config(base.get_config().data, name)
    config.data.image_size = 32
    # Adam's first steps are lr * sign(gradient), which float noise flips for near-zero
    # gradients; a large eps makes the update proportional to the gradient.
    config.train.adam_eps = 1.0
    config.train.learning_rate = 0.005
    return config


def _run(config, devices, steps, jitter=False):
    """`steps` train steps on the disc batch; `jitter` changes every initial parameter by
    one float32 rounding error (a factor 1 +- 2^-24, signs seeded)."""
    mesh = data_mesh(devices)
    method = get_method(config)
    optimizer = state_lib.make_optimizer(config.train, 100)
    schedule = state_lib.learning_rate_schedule(config.train, 100)
    state = loop.initial_state(config, method, optimizer, mesh)
    if jitter:
        rng = np.random.default_rng(0)
        params = jax.tree.map(
            lambda p: (p * (1 + 2.0 ** -24 * rng.choice([-1.0, 1.0], p.shape))).astype(p.dtype),
            jax.device_get(state.params))
        state = jax.device_put(state.replace(params=params), NamedSharding(mesh, P()))
    step = make_train_step(method, optimizer, schedule, mesh)
    history = []
    for _ in range(steps):
        state, metrics = step(state, pipeline.to_global_batch(disc_batch(), mesh))
        history.append({k: float(v) for k, v in jax.device_get(metrics).items()})
    return jax.device_get(state), history


def test_fproi_gan_options_patch_gan_dx_lsgan_and_resnet_f():
    """The three options away from the paper: Dx a PatchGAN judging patches, the
    least-squares loss, F a ResNet generator; they train, and unknown values are refused."""
    config = _config_with(image_discriminator="patch_gan", gan_mode="lsgan")
    method = get_method(config)
    assert method.gan_mode == "lsgan"
    params = method.init(jax.random.key(0), (32, 32))[0]
    # CycleGAN's PatchGAN at width w = 64 has 2,762,689 parameters for one input channel.
    config.model.fproi_gan.discriminator_features = (64, 128, 256, 512)
    wide = get_method(config).init(jax.random.key(0), (32, 32))[0]
    assert _count(wide["Dx"]) == 2_762_689 and _count(params["Dy"]) != _count(params["Dx"])
    logits = Networks(method.modules, params, {}, False)("Dx", jnp.zeros((2, 32, 32, 1)))
    assert logits.shape == (2, 2, 2)  # patch logits, not one per image
    resnet_f = get_method(_config_with(image_generator="resnet")).modules["F"]
    assert type(resnet_f).__name__ == "ResnetGenerator" and resnet_f.blocks == 6  # <= 128 px
    _, history = _run(_config_with(image_discriminator="patch_gan", gan_mode="lsgan",
                                   image_generator="resnet"), jax.devices()[:1], 2)
    assert all(np.isfinite(v) for step in history for v in step.values())
    with pytest.raises(ValueError, match="image_discriminator must be one of"):
        get_method(_config_with(image_discriminator="dense"))
    with pytest.raises(ValueError, match="image_generator must be one of"):
        get_method(_config_with(image_generator="vit"))


def _config_with(**fproi_gan):
    config = _config("fproi_gan")
    config.model.fproi_gan.update(fproi_gan)
    return config


def test_fproi_gan_step_is_unchanged():
    """Parameters and pools after 3 steps equal those written by this code
    (tests/data/fproi_gan_3_steps.npz) from this config and batch on one CPU device.

    Written anew when the transposed convolutions were aligned with PyTorch's (a one-pixel
    shift) and LeakyReLU took PyTorch's derivative at 0 (the step itself is proven against
    a PyTorch twin by `make parity`); before that it held since the pre-registry code
    (def351c). Equal to float noise: each leaf within
    1e-3 of its largest magnitude (the CPU convolution forms sum the same products in
    another order); a 10% change of the cycle weight moves 19 of the 41 leaves beyond it."""
    state, _ = _run(_config("fproi_gan"), jax.devices()[:1], 3)
    want = np.load(REPO / "tests/data/fproi_gan_3_steps.npz")
    got = {jax.tree_util.keystr(path): leaf
           for path, leaf in jax.tree_util.tree_flatten_with_path(state.params)[0]}
    got.update({f"pools/{k}": v for k, v in state.pools.items()})
    assert sorted(got) == sorted(want.files)
    for key in want.files:
        np.testing.assert_allclose(got[key], want[key], rtol=0,
                                   atol=1e-3 * np.max(np.abs(want[key])), err_msg=key)


# Fproi-GAN + context: its own test, without the jittered run (test_fproi_gan_context.py).
@pytest.mark.parametrize("name", COMPARISON)
def test_four_devices_give_the_same_update_as_one(name):
    """Parameters within 1e-5 (rtol 1e-4) of one device's, or, leaf by leaf, within 10 times
    how far one device's own result moves when its initial parameters change by one
    float32 rounding error. CycleGAN's first steps here are that sensitive: F sees G's
    near-constant output through instance norms, and the one-rounding change moves F's
    parameters by up to 6e-4 after two steps, as far as four devices' summation order does
    (AVX-512 CPU: |1 - 4 devices| 6.1e-4, |1 - jittered| 6.2e-4). The other methods stay
    within 1e-7. (`make parity` proves every step in float64, where this noise is gone.)"""
    one, one_metrics = _run(_config(name), jax.devices()[:1], 2)
    four, four_metrics = _run(_config(name), jax.devices()[:4], 2)
    jittered, _ = _run(_config(name), jax.devices()[:1], 2, jitter=True)
    assert all(np.isfinite(v) for m in one_metrics for v in m.values())
    for (path, a), b, c in zip(jax.tree_util.tree_flatten_with_path(one.params)[0],
                               jax.tree.leaves(four.params), jax.tree.leaves(jittered.params)):
        noise = float(np.max(np.abs(a - c)))
        np.testing.assert_allclose(a, b, atol=max(1e-5, 10 * noise), rtol=1e-4,
                                   err_msg=jax.tree_util.keystr(path))
    assert_trees_close(one.batch_stats, four.batch_stats, atol=1e-5, rtol=1e-4)
    for key in one_metrics[0]:  # the first step's losses: before any update
        np.testing.assert_allclose(one_metrics[0][key], four_metrics[0][key], rtol=1e-4,
                                   err_msg=key)
    assert set(one.params) == set(one.opt_state) == {"G", "F", "Dx", "Dy"}
    assert bool(one.batch_stats) == (name in ("pix2pix", "dcgan"))


def _on_one_device(fn, *args):
    """fn(*args) on a one-device mesh, where BatchNorm layers average their training
    statistics over the data axis, as in the train step."""
    return jax.jit(jax.shard_map(fn, mesh=data_mesh(jax.devices()[:1]), in_specs=P(),
                                 out_specs=P(), check_vma=False))(*args)


def _objective_terms(name, weight):
    """The generator objective of `name` on the disc batch with its main weight (cycle or L1)
    set to `weight`: (total, terms, method, variables, batch)."""
    config = _config(name)
    key = REGISTRY[name].settings_key
    weight_field = "l1_weight" if name == "pix2pix" else "cycle_weight"
    config.model[key][weight_field] = weight
    method = get_method(config)
    params, batch_stats = jax.jit(method.init, static_argnums=1)(jax.random.key(0), (32, 32))
    total, (terms, _, _) = _on_one_device(
        lambda p, s, b: method.generator_objective({n: p[n] for n in GENERATORS}, p, s, b, {},
                                                   jax.random.key(1)),
        params, batch_stats, disc_batch())
    return float(total), {k: float(v) for k, v in terms.items()}, method, params, batch_stats


@pytest.mark.parametrize("name", METHODS)
def test_generator_objective_weighs_the_cycle_terms_by_lambda(name):
    """Paper eq. 1-2 (and the baselines' objectives): total = adversarial terms + lambda *
    (the two reconstruction terms) [+ lambda * identity weight * identity terms]."""
    lam = 7.0
    total, terms, method, params, batch_stats = _objective_terms(name, lam)
    pair = ("l1_image", "l1_roi") if name == "pix2pix" else ("cycle_image", "cycle_roi")
    expected = terms["g_adversarial"] + terms["f_adversarial"] + lam * sum(terms[k] for k in pair)
    if name == "cycle_gan":
        expected += lam * 0.5 * (terms["identity_image"] + terms["identity_roi"])
    if name == "fproi_gan_context":  # its weights' defaults: 1, 10, 1
        expected += (terms["f_local_adversarial"] + 10 * terms["reconstruction"]
                     + terms["diversity"])
    np.testing.assert_allclose(total, expected, rtol=1e-6)
    if name in ("pix2pix", "dcgan", "fproi_gan_context"):
        # BatchNorm, or (+ context) training noise and healthy boxes: the training-mode
        # outputs differ from the evaluation paths below.
        return
    # The reconstruction terms are the L1 distances of the evaluation paths' outputs.
    batch = disc_batch()
    variables = {"params": params, "batch_stats": batch_stats}
    x, y = batch["image"], batch["roi"]
    _, f_g_x = jax.jit(method.image_synthesis)(variables, x, y)
    _, g_f_y = jax.jit(method.roi_synthesis)(variables, y)
    np.testing.assert_allclose(terms["cycle_image"], np.abs(f_g_x - x).mean(), rtol=1e-5)
    np.testing.assert_allclose(terms["cycle_roi"], np.abs(g_f_y - y).mean(), rtol=1e-5)


@pytest.mark.parametrize("name", METHODS)
def test_labels_and_export_networks(name):
    method = get_method(_config(name))
    assert method.label == LABELS[name]
    params, batch_stats = jax.jit(method.init, static_argnums=1)(jax.random.key(0), (32, 32))
    exported = method.export_variables(params, batch_stats)
    assert set(exported["params"]) == set(GENERATORS)
    assert set(params) == set(method.networks)
    assert all(path.split("/")[0] in GENERATORS for path in exported["batch_stats"])


def _count(tree):
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def test_cycle_gan_parameter_counts_equal_the_reference_networks():
    """junyanz/pytorch-CycleGAN-and-pix2pix with input_nc = output_nc = 1: ResnetGenerator
    (ngf 64, 9 blocks, instance norm, biases on) 11,365,633 parameters; NLayerDiscriminator
    (ndf 64, 3 layers, instance norm) 2,762,689 (from their layer lists: e.g. the generator's
    3,200 + 73,856 + 295,168 + 9 * 1,180,160 + 295,040 + 73,792 + 3,137)."""
    config = base.get_config()
    config.model.name = "cycle_gan"
    params, batch_stats = jax.eval_shape(lambda: get_method(config).init(
        jax.random.key(0), (256, 256)))
    assert {name: _count(params[name]) for name in params} == {
        "G": 11_365_633, "F": 11_365_633, "Dx": 2_762_689, "Dy": 2_762_689}
    assert batch_stats == {}


def test_pix2pix_unet_256_parameter_count_and_depth_from_size():
    """The reference's unet_256 (ngf 64, BatchNorm) for one channel in and out: 54,407,809
    parameters (its blocks, outermost first: 3,073 + 393,600 + 1,573,632 + 6,292,992 +
    3 * 12,584,960 + 8,389,632; 54,413,955 = "54.414 M" for three channels); its 70x70
    PatchGAN on the 2-channel pair with BatchNorm:
    2,112 + 131,328 + 524,800 + 2,098,176 + 8,193 = 2,764,609 (convs without bias where
    BatchNorm follows, BatchNorm scale and offset counted)."""
    config = base.get_config()
    config.model.name = "pix2pix"
    params, batch_stats = jax.eval_shape(lambda: get_method(config).init(
        jax.random.key(0), (256, 256)))
    assert _count(params["G"]) == 54_407_809
    assert _count(params["Dy"]) == 2_764_609
    assert set(batch_stats) == {"G", "F", "Dx", "Dy"}
    config.data.image_size = 64
    method = get_method(config)
    params, batch_stats = jax.eval_shape(lambda: method.init(jax.random.key(0), (64, 64)))
    assert method.modules["G"].levels == 6
    out = jax.eval_shape(method.roi_synthesis, {"params": params, "batch_stats": batch_stats},
                         jax.ShapeDtypeStruct((2, 64, 64, 1), np.float32))
    assert [o.shape for o in out] == [(2, 64, 64, 1)] * 2
    config.data.image_size = 48
    with pytest.raises(ValueError, match="power-of-two image size >= 32, got 48"):
        get_method(config)


def test_pix2pix_dropout_is_on_while_training_and_off_in_evaluation():
    config = _config("pix2pix")
    config.data.image_size = 64  # 6 levels: one decoder level with dropout
    method = get_method(config)
    params, batch_stats = jax.jit(method.init, static_argnums=1)(jax.random.key(0), (64, 64))
    x = jax.random.uniform(jax.random.key(1), (2, 64, 64, 1))
    train = [_on_one_device(lambda p, s, x: Networks(method.modules, p, s, True,
                                                     jax.random.key(k))("G", x),
                            params, batch_stats, x) for k in (2, 3)]
    assert float(np.abs(train[0] - train[1]).max()) > 1e-4
    variables = {"params": params, "batch_stats": batch_stats}
    evaluation = [jax.jit(method.image_synthesis)(variables, x, x)[0] for _ in range(2)]
    np.testing.assert_array_equal(evaluation[0], evaluation[1])


def test_unknown_method_is_named():
    config = base.get_config()
    config.model.name = "cyclegan"
    with pytest.raises(ValueError, match="'cyclegan' is not a method; choose one of fproi_gan"):
        get_method(config)


@pytest.mark.parametrize("name", ["fproi_gan", "cycle_gan"])
def test_runs_from_before_the_pytorch_alignment_are_refused(name):
    """A run config saved before the 3x3 transposed convolutions were aligned (it lacks
    model.fproi_gan.generator_upsample) would compute shifted maps: refused by name."""
    config = base.get_config()
    config.model.name = name
    del config.model.fproi_gan["generator_upsample"]
    with pytest.raises(ValueError, match=f"this {name} run was written before .* 230de02"):
        get_method(config)
    config.model.name = "pix2pix"  # 4x4 kernels: aligned as PyTorch's all along
    assert get_method(config).label == "Pix2Pix"


@pytest.mark.parametrize("name", ["cycle_gan", "pix2pix", "dcgan"])
def test_resume_export_and_evaluate_on_one_device(name, tiny_brats, tmp_path):
    """A run resumed from its step-2 checkpoint ends where an uninterrupted one does
    (parameters, BatchNorm statistics, pools, optimizer states); its export, written here
    on 4 devices, is evaluated and synthesized from by launch.py in a 1-device process, and
    its jax.export programs run in a process that imports jax alone."""
    config = tiny_config(tiny_brats, name)
    a, straight = train_and_resume(config, tmp_path)

    method = get_method(config)
    export = straight / "export"
    export_lib.export_inference(export, method.export_variables(a.params, a.batch_stats),
                                config, step=4)
    _, loaded_method, variables = load_generators(export)
    assert loaded_method.label == LABELS[name]
    assert_trees_close(variables, method.export_variables(a.params, a.batch_stats), atol=0)

    # The self-contained programs: the same syntheses, loaded by a process with jax alone.
    x = np.random.default_rng(0).random((3, 32, 32, 1), np.float32)
    y = (x > 0.7).astype(np.float32)
    script = ("import sys, numpy as np; from jax import export; "
              "p = export.deserialize(open(sys.argv[1], 'rb').read()); "
              "y = np.load(sys.argv[2]); np.save(sys.argv[3], np.asarray(p.call(y)[0]))")
    np.save(tmp_path / "y.npy", y)
    result = subprocess.run([sys.executable, "-c", script, str(export / "roi_synthesis.jaxexport"),
                             str(tmp_path / "y.npy"), str(tmp_path / "f_y.npy")],
                            cwd="/", env=dict(os.environ, PYTHONPATH=""), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "f_y.npy"),
                               method.roi_synthesis(variables, y)[0], atol=1e-5)
    image_program = jax.export.deserialize((export / "image_synthesis.jaxexport").read_bytes())
    for got, want in zip(image_program.call(x, y), method.image_synthesis(variables, x, y)):
        np.testing.assert_allclose(got, want, atol=1e-5)

    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
    data_flags = [f"--config.data.builder_config={tiny_brats.builder_config}",
                  f"--config.data.data_dir={tiny_brats.data_dir}",
                  f"--config.eval.checkpoint={export}"]
    for mode in ("evaluate", "synthesize"):
        result = subprocess.run(
            [sys.executable, "launch.py", "--config=configs/base.py", f"--workdir={tmp_path}",
             f"--mode={mode}", *data_flags], cwd=REPO, env=env, capture_output=True, text=True,
            timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    assert (runs.eval_dir(tmp_path, LABELS[name]) / "summary.md").is_file()
    assert (tmp_path / "synthetic" / "pairs.csv").is_file()
