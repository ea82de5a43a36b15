"""Feature selection + kernel SVM of paper 3.2 (refs. [31, 32] method, [34] RFE, [35] SVM),
all in scikit-learn.

On the training set only:

1. keep the first 500 of the 512 ResNet-18 features (paper: "the first 500 features");
2. ``StandardScaler`` (zero mean, unit variance per feature);
3. recursive feature elimination (Guyon et al., ref. [34]) with a linear SVM
   (``SVC(kernel="linear", C=1)``) down to EXACTLY 30 features: ``RFE(n_features_to_select=30,
   step=1)``. The paper says "30 features selected by the recursive feature elimination
   with fivefold cross-validation"; ``RFECV`` picks its own number of features (>= a
   minimum), so it cannot promise 30. Our reading: RFE to 30, and the five-fold CV is
   the grouped CV of step 4. RFE is fitted once on the whole training set, so the CV
   scores of step 4 are slightly optimistic; the test set is never seen, so the test
   metrics are not;
4. RBF-kernel SVM (``SVC(kernel="rbf")``) with C and gamma chosen by 5-fold
   cross-validated AUC (:data:`PARAM_GRID`), folds grouped by PATIENT and stratified by
   grade (``StratifiedGroupKFold``, shuffled with the seed): no patient is in a fold's
   training and validation part, and every validation fold holds both grades so its AUC
   exists. Ties in mean AUC (common on small, separable sets) are broken by the mean
   balanced accuracy of the SVM's own predictions: AUC ignores the threshold, and the
   first tied pair is often a small C whose decision values all have one sign (every slice
   called LGG: accuracy 0.5 at AUC 1). Refitted on the whole training set with the best
   pair.

Scores for the AUC are the SVM's ``decision_function`` (higher = HGG); predictions are its
sign (``predict``). The seed re-seeds the fold assignment, hence the chosen C/gamma.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.feature_selection import RFE
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from fproi_jax.classify import metrics

N_KEEP = 500
N_SELECT = 30
CV_FOLDS = 5
PARAM_GRID = {"C": [0.1, 1.0, 10.0, 100.0], "gamma": [0.003, 0.01, 0.03, 0.1, 0.3]}


def _check_groups(y, groups, folds):
    groups = np.asarray(groups)
    if len(groups) != len(y):
        raise ValueError(f"{len(groups)} patient ids for {len(y)} examples")
    for cls, name in ((1, "HGG"), (0, "LGG")):
        n = len(np.unique(groups[y == cls]))
        if n < folds:
            raise ValueError(
                f"{folds}-fold CV grouped by patient needs at least {folds} training patients "
                f"of each grade; {name} has {n}. Use a training set with more patients."
            )
    return groups


def _best_auc_then_balanced_accuracy(cv_results) -> int:
    """Index of the best mean CV AUC; ties (within 1e-9) go to the best balanced accuracy,
    then to the first in grid order."""
    auc = np.asarray(cv_results["mean_test_auc"], np.float64)
    bacc = np.asarray(cv_results["mean_test_balanced_accuracy"], np.float64)
    tied = np.nonzero(auc >= np.nanmax(auc) - 1e-9)[0]
    return int(tied[np.argmax(bacc[tied])])


def select_features(features, y, n_keep: int = N_KEEP, n_select: int = N_SELECT,
                    step: int = 1):
    """Steps 1-3 fitted on (features, y): returns ``transform(features) -> (N, n_select)``
    and the kept column indices (into the original 512)."""
    x = np.asarray(features, np.float64)[:, :n_keep]
    if x.shape[1] < n_select:
        raise ValueError(f"{x.shape[1]} features, cannot select {n_select}")
    scaler = StandardScaler().fit(x)
    rfe = RFE(SVC(kernel="linear", C=1.0), n_features_to_select=n_select, step=step)
    rfe.fit(scaler.transform(x), y)

    def transform(f):
        return rfe.transform(scaler.transform(np.asarray(f, np.float64)[:, :n_keep]))

    return transform, np.nonzero(rfe.support_)[0]


def fit_and_score(
    train_features,
    train_labels,
    train_groups,
    test_features,
    test_labels,
    seed: int = 0,
    *,
    n_keep: int = N_KEEP,
    n_select: int = N_SELECT,
    folds: int = CV_FOLDS,
    param_grid: dict | None = None,
    rfe_step: int = 1,
) -> dict:
    """Fits steps 1-4 on the training set and scores the test set.

    Labels are GRADES in the builder encoding (0 = HGG, 1 = LGG); internally HGG is the
    positive class (:func:`metrics.hgg_positive`). ``train_groups``: patient id of every
    training example (CV folds never split a patient).

    Returns a dict: ``scores`` (test decision values, higher = HGG), ``y_true`` (1 = HGG),
    ``y_pred`` (1 = HGG), ``metrics`` (auc, accuracy, sensitivity, specificity, tp, tn,
    fp, fn), ``selected_features`` (indices into the 512), ``best_params``,
    ``cv_auc`` (mean validation AUC of the best pair), ``seed``.
    """
    y = metrics.hgg_positive(train_labels)
    y_test = metrics.hgg_positive(test_labels)
    groups = _check_groups(y, train_groups, folds)
    transform, selected = select_features(train_features, y, n_keep, n_select, rfe_step)
    x = transform(train_features)
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    search = GridSearchCV(
        SVC(kernel="rbf"), param_grid or PARAM_GRID,
        scoring={"auc": "roc_auc", "balanced_accuracy": "balanced_accuracy"},
        cv=cv, refit=_best_auc_then_balanced_accuracy, error_score="raise",
    )
    with warnings.catch_warnings():
        # StratifiedGroupKFold warns when a class has fewer examples than folds; the
        # patient check above already guarantees the folds we need.
        warnings.simplefilter("ignore", UserWarning)
        search.fit(x, y, groups=groups)
    x_test = transform(test_features)
    scores = search.decision_function(x_test)
    y_pred = search.predict(x_test).astype(np.int64)
    return dict(
        scores=np.asarray(scores, np.float64),
        y_true=y_test,
        y_pred=y_pred,
        metrics=metrics.binary_metrics(y_test, y_pred, scores),
        selected_features=selected,
        best_params=dict(search.best_params_),
        cv_auc=float(search.cv_results_["mean_test_auc"][search.best_index_]),
        seed=int(seed),
    )
