"""The train step and loop: learning, data parallelism, exact resume, config flags, multi-host."""
import json
import os
import signal
import socket
import time

import jax
import numpy as np
import pytest

from conftest import (assert_trees_close, run_launch, start_launch, tiny_config,
                      write_config_file)
from fproi_jax.data import pipeline
from fproi_jax.mesh import data_mesh
from fproi_jax.methods import get_method
from fproi_jax.store import metrics_log
from fproi_jax.train import loop
from fproi_jax.train import state as state_lib
from fproi_jax.train.step import make_train_step


def _fixed_batch(tiny_brats, n=4):
    source = pipeline.load_split(tiny_brats, "train")
    return next(pipeline.eval_batches(source, tiny_brats, n))


def _stepper(config, devices):
    mesh = data_mesh(devices)
    method = get_method(config)
    optimizer = state_lib.make_optimizer(config.train, 100)
    schedule = state_lib.learning_rate_schedule(config.train, 100)
    state = loop.initial_state(config, method, optimizer, mesh)
    return mesh, state, make_train_step(method, optimizer, schedule, mesh)


def _run_steps(config, devices, batch, steps):
    mesh, state, step = _stepper(config, devices)
    history = []
    for _ in range(steps):
        state, metrics = step(state, pipeline.to_global_batch(batch, mesh))
        history.append(jax.device_get(metrics))
    return jax.device_get(state), history


def test_steps_on_a_fixed_batch_lower_the_cycle_loss(tiny_brats):
    config = tiny_config(tiny_brats)
    config.train.learning_rate = 2e-3
    _, history = _run_steps(config, jax.devices()[:1], _fixed_batch(tiny_brats), 25)
    cycle = [float(m["cycle_image"] + m["cycle_roi"]) for m in history]
    assert np.mean(cycle[-3:]) < 0.7 * np.mean(cycle[:3]), cycle
    assert all(np.isfinite(float(v)) for m in history for v in m.values())
    assert float(history[-1]["learning_rate"]) == pytest.approx(2e-3)


def test_four_devices_give_the_same_update_as_one(tiny_brats):
    config = tiny_config(tiny_brats)
    # Adam's first steps are lr * sign(gradient): float noise in a near-zero gradient
    # flips the sign. A large eps makes the update proportional to the gradient, so the
    # comparison checks the all-reduce (a sum instead of a mean would be 4x off).
    config.train.adam_eps = 1.0
    config.train.learning_rate = 0.005
    batch = _fixed_batch(tiny_brats)
    one, one_metrics = _run_steps(config, jax.devices()[:1], batch, 3)
    four, four_metrics = _run_steps(config, jax.devices()[:4], batch, 3)
    assert jax.device_count() == 4
    assert_trees_close(one, four, atol=1e-6, rtol=1e-5)
    for m1, m4 in zip(one_metrics, four_metrics):
        for key in m1:
            np.testing.assert_allclose(m1[key], m4[key], rtol=1e-5, err_msg=key)
    assert int(four.step) == 3 and int(four.pools["count"]) == 3  # pool_size 3 filled


def _assert_tensorboard_has_samples_and_config(workdir, config, sample_steps):
    """The events hold the sample grids as images (as the PNGs) and the config as text."""
    from PIL import Image
    from tensorboard.backend.event_processing import event_accumulator

    events = event_accumulator.EventAccumulator(str(workdir / "tensorboard"),
                                                size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    images = events.Images("samples")
    assert [image.step for image in images] == sample_steps
    for image in images:
        with Image.open(workdir / "samples" / f"step_{image.step:07d}.png") as png:
            assert (image.width, image.height) == png.size
    (text,) = events.Tensors("config/text_summary")  # tensorboardX names it so
    text = text.tensor_proto.string_val[0].decode()
    assert text.startswith("```json\n") and text.endswith("\n```")
    resolved = json.loads(text[len("```json\n"):-len("\n```")])
    assert resolved["seed"] == config.seed and resolved["model"]["name"] == config.model.name


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_brats, tmp_path):
    """A checkpoint is kept only once the step after it was finite: with a learning rate of
    1e30 the step-3 update leaves finite parameters near 1e30, which make step 4's loss
    overflow, so checkpoint 3 goes aside and step 2 is the one kept."""
    config = tiny_config(tiny_brats)
    config.train.num_steps = 2
    config.seed = 7
    loop.train(config, tmp_path)          # a good checkpoint at step 2
    _assert_tensorboard_has_samples_and_config(tmp_path, config, sample_steps=[2])
    config.train.num_steps = 6
    config.train.learning_rate = 1e30     # the resumed run diverges at step 4
    config.train.checkpoint_every = 1
    with pytest.raises(loop.NonFiniteLossError,
                       match=r"step 4: non-finite loss .*Checkpoint 3, the step before, was "
                             r"moved to .*checkpoints_diverged/\. The last good checkpoint, "
                             r"step 2, is kept"):
        loop.train(config, tmp_path)
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [2]
    assert [p.name for p in (tmp_path / "checkpoints_diverged").iterdir()] == ["3"]
    state, step = loop.restore_train_state(config, tmp_path)
    assert step == 2
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.params))


def test_each_logged_loss_is_the_mean_since_the_log_before(tiny_brats, tmp_path):
    """Logging every 4 steps gives the mean of the 4 values that logging every step gives."""
    config = tiny_config(tiny_brats)
    config.train.num_steps = 4
    config.train.sample_every = 100
    every_step, every_fourth = tmp_path / "every_step", tmp_path / "every_fourth"
    config.train.log_every = 1
    loop.train(config, every_step)
    config.train.log_every = 4
    loop.train(config, every_fourth)
    each, mean = metrics_log.read(every_step), metrics_log.read(every_fourth)
    assert list(each["generator_total"][0]) == [1, 2, 3, 4]
    assert set(each) == set(mean) and "cycle_roi" in each
    for name in set(each) - {"step_time_s"}:
        assert list(mean[name][0]) == [4], name
        np.testing.assert_allclose(mean[name][1], [np.mean(each[name][1])], rtol=1e-6,
                                   err_msg=name)


