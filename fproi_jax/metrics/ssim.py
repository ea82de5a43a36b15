"""SSIM (the paper's eq. 4) and multi-scale SSIM (Wang et al. 2003), sharing one core.

Choices, matching skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1) and MONAI's SSIMMetric / MultiScaleSSIMMetric:
an 11-tap Gaussian window with sigma 1.5 (skimage's truncate=3.5 gives radius 5), K1 = 0.01,
K2 = 0.03, population (not sample) local statistics, and the mean over the valid region only,
i.e. the 5-pixel border where the window leaves the image is dropped (skimage crops it).
dm-pix's ssim follows the same definition but does not expose the contrast-structure term
MS-SSIM needs, and in float32 it drifts on bright low-contrast images (5e-5 to 7e-5 from
skimage at mean 0.9, std 3e-4; centring below keeps this core within 1e-6), so the core is
written here once for both (tests/test_metrics.py checks both claims against dm_pix.ssim).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from fproi_jax.metrics.inputs import as_image_pair

WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _gaussian_window():
    offsets = np.arange(WINDOW) - WINDOW // 2
    window = np.exp(-(offsets**2) / (2 * SIGMA**2))
    return window / window.sum()


def _filter_valid(images, axis):
    """Correlates (..., H, W) images with the 1-D Gaussian along `axis`, valid part only."""
    length = images.shape[axis] - WINDOW + 1
    return sum(
        weight * jax.lax.slice_in_dim(images, start, start + length, axis=axis)
        for start, weight in enumerate(_gaussian_window())
    )


def _ssim_and_cs(pred, target):
    """Mean SSIM and mean contrast-structure term over the valid region, per example.

    Inputs (N, H, W) with H, W >= WINDOW. SSIM = l * cs with
    l = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1), cs = (2 s_xy + C2) / (s_x^2 + s_y^2 + C2).
    """
    # Local statistics are shift-invariant; centring on the target mean keeps the
    # E[x^2] - mu^2 cancellation small in float32. The luminance term gets the offset back.
    offset = jnp.mean(target, axis=(1, 2), keepdims=True)
    x, y = pred - offset, target - offset
    moments = jnp.stack([x, y, x * x, y * y, x * y])
    mu_x, mu_y, xx, yy, xy = _filter_valid(_filter_valid(moments, axis=-2), axis=-1)
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    mu_x, mu_y = mu_x + offset, mu_y + offset
    c1, c2 = K1**2, K2**2
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    return jnp.mean(luminance * cs, axis=(1, 2)), jnp.mean(cs, axis=(1, 2))


def _check_size(shape, minimum, metric):
    height, width = shape[1:3]
    if min(height, width) < minimum:
        raise ValueError(
            f"{metric} needs images of at least {minimum}x{minimum} pixels, got {height}x{width}"
        )


@jax.jit
def ssim(pred, target):
    """Mean SSIM (eq. 4) per example over the valid region of an 11x11 Gaussian window.

    Args: pred, target: (N, H, W, 1) images in [0, 1], H, W >= 11. Returns (N,).
    """
    pred, target = as_image_pair(pred, target)
    _check_size(pred.shape, WINDOW, "ssim")
    return _ssim_and_cs(pred, target)[0]


def _pool(images):
    """2x2 average pooling, stride 2; an odd last row or column is dropped (as torch)."""
    n, height, width = images.shape
    images = images[:, : height // 2 * 2, : width // 2 * 2]
    return images.reshape(n, height // 2, 2, width // 2, 2).mean(axis=(2, 4))


@functools.partial(jax.jit, static_argnames=("weights",))
def ms_ssim(pred, target, weights=MS_SSIM_WEIGHTS):
    """MS-SSIM = prod_{j<M} relu(cs_j)^w_j * relu(ssim_M)^w_M per example (Wang et al. 2003).

    Scale j+1 is scale j after 2x2 average pooling; cs_j and ssim_M are valid-region means as
    in `ssim`. Negative terms are clipped to 0 before the power, as in MONAI's
    MultiScaleSSIMMetric (a negative base has no real fractional power).

    Args: pred, target: (N, H, W, 1) images in [0, 1]; with the default 5 weights H and W
    must be at least 176 (= 11 * 2^4) so the coarsest scale holds one window.
    weights: one exponent per scale (a tuple, static). Returns (N,).
    """
    pred, target = as_image_pair(pred, target)
    # Each pooling halves the size (floor); the coarsest scale still needs one window.
    _check_size(pred.shape, WINDOW * 2 ** (len(weights) - 1), "ms_ssim")
    terms = []
    for scale in range(len(weights)):
        if scale:
            pred, target = _pool(pred), _pool(target)
        full, cs = _ssim_and_cs(pred, target)
        terms.append(cs if scale < len(weights) - 1 else full)
    terms = jnp.maximum(jnp.stack(terms), 0.0)
    return jnp.prod(terms ** jnp.asarray(weights, terms.dtype)[:, None], axis=0)
