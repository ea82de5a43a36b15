"""Dice coefficient between ROIs, the paper's eq. 5."""
import jax
import jax.numpy as jnp

from fproi_jax.metrics.inputs import as_image_pair
from fproi_jax.roi import binarise


@jax.jit
def dice(pred, target):
    """Dice = 2 |P ∩ T| / (|P| + |T|) per example, P and T the ROIs binarised at 0.5.

    Args: pred, target: (N, H, W, 1) ROI images. Returns (N,) in [0, 1].
    Both ROIs empty give 1.0 (perfect agreement); exactly one empty gives 0.0.
    """
    pred, target = (binarise(a) for a in as_image_pair(pred, target))
    overlap = jnp.sum(pred & target, axis=(1, 2))
    total = jnp.sum(pred, axis=(1, 2)) + jnp.sum(target, axis=(1, 2))
    return jnp.where(total == 0, 1.0, 2.0 * overlap / jnp.maximum(total, 1))
