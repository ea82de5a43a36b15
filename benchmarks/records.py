"""Our train steps recorded for the PyTorch twin (benchmarks/parity.py, side_by_side.py;
benchmarks/pytorch_twin.py reads the same keys): parameter trees as flat
{'prefix/path/to/leaf': array} records, and the loop that trains and records."""
import json

import jax
import numpy as np

from fproi_jax.data import pipeline
from fproi_jax.mesh import data_mesh
from fproi_jax.methods import get_method
from fproi_jax.train import loop
from fproi_jax.train import state as state_lib
from fproi_jax.train.step import make_train_step


def flatten(prefix: str, tree) -> dict:
    """{'prefix/a/b': leaf} for every leaf of `tree` (dict keys joined by '/')."""
    return {f"{prefix}/" + "/".join(str(getattr(k, "key", k)) for k in path): np.asarray(leaf)
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def unflatten(record: dict, prefix: str, dtype) -> dict:
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


def train_and_record(config, data: list, start: dict | None = None, snapshots=(),
                     log_every: int = 0) -> dict:
    """Trains `config`'s method on one device over the batches `data` and returns the
    record: config, batches, initial parameters and statistics (`params0/`, `stats0/`),
    those after each step in `snapshots` (`params<i>/`, `stats<i>/`), and every step's loss
    terms (`metrics`, columns `metric_names`). With `start` (a float32 record) it starts from
    that record's initial parameters, in float64 (x64 must be on)."""
    mesh = data_mesh(jax.devices()[:1])
    method = get_method(config)
    optimizer = state_lib.make_optimizer(config.train, len(data))
    schedule = state_lib.learning_rate_schedule(config.train, len(data))
    state = loop.initial_state(config, method, optimizer, mesh)
    if start is not None:
        cast = lambda t: jax.tree.map(  # noqa: E731
            lambda a: a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a, t)
        params = unflatten(start, "params0", np.float64)
        state = cast(jax.device_get(state)).replace(
            params=params, batch_stats=unflatten(start, "stats0", np.float64),
            opt_state={n: optimizer.init(params[n]) for n in params})
        data = [{k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in b.items()}
                for b in data]
    step = make_train_step(method, optimizer, schedule, mesh)
    out = {"config": np.array(config.to_json()),
           "image": np.stack([b["image"] for b in data]),
           "roi": np.stack([b["roi"] for b in data])}
    out.update(flatten("params0", jax.device_get(state.params)))
    out.update(flatten("stats0", jax.device_get(state.batch_stats)))
    history = []
    for i, batch in enumerate(data, start=1):
        state, metrics = step(state, pipeline.to_global_batch(batch, mesh))
        history.append({k: float(v) for k, v in jax.device_get(metrics).items()
                        if k != "learning_rate"})
        if i in snapshots:
            out.update(flatten(f"params{i}", jax.device_get(state.params)))
            out.update(flatten(f"stats{i}", jax.device_get(state.batch_stats)))
        if log_every and i % log_every == 0:
            print(f"step {i}/{len(data)}: " + ", ".join(
                f"{k} {v:.3f}" for k, v in sorted(history[-1].items())), flush=True)
    names = sorted(history[0])
    out["metric_names"] = np.array(json.dumps(names))
    out["metrics"] = np.array([[h[k] for k in names] for h in history])
    return out
