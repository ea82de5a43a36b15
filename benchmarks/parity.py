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
import json
import pathlib

from absl import app, flags
import jax
import numpy as np

from configs import base
from fproi_jax.data import pipeline
from fproi_jax.mesh import data_mesh
from fproi_jax.methods import REGISTRY, get_method
from fproi_jax.train import loop
from fproi_jax.train import state as state_lib
from fproi_jax.train.step import make_train_step

FLAGS = flags.DEFINE_string("out", None, "folder for the <method>.npz records", required=True)
# Records of a method with one setting changed: name -> (method, {field of model.<key>: value}).
VARIANTS = {"fproi_gan_rfb_resize": ("fproi_gan", {"rfb_upsample": "resize"})}
METHODS = flags.DEFINE_list("methods", [*REGISTRY, *VARIANTS], "methods (and variants) to record")

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
    config.model[REGISTRY[method][0]].update(changes)
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


def _flat(prefix: str, tree) -> dict:
    return {f"{prefix}/" + "/".join(str(getattr(k, "key", k)) for k in path): np.asarray(leaf)
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _tree(record: dict, prefix: str, dtype) -> dict:
    """The nested tree of the leaves `prefix/...` of a record, cast to `dtype`."""
    tree = {}
    for key, value in record.items():
        if key.startswith(prefix + "/"):
            *parents, leaf = key[len(prefix) + 1:].split("/")
            node = tree
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = np.asarray(value, dtype)
    return tree


def record(name: str, start: dict | None = None) -> dict:
    """Our ten steps of `name`: {key: array} as the module docstring lists. With `start`
    (a float32 record) the run starts from its initial parameters, in float64 (x64 on)."""
    config = parity_config(name)
    mesh = data_mesh(jax.devices()[:1])
    method = get_method(config)
    optimizer = state_lib.make_optimizer(config.train, STEPS)
    schedule = state_lib.learning_rate_schedule(config.train, STEPS)
    state = loop.initial_state(config, method, optimizer, mesh)
    data = batches()
    if start is not None:
        cast = lambda t: jax.tree.map(  # noqa: E731
            lambda a: a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a, t)
        params = _tree(start, "params0", np.float64)
        state = cast(jax.device_get(state)).replace(
            params=params, batch_stats=_tree(start, "stats0", np.float64),
            opt_state={n: optimizer.init(params[n]) for n in params})
        data = [{k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in b.items()}
                for b in data]
    step = make_train_step(method, optimizer, schedule, mesh)
    out = {"config": np.array(config.to_json()),
           "image": np.stack([b["image"] for b in data]),
           "roi": np.stack([b["roi"] for b in data])}
    out.update(_flat("params0", jax.device_get(state.params)))
    out.update(_flat("stats0", jax.device_get(state.batch_stats)))
    history = []
    for i, batch in enumerate(data, start=1):
        state, metrics = step(state, pipeline.to_global_batch(batch, mesh))
        history.append({k: float(v) for k, v in jax.device_get(metrics).items()
                        if k != "learning_rate"})
        if i in (1, STEPS):
            out.update(_flat(f"params{i}", jax.device_get(state.params)))
            out.update(_flat(f"stats{i}", jax.device_get(state.batch_stats)))
    names = sorted(history[0])
    out["metric_names"] = np.array(json.dumps(names))
    out["metrics"] = np.array([[h[k] for k in names] for h in history])
    return out


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
