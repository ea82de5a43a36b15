"""Tables of a multi-seed comparison (launch.py --mode=experiment), laid out as the paper's.

Input: for each method, the per-example metrics of each seed's evaluation (the same test
examples in every run, matched by example id), and groups of examples (all slices; for
BRATS the HGG and LGG slices). Per group, method and metric:
- the seed-averaged value of each example (the mean over seeds; +inf where any seed's value
  is +inf, e.g. a Hausdorff distance with one ROI empty);
- pooled: mean ± sample std (ddof=1) over the examples of those seed-averaged values, +inf
  left out and counted (as in report.py);
- seeds: each seed's mean over its finite values, and their sample std (the spread between
  seeds; null with one seed);
- a paired t-test (fproi_jax.statistics.paired_t_test) of the reference method
  (Fproi-GAN) against each other method on the seed-averaged values, significant at
  p < statistics.ALPHA.
`pool` computes these numbers; `tables` lays them out as results.Table values.

`verdict`, the table the report opens with: per metric, the methods ranked by their mean
over seeds and examples, and the reference's difference to each other method with a 95%
interval that resamples seeds and test patients (statistics.bootstrap_difference): the
patient, not the slice, is the independent unit.
"""
import numpy as np

from fproi_jax import results
from fproi_jax.evaluation import report, scores
from fproi_jax.statistics import ALPHA, bootstrap_difference, paired_t_test, sample_summary


def pool(aligned, masks, reference):
    """Pooled statistics and paired t-tests per group (see the module docstring).

    Args:
      aligned: {method: {metric: (seeds, N) array}} (report.align's second result).
      masks: {group: (N,) bool mask}.
      reference: the method the others are tested against.
    Returns {group: {"n_examples", "metrics": {metric: {method: {"mean", "std", "n",
      "n_inf", "seed_means", "seed_std", "seeds"}}}, "tests": {metric: {other method:
      {"t", "p", "n_pairs", "n_dropped", "significant"}}}}}.
    """
    if reference not in aligned:
        raise ValueError(f"reference {reference!r} is not one of {list(aligned)}")
    metrics = list(next(iter(aligned.values())))
    out = {}
    for group, mask in masks.items():
        statistics, tests = {}, {}
        for name in metrics:
            averaged = {}
            statistics[name] = {}
            for method, by_metric in aligned.items():
                values = by_metric[name][:, mask]
                averaged[method] = values.mean(axis=0)  # +inf stays +inf
                seed_means = [sample_summary(row)["mean"] for row in values]
                known = [m for m in seed_means if m is not None]
                statistics[name][method] = {
                    **sample_summary(averaged[method]),
                    "seed_means": seed_means,
                    "seed_std": sample_summary(known)["std"],
                    "seeds": int(values.shape[0]),
                }
            tests[name] = {method: paired_t_test(averaged[reference], averaged[method])
                           for method in aligned if method != reference}
        out[group] = {"n_examples": int(mask.sum()), "metrics": statistics, "tests": tests}
    return out


def verdict(aligned, units, reference) -> results.Table:
    """Per metric the ranking and `reference` - each other method,
    mean (95% interval over seeds and patients), 'better'/'worse' where it excludes 0.

    aligned: {method: {metric: (seeds, N)}} (report.align); units: (N,) patient of each example.
    """
    others = [m for m in aligned if m != reference]
    rows = []
    for name in next(iter(aligned.values())):
        higher = scores.higher_is_better(name)
        means = {m: sample_summary(v[name].ravel())["mean"] for m, v in aligned.items()}
        ranked = sorted((m for m in means if means[m] is not None),
                        key=lambda m: -means[m] if higher else means[m])
        cells = []
        for other in others:
            d = bootstrap_difference(aligned[other][name], aligned[reference][name], units)
            if d["mean"] is None:
                cells.append("n/a")
                continue
            text = f"{d['mean']:+.3f} ({d['low']:+.3f}, {d['high']:+.3f})"
            if d["excludes_0"]:
                text += " better" if (d["mean"] > 0) == higher else " worse"
            cells.append(text)
        rows.append([scores.label(name), " > ".join(ranked), *cells])
    n_patients = len(set(np.asarray(units).tolist()))
    return results.Table(
        f"Verdict: {reference} against each method ({n_patients} test patients)",
        ["Metric", "Ranking (best first)", *(f"{reference} − {m}" for m in others)], rows)


