"""The one machine-readable line a benchmark script prints and bench.py reads back.

Standard library only: the JAX scripts import it in the project's environment and the
PyTorch scripts in the torch one.
"""
import json

PREFIX = "BENCH_JSON "


def print_record(record: dict):
    print(PREFIX + json.dumps(record), flush=True)


def parse_record(stdout: str) -> dict:
    """The record of the last "BENCH_JSON {...}" line of a benchmark's output."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(PREFIX):
            return json.loads(line[len(PREFIX):])
    raise ValueError("no " + PREFIX.strip() + " line in the output")
