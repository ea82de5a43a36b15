"""Times a method's train step (all four updates) on the available devices.

    .venv/bin/python benchmarks/train_step.py --config=configs/brats.py --steps=5
    .venv/bin/python benchmarks/train_step.py --config=configs/demo.py --config.train.batch_size=4
    .venv/bin/python benchmarks/train_step.py --config=configs/brats.py --config.model.name=cycle_gan

Random data of the configured image size and global batch size; reports the compile time
and the median wall time per step after it (state donated, results blocked on).
"""
import time

import jax
import numpy as np
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
FLAGS = flags.FLAGS


def main(argv):
    del argv
    config = FLAGS.config
    mesh = data_mesh()
    method = get_method(config)
    optimizer = state_lib.make_optimizer(config.train, 1000)
    schedule = state_lib.learning_rate_schedule(config.train, 1000)
    state = loop.initial_state(config, method, optimizer, mesh)
    step = make_train_step(method, optimizer, schedule, mesh)
    size, batch_size = config.data.image_size, config.train.batch_size
    rng = np.random.default_rng(0)
    image = rng.random((batch_size, size, size, 1), dtype=np.float32)
    batch = pipeline.to_global_batch({"image": image, "roi": (image > 0.8).astype(np.float32)},
                                     mesh)
    start = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(FLAGS.steps):
        start = time.perf_counter()
        state, metrics = step(state, batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    device = jax.devices()[0]
    print(f"{method.label}, {config.data.image_size}x{config.data.image_size}, global batch {batch_size}, "
          f"{mesh.size} x {device.platform} ({device.device_kind}): first step (compile) "
          f"{compile_s:.1f} s, then median {np.median(times):.3f} s/step "
          f"(min {min(times):.3f}, {FLAGS.steps} steps)")


if __name__ == "__main__":
    app.run(main)
