"""--mode=experiment: every method x seed trained, evaluated and reported in one command.

The end-to-end test runs all five methods for one step on the 32x32 phantom BRATS; the
pooling test checks the numbers of the tables on hand-made per-example values.
"""
import json
import logging
import re

import numpy as np
import pytest
from scipy import stats

from conftest import run_launch, start_launch, tiny_config, write_config_file
from data_builders import registry
from fproi_jax.data import pipeline
from fproi_jax.evaluation import report
from fproi_jax.experiment import grid as experiment, tables as experiment_report
from fproi_jax.experiment import inpainting as inpainting_table
from fproi_jax.methods import COMPARISON
from fproi_jax.store import config_file, runs

LABELS = ("Fproi-GAN", "Fproi-GAN w/o RFB", "CycleGAN", "Pix2Pix", "DCGAN")


def _mtimes(workdir):
    """mtime of every checkpoint step folder and per-example table of the runs."""
    paths = [*workdir.glob("*/seed_*/checkpoints/*"), *workdir.glob("*/seed_*/eval/*/*.csv")]
    return {str(p): p.stat().st_mtime_ns for p in paths}


@pytest.fixture(scope="module")
def experiment_run(tiny_brats, tmp_path_factory):
    # The tiny test split holds HGG slices only; with the train split it has both grades.
    data = tiny_brats.copy_and_resolve_references()
    data.test_split = "train+test"
    config = tiny_config(data)
    config.train.num_steps = 1
    config.eval.num_samples = 2
    assert tuple(config.experiment.methods) == COMPARISON and config.experiment.seeds == 1
    workdir = tmp_path_factory.mktemp("experiment")
    summary = experiment.run(config, workdir)
    return config, workdir, summary


def test_experiment_trains_evaluates_and_reports_every_method(experiment_run):
    config, workdir, summary = experiment_run
    # Table 5 cannot run on these few patients (and these splits share them): the report
    # says why instead of failing.
    assert "patient" in summary["tasks"]["classification"]["skipped"]
    assert "Task classification skipped" in (workdir / "report" / "index.html").read_text()
    for method in COMPARISON:
        run = workdir / method / "seed_0"
        assert runs.latest_step(run) == 1, method
        assert json.loads((run / "config.json").read_text())["model"]["name"] == method
    out = workdir / "report"
    assert set(summary["methods"]) == set(LABELS)
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["reference"] == "Fproi-GAN" and summary["seeds"] == 1

    # HGG and LGG rows beside all slices, counted from the test split's grade feature
    source = pipeline.load_split(config.data, config.data.test_split)
    grades = [int(source[i]["grade"]) for i in range(len(source))]
    assert set(grades) == {0, 1}
    groups = summary["groups"]
    assert list(groups) == ["All slices", "HGG", "LGG"]
    assert [groups[g]["n_examples"] for g in groups] == [
        len(grades), grades.count(0), grades.count(1)]
    dataset = registry.get(config.data.name)
    ids = [dataset.example_id(source[i], i) for i in range(len(source))]
    assert summary["runs"]["DCGAN"] == ["dcgan/seed_0/eval/DCGAN"]
    assert summary["runs"]["Fproi-GAN w/o RFB"] == [
        "fproi_gan_no_rfb/seed_0/eval/Fproi-GAN w_o RFB"]
    # every metric column of per_example.csv is in the summary, for every method and group
    columns = report.read_per_example(workdir / "fproi_gan/seed_0/eval/Fproi-GAN")[1]
    for group in groups.values():
        assert list(group["metrics"]) == list(columns)
        for name, by_method in group["metrics"].items():
            assert set(by_method) == set(LABELS), name
            assert set(group["tests"][name]) == set(LABELS) - {"Fproi-GAN"}
    # the all-slices PSNR of one method is the mean of its per-example column
    dcgan_ids, dcgan = report.read_per_example(workdir / "dcgan/seed_0/eval/DCGAN")
    assert dcgan_ids == ids
    np.testing.assert_allclose(groups["All slices"]["metrics"]["whole_psnr"]["DCGAN"]["mean"],
                               dcgan["whole_psnr"].mean())

    markdown = (out / "report.md").read_text()
    for label in LABELS:
        assert f"| {label} |" in markdown
    for group in ("All slices", "HGG", "LGG"):
        assert f"| {group} (n=" in markdown

    page = (out / "index.html").read_text()
    # the verdict, Tables 1-4, their p-values, then the training curves' levelling off
    assert page.count("<table>") == 6
    images = re.findall(r'<img src="([^"]+)"', page)
    assert images == ["comparison_grid.png", "grey_histograms.png", "roi_grid.png",
                      "loss_curves.png"]
    # one logged step per run: too few points to tell whether the losses levelled off
    assert set(summary["training"]) == set(LABELS)
    assert summary["training"]["CycleGAN"]["levelled_off"] is None
    assert list(summary["training"]["Pix2Pix"]["drift"]) == ["generator_total", "dx", "dy"]
    # each figure beside the table it illustrates
    at = {key: page.index(key) for key in ("<h2>Image synthesis</h2>", "comparison_grid.png",
                                           "<h2>ROI synthesis</h2>", "roi_grid.png",
                                           "<h2>Image synthesis: p-values")}
    assert list(at.values()) == sorted(at.values())
    for name in images:
        assert (out / name).stat().st_size > 1000
    for label in LABELS:
        assert f"<td>{label}</td>" in page
    assert "<td>HGG (n=" in page and "<td>LGG (n=" in page


