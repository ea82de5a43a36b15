"""TFDS builder ``brats2017`` (see brats2017.py)."""

from data_builders.brats2017.brats2017 import Brats2017, Brats2017Config, load_nifti, patient_of

__all__ = ["Brats2017", "Brats2017Config", "load_nifti", "patient_of"]
