"""Evaluation reports: CSV/JSON/Markdown contents, inf handling, t-tests, id alignment."""
import csv
import json

import numpy as np
import pytest
from scipy import stats

from fproi_jax import statistics
from fproi_jax.evaluation.report import ALL_METRICS, compare_runs, write_report

IDS = ["a", "b", "c", "d"]


def metrics(offset=0.0, hausdorff=(1.0, 2.0, 4.0, np.inf)):
    """Per-example values: metric k of ALL_METRICS is (1, 2, 3, 5) * (k + 1) + offset."""
    base = np.array([1.0, 2.0, 3.0, 5.0])
    values = {name: base * (k + 1) + offset for k, name in enumerate(ALL_METRICS)}
    values["hausdorff"] = np.array(hausdorff)
    return values


def test_write_report_files_and_summary(tmp_path):
    summary = write_report(metrics(), IDS, tmp_path, "Fproi-GAN", "INbreast")

    with open(tmp_path / "per_example.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["example_id"] for row in rows] == IDS
    assert list(rows[0]) == ["example_id", *ALL_METRICS]
    assert [float(row["whole_ssim"]) for row in rows] == [2.0, 4.0, 6.0, 10.0]
    assert rows[3]["hausdorff"] == "inf"

    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert summary["n_examples"] == 4 and summary["dataset"] == "INbreast"
    psnr = summary["metrics"]["whole_psnr"]
    assert psnr["mean"] == pytest.approx(11 / 4)
    assert psnr["std"] == pytest.approx(np.sqrt((1.75**2 + 0.75**2 + 0.25**2 + 2.25**2) / 3))
    assert summary["metrics"]["hausdorff"] == {
        "mean": pytest.approx(7 / 3),
        "std": pytest.approx(np.std([1, 2, 4], ddof=1)),
        "n": 3,
        "n_inf": 1,
    }

    markdown = (tmp_path / "summary.md").read_text()
    row = "| Whole image | Fproi-GAN | 2.750 ± 1.708 | 5.500 ± 3.416 | 8.250 ± 5.123 |"
    assert row in markdown
    assert "| Tumour region | Fproi-GAN |" in markdown
    assert ("| Method | Dice | Hausdorff (eq. 6, pixels) | HD95 (eq. 6, pixels) | "
            "Hausdorff (surface) | HD95 (surface) |") in markdown
    assert "2.333 ± 1.528 †" in markdown
    assert "Fproi-GAN hausdorff: 1 of 4" in markdown
    files = {path.name for path in tmp_path.iterdir()}
    assert files == {"per_example.csv", "summary.json", "summary.md", "summary.html"}
    page = (tmp_path / "summary.html").read_text()
    assert "<td>Whole image</td><td>Fproi-GAN</td><td>2.750 ± 1.708</td>" in page


def test_write_report_hausdorff95_and_surface_distances_are_optional(tmp_path):
    values = metrics()
    for name in ("hausdorff95", "surface_hausdorff", "surface_hausdorff95"):
        del values[name]
    summary = write_report(values, IDS, tmp_path, "m", "d")
    assert "hausdorff95" not in summary["metrics"]
    markdown = (tmp_path / "summary.md").read_text()
    assert "| Method | Dice | Hausdorff (eq. 6, pixels) |\n" in markdown


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda v: v.update(whole_psnr=np.array([1.0, np.nan, 2.0, 3.0])),
            r"whole_psnr is NaN or -inf for examples \['b'\]",
        ),
        (lambda v: v.pop("dice"), r"missing metrics \['dice'\]"),
        (lambda v: v.update(fid=np.zeros(4)), r"unknown metrics \['fid'\]"),
        (lambda v: v.update(dice=np.zeros(3)), r"dice has shape \(3,\), expected \(4,\)"),
    ],
)
def test_write_report_rejects_bad_values(tmp_path, change, message):
    values = metrics()
    change(values)
    with pytest.raises(ValueError, match=message):
        write_report(values, IDS, tmp_path, "m", "d")
    assert not list(tmp_path.iterdir())