# --- The command line, in subprocesses ---------------------------------------------------

def test_config_overrides_are_applied_and_bad_ones_rejected(tiny_brats, tmp_path):
    config_file = str(write_config_file(tmp_path / "tiny.py", tiny_config(tiny_brats)))
    code, out = run_launch([f"--config={config_file}", "--mode=summary",
                             "--config.model.fproi_gan.generator_width=6"])
    assert code == 0, out
    assert "| F | ConvBlock_0/Conv_0 | kernel (7, 7, 1, 6) | 294 |" in out
    code, out = run_launch([f"--config={config_file}", "--mode=summary",
                             "--config.train.batch_sise=8"])
    assert code != 0
    assert "Unknown config field 'batch_sise' in --config.train.batch_sise=8" in out
    code, out = run_launch([f"--config={config_file}", "--mode=summary",
                             "--config.train.batch_size=eight"])
    assert code != 0
    assert "--config.train.batch_size=eight" in out and "invalid literal for int()" in out


def test_killed_run_resumes_to_the_same_parameters(tiny_brats, tmp_path):
    config = tiny_config(tiny_brats)
    config.train.num_steps = 12
    config_file = str(write_config_file(tmp_path / "tiny.py", config))
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    code, out = run_launch([f"--config={config_file}", f"--workdir={straight}"])
    assert code == 0, out

    process = start_launch([f"--config={config_file}", f"--workdir={resumed}"])
    checkpoints = resumed / "checkpoints"
    deadline = time.time() + 240
    while not (checkpoints.exists() and any(p.name.isdigit() for p in checkpoints.iterdir())):
        assert process.poll() is None and time.time() < deadline, process.communicate()[0]
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)   # soon after the first committed save
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    assert not (checkpoints / "12").exists()

    code, out = run_launch([f"--config={config_file}", f"--workdir={resumed}"])
    assert code == 0, out
    assert "Resumed from step" in out
    a, step_a = loop.restore_train_state(config, straight)
    b, step_b = loop.restore_train_state(config, resumed)
    assert step_a == step_b == 12
    assert_trees_close(a, b, atol=0)
    assert sorted(p.name for p in (straight / "samples").iterdir()) == [
        "step_0000003.png", "step_0000006.png", "step_0000009.png", "step_0000012.png"]
    # the logged losses too: none lost by the kill, none twice after the resume
    curves_a, curves_b = metrics_log.read(straight), metrics_log.read(resumed)
    lines = (resumed / metrics_log.FILE).read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(2, 13, 2))
    assert list(curves_a["dx"][0]) == list(range(2, 13, 2))
    for name in set(curves_a) - {"step_time_s"}:
        np.testing.assert_array_equal(curves_a[name][1], curves_b[name][1], err_msg=name)


def _free_port():
    """A port outside the kernel's ephemeral range (which hands ports to every outgoing
    connection and bind(0)), chosen by this test process and free right now."""
    low, high = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    candidates = [p for p in range(20000, 32000) if not low <= p <= high] or range(20000, 32000)
    for port in np.random.default_rng(os.getpid()).permutation(candidates):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", int(port)))
            except OSError:
                continue
            return int(port)
    raise RuntimeError("no free port")


def _max_update(before, after):
    return max(float(np.max(np.abs(np.asarray(b) - np.asarray(a))))
               for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)))


def test_two_processes_train_like_one(tiny_brats, tmp_path):
    """Two jax.distributed processes of 2 devices each end where one process of 4 devices
    does. The update is compared at a tolerance of 0.5% of the largest parameter change:
    float reductions in another order differ by ~1e-5 of it, while a wrong all-reduce
    (a sum instead of a mean over the processes) is off by the order of the change itself."""
    config = tiny_config(tiny_brats)
    config.train.adam_eps = 1.0          # see test_four_devices_give_the_same_update_as_one
    config.train.learning_rate = 0.005
    config.train.num_steps = 4
    config_file = str(write_config_file(tmp_path / "tiny.py", config))
    single, multi = tmp_path / "single", tmp_path / "multi"
    code, out = run_launch([f"--config={config_file}", f"--workdir={single}"], devices=4)
    assert code == 0, out

    port = _free_port()
    processes = [start_launch([f"--config={config_file}", f"--workdir={multi}", "--distributed",
                          f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                          f"--process_id={i}"], devices=2) for i in range(2)]
    try:
        outputs = [p.communicate(timeout=600)[0] for p in processes]
    finally:
        for p in processes:  # on a timeout or any other failure, leave nothing running
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, out in zip(processes, outputs):
        assert p.returncode == 0, out
    assert "on 4 devices (2 processes)" in outputs[0]
    a, _ = loop.restore_train_state(config, single)
    b, _ = loop.restore_train_state(config, multi)
    method = get_method(config)
    initial = loop.initial_state(config, method, state_lib.make_optimizer(config.train, 4),
                                 data_mesh(jax.devices()[:1]))
    change = _max_update(initial.params, a.params)
    assert change > 1e-3
    assert_trees_close(a.params, b.params, atol=0.005 * change)
    assert_trees_close(a.pools, b.pools, atol=0.01)
    assert int(a.step) == int(b.step) == 4
