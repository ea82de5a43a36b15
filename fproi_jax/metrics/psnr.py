"""Peak signal-to-noise ratio, the paper's eq. 3."""
import jax
import jax.numpy as jnp

from fproi_jax.metrics.inputs import as_image_pair


@jax.jit
def psnr(pred, target):
    """PSNR = 10 log10(MAX^2 / MSE) per example, with MAX (the data range) = 1.

    Args: pred, target: (N, H, W, 1) images in [0, 1]. Returns (N,) in dB.
    Identical images (MSE = 0) give +inf, as in skimage's peak_signal_noise_ratio.
    """
    pred, target = as_image_pair(pred, target)
    mse = jnp.mean(jnp.square(pred - target), axis=(1, 2))
    return 10.0 * jnp.log10(1.0 / mse)