def test_write_report_rejects_duplicate_ids(tmp_path):
    with pytest.raises(ValueError, match="duplicate example ids"):
        write_report(metrics(), ["a", "a", "b", "c"], tmp_path, "m", "d")


def runs(tmp_path):
    """Three runs on the same ids; 'other' lists them in another order."""
    reference = metrics(hausdorff=(1.0, 2.0, 4.0, np.inf))
    close = {k: v + np.array([0.01, -0.02, 0.015, 0.0]) for k, v in reference.items()}
    close["hausdorff"] = np.array([1.5, 2.0, 4.2, 3.0])
    far = metrics(offset=-10.0, hausdorff=(np.inf, 8.0, 9.5, 12.0))
    far["whole_psnr"] = np.array([-7.0, -8.5, -6.0, -6.5])
    order = [2, 0, 3, 1]
    write_report(reference, IDS, tmp_path / "ref", "Fproi-GAN", "d")
    write_report(close, IDS, tmp_path / "close", "cycleGAN", "d")
    shuffled = {k: v[order] for k, v in far.items()}
    write_report(shuffled, [IDS[i] for i in order], tmp_path / "far", "DCGAN", "d")
    dirs = {"DCGAN": "far", "cycleGAN": "close", "Fproi-GAN": "ref"}
    dirs = {method: tmp_path / name for method, name in dirs.items()}
    return dirs, reference, close, far


def test_compare_runs_paired_t_tests(tmp_path):
    dirs, reference, close, far = runs(tmp_path)
    comparison = compare_runs(dirs, "Fproi-GAN", tmp_path / "cmp")

    assert json.loads((tmp_path / "cmp" / "comparison.json").read_text()) == comparison
    assert comparison["methods"] == ["DCGAN", "cycleGAN", "Fproi-GAN"]
    psnr = comparison["tests"]["whole_psnr"]
    want = stats.ttest_rel(reference["whole_psnr"], far["whole_psnr"])
    assert psnr["DCGAN"]["p"] == pytest.approx(want.pvalue)
    assert psnr["DCGAN"]["t"] == pytest.approx(want.statistic)
    assert psnr["DCGAN"]["significant"] and not psnr["cycleGAN"]["significant"]
    # Constant paired differences: the t-test is undefined, not significant.
    assert comparison["tests"]["whole_ssim"]["DCGAN"]["p"] is None

    hausdorff = comparison["tests"]["hausdorff"]
    assert hausdorff["DCGAN"]["n_pairs"] == 2 and hausdorff["DCGAN"]["n_dropped"] == 2
    assert hausdorff["cycleGAN"]["n_pairs"] == 3 and hausdorff["cycleGAN"]["n_dropped"] == 1
    want = stats.ttest_rel([1.0, 2.0, 4.0], [1.5, 2.0, 4.2])
    assert hausdorff["cycleGAN"]["p"] == pytest.approx(want.pvalue)
    assert comparison["metrics"]["hausdorff"]["DCGAN"] == {
        "mean": pytest.approx(29.5 / 3),
        "std": pytest.approx(np.std([8.0, 9.5, 12.0], ddof=1)),
        "n": 3,
        "n_inf": 1,
    }

    markdown = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| Whole image | DCGAN | -7.000 ± 1.080 * |" in markdown
    assert "| Whole image | cycleGAN | 2.751 ± 1.708 |" in markdown
    assert "| Whole image | Fproi-GAN | 2.750 ± 1.708 |" in markdown
    assert f"{psnr['DCGAN']['p']:.3g} (n=4)" in markdown
    assert "(n=2, 2 dropped)" in markdown


def test_compare_runs_names_the_run_and_the_missing_ids(tmp_path):
    dirs, reference, *_ = runs(tmp_path)
    short = {k: v[:3] for k, v in reference.items()}
    write_report(short, ["a", "b", "x"], tmp_path / "short", "Pix2Pix", "d")
    dirs["Pix2Pix"] = tmp_path / "short"
    message = r"run 'Pix2Pix'.*missing ids \['c', 'd'\], unexpected ids \['x'\]"
    with pytest.raises(ValueError, match=message):
        compare_runs(dirs, "Fproi-GAN", tmp_path / "cmp")
    with pytest.raises(ValueError, match="reference 'Fproi' is not one of the runs"):
        compare_runs(dirs, "Fproi", tmp_path / "cmp")