def _cell(stat, test):
    """'mean ± std (seeds ± s)', '*' where the t-test against the reference is significant."""
    text = report.summary_cell(stat)
    if stat["seed_std"] is not None:
        text += f" (seeds ± {stat['seed_std']:.3f})"
    return text + (" *" if test is not None and test["significant"] else "")


def tables(pooled, reference) -> list:
    """The report's tables (results.Table) of plain text cells.

    Image synthesis (paper Tables 1 and 3): rows group x region x method, columns PSNR,
    SSIM, MS-SSIM (where computed); ROI synthesis (Tables 2 and 4): rows group x method,
    columns Dice and the Hausdorff distances; then the same two with the t-tests' p-values.
    """
    metrics = list(next(iter(pooled.values()))["metrics"])
    image_names = {region: [n for n in names if n in metrics]
                   for region, names in report.METRICS["image"].items()}
    image_columns = [key for key in report.IMAGE_METRICS
                     if any(f"{region}_{key}" in metrics for region in report.REGIONS)]
    roi_names = [name for name in report.METRICS["roi"] if name in metrics]

    def build(cell):
        image_rows, roi_rows = [], []
        for group, result in pooled.items():
            methods = list(result["metrics"][metrics[0]])
            label = f"{group} (n={result['n_examples']})"
            for region, names in image_names.items():
                for method in methods:
                    image_rows.append([label, report.REGIONS[region], method, *(
                        cell(result, f"{region}_{key}", method) if f"{region}_{key}" in names
                        else "—" for key in image_columns)])
            for method in methods:
                roi_rows.append([label, method, *(cell(result, name, method)
                                                  for name in roi_names)])
        image_header = ["Slices", "Region", "Method",
                        *(report.IMAGE_METRICS[key] for key in image_columns)]
        roi_header = ["Slices", "Method", *(report.ROI_METRICS[name] for name in roi_names)]
        return (image_header, image_rows), (roi_header, roi_rows)

    def test(result, name, method):
        return None if method == reference else result["tests"][name][method]

    values = build(lambda r, name, m: _cell(r["metrics"][name][m], test(r, name, m)))
    p_values = build(lambda r, name, m: report.p_cell(test(r, name, m)))
    return [results.Table("Image synthesis", *values[0]),
            results.Table("ROI synthesis", *values[1]),
            results.Table(f"Image synthesis: p-values of the paired t-test against {reference}",
                          *p_values[0]),
            results.Table(f"ROI synthesis: p-values of the paired t-test against {reference}",
                          *p_values[1])]


def legend(reference, seeds):
    return (f"The verdict first: the methods ranked by their mean, and {reference}'s "
            f"difference to each (positive: {reference} higher) with a 95% interval that "
            f"resamples the {seeds} seed(s) and the test patients; 'better'/'worse' where the "
            f"interval excludes 0. Then Tables 1-4: mean ± sample std over the test "
            f"examples of each example's value averaged over {seeds} seed(s); (seeds ± s): "
            f"the sample std of the {seeds} per-seed means. "
            f"*: paired t-test (on the seed-averaged values) against {reference} significant "
            f"at p < {ALPHA}. † infinite values (Hausdorff with exactly one ROI empty) "
            f"left out of mean ± std. PSNR in dB, Hausdorff distances in pixels; — not "
            f"computed (MS-SSIM needs images of at least 176 px).")
