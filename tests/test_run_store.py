"""The run folder (fproi_jax/store/): one owner, the same run on resume, checkpoints that
fall back, saves that fail loudly, folders that cannot be written, atomic exports.

Faults are real: processes are killed with SIGKILL, a disk fills up and a folder is
read-only on tmpfs mounts (root only, which CI has; skipped elsewhere), checkpoints are
corrupted on disk. Waits poll for a condition with generous deadlines; none races a sleep.
"""
import json
import logging
import os
import shutil
import signal
import time

import jax
import pytest

from conftest import (assert_trees_close, run_launch, small_filesystem, start_launch,
                      tiny_config, write_config_file)
from fproi_jax.store.runs import load_generators
from fproi_jax.methods import get_method
from fproi_jax.store import config_file, export
from fproi_jax.store.checkpoints import CheckpointError
from fproi_jax.store.lock import WorkdirLock, WorkdirLockedError
from fproi_jax.train import loop


@pytest.fixture(scope="module")
def trained(tiny_brats, tmp_path_factory):
    """(config, workdir) of a 4-step Fproi-GAN run with checkpoints at steps 2 and 4."""
    config = tiny_config(tiny_brats)
    config.train.num_steps = 4
    workdir = tmp_path_factory.mktemp("trained") / "run"
    loop.train(config, workdir)
    return config, workdir


def _copy(trained, tmp_path):
    config, workdir = trained
    shutil.copytree(workdir, tmp_path / "run", symlinks=True)
    return config.copy_and_resolve_references(), tmp_path / "run"


def _steps(workdir):
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def _wait_for(condition, process, what, timeout=300):
    deadline = time.time() + timeout
    while not condition():
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            raise AssertionError(f"no {what}: {process.communicate()[0][-3000:]}")
        time.sleep(0.05)


# --- One owner per workdir ---------------------------------------------------------------

def test_a_held_workdir_lock_names_its_holder(tmp_path):
    with WorkdirLock(tmp_path):
        with pytest.raises(WorkdirLockedError,
                           match=rf"{tmp_path} is in use by process {os.getpid()} on host "):
            WorkdirLock(tmp_path).acquire()
    with WorkdirLock(tmp_path):   # released: the next owner takes it
        pass


def test_a_second_process_is_refused_and_a_killed_owner_is_taken_over(tiny_brats, tmp_path):
    """A trains; B (another seed) is refused while A holds the workdir. A is killed: its
    lock is stale, and C (A's run, shorter) takes the workdir over and finishes; D, with
    another seed, is then refused for describing another run."""
    config = tiny_config(tiny_brats)
    config.train.num_steps = 100_000
    config_path = str(write_config_file(tmp_path / "tiny.py", config))
    workdir = tmp_path / "run"
    lock = workdir / ".lock"
    a = start_launch([f"--config={config_path}", f"--workdir={workdir}"])
    _wait_for(lambda: (workdir / "config.json").is_file() and str(a.pid) in lock.read_text(),
              a, "lock and config.json of process A")
    code, out = run_launch([f"--config={config_path}", f"--workdir={workdir}",
                            "--config.seed=1"], timeout=300)
    assert code != 0 and a.poll() is None
    assert f"FATAL {workdir} is in use by process {a.pid} on host " in out

    a.send_signal(signal.SIGKILL)
    a.communicate()
    code, out = run_launch([f"--config={config_path}", f"--workdir={workdir}",
                            "--config.train.num_steps=2"], timeout=300)
    assert code == 0, out
    assert f"from process {a.pid} on host " in out and "which has ended" in out
    code, out = run_launch([f"--config={config_path}", f"--workdir={workdir}",
                            "--config.seed=1"], timeout=300)
    assert code != 0
    assert "holds another run than this command describes:\n  seed: the run has 0, this " \
           "command gives 1\n" in out
    assert json.loads((workdir / "config.json").read_text())["seed"] == 0


# --- The same run on resume ----------------------------------------------------------------

