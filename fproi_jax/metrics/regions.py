"""Tumour region of an image, the paper's regional image r = x * y (section 2.2)."""
import jax.numpy as jnp


def tumour_region(image, roi):
    """Returns image * roi, element-wise, for (N, H, W, 1) arrays.

    The paper's "tumor region" metrics (Tables 1 and 3) compare x * y with the synthesized
    image times the same y, where y is always the REAL ROI (never the synthesized one), e.g.
    `psnr(tumour_region(synth, y), tumour_region(x, y))`. Everything outside the ROI becomes
    0 in both images, so it counts as a perfect match in PSNR, SSIM and MS-SSIM.
    """
    image, roi = jnp.asarray(image), jnp.asarray(roi)
    if image.shape != roi.shape:
        raise ValueError(f"image and roi shapes differ: {image.shape} vs {roi.shape}")
    return image * roi
