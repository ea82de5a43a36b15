"""Phantom generator: real headers, default (full) sizes, determinism, CLI."""

import os
import plistlib
import subprocess
import sys

import nibabel as nib
import numpy as np
import pydicom
from pydicom.uid import DigitalMammographyXRayImageStorageForPresentation, RLELossless

from data_builders import phantom

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_brats_default_size_headers_and_tumour_on_paper_slices(tmp_path):
    cases = phantom.write_brats(tmp_path, cases=2, seed=0)  # full 240x240x155: one HGG, one LGG
    assert [c["grade"] for c in cases] == ["HGG", "LGG"]
    for c in cases:
        assert set(c["files"]) == {"t1", "t1ce", "t2", "flair", "seg"}
        for name, path in c["files"].items():
            assert path == os.path.join(
                tmp_path, c["grade"], c["case_id"], f"{c['case_id']}_{name}.nii.gz"
            )
            img = nib.load(path)
            assert img.shape == (240, 240, 155)
            assert img.header.get_zooms() == (1.0, 1.0, 1.0)
            np.testing.assert_array_equal(img.affine, phantom.brats_affine((240, 240, 155)))
            assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
            assert img.get_data_dtype() == (np.uint8 if name == "seg" else np.int16)
        seg = np.asarray(nib.load(c["files"]["seg"]).dataobj)
        labels = set(np.unique(seg).tolist())
        paper = (90, 100) if c["grade"] == "HGG" else (90, 95, 100, 105)
        assert all(k in c["tumour_slices"] for k in paper)
        if c["grade"] == "HGG":
            assert labels == {0, 1, 2, 4}
        else:
            assert labels == {0, 1, 2}
    hgg, lgg = (np.asarray(nib.load(c["files"]["seg"]).dataobj) > 0 for c in cases)
    assert hgg.sum() > 2 * lgg.sum()  # HGG tumours are larger
    t1ce = np.asarray(nib.load(cases[0]["files"]["t1ce"]).dataobj)
    seg = np.asarray(nib.load(cases[0]["files"]["seg"]).dataobj)
    assert t1ce[seg == 4].mean() > t1ce[seg == 2].mean()  # enhancing rim on t1ce


def test_brats_is_seeded_and_scales_to_small_volumes(tmp_path):
    a = phantom.write_brats(tmp_path / "a", cases=3, shape=(32, 36, 30), seed=5)
    b = phantom.write_brats(tmp_path / "b", cases=3, shape=(32, 36, 30), seed=5)
    c = phantom.write_brats(tmp_path / "c", cases=3, shape=(32, 36, 30), seed=6)
    va, vb, vc = (np.asarray(nib.load(x[0]["files"]["t2"]).dataobj) for x in (a, b, c))
    assert va.shape == (32, 36, 30)
    np.testing.assert_array_equal(va, vb)
    assert not np.array_equal(va, vc)
    assert all(k in a[0]["tumour_slices"] for k in phantom.scale_slices((90, 100), 30))


def test_inbreast_default_sizes_and_dicom_headers(tmp_path):
    recs = phantom.write_inbreast(tmp_path, images=5, seed=0)  # patients 1 and 2: both sizes
    assert {(r["rows"], r["cols"]) for r in recs} == {(4084, 3328), (3328, 2560)}
    for r in recs:
        ds = pydicom.dcmread(r["dcm"])
        assert (
            ds.file_meta.MediaStorageSOPClassUID
            == DigitalMammographyXRayImageStorageForPresentation
        )
        assert ds.SOPClassUID == DigitalMammographyXRayImageStorageForPresentation
        assert ds.file_meta.TransferSyntaxUID == (
            RLELossless if r["rle"] else "1.2.840.10008.1.2.1"
        )
        assert (ds.Rows, ds.Columns) == (r["rows"], r["cols"])
        assert ds.BitsAllocated == 16 and ds.BitsStored in (14, 16) and ds.PixelRepresentation == 0
        assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.Modality == "MG"
        assert ds.PatientID == r["patient"] and ds.ImageLaterality == r["laterality"]
        name = os.path.basename(r["dcm"])
        view = 'ML' if r['view'] == 'MLO' else 'CC'
        assert name == f"{r['file_id']}_{r['patient']}_MG_{r['laterality']}_{view}_ANON.dcm"
        if r["rle"]:
            px = ds.pixel_array
            assert px.dtype == np.uint16 and px.shape == (r["rows"], r["cols"])
            assert px.max() < 2 ** ds.BitsStored and px[0, 0 if r["laterality"] == "L" else -1] == 0
    assert any(r["rle"] for r in recs)
    cats = {r["category"] for r in recs}
    assert cats == {"mass", "calcification", "none"}
    for r in recs:
        assert (r["xml"] is None) == (r["category"] == "none")
        if r["xml"]:
            rois = plistlib.loads(open(r["xml"], "rb").read())["Images"][0]["ROIs"]
            names = [x["Name"] for x in rois]
            assert "Calcification" in names
            assert sum(n in ("Mass", "Spiculated Region") for n in names) == len(r["masses"])
    lines = open(tmp_path / "INbreast.csv").read().splitlines()
    assert (
        lines[0] == "Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads"
    )
    assert len(lines) == 6 and all(len(l.split(";")) == 8 for l in lines)


def test_phantom_cli(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for kind, size in (("brats", "24x24x20"), ("inbreast", "300x260,280x256")):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "data_builders.phantom",
                kind,
                f"--out={tmp_path / kind}",
                "--cases=4",
                f"--size={size}",
                "--seed=1",
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        assert "wrote 4" in r.stdout and "4/4" in r.stderr  # summary and progress
    assert (
        len(os.listdir(tmp_path / "brats" / "HGG")) + len(os.listdir(tmp_path / "brats" / "LGG"))
        == 4
    )
    assert len(os.listdir(tmp_path / "inbreast" / "AllDICOMs")) == 4
