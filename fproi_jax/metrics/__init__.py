"""Evaluation metrics of the paper (section 2.3): jit-compiled, batched (N, H, W, 1) -> (N,).

Image synthesis: psnr (eq. 3), ssim (eq. 4), ms_ssim, mae. ROI synthesis: dice (eq. 5),
hausdorff (eq. 6, all ROI pixels), surface_hausdorff (ROI boundaries, as MONAI, medpy and
BraTS report it), hausdorff_distances (both, maxima and percentiles, for the cost of one).
Tumour-region variants: apply an image metric to tumour_region(image, real_roi) of both
images.
"""
from fproi_jax.metrics.dice import dice
from fproi_jax.metrics.hausdorff import hausdorff, hausdorff_distances, surface_hausdorff
from fproi_jax.metrics.mae import mae
from fproi_jax.metrics.psnr import psnr
from fproi_jax.metrics.regions import tumour_region
from fproi_jax.metrics.ssim import ms_ssim, ssim

__all__ = ["dice", "hausdorff", "hausdorff_distances", "mae", "ms_ssim", "psnr", "ssim",
           "surface_hausdorff", "tumour_region"]
