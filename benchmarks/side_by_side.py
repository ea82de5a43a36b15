"""Ours and the PyTorch twin trained side by side on the same batches, and their samples.

    .venv/bin/python benchmarks/side_by_side.py --mode=record --out=runs/side_by_side \
        --config=configs/paper_demo.py --config.data.data_dir=runs/paper_demo/tfds
    .bench/torch/bin/python benchmarks/pytorch_twin.py runs/side_by_side --train_only
    .venv/bin/python benchmarks/side_by_side.py --mode=render --out=runs/side_by_side \
        --config=configs/paper_demo.py --config.data.data_dir=runs/paper_demo/tfds

`record` trains the config's method for `train.num_steps` on the dataset's batches in float32
and writes `<out>/<method>.npz` in benchmarks/parity.py's layout (initial and final
parameters, every batch, the loss terms), with the image pools off (`pool_size` 0: the twin
has none) and the final parameters under `params<N>/`. The twin (`--train_only`) trains
from the same initial parameters on the same batches and writes its final parameters, in
our layouts, to `<out>/<method>.torch.npz`. `render` draws both runs' syntheses of the same
test examples in one grid (`<out>/<method>_side_by_side.png`), with our networks for both.
"""
import pathlib

from absl import app, flags
import numpy as np
from ml_collections import config_flags

from fproi_jax.data import pipeline
from fproi_jax.methods import REGISTRY, get_method
from fproi_jax.train.samples import write_sample_grid

import records

CONFIG = config_flags.DEFINE_config_file("config", None, "run config", lock_config=True)
OUT = flags.DEFINE_string("out", None, "folder of the records", required=True)
MODE = flags.DEFINE_enum("mode", None, ["record", "render"], "what to do", required=True)
EXAMPLES = flags.DEFINE_integer("examples", 4, "test examples in the grid")


def _config():
    config = CONFIG.value.unlock()
    for entry in REGISTRY.values():
        if "pool_size" in config.model[entry.settings_key]:
            config.model[entry.settings_key].pool_size = 0
    return config


def record(config, out: pathlib.Path):
    source = pipeline.load_split(config.data, config.data.train_split)
    batches = iter(pipeline.train_dataset(source, config.data, config.train.batch_size))
    steps = config.train.num_steps
    result = records.train_and_record(config, [next(batches) for _ in range(steps)],
                                      snapshots=(steps,), log_every=50)
    np.savez(out / f"{config.model.name}.npz", **result)
    print(f"recorded {steps} steps -> {out / config.model.name}.npz")


def render(config, out: pathlib.Path):
    method = get_method(config)
    steps = config.train.num_steps
    ours = dict(np.load(out / f"{config.model.name}.npz"))
    twin = dict(np.load(out / f"{config.model.name}.torch.npz"))
    source = pipeline.load_split(config.data, config.data.test_split)
    batch = next(pipeline.eval_batches(source, config.data, EXAMPLES.value))
    columns = {}
    for label, run, prefix in (("ours", ours, f"params{steps}"),
                                   ("PyTorch", twin, "params")):
        variables = {"params": records.unflatten(run, prefix, np.float32),
                     "batch_stats": records.unflatten(run, prefix.replace("params", "stats"),
                                                 np.float32)}
        samples = method.samples(variables, batch)
        if not columns:
            columns.update({"x": samples["x"], "y": samples["y"]})
        for name in ("G(x)", "F(G(x))", "F(y)", "G(F(y))"):
            columns[f"{label}: {name}"] = samples[name]
    path = out / f"{config.model.name}_side_by_side.png"
    write_sample_grid(path, columns, f"{method.label}, {steps} steps on the same batches "
                                     f"from the same start: ours and the PyTorch twin")
    print(f"wrote {path}")


def main(argv):
    del argv
    out = pathlib.Path(OUT.value)
    out.mkdir(parents=True, exist_ok=True)
    (record if MODE.value == "record" else render)(_config(), out)


if __name__ == "__main__":
    app.run(main)
