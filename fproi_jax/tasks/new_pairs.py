"""Scores of a method's new pairs (F(y'), y' a mask no patient has), beside Table 6: does
the tumour appear where the mask says, do the images pass for real ones, are they copies of
training images, and do several images for one mask differ?

- consistency (the semantic-consistency protocol of mask-to-image work, e.g. SPADE): the
  Dice between y' and what the real-only segmenter of Table 6 finds in F(y'); the
  reference row, real test images with their own masks, is that segmenter's own test Dice;
- features for realism: the deepest feature map of Table 6's first real-only segmenter
  (the output of its encoder's last block, 1/16 of the image side), averaged over space.
  An extractor trained on this domain that the task trains anyway, with no downloaded
  weights; the usual KID features, ImageNet Inception's, would need downloaded weights and
  know no MR slices, and Table 5's in-domain ResNet-18 needs grades (brats2017 only) and a
  training of its own. Trained to find tumours, they weigh the tumour and its
  surroundings more than anatomy far from it;
- realism, KID (Binkowski et al. 2018): the squared MMD, kernel k(a, b) = (a.b/d + 1)^3,
  between the features of the images and of the real test images, as the unbiased
  U-statistic over all images, not the reference implementations' mean over subsets of
  1,000 (which bound the cost at tens of thousands of images; at a few hundred the full
  statistic costs less and varies less). Each set's within-set mean leaves out pairs of
  images of one patient, which are not independent draws (with one image per patient this
  is exactly the paper's estimator); the 95% interval resamples both sets' patients, and
  so never pairs an image with its own copy. The reference row: the real training images
  against the real test images, 0 up to the split's difference;
- realism, two-sample test (C2ST, Lopez-Paz & Oquab 2017): the AUC of a logistic
  regression (standardised features, L2, C = 1) telling the images from the real test
  images, on out-of-fold scores of 5-fold cross-validation, folds grouped by patient (a
  new image belongs to the patient of the slice whose ROI was deformed for it) and
  stratified by side, pooled into one AUC with a patient bootstrap interval
  (classify/metrics.py); 0.5: indistinguishable, 1: always told apart. Reference row:
  the real training images against the real test images;
- memorisation: each image's highest normalised cross-correlation (Pearson's r over the
  pixels, no shift) with any real training image, against the same figure for the real
  test images; "likely copies" are the images above the real test images' 99th
  percentile, which about 1% of real unseen images exceed by construction;
- diversity, for a method that draws several images for one mask: the mean MS-SSIM of
  every two of the K images of a mask (plain SSIM below 176 px, the side MS-SSIM's 5
  scales need), mean over masks; 1 = always the same image. The five methods here give
  one image per mask (F has no noise input and Pix2Pix's dropout is off at synthesis):
  n/a for them.
"""
import jax
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fproi_jax import metrics, results, statistics
from fproi_jax.classify import metrics as classify_metrics
from fproi_jax.metrics.ssim import MS_SSIM_WEIGHTS, WINDOW

COPY_PERCENTILE = 99.0
FOLDS = 5
RESAMPLES = 2000
MS_SSIM_SIDE = WINDOW * 2 ** (len(MS_SSIM_WEIGHTS) - 1)  # 176 px


