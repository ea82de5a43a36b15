"""A run's logged losses as JSON lines, <workdir>/metrics.jsonl: {"step": k, name: value}.

The report's loss curves read it (as big_vision's metrics file); TensorBoard gets the same
scalars for viewing, but its writer queues events in a thread, so a killed run can lose
its last minutes of them. Here each line is written and flushed when it is logged, so a
killed process loses nothing it logged. A resumed run first drops the lines after the step
it resumes from (they are logged again), rewriting the file atomically.
"""
import json
import math
import pathlib

import numpy as np

from fproi_jax import atomic

FILE = "metrics.jsonl"


def _lines(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MetricsLog:
    """Appends the logged scalars of the run in `workdir`, resumed at step `start`."""

    def __init__(self, workdir, start: int):
        self.path = pathlib.Path(workdir) / FILE
        if self.path.is_file():
            kept = [line for line in _lines(self.path) if line["step"] <= start]
            atomic.write_text(self.path, "".join(json.dumps(line) + "\n" for line in kept))
        self.file = open(self.path, "a")

    def write(self, step: int, scalars: dict) -> None:
        values = {k: (float(v) if math.isfinite(v) else str(v)) for k, v in scalars.items()}
        self.file.write(json.dumps({"step": int(step), **values}) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def read(workdir) -> dict:
    """{name: (steps, values)} of every scalar logged in <workdir>/metrics.jsonl, steps
    ascending; {} for a run without the file."""
    path = pathlib.Path(workdir) / FILE
    if not path.is_file():
        return {}
    curves = {}
    for line in _lines(path):
        step = line.pop("step")
        for name, value in line.items():
            curves.setdefault(name, {})[step] = float(value)
    return {name: (np.array(sorted(by_step)), np.array([by_step[s] for s in sorted(by_step)]))
            for name, by_step in curves.items()}