def test_resuming_with_another_run_lists_every_differing_field(trained, tmp_path):
    config, workdir = _copy(trained, tmp_path)
    def written():  # everything but the lock, which the refused command held for a moment
        return {p: p.stat().st_mtime_ns for p in workdir.rglob("*") if p.name != ".lock"}

    before = written()
    other = config.copy_and_resolve_references()
    other.model.name = "cycle_gan"
    other.model.fproi_gan.generator_width = 8
    other.data.image_size = 16
    other.train.batch_size = 8
    with pytest.raises(config_file.ConfigMismatchError) as error:
        loop.train(other, workdir)
    message = str(error.value)
    for field, stored, given in [("data.image_size", 32, 16), ("model.name", "'fproi_gan'",
                                  "'cycle_gan'"), ("model.fproi_gan.generator_width", 4, 8),
                                 ("train.batch_size", 4, 8)]:
        assert f"  {field}: the run has {stored}, this command gives {given}\n" in message
    assert message.count(": the run has") == 4
    assert written() == before  # nothing built


def test_another_methods_settings_do_not_make_another_run(trained, tmp_path):
    """The config holds every method's settings; a Fproi-GAN run reads model.fproi_gan only
    (its ablation too), so a change to CycleGAN's is accepted and one to its own is not."""
    config, workdir = _copy(trained, tmp_path)
    other = config.copy_and_resolve_references()
    other.model.cycle_gan.generator_width = 8
    other.model.fproi_gan_context.healthy_box_in_tissue = False
    assert set(config_file.check(other, workdir, strict=True)) == {
        "model.cycle_gan.generator_width", "model.fproi_gan_context.healthy_box_in_tissue"}
    other.model.fproi_gan.rfb_features = (2, 2, 2, 2)
    with pytest.raises(config_file.ConfigMismatchError, match="model.fproi_gan.rfb_features"):
        config_file.check(other, workdir, strict=True)
    stored = json.loads((workdir / "config.json").read_text())
    stored["model"]["name"] = "fproi_gan_no_rfb"  # the ablation reads Fproi-GAN's settings
    (workdir / "config.json").write_text(json.dumps(stored))
    other.model.name = "fproi_gan_no_rfb"
    with pytest.raises(config_file.ConfigMismatchError, match="model.fproi_gan.rfb_features"):
        config_file.check(other, workdir, strict=True)


def test_a_longer_run_and_a_lower_learning_rate_are_accepted_and_recorded(trained, tmp_path):
    config, workdir = _copy(trained, tmp_path)
    config.train.num_steps = 6
    config.train.learning_rate = 1e-4
    loop.train(config, workdir)
    assert _steps(workdir) == [2, 4, 6]
    stored = json.loads((workdir / "config.json").read_text())
    assert stored["train"]["num_steps"] == 6 and stored["train"]["learning_rate"] == 1e-4
    changes = [json.loads(line) for line in (workdir / "config_changes.jsonl").open()]
    assert len(changes) == 1 and changes[0]["step"] == 4
    assert changes[0]["changes"] == {"train.learning_rate": {"from": 2e-4, "to": 1e-4},
                                     "train.num_steps": {"from": 4, "to": 6}}


def test_a_run_from_before_the_source_slice_size_was_a_dataset_fact_loads_and_resumes(
        trained, tmp_path):
    """Older runs' config.json hold eval.source_slice_size (it is now the dataset's, in
    data_builders.registry): their generators load for evaluation, the experiment mode may
    reuse them, and training continues, recording the field as gone."""
    config, workdir = _copy(trained, tmp_path)
    stored = json.loads((workdir / "config.json").read_text())
    assert "source_slice_size" not in stored["eval"] and "source_slice_size" not in config.eval
    stored["eval"]["source_slice_size"] = 240
    (workdir / "config.json").write_text(json.dumps(stored, indent=2))
    run_config, _, variables = load_generators(workdir)
    assert run_config.eval.source_slice_size == 240 and variables["params"]
    assert config_file.check(config, workdir, strict=True) == {
        "eval.source_slice_size": (240, "<absent>")}
    config.train.num_steps = 6
    loop.train(config, workdir)
    assert _steps(workdir) == [2, 4, 6]
    assert "source_slice_size" not in json.loads((workdir / "config.json").read_text())["eval"]
    (change,) = [json.loads(line) for line in (workdir / "config_changes.jsonl").open()]
    assert change["changes"]["eval.source_slice_size"] == {"from": 240, "to": "<absent>"}


