"""TFDS builder ``inbreast`` (see inbreast.py)."""

from data_builders.inbreast.inbreast import (
    Inbreast,
    InbreastConfig,
    crop_lesion,
    parse_xml,
    polygon_mask,
    read_csv,
    read_dicom,
)

__all__ = [
    "Inbreast",
    "InbreastConfig",
    "crop_lesion",
    "parse_xml",
    "polygon_mask",
    "read_csv",
    "read_dicom",
]
