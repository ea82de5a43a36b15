"""Scores of a method's new pairs (F(y'), y' a mask no patient has), beside Table 6: does
the tumour appear where the mask says, and are the images copies of training images?

- consistency (the semantic-consistency protocol of mask-to-image work, e.g. SPADE): the
  Dice between y' and what the real-only segmenter of Table 6 finds in F(y'); the
  reference row, real test images with their own masks, is that segmenter's own test Dice;
- memorisation: each image's highest normalised cross-correlation (Pearson's r over the
  pixels, no shift) with any real training image, against the same figure for the real
  test images; "likely copies" are the images above the real test images' 99th
  percentile, which about 1% of real unseen images exceed by construction.
"""
import numpy as np

from fproi_jax import results

COPY_PERCENTILE = 99.0


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


def table(rows: dict, threshold: float) -> results.Table:
    """rows: {name: {'n', 'consistency' (a statistics.bootstrap_mean), 'median_ncc',
    'likely_copies'}}."""
    def interval(d):
        return "n/a" if d["mean"] is None else f"{d['mean']:.3f} ({d['low']:.3f}, {d['high']:.3f})"

    return results.Table(
        "New pairs: does the tumour appear where the mask says, and are the images copies?",
        ["Pairs", "n", "Consistency Dice (95% CI)", "Median max NCC to training images",
         f"Likely copies (NCC > {threshold:.3f})"],
        [[name, str(r["n"]), interval(r["consistency"]), f"{r['median_ncc']:.3f}",
          f"{100 * r['likely_copies']:.1f}%"] for name, r in rows.items()],
        ["Consistency: the Dice between the mask asked for and what Table 6's real-only "
         "segmenters (each seed) find in the image; 95% interval resampling the source "
         "patients and the seeds. For the real test images it is those segmenters' own "
         "test Dice.",
         f"Memorisation: each image's highest Pearson correlation with any real training "
         f"image; likely copies: above the {COPY_PERCENTILE:g}th percentile of the real "
         f"test images' ({threshold:.3f}), which about 1% of unseen real images exceed. "
         f"The paper's ROI Dice (Tables 2 and 4) scores a mask sent around a cycle, not "
         f"new pairs."])