def test_the_length_of_a_decaying_schedule_and_a_reused_runs_rate_are_fixed(trained, tmp_path):
    config, _ = trained
    decaying = config.copy_and_resolve_references()
    decaying.train.lr_schedule = "linear_decay"
    config_file.write(decaying, tmp_path)
    decaying.train.num_steps = 8
    with pytest.raises(config_file.ConfigMismatchError, match="  train.num_steps: the run "
                                                              "has 4, this command gives 8"):
        config_file.check(decaying, tmp_path)
    decaying.train.num_steps = 4
    decaying.train.learning_rate = 1e-3
    assert config_file.check(decaying, tmp_path) == {"train.learning_rate": (2e-4, 1e-3)}
    with pytest.raises(config_file.ConfigMismatchError, match="train.learning_rate"):
        config_file.check(decaying, tmp_path, strict=True)


@pytest.mark.parametrize("num_steps", [0, -1])
def test_a_run_length_that_is_not_positive_is_an_error(trained, tmp_path, num_steps):
    config, _ = trained
    config = config.copy_and_resolve_references()
    config.train.num_steps = num_steps
    with pytest.raises(config_file.InvalidConfigError,
                       match=rf"train.num_steps={num_steps} must be > 0 \(or unset"):
        loop.train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- Checkpoints that fall back, saves that fail loudly ------------------------------------

