"""What a downstream task is: a name, its config defaults and `run`.

A task judges trained runs by what their synthesized pairs do for a model trained on them
(big_vision's evaluator pattern): `run(config, runs, out_dir)` gets the run config,
{label: run folder or export} and a folder of its own, writes what it keeps there, and
returns a `results.Result` (tables, figures with paths relative to out_dir, a JSON-able
summary). A dataset that cannot support the task raises `InsufficientDataError`; the
experiment then reports the reason and writes the rest of its report.

A task that trains on the runs' training patients (Table 6) has `by_fraction`: the
experiment then runs it at each fraction of config.experiment.train_fractions (with
config.data.train_fraction and the runs of that fraction) and `by_fraction(out_dir,
{fraction: Result})` lays them out as one Result. The others run at the largest fraction.
"""
import dataclasses
from typing import Callable


class InsufficientDataError(ValueError):
    """The dataset cannot support the task (no grades, too few patients, shared ones)."""


@dataclasses.dataclass(frozen=True)
class Task:
    name: str            # its key in config.experiment.tasks
    config_key: str      # its settings live under config.<config_key>
    default_config: Callable  # () -> ml_collections.ConfigDict of those settings
    run: Callable        # (config, runs {label: path}, out_dir) -> results.Result
    by_fraction: Callable | None = None  # (out_dir, {fraction: Result}) -> results.Result
