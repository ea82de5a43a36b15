"""--mode=evaluate and --mode=compare on a tiny trained run (32x32 phantom BRATS).

One run is trained for a step (a training checkpoint); the CycleGAN baseline is an export of
freshly initialised CycleGAN generators, which is all compare needs.
"""
import contextlib
import csv
import fcntl
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from conftest import REPO, grid_cells, tiny_config
from data_builders import registry
from fproi_jax import metrics
from fproi_jax.data import pipeline
from fproi_jax.evaluation import evaluate, figures, report
from fproi_jax.store.runs import load_generators
from fproi_jax.methods import get_method
from fproi_jax.store import export as export_lib
from fproi_jax.train import loop

FIGURES = ("comparison_grid.png", "grey_histograms.png", "roi_grid.png")


def _data_flags(data):
    return [f"--config.data.builder_config={data.builder_config}",
            f"--config.data.data_dir={data.data_dir}",
            f"--config.data.image_size={data.image_size}"]


def launch(mode, workdir, data, *flags):
    """Runs launch.py in a subprocess (the product's CLI); returns its stdout."""
    result = subprocess.run(
        [sys.executable, "launch.py", "--config=configs/base.py", f"--workdir={workdir}",
         f"--mode={mode}", *_data_flags(data), *flags],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@contextlib.contextmanager
def _shared_dir(tmp_path_factory, name):
    """A folder shared by the pytest-xdist workers of this session, locked while in use, so
    the expensive fixtures below run once per session, not once per worker."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder above the workers' own
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield root / name
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def runs(tiny_brats, tmp_path_factory):
    """{'Fproi-GAN': trained workdir, evaluated through the CLI, 'CycleGAN': export of initial
    params}, the config, and the stdout of the evaluation."""
    config = tiny_config(tiny_brats)
    config.train.num_steps = 1
    with _shared_dir(tmp_path_factory, "eval_runs") as root:
        workdirs = {"Fproi-GAN": root / "fproi_gan", "CycleGAN": root / "cyclegan"}
        if not (root / "evaluate.out").exists():
            loop.train(config, workdirs["Fproi-GAN"])
            baseline = tiny_config(tiny_brats, "cycle_gan")
            method = get_method(baseline)
            variables = method.export_variables(*method.init(jax.random.PRNGKey(1), (32, 32)))
            export_lib.export_inference(workdirs["CycleGAN"] / "export", variables, baseline,
                                        step=0)
            stdout = launch("evaluate", workdirs["Fproi-GAN"], tiny_brats)
            (root / "evaluate.out").write_text(stdout)
        return workdirs, config, (root / "evaluate.out").read_text()


@pytest.fixture(scope="module")
def evaluated(runs):
    """The Fproi-GAN run's eval dir and the stdout of its evaluation."""
    return runs[0]["Fproi-GAN"] / "eval" / "Fproi-GAN", runs[2]


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_evaluate_writes_one_row_per_test_example(evaluated, tiny_brats):
    out_dir, _ = evaluated
    source = pipeline.load_split(tiny_brats, "test")
    rows = _rows(out_dir / "per_example.csv")
    dataset = registry.get(tiny_brats.name)
    assert [r["example_id"] for r in rows] == [dataset.example_id(source[i], i)
                                               for i in range(len(source))]
    assert rows[0]["example_id"].startswith("Brats17_PHANTOM_")
    # 32 px is below MS-SSIM's 176: those columns are left out, every other metric is there.
    expected = [n for n in report.ALL_METRICS if not n.endswith("ms_ssim")]
    assert list(rows[0]) == ["example_id", *expected]


def test_evaluate_values_match_the_metrics_recomputed_by_hand(evaluated, runs, tiny_brats):
    """Every row and every metric column of per_example.csv against a recomputation on the
    whole test split (one batch)."""
    out_dir, _ = evaluated
    rows = _rows(out_dir / "per_example.csv")
    _, method, variables = load_generators(runs[0]["Fproi-GAN"])
    source = pipeline.load_split(tiny_brats, "test")
    batches = list(pipeline.eval_batches(source, tiny_brats, len(source)))
    assert len(batches) == 1 and len(rows) == len(source) >= 3

    @jax.jit  # the same functions, only faster than op by op
    def recompute(variables, x, y):
        _, f_g_x = method.image_synthesis(variables, x, y)
        _, g_f_y = method.roi_synthesis(variables, y)
        tumour = (metrics.tumour_region(f_g_x, y), metrics.tumour_region(x, y))
        return {
            "whole_psnr": metrics.psnr(f_g_x, x),
            "whole_ssim": metrics.ssim(f_g_x, x),
            "whole_mae": metrics.mae(f_g_x, x),
            "tumour_psnr": metrics.psnr(*tumour),
            "tumour_ssim": metrics.ssim(*tumour),
            "tumour_mae": metrics.mae(*tumour),
            "dice": metrics.dice(g_f_y, y),
            "hausdorff": metrics.hausdorff(g_f_y, y),
            "hausdorff95": metrics.hausdorff(g_f_y, y, percentile=95),
            "surface_hausdorff": metrics.surface_hausdorff(g_f_y, y),
            "surface_hausdorff95": metrics.surface_hausdorff(g_f_y, y, percentile=95),
        }

    by_hand = recompute(variables, batches[0]["image"], batches[0]["roi"])
    assert set(by_hand) == set(rows[0]) - {"example_id"}
    for name, values in by_hand.items():
        assert np.asarray(values).shape == (len(rows),)
        np.testing.assert_allclose([float(row[name]) for row in rows], np.asarray(values),
                                   rtol=1e-4, atol=1e-5, err_msg=name)
    # the examples differ in their tumour regions, so a row paired with the wrong ROI shows
    assert len({round(float(v), 3) for v in by_hand["tumour_psnr"]}) == len(rows)


def test_evaluate_summary_and_figures(evaluated, tiny_brats):
    out_dir, stdout = evaluated
    markdown = (out_dir / "summary.md").read_text()
    assert markdown.startswith("# Fproi-GAN on brats2017 test")
    assert "| Whole image | Fproi-GAN |" in markdown and "| Tumour region | Fproi-GAN |" in markdown
    assert markdown in stdout  # the table is printed
    summary = json.loads((out_dir / "summary.json").read_text())
    n = len(pipeline.load_split(tiny_brats, "test"))
    assert summary["n_examples"] == n
    assert "whole_ms_ssim" not in summary["metrics"]
    for name in FIGURES:
        with Image.open(out_dir / name) as image:
            assert image.format == "PNG"
    with np.load(out_dir / evaluate.SAMPLES) as samples:
        assert samples["F(G(x))"].shape == (4, 32, 32, 1)
        assert set(samples.files) == {"ids", *evaluate.SAMPLE_KEYS}


def test_a_padded_last_batch_gives_the_same_values_and_figures(evaluated, runs, tiny_brats,
                                                               tmp_path, monkeypatch):
    out_dir, _ = evaluated
    config = runs[1].copy_and_resolve_references()
    config.eval.batch_size = 3  # 4 test examples: a full batch, then 1 + 2 padding
    config.eval.checkpoint = str(runs[0]["Fproi-GAN"])
    drawn = {}  # the Figure each figure function returned

    def spy(name, draw):
        def wrapper(*args, **kwargs):
            drawn[name] = draw(*args, **kwargs)
            return drawn[name]
        return wrapper

    for name in ("comparison_grid", "roi_grid", "grey_histograms"):
        monkeypatch.setattr(figures, name, spy(name, getattr(figures, name)))
    evaluate.evaluate(config, tmp_path)
    full, padded = (_rows(d / "per_example.csv") for d in (out_dir, tmp_path / "eval/Fproi-GAN"))
    assert [r["example_id"] for r in padded] == [r["example_id"] for r in full]
    for a, b in zip(full, padded):
        np.testing.assert_allclose([float(b[k]) for k in b if k != "example_id"],
                                   [float(a[k]) for k in a if k != "example_id"], rtol=1e-4)

    # The figures show the test examples, in order, and their syntheses (no padding rows).
    source = pipeline.load_split(tiny_brats, "test")
    (batch,) = pipeline.eval_batches(source, tiny_brats, len(source))
    images = batch["image"][..., 0]
    with np.load(tmp_path / "eval/Fproi-GAN" / evaluate.SAMPLES) as samples:
        f_g_x, g_f_y = samples["F(G(x))"], samples["G(F(y))"]
        np.testing.assert_array_equal(samples["image"][..., 0], images[:len(f_g_x)])
    n = config.eval.num_samples
    assert len(f_g_x) == n == len(source)  # every test example drawn and stored
    # each stored synthesis is its row's: the same PSNR and Dice as per_example.csv
    np.testing.assert_allclose(metrics.psnr(f_g_x, batch["image"]),
                               [float(r["whole_psnr"]) for r in full], rtol=1e-4)
    np.testing.assert_allclose(metrics.dice(g_f_y, batch["roi"]),
                               [float(r["dice"]) for r in full], rtol=1e-4)
    axes, cells = grid_cells(drawn["comparison_grid"], columns=2)
    assert cells.shape == (2 * n, 2) and axes[0, 1].get_title() == "Fproi-GAN"
    for i in range(n):
        np.testing.assert_array_equal(cells[2 * i, 0], images[i])
        np.testing.assert_array_equal(cells[2 * i, 1], f_g_x[i, ..., 0])
    _, cells = grid_cells(drawn["roi_grid"], columns=1)
    assert cells.shape == (n, 1)
    for i in range(n):
        np.testing.assert_array_equal(cells[i, 0], images[i])
    edges, real_fractions, method_fractions = figures.histogram_fractions(
        batch["image"], {"Fproi-GAN": f_g_x})
    drawn_real, drawn_method = (p.get_data() for p in drawn["grey_histograms"].axes[0].patches)
    np.testing.assert_allclose(drawn_real.values, real_fractions)
    np.testing.assert_allclose(drawn_method.values, method_fractions["Fproi-GAN"])


def test_compare_two_methods(evaluated, runs, tiny_brats, tmp_path):
    workdirs, config, _ = runs
    config = config.copy_and_resolve_references()
    config.eval.checkpoint = str(workdirs["CycleGAN"] / "export")
    evaluate.evaluate(config, tmp_path / "cyclegan")  # the table name is the method's label
    fproi_dir, cyclegan_dir = evaluated[0], tmp_path / "cyclegan" / "eval" / "CycleGAN"
    stdout = launch("compare", tmp_path / "both", tiny_brats,
                    f"--config.eval.compare_runs=Fproi-GAN={fproi_dir},CycleGAN={cyclegan_dir}")
    out_dir = tmp_path / "both" / "comparison"
    comparison = json.loads((out_dir / "comparison.json").read_text())
    assert comparison["reference"] == "Fproi-GAN"
    assert comparison["methods"] == ["Fproi-GAN", "CycleGAN"]
    assert set(comparison["tests"]["dice"]) == {"CycleGAN"}
    markdown = (out_dir / "comparison.md").read_text()
    assert markdown.startswith("# Comparison against Fproi-GAN") and markdown in stdout
    assert "| Whole image | CycleGAN |" in markdown
    for name in FIGURES:
        assert (out_dir / name).stat().st_size > 0


def test_compare_across_image_sizes_stops_before_writing(evaluated, runs, tmp_path):
    """A run evaluated at 16 px beside one at 32 px: an error naming both, no comparison/."""
    _, config, _ = runs
    fproi_dir = evaluated[0]
    small = tmp_path / "small"
    shutil.copytree(fproi_dir, small)
    with np.load(fproi_dir / evaluate.SAMPLES) as stored:
        halved = {k: stored[k][:, ::2, ::2] if stored[k].ndim == 4 else stored[k]
                  for k in stored.files}
    np.savez_compressed(small / evaluate.SAMPLES, **halved)
    config = config.copy_and_resolve_references()
    config.eval.compare_runs = f"Fproi-GAN={fproi_dir},Small={small}"
    with pytest.raises(ValueError, match=rf"{small} holds 16 px images and {fproi_dir} 32 px"):
        evaluate.compare(config, tmp_path / "both")
    assert not (tmp_path / "both").exists()


@pytest.mark.parametrize("text, message", [
    ("Fproi-GAN=a", "at least two"),
    ("Fproi-GAN=a,CycleGAN", "METHOD=EVAL_DIR"),
    ("A=a,A=b", "given twice"),
])
def test_compare_runs_format_errors(text, message):
    with pytest.raises(ValueError, match=message):
        evaluate.parse_runs(text)


def test_parse_runs_keeps_the_order():
    runs = evaluate.parse_runs(" Fproi-GAN = runs/a/eval/Fproi-GAN , CycleGAN=runs/b ")
    assert list(runs) == ["Fproi-GAN", "CycleGAN"]
    assert str(runs["Fproi-GAN"]) == "runs/a/eval/Fproi-GAN"


def test_load_generators_names_a_wrong_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_generators(tmp_path)


@pytest.mark.parametrize("size, with_ms_ssim", [(176, True), (64, False)])
def test_ms_ssim_is_computed_from_176_pixels(tiny_brats, size, with_ms_ssim):
    method = get_method(tiny_config(tiny_brats))
    variables = jax.eval_shape(lambda: method.export_variables(
        *method.init(jax.random.PRNGKey(0), (size, size))))
    step = evaluate.make_eval_step(method, variables, size)
    batch = {k: jax.ShapeDtypeStruct((2, size, size, 1), np.float32) for k in ("image", "roi")}
    outputs = jax.eval_shape(step, batch)
    assert ("whole_ms_ssim" in outputs and "tumour_ms_ssim" in outputs) == with_ms_ssim
    assert outputs["dice"].shape == (2,)
