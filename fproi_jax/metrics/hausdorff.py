"""Hausdorff distance between ROIs, the paper's eq. 6, via an exact distance transform.

Distances are Euclidean, in pixels, between the two foreground pixel sets (every ROI pixel,
not only the boundary), the same as the larger of scipy.spatial.distance.directed_hausdorff
in both directions on the foreground coordinates. The pairwise distance matrix (65536^2 at
256x256) is never formed: the distance from each pixel of one set to the other set is read
off the other set's exact Euclidean distance transform, O(H W (H + W)) per example.
"""
import functools

import jax
import jax.numpy as jnp

from fproi_jax.metrics.inputs import as_image_pair, binarise


def _squared_distance_transform(mask):
    """Squared Euclidean distance from every pixel to the nearest True pixel of (H, W) `mask`.

    Separable and exact: first, along each row, the squared distance to the row's nearest
    foreground column (nearest to the left or to the right, found by running max/min);
    then, per column, min over rows k of (i - k)^2 + that. +inf everywhere for an empty mask.
    """
    height, width = mask.shape
    column = jnp.arange(width, dtype=jnp.float32)
    left = jax.lax.cummax(jnp.where(mask, column, -jnp.inf), axis=1)
    right = jax.lax.cummin(jnp.where(mask, column, jnp.inf), axis=1, reverse=True)
    in_row = jnp.square(jnp.minimum(column - left, right - column))
    row = jnp.arange(height, dtype=jnp.float32)
    between_rows = jnp.square(row[:, None] - row[None, :])
    return jnp.min(between_rows[:, :, None] + in_row[None, :, :], axis=1)


def _directed(source, target, percentile):
    """Max (or given percentile) over `source` pixels of the distance to the `target` set."""
    distance = jnp.sqrt(_squared_distance_transform(target))
    if percentile is None:
        return jnp.max(jnp.where(source, distance, -jnp.inf))
    return jnp.nanpercentile(jnp.where(source, distance, jnp.nan), percentile)


def _hausdorff_one(pred, target, percentile):
    distance = jnp.maximum(
        _directed(pred, target, percentile), _directed(target, pred, percentile)
    )
    pred_empty, target_empty = ~jnp.any(pred), ~jnp.any(target)
    return jnp.where(
        pred_empty & target_empty,
        0.0,
        jnp.where(pred_empty | target_empty, jnp.inf, distance),
    )


@functools.partial(jax.jit, static_argnames=("percentile",))
def hausdorff(pred, target, percentile=None):
    """Symmetric Hausdorff distance per example between ROIs binarised at 0.5 (eq. 6).

    Args:
      pred, target: (N, H, W, 1) ROI images.
      percentile: None for the classic maximum; e.g. 95 for HD95, the larger over both
        directions of each direction's 95th percentile of point-to-set distances (numpy's
        default linear interpolation, as MONAI's HausdorffDistanceMetric).
    Returns (N,) in pixels: 0.0 when both ROIs are empty, +inf when exactly one is.
    Examples run one after another (lax.map), so memory stays at one example's O(H^2 W).
    """
    pred, target = (binarise(a) for a in as_image_pair(pred, target))
    return jax.lax.map(lambda pair: _hausdorff_one(*pair, percentile), (pred, target))
