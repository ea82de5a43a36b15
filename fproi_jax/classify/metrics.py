"""Classification metrics of paper Table 5 with HGG as the positive class.

Label convention: the brats2017 builder encodes ``grade`` as HGG = 0, LGG = 1 (its
ClassLabel order). Here the POSITIVE class is HGG (paper: "TP represents the number of
samples, in which HGG was correctly predicted"), so :func:`hgg_positive` converts
explicitly: y = 1 for HGG, 0 for LGG. Scores are "higher = more HGG".

* accuracy    = (TP + TN) / (TP + FP + TN + FN)      (eq. 7)
* sensitivity = TP / (TP + FN)                        (eq. 8, recall of HGG)
* specificity = TN / (FP + TN)                        (eq. 9, recall of LGG)
* AUC: area under the ROC curve = the Mann-Whitney probability that a random HGG slice
  scores above a random LGG slice, ties counting 1/2 (computed from ranks).
* :func:`bootstrap_aucs`: AUCs on resampled test sets, the same resamples for every
  group (paired). By default the resampled units are PATIENTS (a cluster bootstrap):
  slices of one patient are correlated, so resampling slices would give too narrow
  intervals. Resamples that hold one grade only are dropped (and counted).
* :func:`paired_seed_test`: paired t-test (``scipy.stats.ttest_rel``, two-sided) of
  per-seed AUCs of a group against the real-only baseline. It measures how consistently a
  group beats the baseline over re-seeded CV/SVM fits on the SAME test set, not the
  test-set sampling error (that is the bootstrap's job, and Table 5's "significant"
  column is the bootstrap's). Needs >= 2 seeds, else "n/a".
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from fproi_jax import statistics

HGG, LGG = 0, 1  # the builder's grade encoding


def hgg_positive(grades) -> np.ndarray:
    """Builder grades (0 = HGG, 1 = LGG) -> int labels with HGG positive (1 = HGG)."""
    g = np.asarray(grades)
    if g.size and not np.isin(g, (HGG, LGG)).all():
        raise ValueError(f"grades must be 0 (HGG) or 1 (LGG), got {np.unique(g)}")
    return (g == HGG).astype(np.int64)


def roc_auc(y_true, scores) -> float:
    """Area under the ROC curve (y_true 1 = positive); NaN if one class is absent."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(s)  # average ranks: ties count 1/2
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_metrics(y_true, y_pred, scores) -> dict:
    """AUC, accuracy, sensitivity, specificity (eqs. 7-9) and the confusion counts.

    ``y_true``/``y_pred`` with 1 = HGG (positive); ``scores`` higher = more HGG.
    """
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(y_pred).astype(bool)
    if y.shape != p.shape:
        raise ValueError(f"y_true {y.shape} and y_pred {p.shape} differ")
    tp = int((y & p).sum())
    tn = int((~y & ~p).sum())
    fp = int((~y & p).sum())
    fn = int((y & ~p).sum())

    def ratio(a, b):
        return a / b if b else float("nan")

    return dict(
        auc=roc_auc(y, scores),
        accuracy=ratio(tp + tn, tp + tn + fp + fn),
        sensitivity=ratio(tp, tp + fn),
        specificity=ratio(tn, fp + tn),
        tp=tp, tn=tn, fp=fp, fn=fn,
    )


def roc_curve(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct threshold, from (0, 0)
    to (1, 1)."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    tpr = np.r_[0.0, tps / max(1, y.sum())]
    fpr = np.r_[0.0, fps / max(1, (~y).sum())]
    return fpr, tpr


def bootstrap_aucs(
    y_true,
    scores,
    groups=None,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[np.ndarray, int]:
    """AUCs on ``n_resamples`` bootstrap resamples of the test set.

    ``scores``: (N,), (S, N) or (G, S, N) -- G groups x S seeds; each resample's AUC is
    the mean over seeds, and every group sees the same resamples (paired). ``groups``:
    (N,) patient ids; units resampled with replacement are patients when given, else
    examples. Returns (AUCs of shape (R, G), number of dropped one-grade resamples).
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, np.float64)
    s = s.reshape((1,) * (3 - s.ndim) + s.shape)
    if s.shape[-1] != len(y):
        raise ValueError(f"scores {s.shape} do not match {len(y)} labels")
    units = np.arange(len(y)) if groups is None else np.asarray(groups)
    uniq, unit_of = np.unique(units, return_inverse=True)
    members = [np.nonzero(unit_of == u)[0] for u in range(len(uniq))]
    rng = np.random.default_rng(seed)
    out, dropped = [], 0
    for _ in range(n_resamples):
        pick = rng.integers(len(uniq), size=len(uniq))
        idx = np.concatenate([members[u] for u in pick])
        yy = y[idx]
        if yy.all() or not yy.any():
            dropped += 1
            continue
        aucs = [[roc_auc(yy, s[g, k, idx]) for k in range(s.shape[1])] for g in range(s.shape[0])]
        out.append(np.mean(aucs, axis=1))
    return np.asarray(out).reshape(-1, s.shape[0]), dropped


def bootstrap_auc_ci(
    y_true, scores, groups=None, n_resamples: int = 2000, seed: int = 0,
    level: float = 1 - statistics.ALPHA,
) -> tuple[float, float]:
    """95% (``level`` = 1 - ALPHA) percentile bootstrap interval of the AUC (of the
    seed-mean AUC when ``scores`` is (S, N)); see :func:`bootstrap_aucs`."""
    aucs, _ = bootstrap_aucs(y_true, scores, groups, n_resamples, seed)
    return statistics.percentile_interval(aucs[:, 0], level)


def paired_seed_test(baseline_aucs, group_aucs) -> dict:
    """Paired two-sided t-test (:func:`fproi_jax.statistics.paired_t_test`) of per-seed AUCs
    (same seeds, same order) against the baseline. ``p_value`` is None ("n/a") with fewer
    than 2 seeds or when every paired difference is identical (zero variance: no t
    statistic). It measures refit spread, not test-set sampling error."""
    a = np.asarray(baseline_aucs, np.float64)
    b = np.asarray(group_aucs, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"per-seed AUCs differ in shape: {a.shape} vs {b.shape}")
    test = statistics.paired_t_test(b, a)
    out = dict(test="paired t-test on per-seed AUCs (scipy.stats.ttest_rel, two-sided)",
               n_seeds=int(a.size), mean_difference=float(np.mean(b - a)) if a.size else None,
               p_value=test["p"], reason=None)
    if test["n_pairs"] < 2:
        out["reason"] = "n/a: needs at least 2 seeds with finite AUCs"
    elif test["p"] is None:
        out["reason"] = "n/a: identical difference on every seed"
    return out
