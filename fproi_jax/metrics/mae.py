"""Mean absolute error, the third of the scores image synthesis papers report beside PSNR
and SSIM (beyond the paper)."""
import jax
import jax.numpy as jnp

from fproi_jax.metrics.inputs import as_image_pair


@jax.jit
def mae(pred, target):
    """mean |pred - target| per example over all pixels. Args: pred, target: (N, H, W, 1)
    images in [0, 1]. Returns (N,), in the images' units (0 = identical)."""
    pred, target = as_image_pair(pred, target)
    return jnp.mean(jnp.abs(pred - target), axis=(1, 2))
