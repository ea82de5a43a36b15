"""The statistics every report uses: one summary of a sample, one paired t-test, one alpha.

At the package top level so that evaluation/ and classify/ both import it (neither
imports the other's reports).

Non-finite values, one policy:
- +inf is a measured "infinitely bad" value (a Hausdorff distance with exactly one ROI
  empty, the PSNR of identical images): left out of mean and std and counted (``n_inf``);
- NaN (and -inf) is an undefined value: it is kept, so mean and std come out NaN
  (undefined in, undefined out). evaluation/report.py rejects both before summarising;
  classify/ passes the NaN of a metric undefined on its test set (one grade only) through.
"""
import numpy as np
from scipy import stats

ALPHA = 0.05  # two-sided significance level of every test in the reports
_EQUAL_DIFFERENCES = 1e-12  # paired differences within this of each other count as equal


def sample_summary(values):
    """{"mean", "std" (ddof=1), "n" (values kept), "n_inf" (+inf left out)} of a 1-D sample.

    mean is None without kept values, std None with fewer than 2.
    """
    values = np.asarray(values, np.float64)
    inf = np.isposinf(values)
    kept = values[~inf]
    return {
        "mean": float(np.mean(kept)) if kept.size else None,
        "std": float(np.std(kept, ddof=1)) if kept.size > 1 else None,
        "n": int(kept.size),
        "n_inf": int(inf.sum()),
    }


def paired_t_test(reference, other):
    """Two-sided paired t-test (scipy.stats.ttest_rel(reference, other)) on the pairs where
    both values are finite.

    Returns {"t", "p", "n_pairs", "n_dropped", "significant" (p < ALPHA)}; t and p are None
    (not significant) with fewer than 2 pairs or when every paired difference is equal
    (within 1e-12): zero variance, no t statistic.
    """
    reference = np.asarray(reference, np.float64)
    other = np.asarray(other, np.float64)
    if reference.shape != other.shape:
        raise ValueError(f"paired samples differ in shape: {reference.shape} vs {other.shape}")
    keep = np.isfinite(reference) & np.isfinite(other)
    a, b = reference[keep], other[keep]
    result = {"t": None, "p": None, "n_pairs": int(keep.sum()), "n_dropped": int((~keep).sum())}
    if a.size >= 2 and np.ptp(a - b) > _EQUAL_DIFFERENCES:
        test = stats.ttest_rel(a, b)
        result.update(t=float(test.statistic), p=float(test.pvalue))
    result["significant"] = result["p"] is not None and result["p"] < ALPHA
    return result
