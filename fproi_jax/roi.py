"""The one binarisation of a region of interest, used by data, metrics, figures and export.

A (possibly soft) ROI value belongs to the region where it is above 0.5; exactly 0.5 is
background. Downsampling by area averaging makes 0.5 common (two of four pixels), so every
consumer must agree on the side it falls.
"""
ROI_THRESHOLD = 0.5


def binarise(roi):
    """Boolean mask of `roi` (numpy or jax array): True where roi > 0.5."""
    return roi > ROI_THRESHOLD