def test_the_report_opens_with_the_verdict(experiment_run):
    """Ranking and Fproi-GAN's difference to each method, one row per metric, first in the
    report; the interval's patients are the test split's patient ids."""
    config, workdir, summary = experiment_run
    verdict = summary["verdict"]
    source = pipeline.load_split(config.data, config.data.test_split)
    patients = {source[i]["patient_id"].decode() for i in range(len(source))}
    assert verdict["title"] == f"Verdict: Fproi-GAN against each method ({len(patients)} " \
                               f"test patients)"
    assert verdict["header"] == ["Metric", "Ranking (best first)",
                                 *(f"Fproi-GAN − {m}" for m in LABELS[1:])]
    columns = report.read_per_example(workdir / "fproi_gan/seed_0/eval/Fproi-GAN")[1]
    assert len(verdict["rows"]) == len(columns)
    psnr = next(row for row in verdict["rows"] if row[0] == "PSNR (whole image)")
    means = {label: summary["groups"]["All slices"]["metrics"]["whole_psnr"][label]["mean"]
             for label in LABELS}
    assert psnr[1] == " > ".join(sorted(means, key=lambda m: -means[m]))
    difference = float(psnr[2].split()[0])
    assert difference == pytest.approx(means["Fproi-GAN"] - means["Fproi-GAN w/o RFB"], abs=6e-4)
    html = (workdir / "report" / "index.html").read_text()
    assert html.index("<h2>Verdict: Fproi-GAN") < html.index("<h2>Image synthesis</h2>")


def test_experiment_skips_finished_runs(experiment_run, caplog):
    config, workdir, summary = experiment_run
    before = _mtimes(workdir)
    assert len(before) == 2 * len(COMPARISON)
    with caplog.at_level(logging.INFO):
        again = experiment.run(config, workdir)
    assert _mtimes(workdir) == before
    assert again == summary
    text = caplog.text
    for method in COMPARISON:
        assert f"{method} seed 0 already trained (step 1), skipping training" in text
        assert f"{method} seed 0 already evaluated, skipping evaluation" in text


def test_a_changed_config_is_not_served_stale_runs(experiment_run):
    """Another learning rate and width: the finished runs are not reused, and the message
    names both fields; nothing is trained, evaluated or reported."""
    config, workdir, _ = experiment_run
    before = {**_mtimes(workdir), "report": (workdir / "report" / "index.html").stat().st_mtime_ns}
    changed = config.copy_and_resolve_references()
    changed.train.learning_rate = 1e-3
    changed.model.fproi_gan.generator_width = 8
    with pytest.raises(config_file.ConfigMismatchError) as error:
        experiment.run(changed, workdir)
    message = str(error.value)
    assert message.startswith(f"{workdir / 'fproi_gan' / 'seed_0'} holds another run")
    assert "  model.fproi_gan.generator_width: the run has 4, this command gives 8\n" in message
    assert "  train.learning_rate: the run has 0.0002, this command gives 0.001\n" in message
    after = {**_mtimes(workdir), "report": (workdir / "report" / "index.html").stat().st_mtime_ns}
    assert after == before