def _standardised(images: np.ndarray) -> np.ndarray:
    flat = np.asarray(images, np.float64).reshape(len(images), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(flat, axis=1, keepdims=True)
    return flat / np.where(norm > 0, norm, 1.0)


def max_correlation(images, references, chunk: int = 256) -> np.ndarray:
    """(N,) highest Pearson correlation of each image with any of `references` (M images
    of the same size); a constant image correlates 0 with everything."""
    refs = _standardised(references)
    return np.concatenate([(_standardised(images[i:i + chunk]) @ refs.T).max(axis=1)
                           for i in range(0, len(images), chunk)])


def copy_threshold(train_images, real_test_images) -> float:
    """The real test images' 99th percentile of max_correlation with the training images."""
    return float(np.percentile(max_correlation(real_test_images, train_images),
                               COPY_PERCENTILE))


def memorisation(images, train_images, threshold: float) -> dict:
    """{'median_ncc', 'likely_copies' (share above `threshold`, copy_threshold)} of
    `images` against the real training images."""
    ncc = max_correlation(images, train_images)
    return {"median_ncc": float(np.median(ncc)),
            "likely_copies": float(np.mean(ncc > threshold))}


def make_featurizer(module):
    """A jitted (params, batch) -> {'features': (N, C)}: the spatial mean of the smallest
    feature map a block (a direct submodule) of `module` outputs on batch['image'], its
    deepest; the layers after it are not computed."""
    def is_block(block, method):
        return method == "__call__" and len(block.path) == 1

    @jax.jit
    def featurize(params, batch):
        _, state = module.apply({"params": params}, batch["image"],
                                capture_intermediates=is_block)
        maps = [out for block in state["intermediates"].values() for out in block["__call__"]]
        deepest = min(maps, key=lambda m: m.shape[1] * m.shape[2])
        return {"features": deepest.mean(axis=(1, 2))}
    return featurize


def _not_available(reason: str, *keys) -> dict:
    return {**dict.fromkeys(keys), "reason": reason}


def _too_few_patients(units, reference_units, needed: int) -> str | None:
    counts = len(set(units)), len(set(reference_units))
    if min(counts) < needed:
        return (f"needs images of at least {needed} patients on each side; the images have "
                f"{counts[0]}, the reference {counts[1]}")
    return None


def _patient_weights(units, resamples: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(1 + resamples, N) weights of each image: row 0 ones, then per bootstrap resample
    the number of times its patient was drawn; and the (N, N) mask of pairs of images of
    different patients."""
    patients, index = np.unique(np.asarray(units), return_inverse=True)
    drawn = rng.integers(0, len(patients), (resamples, len(patients)))
    counts = np.stack([np.bincount(row, minlength=len(patients)) for row in drawn])
    return (np.vstack([np.ones(len(index)), counts[:, index]]),
            (index[:, None] != index[None, :]).astype(np.float64))


def _cubic_kernel(a, b):
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def kid(features, reference, units, reference_units, resamples: int = RESAMPLES,
        seed: int = 0) -> dict:
    """{'kid', 'low', 'high', 'reason'}: the KID of the module docstring of `features`
    (N, d) against `reference` (M, d), units: the patient of each row, and its 95% interval
    resampling both sets' patients. None, with the reason, when a side has images of fewer
    than 2 patients."""
    reason = _too_few_patients(units, reference_units, 2)
    if reason:
        return _not_available(reason, "kid", "low", "high")
    x, y = np.asarray(features, np.float64), np.asarray(reference, np.float64)
    rng = np.random.default_rng(seed)
    (wx, other_x), (wy, other_y) = (_patient_weights(u, resamples, rng)
                                    for u in (units, reference_units))

    def weighted_mean(w, k, v):
        return ((w @ k) * v).sum(axis=1)

    with np.errstate(invalid="ignore", divide="ignore"):  # a resample of a single patient
        mmd2 = (weighted_mean(wx, _cubic_kernel(x, x) * other_x, wx)
                / weighted_mean(wx, other_x, wx)
                + weighted_mean(wy, _cubic_kernel(y, y) * other_y, wy)
                / weighted_mean(wy, other_y, wy)
                - 2 * weighted_mean(wx, _cubic_kernel(x, y), wy)
                / (wx.sum(axis=1) * wy.sum(axis=1)))
    low, high = statistics.percentile_interval(mmd2[1:][np.isfinite(mmd2[1:])])
    return {"kid": float(mmd2[0]), "low": low, "high": high, "reason": None}


def grouped_folds(labels, units, folds: int, seed: int = 0) -> list:
    """[(train indices, validation indices)] of `folds`-fold cross-validation stratified
    by label, no patient (units) on both sides of a fold."""
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels, np.asarray(units)))


def two_sample_auc(features, reference, units, reference_units, folds: int = FOLDS,
                   seed: int = 0) -> dict:
    """{'auc', 'low', 'high', 'folds', 'reason'}: the C2ST of the module docstring telling
    `features` (N, d, label 1) from `reference` (M, d, label 0), folds grouped by the
    patients `units`, `reference_units` (min(folds, patients of a side) folds). None, with
    the reason, when a side has images of fewer than 2 patients."""
    reason = _too_few_patients(units, reference_units, 2)
    if reason:
        return _not_available(reason, "auc", "low", "high", "folds")
    x = np.concatenate([features, reference]).astype(np.float64)
    labels = np.r_[np.ones(len(features), np.int64), np.zeros(len(reference), np.int64)]
    groups = np.concatenate([np.asarray(units), np.asarray(reference_units)])
    folds = min(folds, len(set(units)), len(set(reference_units)))
    scores = np.empty(len(labels))
    for train, held_out in grouped_folds(labels, groups, folds, seed):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        scores[held_out] = model.fit(x[train], labels[train]).decision_function(x[held_out])
    low, high = classify_metrics.bootstrap_auc_ci(labels, scores, groups, seed=seed)
    return {"auc": classify_metrics.roc_auc(labels, scores), "low": low, "high": high,
            "folds": folds, "reason": None}


def diversity(samples) -> dict:
    """{'similarity', 'metric', 'reason'}: the mean over masks of the mean MS-SSIM (SSIM
    below MS_SSIM_SIDE px) of every two of a mask's images; samples (M, K, H, W, 1), K
    images for each of M masks. similarity None, with the reason, for fewer than 2 per
    mask."""
    samples = np.asarray(samples, np.float32)
    per_mask = samples.shape[1]
    name, metric = (("MS-SSIM", metrics.ms_ssim) if min(samples.shape[2:4]) >= MS_SSIM_SIDE
                    else ("SSIM", metrics.ssim))
    if per_mask < 2:
        return {"similarity": None, "metric": name, "reason": f"{per_mask} image per mask"}
    first, second = np.triu_indices(per_mask, 1)
    similarity = np.mean([np.asarray(metric(images[first], images[second]))
                          for images in samples])
    return {"similarity": float(similarity), "metric": name, "reason": None}


def _cell(d: dict, key: str, scale: float = 1.0) -> str:
    """'value (low, high)', or 'n/a (reason)'."""
    if d[key] is None:
        return f"n/a ({d['reason']})" if d.get("reason") else "n/a"
    if "low" not in d:
        return f"{d[key]:.3f}"
    return f"{scale * d[key]:.3f} ({scale * d['low']:.3f}, {scale * d['high']:.3f})"


def table(rows: dict, threshold: float, n_features: int) -> results.Table:
    """rows: {name: {'n', 'consistency' (a statistics.bootstrap_mean), 'kid' (kid),
    'realism_auc' (two_sample_auc), 'median_ncc', 'likely_copies', 'diversity'
    (diversity)}}; n_features: the realism features' length."""
    metric = next(iter(rows.values()))["diversity"]["metric"]
    return results.Table(
        "New pairs: does the tumour appear where the mask says, do the images pass for "
        "real, are they copies, do they differ?",
        ["Pairs", "n", "Consistency Dice (95% CI)", "KID x 1e3 (95% CI)",
         "Real-vs-synthetic AUC (95% CI)", "Median max NCC to training images",
         f"Likely copies (NCC > {threshold:.3f})", f"Diversity: mean pairwise {metric}"],
        [[name, str(r["n"]), _cell(r["consistency"], "mean"), _cell(r["kid"], "kid", 1e3),
          _cell(r["realism_auc"], "auc"), f"{r['median_ncc']:.3f}",
          f"{100 * r['likely_copies']:.1f}%", _cell(r["diversity"], "similarity")]
         for name, r in rows.items()],
        ["Consistency: the Dice between the mask asked for and what Table 6's real-only "
         "segmenters (each seed) find in the image; 95% interval resampling the source "
         "patients and the seeds. For the real test images it is those segmenters' own "
         "test Dice.",
         f"Realism, against the real test images, on {n_features} features: the spatial "
         f"mean of the deepest feature map of Table 6's first real-only segmenter (an "
         f"in-domain extractor, no downloaded weights). KID: the unbiased squared MMD with "
         f"the kernel (a.b/d + 1)^3 over all images, pairs of one patient's images left "
         f"out, x 1e3, 95% interval resampling the patients of both sides; about 0 for "
         f"images from the real distribution. AUC: a logistic regression telling the "
         f"images from the real test images, out-of-fold scores of {FOLDS}-fold "
         f"cross-validation grouped by patient, 95% interval resampling patients; 0.5: "
         f"indistinguishable, 1: always told apart. For the real test images both compare "
         f"the real training images with them.",
         f"Memorisation: each image's highest Pearson correlation with any real training "
         f"image; likely copies: above the {COPY_PERCENTILE:g}th percentile of the real "
         f"test images' ({threshold:.3f}), which about 1% of unseen real images exceed. "
         f"The paper's ROI Dice (Tables 2 and 4) scores a mask sent around a cycle, not "
         f"new pairs.",
         f"Diversity: the mean {metric} of every two images a method draws for one mask "
         f"(1: always the same image); n/a for a method that gives one image per mask "
         f"(no noise input; Pix2Pix's dropout is off at synthesis)."])
