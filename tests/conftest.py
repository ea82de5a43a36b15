"""Test-wide setup: four fake CPU devices, so multi-device code paths run everywhere.

XLA reads the flag once, when JAX first initialises its backend, so it is set here,
before any test module imports jax. Single-device tests build a mesh of one device.
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests and the launch.py subprocesses they start compile the same small programs; a
# persistent compilation cache shared between them turns repeats into cache hits.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", "/tmp/fproi_jax_test_jit_cache")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import contextlib  # noqa: E402
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import ml_collections  # noqa: E402
import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY_SHAPE = (48, 48, 40)


def write_config_file(path, config):
    """A config file (configs/*.py form) that returns `config`; returns its path."""
    path.write_text(
        "import json\nimport ml_collections\n\n\ndef get_config():\n"
        f"    return ml_collections.ConfigDict(json.loads({config.to_json()!r}))\n")
    return path


def start_launch(args, devices=4, **popen):
    """launch.py with `args` in a process of its own (`devices` fake CPU devices); its
    stdout and stderr together in .stdout."""
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    return subprocess.Popen([sys.executable, str(REPO / "launch.py"), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def run_launch(args, devices=4, timeout=600):
    """(exit code, output) of launch.py with `args`; killed after `timeout` seconds."""
    process = start_launch(args, devices)
    try:
        out, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, out


@contextlib.contextmanager
def small_filesystem(path: pathlib.Path, size: str, read_only: bool = False, fill_from=None):
    """Mounts a tmpfs of `size` (e.g. '16m') at `path` for the block, filled with a copy of
    the folder `fill_from` and then remounted read-only if asked. Needs root (the CI has
    it): skips the test elsewhere."""
    import shutil
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        if fill_from is not None:
            shutil.copytree(fill_from, path, dirs_exist_ok=True, symlinks=True)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def prepare(builder, manual_dir):
    """Builds a TFDS builder from the raw files in `manual_dir`; returns the builder."""
    import tensorflow_datasets as tfds

    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir)))
    return builder


def read_all(builder) -> dict:
    """{split: [example, ...]} of a prepared builder."""
    sources = builder.as_data_source()
    return {split: [source[i] for i in range(len(source))] for split, source in sources.items()}


def build_tiny_brats(raw_dir: pathlib.Path, data_dir: pathlib.Path, image_size: int = 32,
                     cases: int = 6) -> str:
    """Writes phantom BRATS volumes and builds them at `image_size`; returns the config name."""
    from data_builders import phantom
    from data_builders.brats2017 import Brats2017, Brats2017Config

    phantom.write_brats(raw_dir, cases=cases, shape=TINY_SHAPE, seed=0)
    name = f"tiny{image_size}"
    config = Brats2017Config(
        name=name, image_size=image_size,
        hgg_slices=phantom.scale_slices((90, 100), TINY_SHAPE[2]),
        lgg_slices=phantom.scale_slices((90, 95, 100, 105), TINY_SHAPE[2]),
        healthy_slices=(18, 36))  # tumour-free in every tiny case (tumours lie in 8-35)
    prepare(Brats2017(data_dir=str(data_dir), config=config), raw_dir)
    return name


def grid_cells(figure, columns: int):
    """(axes, cells) of a grid figure (fproi_jax.evaluation.figures): (rows, columns) object
    arrays of its axes and of the image each cell draws."""
    import numpy as np

    axes = np.array(figure.axes, dtype=object).reshape(-1, columns)
    cells = np.empty(axes.shape, dtype=object)
    for index, ax in np.ndenumerate(axes):
        (image,) = ax.images
        cells[index] = np.ma.getdata(image.get_array())
    return axes, cells

@pytest.fixture(scope="session")
def tiny_brats(tmp_path_factory) -> ml_collections.ConfigDict:
    """A `config.data` for a 32x32 phantom BRATS dataset built through the real builder."""
    root = tmp_path_factory.mktemp("tiny_brats")
    name = build_tiny_brats(root / "raw", root / "tfds")
    from configs import base
    data = base.get_config().data
    data.builder_config = name
    data.data_dir = str(root / "tfds")
    data.image_size = 32
    # The tests were written when flips were on by default (configs/base.py now has none,
    # as the paper). test_two_processes_train_like_one's atol 1e-6 holds on this data but
    # not without flips (1.5e-5 apart after 4 steps): keep the data they were tuned on.
    data.augment.flip = True
    return data


def train_and_resume(config, tmp_path):
    """Trains config's 4-step run into tmp_path/straight, and again into tmp_path/resumed
    from a copy of its step-2 checkpoint; asserts both end with the same state (parameters,
    BatchNorm statistics, pools, optimizer states) and returns (that state, straight)."""
    import shutil

    from fproi_jax.train import loop
    config.train.num_steps = 4
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    loop.train(config, straight)
    shutil.copytree(straight / "checkpoints" / "2", resumed / "checkpoints" / "2")
    loop.train(config, resumed)
    a, _ = loop.restore_train_state(config, straight)
    b, _ = loop.restore_train_state(config, resumed)
    assert_trees_close(a, b, atol=0)
    return a, straight


def assert_trees_close(a, b, atol, rtol=0.0):
    """Every leaf of pytree `a` close to the same leaf of `b`, naming the leaf that is not."""
    import jax
    import numpy as np
    flat_a, flat_b = jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b)
    assert len(flat_a) == len(flat_b)
    for (path, x), y in zip(flat_a, flat_b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=rtol,
                                   err_msg=jax.tree_util.keystr(path))


def tiny_config(data: ml_collections.ConfigDict,
                method: str = "fproi_gan") -> ml_collections.ConfigDict:
    """A fast training config of `method` on `data`: narrow networks, a few steps."""
    from configs import base
    config = base.get_config()
    config.data = data
    config.model.name = method
    model = config.model
    for key in ("fproi_gan", "fproi_gan_context"):
        model[key].update(rfb_features=(4, 8, 8, 4), generator_width=4,
                          discriminator_features=(4, 8, 8, 8), pool_size=3)
    model.cycle_gan.update(generator_width=4, residual_blocks=2, discriminator_width=4,
                           discriminator_layers=2, pool_size=3)
    model.pix2pix.update(generator_width=4, discriminator_width=4, discriminator_layers=2)
    model.dcgan.update(generator_features=(4, 8, 8), discriminator_features=(4, 8))
    config.train.batch_size = 4
    config.train.num_steps = 6
    config.train.log_every = 2
    config.train.checkpoint_every = 2
    config.train.sample_every = 3
    config.train.num_samples = 2
    config.segment.update(seeds=1, steps=2, batch_size=4, features=(4, 4, 8, 8, 16, 4))
    return config


def fresh_export(config: ml_collections.ConfigDict, path: pathlib.Path) -> pathlib.Path:
    """An inference export of config's method, freshly initialised (seed 0): a run for the
    tasks' plumbing, not their science."""
    import jax
    from fproi_jax.methods import get_method
    from fproi_jax.store import export
    method = get_method(config)
    size = config.data.image_size
    variables = method.export_variables(*method.init(jax.random.PRNGKey(0), (size, size)))
    export.export_inference(path, variables, config, step=0)
    return path


def data_flags(data: ml_collections.ConfigDict) -> list:
    """launch.py flags selecting the dataset of `data`."""
    return [f"--config.data.builder_config={data.builder_config}",
            f"--config.data.data_dir={data.data_dir}",
            f"--config.data.image_size={data.image_size}"]


CLASSIFY_SHAPE = (48, 48, 40)


@pytest.fixture(scope="session")
def classify_brats(tmp_path_factory) -> ml_collections.ConfigDict:
    """A `config.data` for 80 phantom BRATS cases at 48x48x40, the paper's (scaled) slices,
    grades balanced, 48 px: enough patients per grade for the classifier's 5-fold CV."""
    from data_builders import phantom
    from data_builders.brats2017 import Brats2017, Brats2017Config

    root = tmp_path_factory.mktemp("classify_brats")
    phantom.write_brats(root / "raw", cases=80, shape=CLASSIFY_SHAPE, seed=0)
    config = Brats2017Config(
        name="cls", image_size=48, balance_grades=True,
        hgg_slices=phantom.scale_slices((90, 100), CLASSIFY_SHAPE[2]),
        lgg_slices=phantom.scale_slices((90, 95, 100, 105), CLASSIFY_SHAPE[2]))
    prepare(Brats2017(data_dir=str(root / "tfds"), config=config), root / "raw")
    from configs import base
    data = base.get_config().data
    data.builder_config = "cls"
    data.data_dir = str(root / "tfds")
    data.image_size = 48
    return data