def test_cells_trained_as_concurrent_jobs_are_found_by_the_report(tiny_brats, tmp_path):
    """Two cells as two processes at once (as a job array would run them), then the call
    without `only` trains nothing and writes the report."""
    config = tiny_config(tiny_brats)
    config.train.num_steps = 1
    config.experiment.methods = ("fproi_gan", "dcgan")
    config.experiment.tasks = ()
    config_path = str(write_config_file(tmp_path / "tiny.py", config))
    args = [f"--config={config_path}", f"--workdir={tmp_path / 'grid'}", "--mode=experiment"]
    cells = [start_launch([*args, f"--config.experiment.only={cell}"])
             for cell in ("fproi_gan/seed_0", "dcgan/seed_0")]
    try:
        outputs = [p.communicate(timeout=600)[0] for p in cells]
    finally:
        for p in cells:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, out in zip(cells, outputs):
        assert p.returncode == 0, out
        assert "done; the report comes from a call without" in out
    assert not (tmp_path / "grid" / "report").exists()
    code, out = run_launch(args, timeout=600)
    assert code == 0, out
    for method in config.experiment.methods:
        assert f"{method} seed 0 already trained (step 1), skipping training" in out
        assert f"{method} seed 0 already evaluated, skipping evaluation" in out
    summary = json.loads((tmp_path / "grid" / "report" / "summary.json").read_text())
    assert set(summary["methods"]) == {"Fproi-GAN", "DCGAN"}
    code, out = run_launch([*args, "--config.experiment.only=pix2pix/seed_0"], timeout=300)
    assert code != 0 and "FATAL config.experiment.only='pix2pix/seed_0' is not a run of this " \
                         "experiment; choose one of fproi_gan/seed_0, dcgan/seed_0" in out


def test_unknown_method_is_refused(tiny_brats, tmp_path):
    config = tiny_config(tiny_brats)
    config.experiment.methods = ("fproi_gan", "stylegan")
    with pytest.raises(ValueError, match="stylegan"):
        experiment.run(config, tmp_path)


def test_unknown_task_is_refused_before_any_training(tiny_brats, tmp_path):
    config = tiny_config(tiny_brats)
    config.experiment.tasks = ("classification", "detection")
    with pytest.raises(config_file.InvalidConfigError,
                       match=r"experiment.tasks=.*unknown \['detection'\]; choose from "
                             r"classification"):
        experiment.run(config, tmp_path)
    assert not any(tmp_path.iterdir())


def _hand_made():
    """2 methods x 2 seeds x 4 examples; seed 1 lists its examples in another order."""
    ids = ["a", "b", "c", "d"]
    rng = np.random.default_rng(0)
    values = {m: rng.normal(loc, 1.0, size=(2, 4, 2)) for m, loc in (("A", 5.0), ("B", 3.0))}
    values["B"][1, 2, 1] = np.inf  # a Hausdorff with one ROI empty: B, seed 1, example c
    runs = {}
    for method, array in values.items():
        runs[method] = []
        for seed in range(2):
            order = [0, 1, 2, 3] if seed == 0 else [3, 1, 0, 2]
            runs[method].append(([ids[i] for i in order], {"dice": array[seed, order, 0],
                                                           "hausdorff": array[seed, order, 1]}))
    return ids, values, runs


def test_pooling_and_t_tests_match_numpy_and_scipy():
    ids, values, runs = _hand_made()
    groups = {"All slices": set(ids), "HGG": {"a", "b", "c"}}
    aligned_ids, aligned, masks = report.align(runs, groups)
    assert aligned_ids == ids and list(aligned["A"]) == ["dice", "hausdorff"]
    pooled = experiment_report.pool(aligned, masks, "A")
    for group, keep in (("All slices", [0, 1, 2, 3]), ("HGG", [0, 1, 2])):
        result = pooled[group]
        assert result["n_examples"] == len(keep)
        for k, name in enumerate(("dice", "hausdorff")):
            per_seed = {m: values[m][:, keep, k] for m in values}     # (seeds, examples)
            averaged = {m: v.mean(axis=0) for m, v in per_seed.items()}
            for method in ("A", "B"):
                stat = result["metrics"][name][method]
                finite = averaged[method][np.isfinite(averaged[method])]
                np.testing.assert_allclose(stat["mean"], finite.mean())
                np.testing.assert_allclose(stat["std"], finite.std(ddof=1))
                assert stat["n_inf"] == len(keep) - finite.size
                seed_means = [row[np.isfinite(row)].mean() for row in per_seed[method]]
                np.testing.assert_allclose(stat["seed_means"], seed_means)
                np.testing.assert_allclose(stat["seed_std"], np.std(seed_means, ddof=1))
            test = result["tests"][name]["B"]
            both = np.isfinite(averaged["A"]) & np.isfinite(averaged["B"])
            expected = stats.ttest_rel(averaged["A"][both], averaged["B"][both])
            np.testing.assert_allclose([test["t"], test["p"]],
                                       [expected.statistic, expected.pvalue])
            assert test["significant"] == (expected.pvalue < 0.05)
            assert test["n_dropped"] == int((~both).sum())
            assert "A" not in result["tests"][name]
    # the infinite value of B (seed 1, example c) drops c from B's Hausdorff statistics
    assert pooled["All slices"]["metrics"]["hausdorff"]["B"]["n_inf"] == 1
    assert pooled["All slices"]["metrics"]["dice"]["B"]["n_inf"] == 0


