"""Writes tests/data/jpeg_lossless_sv1.dcm, the JPEG Lossless DICOM that tests read back.

pydicom has no JPEG Lossless (process 14) encoder, and no package of the project's has one,
so this file was written once with GDCM's and is kept (about 3 KB):

    python3 -m venv /tmp/gdcm && /tmp/gdcm/bin/pip install pydicom==3.0.2 python-gdcm numpy
    /tmp/gdcm/bin/python tests/data/make_jpeg_lossless.py

The pixels are `pixels()` below, repeated in tests/test_data_builders_inbreast.py: a 40x32
MONOCHROME2 mammogram-like frame, 16 bits allocated, 12 stored, with every value's bits
busy so that a decoder dropping or mixing bits is caught.
"""
import pathlib

import gdcm
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import pixel_array
from pydicom.uid import (DigitalMammographyXRayImageStorageForPresentation,
                         ExplicitVRLittleEndian, JPEGLosslessSV1)

OUT = pathlib.Path(__file__).with_name("jpeg_lossless_sv1.dcm")


def pixels() -> np.ndarray:
    rows, cols = np.indices((40, 32))
    return ((rows * 97 + cols * 31 + (rows * cols) % 251) * 13 % 4096).astype(np.uint16)


def main():
    img = pixels()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalMammographyXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.Modality = "test", "MG"
    ds.Rows, ds.Columns = img.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = img.tobytes()
    plain = OUT.with_suffix(".plain.dcm")
    ds.save_as(plain, enforce_file_format=True)

    reader = gdcm.ImageReader()
    reader.SetFileName(str(plain))
    if not reader.Read():
        raise RuntimeError(f"GDCM cannot read {plain}")
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1))
    change.SetInput(reader.GetImage())
    if not change.Change():
        raise RuntimeError("GDCM could not compress to JPEG Lossless SV1")
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(OUT))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    if not writer.Write():
        raise RuntimeError(f"GDCM cannot write {OUT}")
    plain.unlink()

    syntax = pydicom.dcmread(OUT, stop_before_pixels=True).file_meta.TransferSyntaxUID
    assert syntax == JPEGLosslessSV1, syntax
    np.testing.assert_array_equal(pixel_array(OUT, decoding_plugin="gdcm"), img)
    print(f"{OUT}: {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
