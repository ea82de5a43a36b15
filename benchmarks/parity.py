"""Our train steps, recorded for the PyTorch twin to replay (`make parity`).

For every method of the registry this writes `<out>/<method>.npz`: the run's config, our
initial parameters and BatchNorm statistics, ten fixed batches, every loss term of each of
the ten steps, and the parameters and statistics after steps 1 and 10, from our float32
step and (under `x64/`) from the same step run in float64 from the same start. The twin
(benchmarks/pytorch_twin.py, run from the torch environment) starts from the same
parameters, takes the same ten steps in PyTorch, in float32 and in float64, and compares.

The settings make the comparison about arithmetic, not about chance or noise:
- small networks at 32x32, global batch 4 on one device (the 1-vs-N-device equality is a
  test of its own, tests/test_methods.py);
- no image pools (pool_size 0) and no dropout: their random draws are made inside our step
  and cannot be handed to PyTorch; the pool is a data selection tested on its own
  (tests/test_losses.py), dropout on and off in tests/test_methods.py;
- Adam with eps 1.0 and lr 0.005: with a small eps Adam's first steps are lr * sign(g),
  so float noise on a near-zero gradient becomes a full step of either sign. A large eps
  makes the update proportional to the gradient, and float noise stays float noise.

    .venv/bin/python benchmarks/parity.py --out=/tmp/parity [--methods=fproi_gan,dcgan]
"""
import pathlib

from absl import app, flags
import jax
import numpy as np

from configs import base
from fproi_jax.methods import COMPARISON, REGISTRY

import records

FLAGS = flags.DEFINE_string("out", None, "folder for the <method>.npz records", required=True)
# Records of a method with one setting changed: name -> (method, {field of model.<key>: value}).
VARIANTS = {"fproi_gan_resize": ("fproi_gan", {"rfb_upsample": "resize",
                                               "generator_upsample": "resize"})}
# The paper's comparison; Fproi-GAN + context has no PyTorch twin (yet).
METHODS = flags.DEFINE_list("methods", [*COMPARISON, *VARIANTS],
                            "methods (and variants) to record")

STEPS = 10
SIZE = 32
BATCH = 4


def parity_config(name: str):
    """The run config of `name` for the comparison (see the module docstring)."""
    config = base.get_config()
    method, changes = VARIANTS.get(name, (name, {}))
    config.model.name = method
    config.data.image_size = SIZE
    model = config.model
    model.fproi_gan.update(rfb_features=(4, 8, 8, 4), generator_width=4,
                           discriminator_features=(4, 8, 8, 8), pool_size=0)
    model.cycle_gan.update(generator_width=4, residual_blocks=2, discriminator_width=4,
                           discriminator_layers=2, pool_size=0)
    model.pix2pix.update(generator_width=4, discriminator_width=4, discriminator_layers=2,
                         dropout=0.0)
    model.dcgan.update(generator_features=(4, 8, 8), discriminator_features=(4, 8))
    config.train.update(batch_size=BATCH, learning_rate=0.005, adam_eps=1.0,
                        lr_schedule="constant")
    config.model[REGISTRY[method].settings_key].update(changes)
    return config


def batches(steps: int = STEPS, n: int = BATCH, size: int = SIZE):
    """`steps` batches of noisy images with a brighter disc, the disc as ROI."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    out = []
    for _ in range(steps):
        cy, cx = rng.uniform(8, size - 8, (2, n))
        radius = rng.uniform(3, 7, n)
        roi = ((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2
               <= radius[:, None, None] ** 2).astype(np.float32)
        image = np.clip(0.3 + 0.1 * rng.standard_normal((n, size, size)) + 0.5 * roi, 0, 1)
        out.append({"image": image[..., None].astype(np.float32), "roi": roi[..., None],
                    "index": np.arange(n)})
    return out


def record(name: str, start: dict | None = None) -> dict:
    """Our ten steps of `name`: {key: array} as the module docstring lists. With `start`
    (a float32 record) the run starts from its initial parameters, in float64 (x64 on)."""
    return records.train_and_record(parity_config(name), batches(), start=start,
                                    snapshots=(1, STEPS))


def main(argv):
    del argv
    out = pathlib.Path(FLAGS.value)
    out.mkdir(parents=True, exist_ok=True)
    for name in METHODS.value:
        if name not in REGISTRY and name not in VARIANTS:
            raise app.UsageError(f"--methods: {name!r} is not a method or variant "
                                 f"({', '.join([*REGISTRY, *VARIANTS])})")
    records = {name: record(name) for name in METHODS.value}
    # float64 after every float32 run: x64 mode, once on, changes how JAX initialises.
    jax.config.update("jax_enable_x64", True)
    for name, ours in records.items():
        ours64 = record(name, start=ours)
        ours.update({f"x64/{k}": v for k, v in ours64.items() if k.startswith(("params", "stats"))
                     or k == "metrics"})
        np.savez(out / f"{name}.npz", **ours)
        print(f"recorded {STEPS} steps of {name} in float32 and float64 -> {out / name}.npz",
              flush=True)


if __name__ == "__main__":
    app.run(main)
