"""Downstream tasks, found by name (config.experiment.tasks; --mode=classify and
--mode=segment run one): classification (paper Table 5) and segmentation (Table 6).

Adding a task: one module defining a `base.Task` as TASK, one line in TASKS. Each task's
settings live under config.<task.config_key> with the defaults of its module.
"""
import ml_collections

from fproi_jax.tasks import classification, segmentation
from fproi_jax.tasks.base import InsufficientDataError, Task  # noqa: F401

TASKS = {task.name: task for task in (classification.TASK, segmentation.TASK)}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"{name!r} is not a task; choose from {', '.join(TASKS)}")
    return TASKS[name]


def add_task_configs(config: ml_collections.ConfigDict) -> None:
    """config.<key> = the defaults of every task."""
    for task in TASKS.values():
        config[task.config_key] = task.default_config()