def test_tables_mark_significant_cells():
    ids, values, runs = _hand_made()
    values_shift = {m: [(i, {k: v + (10.0 if m == "A" else 0.0) for k, v in vals.items()})
                        for i, vals in seeds] for m, seeds in runs.items()}
    _, aligned, masks = report.align(values_shift)
    pooled = experiment_report.pool(aligned, masks, "A")
    assert pooled["All slices"]["tests"]["dice"]["B"]["significant"]
    tables = experiment_report.tables(pooled, "A")
    header, rows = tables[1].header, tables[1].rows  # ROI synthesis
    assert header == ("Slices", "Method", "Dice", "Hausdorff (eq. 6, pixels)")
    row_b = next(r for r in rows if r[1] == "B")
    row_a = next(r for r in rows if r[1] == "A")
    assert row_b[2].endswith(" *") and not row_a[2].endswith("*")
    assert "(seeds ± " in row_a[2]
    p_rows = tables[3].rows
    assert next(r for r in p_rows if r[1] == "A")[2] == "reference"


def test_the_healthy_inpainting_table_pools_seeds_against_the_flat_fill(tmp_path):
    """Two seeds' inpainting.json (one scored a slice the other had no room for) -> the
    seeds' mean, the flat fill's and their difference on the slices both scored."""
    rng = np.random.default_rng(0)
    ids = ["p1/a", "p1/b", "p2/a", "p3/a", "p4/a"]
    patients = {i: i.split("/")[0] for i in ids}
    ours = rng.uniform(0.001, 0.01, (2, 5))
    flat = rng.uniform(0.01, 0.02, 5)
    for seed, keep in ((0, [0, 1, 2, 3, 4]), (1, [0, 1, 2, 4])):
        scored = {"ids": [ids[k] for k in keep], "flat_fill": {}}
        for key, fn in (("mse", lambda v: v), ("psnr", lambda v: -10 * np.log10(v)),
                        ("ssim", lambda v: 1 - v)):
            scored[key] = fn(ours[seed, keep]).tolist()
            scored["flat_fill"][key] = fn(flat[keep]).tolist()
        folder = tmp_path / f"seed_{seed}"
        folder.mkdir()
        (folder / "inpainting.json").write_text(json.dumps({
            "box": 16, "without_room": [] if seed == 0 else ["p3/a"], "per_example": scored}))
    (tmp_path / "other").mkdir()
    found = inpainting_table.read({"C": [tmp_path / "seed_0", tmp_path / "seed_1"],
                                   "no inpainting": [tmp_path / "other"]})
    assert list(found) == ["C"]
    table, summary = inpainting_table.table(found, patients)
    both = [0, 1, 2, 4]  # p3/a: no room in seed 1
    assert summary["C"]["n_examples"] == 4 and summary["C"]["n_patients"] == 3
    assert summary["C"]["without_room"] == ["p3/a"]
    mse = summary["C"]["mse"]
    np.testing.assert_allclose(mse["method"]["mean"], ours[:, both].mean())
    np.testing.assert_allclose(mse["flat_fill"]["mean"], flat[both].mean())
    np.testing.assert_allclose(mse["difference"]["mean"], ours[:, both].mean() - flat[both].mean())
    assert mse["difference"]["high"] < 0  # every fill of ours beats the flat one
    assert table.rows[2][0] == "C − flat fill" and table.rows[2][1].endswith(" better")
    assert table.rows[2][3].endswith(" better")  # SSIM: higher is better
    assert "1 slice(s) had no room" in table.notes[1] and "p3/a" in table.notes[1]


def test_experiment_adds_table5_and_figure9(classify_brats, tmp_path):
    """On 80 phantom cases the seed-0 run of each method feeds the classifier (paper 3.2)."""
    config = tiny_config(classify_brats)
    config.experiment.methods = ("fproi_gan",)
    config.train.num_steps = 1
    config.classify.seeds = 2
    summary = experiment.run(config, tmp_path)
    groups = summary["tasks"]["classification"]["groups"]
    assert list(groups) == ["Real only", "+ Fproi-GAN", "+ Fproi-GAN (new ROIs)"]
    page = (tmp_path / "report" / "index.html").read_text()
    assert "<td>+ Fproi-GAN (new ROIs)</td>" in page
    assert '<img src="classification/figure9_roc.png"' in page
    assert (tmp_path / "report" / "classification" / "figure9_roc.png").stat().st_size > 0