def _corrupt(step_dir, how):
    if how == "empty_step_folder":
        shutil.rmtree(step_dir)
        step_dir.mkdir()
    elif how == "removed_metadata":
        (step_dir / "state" / "_METADATA").unlink()
    elif how == "truncated_data_file":   # the OCDBT data file the arrays are read from
        data, = (step_dir / "state" / "d").iterdir()
        os.truncate(data, data.stat().st_size // 2)


@pytest.mark.parametrize("how", ["empty_step_folder", "removed_metadata",
                                 "truncated_data_file"])
def test_a_corrupt_latest_checkpoint_falls_back_to_the_one_before(trained, tmp_path, how,
                                                                  caplog):
    caplog.set_level(logging.INFO)
    config, workdir = _copy(trained, tmp_path)
    _corrupt(workdir / "checkpoints" / "4", how)
    corrupt = sorted(str(p.relative_to(workdir / "checkpoints" / "4"))
                     for p in (workdir / "checkpoints" / "4").rglob("*"))
    _, step = loop.restore_train_state(config, workdir)           # a reader: moves nothing
    assert step == 2 and _steps(workdir) == [2, 4]
    assert "Checkpoint" in caplog.text and "/4 does not restore" in caplog.text

    config.train.num_steps = 6
    loop.train(config, workdir)                                   # a trainer: moves it aside
    assert _steps(workdir) == [2, 4, 6]
    aside = workdir / "checkpoints_unreadable" / "4"
    assert sorted(str(p.relative_to(aside)) for p in aside.rglob("*")) == corrupt
    assert "Resumed from step 2" in caplog.text


def test_a_failed_save_stops_the_run_at_once_and_keeps_the_previous_checkpoint(trained,
                                                                               tmp_path):
    """The disk fills while training: the step-6 save fails in the background, and the next
    step stops the run with the folder and the cause (before, the run went on and failed at
    the following save)."""
    config, workdir = _copy(trained, tmp_path)
    saved = tmp_path / "saved_checkpoints"
    shutil.move(workdir / "checkpoints", saved)
    with small_filesystem(workdir / "checkpoints", "8m", fill_from=saved) as checkpoints:
        free = os.statvfs(checkpoints)
        with open(checkpoints / "filler", "wb") as f:   # leaves 64 KiB: the small files fit
            f.write(b"\0" * (free.f_bavail * free.f_frsize - 64 * 1024))
        config.train.num_steps = 10
        with pytest.raises(CheckpointError,
                           match=rf"saving step 6 into {checkpoints} failed \(.*\); stopping\. "
                                 r"The checkpoint of step 4 is kept\."):
            loop.train(config, workdir)
        assert _steps(workdir) == [2, 4]
        (checkpoints / "filler").unlink()
        _, step = loop.restore_train_state(config, workdir)
        assert step == 4


# --- Folders that cannot be written ----------------------------------------------------------

@pytest.mark.parametrize("mode", ["train", "export"])
def test_a_read_only_workdir_fails_in_seconds_naming_the_folder(trained, tmp_path, mode):
    config, workdir = trained
    config_path = str(write_config_file(tmp_path / "tiny.py", config))
    with small_filesystem(tmp_path / "ro", "16m", read_only=True, fill_from=workdir) as ro:
        code, out = run_launch([f"--config={config_path}", f"--workdir={ro}", f"--mode={mode}",
                                "--config.train.num_steps=6"], timeout=240)
    assert code != 0
    target = ro if mode == "train" else ro / "export_versions"
    assert f"FATAL {target} cannot be written: Read-only file system" in out


# --- Atomic exports ------------------------------------------------------------------------

def _assert_complete_export(directory, step, variables=None):
    assert directory.is_symlink() and export.exported_step(directory) == step
    assert {p.name for p in directory.iterdir()} == {
        "params", "config.json", "export.json", "image_synthesis.jaxexport",
        "roi_synthesis.jaxexport"}
    _, _, loaded = load_generators(directory)
    if variables is not None:
        assert_trees_close(loaded, variables, atol=0)


def test_an_export_replaces_the_previous_one_in_one_step(trained, tmp_path):
    config, workdir = _copy(trained, tmp_path)
    assert export.export_run(workdir) == 4
    _assert_complete_export(workdir / "export", 4)
    method = get_method(config)
    other = method.export_variables(*method.init(jax.random.PRNGKey(5), (32, 32)))
    export.export_inference(workdir / "export", other, config, step=99)
    _assert_complete_export(workdir / "export", 99, other)
    assert [p.name for p in (workdir / "export_versions").iterdir()] == ["step_99.0"]


def test_an_export_of_the_previous_layout_is_replaced(trained, tmp_path):
    config, workdir = _copy(trained, tmp_path)
    export.export_run(workdir)
    target = (workdir / "export").resolve()
    (workdir / "export").unlink()
    shutil.move(target, workdir / "export")           # a plain folder, as before links
    shutil.rmtree(workdir / "export_versions")
    export.export_run(workdir)
    _assert_complete_export(workdir / "export", 4)
    assert len(list((workdir / "export_versions").iterdir())) == 1


def test_a_killed_re_export_leaves_the_previous_export_whole(trained, tmp_path):
    config, workdir = _copy(trained, tmp_path)
    config_path = str(write_config_file(tmp_path / "tiny.py", config))
    args = [f"--config={config_path}", f"--workdir={workdir}", "--mode=export"]
    code, out = run_launch(args, timeout=300)
    assert code == 0, out
    _, _, first = load_generators(workdir / "export")

    process = start_launch(args)
    second = workdir / "export_versions" / "step_4.1"
    _wait_for(second.exists, process, "new export version")
    process.send_signal(signal.SIGKILL)
    process.communicate()
    _assert_complete_export(workdir / "export", 4, first)
    assert (workdir / "export").resolve().name in {"step_4.0", "step_4.1"}

    code, out = run_launch(args, timeout=300)   # the next export finishes and tidies up
    assert code == 0, out
    _assert_complete_export(workdir / "export", 4, first)
    assert len(list((workdir / "export_versions").iterdir())) == 1
