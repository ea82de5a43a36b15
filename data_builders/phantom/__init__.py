"""Seeded synthetic raw data in the BRATS 2017 and INbreast release layouts.

    from data_builders import phantom
    phantom.write_brats(out_dir, cases=20, shape=(240, 240, 155), seed=0)  # ellipsoid head
    phantom.write_brats(out_dir, cases=20, seed=0, anatomy="mni")  # MNI 2009 brain (nilearn)
    phantom.write_inbreast(out_dir, images=30, sizes=((4084, 3328), (3328, 2560)), seed=0)

CLI: ``python -m data_builders.phantom brats|inbreast --out=DIR [--cases=N --size=...
--seed=S --anatomy=mni]``.
"""

from data_builders.phantom.brats import FULL_SHAPE, brats_affine, scale_slices, write_brats
from data_builders.phantom.inbreast import FULL_SIZES, write_inbreast

__all__ = [
    "FULL_SHAPE",
    "FULL_SIZES",
    "brats_affine",
    "scale_slices",
    "write_brats",
    "write_inbreast",
]
