"""Table 5 and Figure 9 of the paper: does adding synthesized images to the training set
help a ResNet-18 + SVM HGG/LGG classifier?

:func:`run_experiment` takes the training set of every group ("Real only" = the real
training slices; "+ Fproi-GAN" etc. = the same real slices plus synthesized ones), one test
set and a feature source, and writes to ``out_dir``:

* ``table5.md`` / ``table5.json``: one row per group -- training examples per grade, AUC
  (mean ± std over seeds, and the 95% patient-level bootstrap interval of the seed-mean
  AUC), accuracy, sensitivity, specificity (mean ± std, eqs. 7-9, HGG positive), the AUC
  difference to real-only with its paired patient-bootstrap 95% interval, "significant"
  where that interval excludes 0 (patients are the independent unit), and the p of a
  paired t-test over SVM refit seeds (the spread of refits on one test set, not
  significance);
* ``figure9_roc.png``: the ROC curves of all groups in one plot (per group the mean over
  seeds of the curves, averaged vertically on a common false-positive-rate grid);
* ``scores.npz``: test labels (1 = HGG), patient ids and every group x seed's scores.

Features of each distinct image are computed once (images are identified by content), so
the real slices shared by all groups cost one pass. Each seed re-seeds the CV fold
assignment (hence C/gamma) of every group; the feature source is fixed.

Patient leakage is an error: a patient of the test set may not appear in any group's
training set. Synthesized examples should carry the patient id of the real slice they
were made from (so CV keeps them with their patient); set
``allow_synthetic_test_patients=True`` to accept synthesized examples made from test
patients (the paper's protocol trains the classifier on the synthesis test split and
tests on the synthesis training split, so its GANs had seen the classifier's test
patients); the real part, i.e. the baseline group, is always checked.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import time

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402
import numpy as np  # noqa: E402

from fproi_jax import atomic, results  # noqa: E402
from fproi_jax import statistics  # noqa: E402
from fproi_jax.statistics import ALPHA, sample_summary  # noqa: E402
from fproi_jax.classify import features as features_lib  # noqa: E402
from fproi_jax.classify import metrics, svm  # noqa: E402

BASELINE = "Real only"
_METRICS = ("auc", "accuracy", "sensitivity", "specificity")


class PatientLeakageError(ValueError):
    """A test patient is also in a training set."""


def _as_set(images, labels, patient_ids, what):
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels)
    pids = np.asarray([p.decode() if isinstance(p, bytes) else str(p) for p in patient_ids])
    if images.ndim != 4 or images.shape[-1] != 1:
        raise ValueError(f"{what}: images must be (N, H, W, 1), got {images.shape}")
    if not len(images) == len(labels) == len(pids):
        raise ValueError(
            f"{what}: {len(images)} images, {len(labels)} labels, {len(pids)} patient ids"
        )
    metrics.hgg_positive(labels)  # validates the encoding
    return images, labels.astype(np.int64), pids


def check_leakage(groups: dict, test_pids, baseline: str, allow_synthetic: bool) -> None:
    """Raises :class:`PatientLeakageError` naming the patients in a training group and the
    test set (synthesized groups only checked unless ``allow_synthetic``)."""
    test = set(test_pids)
    for name, (_, _, pids) in groups.items():
        if name != baseline and allow_synthetic:
            continue
        both = sorted(test & set(pids))
        if both:
            part = "real training part" if name == baseline else "training set"
            raise PatientLeakageError(
                f"patient leakage: {len(both)} patient(s) in the {part} of group {name!r} and "
                f"in the test set, e.g. {both[:5]}"
            )


def _digest(image: np.ndarray) -> bytes:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).digest()


def _features_once(arrays: list, source, batch_size, progress):
    """Features of several image arrays; each distinct image is run once."""
    index: dict[bytes, int] = {}
    unique, positions = [], []
    for images in arrays:
        pos = []
        for im in images:
            d = _digest(im)
            if d not in index:
                index[d] = len(unique)
                unique.append(im)
            pos.append(index[d])
        positions.append(np.asarray(pos, np.int64))
    feats = features_lib.extract_features(source, np.stack(unique), batch_size, progress)
    return [feats[p] for p in positions], len(unique)


def _grade_counts(labels):
    return {"HGG": int((labels == metrics.HGG).sum()), "LGG": int((labels == metrics.LGG).sum())}


def run_experiment(
    groups: dict,
    test: tuple,
    feature_source,
    seeds=(0,),
    out_dir=None,
    *,
    baseline: str | None = None,
    batch_size: int = 32,
    n_bootstrap: int = 2000,
    allow_synthetic_test_patients: bool = False,
    svm_options: dict | None = None,
    progress: bool = True,
    protocol: str = "",
) -> dict:
    """Runs Table 5 / Figure 9 (module docstring); returns the summary dict (also written
    to ``out_dir/table5.json`` when ``out_dir`` is given).

    Args:
      groups: ``{name: (images (N, H, W, 1) in [0, 1], grades, patient_ids)}``, each a full
        training set; grades in the builder encoding (0 = HGG, 1 = LGG).
      test: ``(images, grades, patient_ids)`` of the test set.
      feature_source: a source string (``random``, ``imagenet:PATH``, ``in_domain``) or a
        :class:`~fproi_jax.classify.features.FeatureSource`. ``in_domain`` is trained on
        the baseline group (the real training set).
      seeds: one SVM/CV fit per seed and group.
      baseline: the real-only group; default "Real only" if present, else the first group.
      svm_options: extra keyword arguments of :func:`svm.fit_and_score`.
      protocol: how the sets were drawn, kept in the summary and printed under the table.
    """
    t0 = time.time()
    if not groups:
        raise ValueError("no groups")
    groups = {n: _as_set(*g, what=f"group {n!r}") for n, g in groups.items()}
    test = _as_set(*test, what="test set")
    baseline = baseline or (BASELINE if BASELINE in groups else next(iter(groups)))
    if baseline not in groups:
        raise ValueError(f"baseline {baseline!r} is not one of the groups {list(groups)}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("no seeds")
    check_leakage(groups, test[2], baseline, allow_synthetic_test_patients)

    source = feature_source
    if isinstance(source, str):
        real = groups[baseline]
        source = features_lib.load_source(
            source, train_images=real[0], train_grades=real[1], progress=progress
        )
    names = list(groups)
    feats, n_unique = _features_once(
        [groups[n][0] for n in names] + [test[0]], source, batch_size, progress
    )
    t_features = time.time() - t0

    opts = dict(svm_options or {})
    fits = {}
    for gi, name in enumerate(names):
        _, grades, pids = groups[name]
        fits[name] = [
            svm.fit_and_score(feats[gi], grades, pids, feats[-1], test[1], seed, **opts)
            for seed in seeds
        ]
    y_true = metrics.hgg_positive(test[1])
    scores = np.stack([[f["scores"] for f in fits[n]] for n in names])  # (G, S, N)
    boot, dropped = metrics.bootstrap_aucs(y_true, scores, test[2], n_bootstrap, seeds[0])
    per_seed = {n: {m: [f["metrics"][m] for f in fits[n]] for m in _METRICS} for n in names}
    rows = score_rows(per_seed, boot, baseline)
    for name, row in rows.items():
        row["n_train"] = _grade_counts(groups[name][1])
        row["n_train_patients"] = int(len(set(groups[name][2])))
        row["best_params"] = [f["best_params"] for f in fits[name]]
        row["cv_auc"] = [f["cv_auc"] for f in fits[name]]

    summary = dict(
        feature_source=dict(spec=source.spec, description=source.description,
                            stand_in=source.stand_in),
        baseline=baseline,
        seeds=seeds,
        test=dict(n=_grade_counts(test[1]), n_patients=int(len(set(test[2])))),
        groups=rows,
        settings=dict(
            positive_class="HGG (builder grade 0)",
            n_keep=opts.get("n_keep", svm.N_KEEP),
            n_select=opts.get("n_select", svm.N_SELECT),
            cv=f"StratifiedGroupKFold({opts.get('folds', svm.CV_FOLDS)}) by patient, AUC; "
            "RBF SVM grid " + json.dumps(opts.get("param_grid") or svm.PARAM_GRID),
            bootstrap=dict(n_resamples=n_bootstrap, unit="patient", seed=seeds[0],
                           dropped_one_grade_resamples=dropped),
            significance=f"the {1 - ALPHA:.0%} patient-bootstrap interval of ΔAUC vs "
            f"{baseline} excludes 0",
            refit_seed_test=f"paired t-test on per-seed AUCs vs {baseline}",
        ),
        timing_s=dict(features=round(t_features, 2), total=round(time.time() - t0, 2),
                      distinct_images=n_unique),
    )
    if protocol:
        summary["protocol"] = protocol
    if out_dir is not None:
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic.write_text(out / "table5.json", results.json_text(summary))
        atomic.write_text(out / "table5.md", table5(summary).markdown(level=1))
        with atomic.replacing(out / "scores.npz") as tmp:
            np.savez(tmp, y_true=y_true, patient_ids=test[2], groups=np.asarray(names),
                     seeds=np.asarray(seeds), scores=scores)
        roc_figure(out / "figure9_roc.png", y_true, {n: scores[i] for i, n in enumerate(names)},
                   rows, source)
    return summary


def score_rows(per_seed: dict, boot: np.ndarray, baseline: str) -> dict:
    """Table 5's score columns per group.

    ``per_seed``: {group: {metric: per-seed values}}, groups in the order of ``boot``'s
    columns (bootstrap AUCs, (R, G), from :func:`metrics.bootstrap_aucs`). Each metric is
    summarised over seeds; the AUC gets its bootstrap interval, and every group but the
    baseline a "vs_baseline" dict: ΔAUC (seed means), its paired bootstrap interval,
    ``significant`` = that interval excludes 0, and the refit-seed t-test
    (:func:`metrics.paired_seed_test`: refit spread, not significance).
    """
    names = list(per_seed)
    b = names.index(baseline)
    base_aucs = per_seed[baseline]["auc"]
    rows = {}
    for gi, name in enumerate(names):
        row = {m: dict(sample_summary(v), per_seed=v) for m, v in per_seed[name].items()}
        row["auc"]["ci95"] = list(statistics.percentile_interval(boot[:, gi]))
        if gi != b:
            lo, hi = statistics.percentile_interval(boot[:, gi] - boot[:, b])
            row["vs_baseline"] = dict(
                auc_difference=float(np.mean(per_seed[name]["auc"]) - np.mean(base_aucs)),
                auc_difference_ci95=[lo, hi],
                significant=bool(lo > 0 or hi < 0),
                **metrics.paired_seed_test(base_aucs, per_seed[name]["auc"]),
            )
        rows[name] = row
    return rows


def _fmt(stat, key="mean"):
    if stat["std"] is None:
        return f"{stat[key]:.3f}"
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def table5_row(name: str, r: dict) -> list[str]:
    """A group's Table 5 cells (a :func:`score_rows` row with ``n_train``); "significant" is
    the ΔAUC bootstrap interval excluding 0 (n/a without resamples), never the refit p."""
    lo, hi = r["auc"]["ci95"]
    vs = r.get("vs_baseline")
    if vs is None:
        delta, sig, p = "(baseline)", "", ""
    else:
        dlo, dhi = vs["auc_difference_ci95"]
        delta = f"{vs['auc_difference']:+.3f} ({dlo:+.3f}, {dhi:+.3f})"
        sig = "n/a" if np.isnan(dlo) else ("yes" if vs["significant"] else "no")
        p = "n/a" if vs["p_value"] is None else f"{vs['p_value']:.3g}"
    return [name, f"{r['n_train']['HGG']} / {r['n_train']['LGG']}", _fmt(r["auc"]),
            f"{lo:.3f}-{hi:.3f}", _fmt(r["accuracy"]), _fmt(r["sensitivity"]),
            _fmt(r["specificity"]), delta, sig, p]


def table5(summary: dict) -> results.Table:
    """Table 5 laid out as the paper (plus intervals, counts and tests), with its notes:
    feature source, test set, settings, and the protocol when the summary has one."""
    fs = summary["feature_source"]
    base = summary["baseline"]
    header = ["Data", "n train (HGG / LGG)", "AUC", "AUC 95% CI", "Acc", "Sen", "Spe",
              f"ΔAUC vs {base} (95% CI)", "significant", f"p (refit seeds) vs {base}"]
    t = summary["test"]
    s = summary["settings"]
    notes = [
        f"Feature source: {fs['description']}.",
        f"Test set: {t['n']['HGG']} HGG + {t['n']['LGG']} LGG slices from {t['n_patients']} "
        f"patients. Seeds: {len(summary['seeds'])} ({', '.join(map(str, summary['seeds']))}); "
        "mean ± std over seeds (std omitted with one seed).",
        f"HGG is the positive class (sensitivity = HGG recall, specificity = LGG recall, eqs. "
        f"7-9). Features: first {s['n_keep']} of 512, standardised, RFE with a linear SVM to "
        f"{s['n_select']}, RBF SVM with C/gamma by {s['cv']}.",
        f"AUC 95% CI: percentile bootstrap over test patients ({s['bootstrap']['n_resamples']} "
        "resamples) of the seed-mean AUC; ΔAUC CI: the same resamples, paired. Significant: "
        f"{s['significance']} (n/a when no resample holds both grades).",
        f"p (refit seeds): {s['refit_seed_test']}. It measures the spread over re-seeded "
        "CV/SVM fits on one test set, not uncertainty about the data, so it is not "
        "significance. n/a with one seed.",
    ]
    if fs["stand_in"]:
        notes.append("NOTE: random features are a stand-in, not ImageNet features; these "
                     "numbers are not comparable with the paper's.")
    if summary.get("protocol"):
        notes.append(summary["protocol"])
    return results.Table("Table 5: HGG/LGG classification, ResNet-18 features + SVM", header,
                         [table5_row(name, r) for name, r in summary["groups"].items()], notes)


def _mean_roc(y_true, scores_per_seed, grid):
    tprs = []
    for s in scores_per_seed:
        fpr, tpr = metrics.roc_curve(y_true, s)
        tprs.append(np.interp(grid, fpr, tpr))  # fpr is non-decreasing
    tpr = np.mean(tprs, axis=0)
    tpr[0] = 0.0
    return tpr


def roc_figure(path, y_true, scores: dict, rows: dict, source) -> None:
    """Figure 9: ROC curves of all groups in one plot (seed-mean curves), written
    atomically as PNG."""
    grid = np.linspace(0.0, 1.0, 201)
    fig = Figure(figsize=(5.2, 5.0), dpi=110)
    ax = fig.subplots()
    for name, s in scores.items():
        auc = rows[name]["auc"]
        label = f"{name} (AUC {_fmt(auc)})"
        ax.plot(grid, _mean_roc(y_true, np.atleast_2d(s), grid), lw=1.6, label=label)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    ax.set_xlabel("1 - specificity (LGG called HGG)")
    ax.set_ylabel("sensitivity (HGG recall)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    title = "ROC, HGG vs LGG"
    if source.stand_in:
        title += " (random features: stand-in)"
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    atomic.save_figure(fig, path)
