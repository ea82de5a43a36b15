"""Evaluation reports: per-example metrics -> CSV, summaries and comparisons laid out as the paper.

The columns are those of evaluation/scores.py: image synthesis metrics (paper Tables 1
and 3) per region, whole image and tumour region, and ROI synthesis metrics (Tables 2 and
4), Dice and Hausdorff (eq. 6), plus HD95 and the boundary-based Hausdorff and HD95 that
segmentation papers report. A column absent from a run (MS-SSIM below 176 px) reads "—".
Choices:
- mean ± sample standard deviation (ddof=1) over the examples;
- +inf values (a Hausdorff distance where exactly one ROI is empty, a PSNR of identical
  images) are left out of mean and std and counted separately; NaN or -inf is an error;
- comparisons: paired-samples t-test of the reference method against each other method, per
  metric, on the examples where both values are finite (fproi_jax.statistics.paired_t_test:
  p = null with fewer than 2 such pairs or when all paired differences are equal).
Every file is written to a temporary name and renamed, so none is ever half-written.
"""
import csv
import io
from pathlib import Path

import numpy as np

from fproi_jax import atomic, results
from fproi_jax.evaluation import scores
from fproi_jax.evaluation.scores import ALL_METRICS, IMAGE_METRICS, METRICS, REGIONS, ROI_METRICS
from fproi_jax.statistics import ALPHA, paired_t_test, sample_summary

# Runs evaluated before these columns existed lack them; images under a score's minimum
# size (scores.size_limited: MS-SSIM below 176 px) leave its columns out.
OPTIONAL = scores.optional_columns()
ALL_GROUP = "All slices"  # the group of every example (align)
ID_COLUMN = "example_id"
PER_EXAMPLE = "per_example.csv"


def _checked(per_example, example_ids, source):
    """Validates metric arrays against the ids; returns {metric: float64 array} in METRICS order."""
    unknown = sorted(set(per_example) - set(ALL_METRICS))
    missing = [name for name in ALL_METRICS if name not in per_example and name not in OPTIONAL]
    if unknown or missing:
        raise ValueError(f"{source}: unknown metrics {unknown}, missing metrics {missing}")
    if len(set(example_ids)) != len(example_ids):
        raise ValueError(f"{source}: duplicate example ids")
    checked = {}
    for name in (name for name in ALL_METRICS if name in per_example):
        values = np.asarray(per_example[name], dtype=np.float64)
        if values.shape != (len(example_ids),):
            raise ValueError(
                f"{source}: {name} has shape {values.shape}, expected ({len(example_ids)},)"
            )
        bad = np.isnan(values) | np.isneginf(values)
        if bad.any():
            ids = [example_ids[i] for i in np.flatnonzero(bad)]
            raise ValueError(f"{source}: {name} is NaN or -inf for examples {ids}")
        checked[name] = values
    return checked


def summary_cell(stat) -> str:
    """'mean ± std', '†' where +inf values were left out."""
    if stat["mean"] is None:
        text = "n/a"
    elif stat["std"] is None:
        text = f"{stat['mean']:.3f}"
    else:
        text = f"{stat['mean']:.3f} ± {stat['std']:.3f}"
    return text + (" †" if stat["n_inf"] else "")


def paper_tables(cells, metrics, title: str = "") -> list:
    """The image table (rows region x method; paper Tables 1 and 3) and the ROI table (rows
    method; Tables 2 and 4) as results.Table, titled "<title>Image synthesis" and so on.

    cells: {method: {metric: text}}; metrics: the metric names present, in METRICS order.
    """
    blank = "—"
    image = results.Table(
        f"{title}Image synthesis", ["Region", "Method", *IMAGE_METRICS.values()],
        [[REGIONS[region], method, *(row.get(name, blank) for name in names)]
         for region, names in METRICS["image"].items() for method, row in cells.items()])
    roi_names = [name for name in METRICS["roi"] if name in metrics]
    roi = results.Table(
        f"{title}ROI synthesis", ["Method", *(ROI_METRICS[name] for name in roi_names)],
        [[method, *(row.get(name, blank) for name in roi_names)] for method, row in cells.items()])
    return [image, roi]


