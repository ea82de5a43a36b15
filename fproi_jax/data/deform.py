"""New ROIs from real ones: an elastic deformation (dm-pix) of a tumour mask, re-binarised.

For synthesizing pairs from ROIs that no patient has (issue 8): deform a real ROI, then
let F (ROI -> image) draw the image around it.
"""
import functools

import dm_pix
import jax
import jax.numpy as jnp

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
