"""Peak signal-to-noise ratio, the paper's eq. 3, computed by dm-pix."""
import dm_pix
import jax

from fproi_jax.metrics.inputs import as_image_pair


@jax.jit
def psnr(pred, target):
    """PSNR = 10 log10(MAX^2 / MSE) per example, with MAX (the data range) = 1.

    Args: pred, target: (N, H, W, 1) images in [0, 1]. Returns (N,) in dB.
    dm_pix.psnr assumes a data range of 1, our images' [0, 1] (not each image's own
    min..max: a dark pair is scored against MAX = 1 too, as skimage with data_range=1).
    Identical images (MSE = 0) give +inf, as in skimage's peak_signal_noise_ratio.
    """
    pred, target = as_image_pair(pred, target)
    return dm_pix.psnr(pred[..., None], target[..., None])