def beside(paper, figures=None) -> list:
    """The image and ROI tables of `paper_tables` each followed by its figures, {"image":
    [results.Figure], "roi": [...]}: the page's reading order."""
    image, roi = paper
    figures = figures or {}
    return [image, *figures.get("image", ()), roi, *figures.get("roi", ())]


def _footnote(statistics, n_examples):
    """statistics: {method: {metric: stats}}; lists the +inf values left out."""
    left_out = [
        f"{method} {name}: {stat['n_inf']} of {n_examples}"
        for method, by_metric in statistics.items()
        for name, stat in by_metric.items()
        if stat["n_inf"]
    ]
    return (
        "PSNR in dB, Hausdorff distances in pixels. † infinite values (Hausdorff with exactly "
        "one ROI empty, PSNR of identical images) are excluded from mean ± std: "
        + ("; ".join(left_out) if left_out else "none")
        + "."
        + (" " + scores.size_note() if any(
            name not in by_metric for by_metric in statistics.values()
            for name in scores.size_limited()) else "")
    )


def write_report(per_example, example_ids, out_dir, method, dataset, figures=None):
    """Writes per_example.csv, summary.json, summary.md and summary.html (with `figures`,
    {"image": [results.Figure], "roi": [...]} in out_dir, see `beside`) for one method on
    one dataset.

    Args:
      per_example: {metric: (N,) values}, with every name of ALL_METRICS except the
        optional ones (OPTIONAL: scores.optional_columns()).
      example_ids: N unique ids, in the order of the values.
      out_dir: folder, created if needed.
      method, dataset: names shown in the tables.
    Returns the summary dict written to summary.json:
      {"method", "dataset", "n_examples", "metrics": {metric: {"mean", "std", "n", "n_inf"}}}.
    """
    example_ids = [str(i) for i in example_ids]
    values = _checked(per_example, example_ids, f"write_report({method!r})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow([ID_COLUMN, *values])
    for k, example_id in enumerate(example_ids):
        writer.writerow([example_id, *(repr(float(v[k])) for v in values.values())])
    atomic.write_text(out_dir / PER_EXAMPLE, rows.getvalue())

    summary = {
        "method": method,
        "dataset": dataset,
        "n_examples": len(example_ids),
        "metrics": {name: sample_summary(v) for name, v in values.items()},
    }
    cells = {method: {name: summary_cell(stat) for name, stat in summary["metrics"].items()}}
    results.write_page(
        out_dir, f"{method} on {dataset}",
        f"{len(example_ids)} examples, mean ± standard deviation (ddof=1). "
        + _footnote({method: summary["metrics"]}, len(example_ids)),
        beside(paper_tables(cells, values), figures), summary, stem="summary")
    return summary


def read_per_example(run_dir):
    """Reads a run's per_example.csv; returns (example ids, {metric: float64 array})."""
    path = Path(run_dir) / PER_EXAMPLE
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no examples")
    ids = [row[ID_COLUMN] for row in rows]
    names = [name for name in rows[0] if name != ID_COLUMN]
    values = {name: np.array([float(row[name]) for row in rows]) for name in names}
    return ids, _checked(values, ids, str(path))


def align(runs, groups=None):
    """Per-example values of every run on the same examples, in the same order.

    Args:
      runs: {method: [(example ids, {metric: (N,) values}) per seed]}, the first method's
        first seed giving the order of the examples; every run must hold exactly its ids.
      groups: {group name: set of example ids}; None: one group, ALL_GROUP, of every example.
    Returns (ids, {method: {metric: (seeds, N) array}}, {group: (N,) bool mask}); the
      metrics are those every run has, in ALL_METRICS order.
    """
    first_method = next(iter(runs))
    first = runs[first_method][0][0]
    position = {example_id: k for k, example_id in enumerate(first)}
    metrics = [name for name in ALL_METRICS
               if all(name in values for seeds in runs.values() for _, values in seeds)]
    aligned = {}
    for method, seeds in runs.items():
        rows = []
        for seed, (ids, values) in enumerate(seeds):
            missing, extra = set(first) - set(ids), set(ids) - set(first)
            if missing or extra:
                which = f" seed {seed}" if len(seeds) > 1 else ""
                raise ValueError(f"run {method!r}{which}: examples differ from those of "
                                 f"{first_method!r}: missing ids {sorted(missing)}, "
                                 f"unexpected ids {sorted(extra)}")
            order = np.argsort([position[example_id] for example_id in ids])
            rows.append({name: np.asarray(values[name], np.float64)[order] for name in metrics})
        aligned[method] = {name: np.stack([row[name] for row in rows]) for name in metrics}
    if groups is None:
        groups = {ALL_GROUP: set(first)}
    masks = {group: np.array([example_id in members for example_id in first])
             for group, members in groups.items()}
    return list(first), aligned, masks


def p_cell(test) -> str:
    """A paired test's cell: 'p (n=pairs[, k dropped])', 'reference' for None."""
    if test is None:
        return "reference"
    p = "n/a" if test["p"] is None else f"{test['p']:.3g}"
    dropped = f", {test['n_dropped']} dropped" if test["n_dropped"] else ""
    return f"{p} (n={test['n_pairs']}{dropped})"


def compare_runs(run_dirs, reference, out_dir, figures=None):
    """Compares runs written by write_report: writes comparison.md, comparison.html (with
    `figures`) and comparison.json.

    Args:
      run_dirs: {method name: run folder holding per_example.csv}, in table order.
      reference: the method every other one is tested against (e.g. Fproi-GAN).
      out_dir: folder, created if needed.
    Examples are aligned by id (`align`, on the reference's order); metrics are those
    present in every run. A method's cell is starred where its paired t-test against the
    reference gives p < ALPHA.
    Returns the dict written to comparison.json:
      {"reference", "alpha", "n_examples", "methods", "metrics": {metric: {method: stats}},
       "tests": {metric: {method: {"t", "p", "n_pairs", "n_dropped", "significant"}}}}.
    """
    if reference not in run_dirs:
        raise ValueError(f"reference {reference!r} is not one of the runs {list(run_dirs)}")
    order = [reference, *(m for m in run_dirs if m != reference)]
    ids, by_seed, _ = align({m: [read_per_example(run_dirs[m])] for m in order})
    aligned = {m: {name: v[0] for name, v in by_seed[m].items()} for m in run_dirs}
    metrics = list(aligned[reference])
    statistics = {m: {name: sample_summary(aligned[m][name]) for name in metrics} for m in aligned}
    tests = {name: {m: paired_t_test(aligned[reference][name], aligned[m][name])
                    for m in aligned if m != reference} for name in metrics}
    comparison = {
        "reference": reference,
        "alpha": ALPHA,
        "n_examples": len(ids),
        "methods": list(aligned),
        "metrics": {name: {m: statistics[m][name] for m in aligned} for name in metrics},
        "tests": tests,
    }

    def test(method, name):
        return None if method == reference else tests[name][method]

    def marked(method, name):
        significant = test(method, name) is not None and test(method, name)["significant"]
        return summary_cell(statistics[method][name]) + (" *" if significant else "")

    def cells(cell):
        return {m: {name: cell(m, name) for name in metrics} for m in statistics}

    tables = [*beside(paper_tables(cells(marked), metrics), figures),
              *paper_tables(cells(lambda m, name: p_cell(test(m, name))), metrics,
                            f"p-values of the paired t-test against {reference}: ")]
    results.write_page(
        out_dir, f"Comparison against {reference}",
        f"{len(ids)} paired examples, mean ± standard deviation (ddof=1). *: paired-samples "
        f"t-test against {reference} significant at p < {ALPHA}. p-values: n pairs tested; "
        f"dropped: pairs with an infinite value in either run. "
        + _footnote(statistics, len(ids)),
        tables, comparison, stem="comparison", json_name="comparison.json")
    return comparison
