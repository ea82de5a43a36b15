"""New ROIs from real ones: an elastic deformation (dm-pix) of a tumour mask, re-binarised.

For synthesizing pairs from ROIs that no patient has (issue 8): deform a real ROI, then
let F (ROI -> image) draw the image around it. `place_roi` then moves a ROI to a seeded
random position inside the tissue of the image it is drawn into (never outside it, never
on the image's own lesion), as copy-paste augmentation places tumours (TumorCP); the tissue
is `tissue_mask`, the pixels brighter than a small threshold (the background of BraTS
slices and of mammograms is 0 after their builders' normalisation).
"""
import functools

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np
from scipy import signal

from fproi_jax.roi import binarise


@functools.partial(jax.jit, static_argnames=("alpha", "sigma"))
def deform_roi(roi, key, alpha: float, sigma: float):
    """A binary (H, W, 1) float32 ROI: `roi` (H, W, 1, any dtype, {0,1} or soft) moved by
    a random displacement field, thresholded at 0.5 (0.5 itself is background, as
    fproi_jax.roi.binarise).

    The field (Simard et al. 2003, dm_pix.elastic_deformation) is uniform noise in [-1, 1]
    per pixel and axis, blurred by a Gaussian of `sigma` pixels and scaled by `alpha`:
    larger sigma gives smoother shapes, larger alpha larger moves (dm-pix suggests alpha
    5 to 10 times sigma). Pixels pulled in from outside the image are background. The same
    key gives the same ROI. alpha and sigma are static (sigma sets the kernel size).
    """
    roi = jnp.asarray(roi)
    if roi.ndim != 3 or roi.shape[-1] != 1:
        raise ValueError(f"roi must have shape (H, W, 1), got {roi.shape}")
    moved = dm_pix.elastic_deformation(key, roi.astype(jnp.float32), alpha, sigma,
                                       mode="constant", cval=0.0)
    return binarise(moved).astype(jnp.float32)


TISSUE_THRESHOLD = 0.02


class NoRoomError(ValueError):
    """place_roi found no position for the ROI."""


def tissue_mask(image, threshold: float = TISSUE_THRESHOLD) -> np.ndarray:
    """Boolean (H, W, 1): the pixels of `image` (in [0, 1]) above `threshold`."""
    return np.asarray(image) > threshold


def place_roi(roi, tissue, occupied, rng: np.random.Generator, what: str = "the ROI"):
    """`roi` ((H, W, 1), {0,1} or soft) moved by a whole-pixel shift to a random position,
    each equally likely, where every ROI pixel lies in `tissue` and none on `occupied`
    (boolean (H, W, 1) masks); float32. NoRoomError naming `what` if no position fits."""
    inside = binarise(np.asarray(roi))[..., 0]
    if not inside.any():
        raise ValueError(f"{what} is empty: nothing to place")
    rows, cols = np.nonzero(inside)
    shape = inside[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    forbidden = ~(np.asarray(tissue, bool) & ~np.asarray(occupied, bool))[..., 0]
    # At each top-left corner, how many ROI pixels would fall on a forbidden pixel.
    hits = signal.fftconvolve(forbidden.astype(np.float64), shape[::-1, ::-1].astype(np.float64),
                              mode="valid")
    corners = np.argwhere(hits < 0.5)
    if not len(corners):
        raise NoRoomError(f"{what} ({int(inside.sum())} px, {shape.shape[0]}x{shape.shape[1]}) "
                          f"fits nowhere inside the tissue ({int((~forbidden).sum())} free px) "
                          f"without touching the existing lesion")
    top, left = corners[rng.integers(len(corners))]
    placed = np.zeros(inside.shape, np.float32)
    placed[top:top + shape.shape[0], left:left + shape.shape[1]] = shape
    return placed[..., None]
