"""Where a compiled step's time goes: a `jax.profiler` trace of a few calls, summed per
executed XLA instruction and attributed to the model code through the op_name metadata of
the compiled program (train_step.py --profile=N prints it).

Made for XLA:CPU, whose trace holds one event per executed instruction under the
instruction's name in the program text; on a GPU the events are kernels, which do not map
and are listed under their own names. Summed times can exceed the wall time where
instructions run concurrently on several threads.
"""
import collections
import glob
import gzip
import json
import re
import shutil
import tempfile

import jax

# Trace events that time the runtime around the instructions, not instructions.
_RUNTIME_EVENTS = ("Thunk", "$", "Slinky", "PjitFunction", "CommonPjRt", "ParseArguments")
_INSTRUCTION = re.compile(r'\s*(?:ROOT )?%?([\w.\-]+) = (\S+) .*?op_name="([^"]*)"')
# An instruction's kind: from the JAX primitive that produced it (the op_name's last part)
# for convolutions and matmuls, which XLA:CPU may run as library calls named only
# 'ynn_fusion'; else the first of these keywords in its name (XLA names a fusion after the
# operations it fuses, so these are heuristics, stated as such in the table).
PRIMITIVES = {"conv_general_dilated": "convolution", "dot_general": "matmul"}
# A convolution with feature_group_count > 1: what jax.vmap makes of a convolution whose
# input and kernel both carry the mapped axis (train_step.py --seeds), one group per entry.
GROUPED = "grouped convolution"
CATEGORIES = (
    ("convolution", ("convolution",)),
    ("matmul", ("dot",)),
    ("collectives", ("all-reduce", "all-gather", "reduce-scatter", "collective", "all-to-all")),
    ("reductions (norm statistics, losses)", ("reduce",)),
    ("layout copies and transposes", ("copy", "transpose")),
    ("padding, slicing, concatenation", ("pad", "slice", "concatenate", "reverse")),
)
OTHER = "elementwise and other"
OUTSIDE = "(outside the networks: losses, optimizer updates)"
UNNAMED = "(instructions XLA made, without op_name)"
_NETWORK = re.compile(r"^(?:vmap\()?(transpose\()?(?:jvp|vmap)\((\w+)\)")
_MODULE = re.compile(r"^[A-Z]\w*_\d+$")
_GROUPED = re.compile(r"feature_group_count=([2-9]|\d\d+)")
_COMPUTATION = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) \(.*\{$")
_CALLS = re.compile(r"calls=%?([\w.\-]+)")


def op_times(run, calls: int) -> collections.Counter:
    """Microseconds per call of each trace event name over `calls` calls of `run()` (which
    must block until its results are ready)."""
    trace_dir = tempfile.mkdtemp(prefix="xla_profile_")
    try:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            for _ in range(calls):
                run()
        (path,) = glob.glob(f"{trace_dir}/**/*perfetto_trace.json.gz", recursive=True)
        with gzip.open(path) as f:
            events = json.load(f)
    finally:
        shutil.rmtree(trace_dir, ignore_errors=True)
    events = events["traceEvents"] if isinstance(events, dict) else events
    totals = collections.Counter()
    for event in events:
        if event.get("ph") == "X" and not event["name"].startswith(_RUNTIME_EVENTS):
            totals[event["name"]] += event.get("dur", 0) / calls
    return totals


def instruction_metadata(hlo_text: str) -> dict:
    """Instruction name -> (result shape, op_name, grouped) for every instruction with an
    op_name; grouped: a convolution with feature_group_count > 1, or a fusion that calls a
    computation holding one (XLA:CPU runs convolutions as such fusions)."""
    grouped_computations, computation = set(), None
    for line in hlo_text.splitlines():
        header = _COMPUTATION.match(line)
        if header:
            computation = header.group(1)
        elif _GROUPED.search(line):
            grouped_computations.add(computation)
    metadata = {}
    for line in hlo_text.splitlines():
        match = _INSTRUCTION.match(line)
        if match:
            calls = _CALLS.search(line)
            grouped = bool(_GROUPED.search(line)) or bool(
                calls and calls.group(1) in grouped_computations)
            metadata.setdefault(match.group(1), (match.group(2), match.group(3), grouped))
    return metadata


def category(instruction: str, op_name: str = "", grouped: bool = False) -> str:
    """The kind of an executed instruction (see PRIMITIVES, GROUPED and CATEGORIES)."""
    primitive = op_name.rsplit("/", 1)[-1]
    if primitive in PRIMITIVES:
        return GROUPED if grouped and primitive == "conv_general_dilated" else PRIMITIVES[primitive]
    name = instruction.lower()
    for label, keywords in CATEGORIES:
        if any(keyword in name for keyword in keywords):
            return label
    return OTHER


def layer(op_name: str) -> str:
    """'Network/Module_0/Module_1 (forward|backward)' from a JAX op_name, e.g.
    'jit(step)/transpose(jvp(Generator))/ConvBlock_0/Conv_0/cond/branch_0_fun/conv...'
    -> 'Generator/ConvBlock_0/Conv_0 (backward)'; '' outside any network."""
    parts = op_name.split("/")
    for i, part in enumerate(parts):
        network = _NETWORK.match(part)
        if network:
            modules = [p for p in parts[i + 1:] if _MODULE.match(p)]
            direction = "backward" if network.group(1) else "forward"
            return "/".join([network.group(2), *modules]) + f" ({direction})"
    return ""


def breakdown(times: collections.Counter, hlo_text: str, top: int) -> dict:
    """Per-call milliseconds by kind of instruction and by model layer (the `top` largest)."""
    metadata = instruction_metadata(hlo_text)
    kinds, layers = collections.Counter(), collections.Counter()
    for name, microseconds in times.items():
        _, op_name, grouped = metadata.get(name, ("", "", False))
        kinds[category(name, op_name, grouped)] += microseconds / 1e3
        layers[(layer(op_name) or OUTSIDE) if op_name else UNNAMED] += microseconds / 1e3
    return {"total_ms": sum(kinds.values()), "kinds": dict(kinds.most_common()),
            "layers": dict(layers.most_common(top))}


def format_breakdown(profile: dict) -> str:
    """The breakdown as two markdown tables."""
    total = profile["total_ms"]
    rows = ["| kind of XLA instruction | ms/step | share |", "|---|---|---|"]
    rows += [f"| {kind} | {ms:.1f} | {ms / total:.1%} |" for kind, ms in profile["kinds"].items()
             if ms >= 0.05]
    rows += ["", f"| layer (top {len(profile['layers'])}) | ms/step | share |", "|---|---|---|"]
    rows += [f"| {name} | {ms:.1f} | {ms / total:.1%} |"
             for name, ms in profile["layers"].items()]
    rows.append(f"\nSummed instruction time {total:.1f} ms/step.")
    return "\n".join(rows)
