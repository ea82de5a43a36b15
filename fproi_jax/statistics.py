"""The statistics every report uses: one summary of a sample, one paired t-test, one
percentile interval, one patient-and-seed bootstrap, one alpha.

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


def percentile_interval(samples, level: float = 1 - ALPHA) -> tuple[float, float]:
    """Two-sided `level` (1 - ALPHA) percentile interval of 1-D samples (NaN, NaN if none)."""
    samples = np.asarray(samples, np.float64)
    if samples.size == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_difference(reference, other, units, resamples: int = 2000, seed: int = 0):
    """Mean of other - reference with a 95% (1 - ALPHA) percentile interval that resamples
    the independent units: seeds and patients.

    reference, other: (seeds, N) per-example values of two methods (their seeds are separate
    training runs, not pairs); units: (N,) the patient of each example. Each resample draws,
    with replacement, each method's seeds and the patients (every example of a drawn patient
    counts), and takes the difference of the two methods' means. Examples with a non-finite
    value in any seed of either method are left out (counted in n_dropped).
    Returns {"mean", "low", "high", "n_patients", "n_dropped", "excludes_0"}; mean, low and
    high are None without examples.
    """
    reference, other = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    keep = np.isfinite(reference).all(axis=0) & np.isfinite(other).all(axis=0)
    reference, other, units = reference[:, keep], other[:, keep], np.asarray(units)[keep]
    result = {"mean": None, "low": None, "high": None, "n_patients": 0,
              "n_dropped": int((~keep).sum()), "excludes_0": False}
    if not keep.any():
        return result
    patients, index = np.unique(units, return_inverse=True)
    # Per patient and seed: the sum and count of its examples' values.
    counts = np.bincount(index, minlength=len(patients)).astype(np.float64)
    sums = {name: np.stack([np.bincount(index, row, minlength=len(patients)) for row in values])
            for name, values in (("reference", reference), ("other", other))}
    rng = np.random.default_rng(seed)
    drawn_patients = rng.integers(0, len(patients), (resamples, len(patients)))
    weight = np.stack([np.bincount(row, minlength=len(patients)) for row in drawn_patients])
    means = {}
    for name, by_seed in sums.items():
        seeds = rng.integers(0, len(by_seed), (resamples, len(by_seed)))
        seed_sums = by_seed[seeds].mean(axis=1)            # (resamples, patients)
        means[name] = (weight * seed_sums).sum(axis=1) / (weight * counts).sum(axis=1)
    differences = means["other"] - means["reference"]
    low, high = percentile_interval(differences)
    result.update(mean=float(other.mean() - reference.mean()), low=float(low),
                  high=float(high), n_patients=int(len(patients)),
                  excludes_0=bool(low > 0 or high < 0))
    return result


def bootstrap_mean(values, units, resamples: int = 2000, seed: int = 0):
    """Mean of (seeds, N) per-example values with the 95% interval of bootstrap_difference
    (resampling seeds and patients) against a reference of zeros: the same keys."""
    values = np.asarray(values, np.float64)
    return bootstrap_difference(np.zeros_like(values[:1]), values, units, resamples, seed)