def test_statistics_policy_inf_left_out_nan_kept_and_equal_differences_untested():
    assert statistics.sample_summary([1.0, 2.0, 4.0, np.inf]) == {
        "mean": pytest.approx(7 / 3), "std": pytest.approx(np.std([1, 2, 4], ddof=1)),
        "n": 3, "n_inf": 1}
    assert statistics.sample_summary([np.inf]) == {"mean": None, "std": None, "n": 0, "n_inf": 1}
    undefined = statistics.sample_summary([0.5, np.nan])
    assert np.isnan(undefined["mean"]) and np.isnan(undefined["std"]) and undefined["n"] == 2
    a = np.array([0.1, 0.2, 0.7, 0.4])
    rounded = statistics.paired_t_test(a, a + 0.3)  # a - b equal up to float rounding
    assert np.ptp(a - (a + 0.3)) > 0 and rounded["p"] is None and not rounded["significant"]
    b = np.array([0.3, 0.1, 0.9, np.nan])
    test = statistics.paired_t_test(a, b)
    assert test["p"] == pytest.approx(stats.ttest_rel(a[:3], b[:3]).pvalue)
    assert (test["n_pairs"], test["n_dropped"]) == (3, 1)
    assert test["significant"] == (test["p"] < statistics.ALPHA)


def _naive_bootstrap_difference(reference, other, units, resamples, seed):
    """The resampling written out: draw patients, concatenate their examples, draw each
    method's seeds, difference of means (the same random draws, in the same order)."""
    rng = np.random.default_rng(seed)
    patients = np.unique(units)
    drawn = rng.integers(0, len(patients), (resamples, len(patients)))
    seeds = {name: rng.integers(0, len(v), (resamples, len(v)))
             for name, v in (("reference", reference), ("other", other))}
    differences = []
    for r in range(resamples):
        examples = np.concatenate([np.flatnonzero(units == patients[p]) for p in drawn[r]])
        means = {name: np.mean([v[s][examples].mean() for s in seeds[name][r]])
                 for name, v in (("reference", reference), ("other", other))}
        differences.append(means["other"] - means["reference"])
    return np.percentile(differences, [2.5, 97.5])


def test_bootstrap_difference_resamples_patients_and_seeds():
    rng = np.random.default_rng(3)
    units = np.repeat(np.array(["p1", "p2", "p3", "p4", "p5"]), [1, 4, 2, 3, 5])
    reference, other = rng.normal(size=(3, 15)), rng.normal(0.5, 1, size=(2, 15))
    result = statistics.bootstrap_difference(reference, other, units, resamples=300, seed=1)
    np.testing.assert_allclose([result["low"], result["high"]],
                               _naive_bootstrap_difference(reference, other, units, 300, 1),
                               rtol=1e-12)
    assert result["mean"] == pytest.approx(other.mean() - reference.mean())
    assert result["n_patients"] == 5 and result["n_dropped"] == 0


def test_bootstrap_difference_counts_patients_not_slices():
    """Two patients of 50 slices: better on one, worse on the other. Slices as the unit
    would call +0.5 certain; over patients the interval spans 0."""
    units = np.repeat(["a", "b"], 50)
    reference = np.zeros((1, 100))
    other = np.concatenate([np.full(50, 2.0), np.full(50, -1.0)])[None] + \
        np.random.default_rng(0).normal(0, 0.01, (1, 100))
    by_patient = statistics.bootstrap_difference(reference, other, units)
    by_slice = statistics.bootstrap_difference(reference, other, np.arange(100))
    assert by_slice["excludes_0"] and not by_patient["excludes_0"]
    assert by_patient["low"] < 0 < by_patient["high"]
    other[0, 0] = np.inf
    assert statistics.bootstrap_difference(reference, other, units)["n_dropped"] == 1
