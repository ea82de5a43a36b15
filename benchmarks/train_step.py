"""Times a method's train step (all four updates) on the available devices.

    .venv/bin/python benchmarks/train_step.py --config=configs/brats.py --steps=5
    .venv/bin/python benchmarks/train_step.py --config=configs/demo.py --config.train.batch_size=4
    .venv/bin/python benchmarks/train_step.py --config=configs/brats.py \
        --config.model.name=cycle_gan

Random data of the configured image size and global batch size; reports the compile time
and the median wall time per step after it (state donated, results blocked on). With --json
it also prints one machine-readable line, "BENCH_JSON {...}" (benchmarks/bench.py reads it),
that adds the step's FLOPs from XLA's cost analysis of the compiled program (per device:
the program each device runs) and the peak memory: the device's peak bytes in use where
the backend reports them (GPU), and the process's peak RSS. --profile=N traces N more steps
and prints where their time goes (benchmarks/xla_profile.py):

    .venv/bin/python benchmarks/train_step.py --config=configs/brats.py \
        --config.model.name=cycle_gan --steps=2 --profile=2
"""
import resource
import time

import jax
import numpy as np
import bench_json
import xla_profile
from absl import app, flags
from ml_collections import config_flags

from fproi_jax.data import pipeline
from fproi_jax.mesh import data_mesh
from fproi_jax.methods import get_method
from fproi_jax.train import loop
from fproi_jax.train import state as state_lib
from fproi_jax.train.step import make_train_step

config_flags.DEFINE_config_file("config", "configs/brats.py", "Experiment config.")
flags.DEFINE_integer("steps", 5, "Timed steps after the compiling one.")
flags.DEFINE_bool("json", False,
                  "Also print one machine-readable line: " + bench_json.PREFIX + "{...}.")
flags.DEFINE_integer("seeds", 1, "Runs trained together: the states of seeds config.seed, "
                     "config.seed + 1, ... stacked and updated on the same batch by one "
                     "program (train/step.py, seeds_form); 1: the plain step.")
flags.DEFINE_enum("seeds_form", "vmap", ["vmap", "unrolled"],
                  "How --seeds > 1 are written into the program (train/step.py).")
flags.DEFINE_integer("profile", 0, "Then trace this many more steps and print where their "
                     "time goes, by kind of XLA instruction and by layer (0: no profile).")
flags.DEFINE_integer("profile_layers", 15, "Layers listed by --profile.")
FLAGS = flags.FLAGS


def compiled_flops(compiled) -> float | None:
    """FLOPs of one call of a compiled function from XLA's cost analysis of its program (a
    dict, or a list of one dict per program on older jax); None if not reported."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    flops = (analysis or {}).get("flops")
    return float(flops) if flops is not None and flops >= 0 else None


def peak_memory(device) -> dict:
    """The device's peak bytes in use (None where the backend keeps no statistics, as on
    CPU) and this process's peak resident set size (ru_maxrss is in KiB on Linux)."""
    stats = device.memory_stats() or {}
    return {"device_peak_bytes": stats.get("peak_bytes_in_use"),
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def main(argv):
    del argv
    config = FLAGS.config
    mesh = data_mesh()
    method = get_method(config)
    optimizer = state_lib.make_optimizer(config.train, 1000)
    schedule = state_lib.learning_rate_schedule(config.train, 1000)
    seeds = FLAGS.seeds
    if seeds == 1:
        state = loop.initial_state(config, method, optimizer, mesh)
    else:
        state = loop.initial_states(config, [config.seed + k for k in range(seeds)], method,
                                    optimizer, mesh)
    step = make_train_step(method, optimizer, schedule, mesh,
                           seeds_form=FLAGS.seeds_form if seeds > 1 else None)
    size, batch_size = config.data.image_size, config.train.batch_size
    rng = np.random.default_rng(0)
    image = rng.random((batch_size, size, size, 1), dtype=np.float32)
    batch = pipeline.to_global_batch({"image": image, "roi": (image > 0.8).astype(np.float32)},
                                     mesh)
    start = time.perf_counter()
    # Compiled explicitly (the same program and donation as calling `step`), so that its
    # cost analysis comes without a second compilation.
    step = step.lower(state, batch).compile()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start

    def run():
        nonlocal state
        state, metrics = step(state, batch)
        jax.block_until_ready(metrics)

    times = []
    for _ in range(FLAGS.steps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    device = jax.devices()[0]
    size = config.data.image_size
    together = f"{seeds} seeds together ({FLAGS.seeds_form}), " if seeds > 1 else ""
    print(f"{method.label}, {size}x{size}, global batch {batch_size}, {together}"
          f"{mesh.size} x {device.platform} ({device.device_kind}): first step (compile) "
          f"{compile_s:.1f} s, then median {np.median(times):.3f} s/step "
          f"(min {min(times):.3f}, {FLAGS.steps} steps)")
    profile = None
    if FLAGS.profile:
        profile = xla_profile.breakdown(xla_profile.op_times(run, FLAGS.profile),
                                        step.as_text(), FLAGS.profile_layers)
        print(f"\nProfile of {FLAGS.profile} step(s):\n" + xla_profile.format_breakdown(profile))
    if FLAGS.json:
        record = {
            "framework": "jax", "method": config.model.name, "label": method.label,
            "size": size, "batch": batch_size, "seeds": seeds,
            "seeds_form": FLAGS.seeds_form if seeds > 1 else None, "devices": mesh.size,
            "platform": device.platform, "device": device.device_kind,
            "compute_dtype": str(config.train.get("compute_dtype", "float32")),
            "first_s": compile_s, "times": times, "median_s": float(np.median(times)),
            "min_s": min(times), **peak_memory(device),
            "flops": compiled_flops(step), "profile": profile,
        }
        bench_json.print_record(record)


if __name__ == "__main__":
    app.run(main)
