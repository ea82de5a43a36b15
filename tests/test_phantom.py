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
    runs = (
        ("brats", "24x24x20", []),
        ("brats_mni", "24x24x20", ["--anatomy=mni"]),
        ("inbreast", "300x260,280x256", []),
    )
    for kind, size, extra in runs:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "data_builders.phantom",
                kind.split("_")[0],
                f"--out={tmp_path / kind}",
                "--cases=4",
                f"--size={size}",
                "--seed=1",
                *extra,
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        assert "wrote 4" in r.stdout and "4/4" in r.stderr  # summary and progress
        if extra:
            r_mni_stdout = [r.stdout]
            assert len(os.listdir(tmp_path / kind / "HGG")) + len(
                os.listdir(tmp_path / kind / "LGG")) == 4
    assert (
        len(os.listdir(tmp_path / "brats" / "HGG")) + len(os.listdir(tmp_path / "brats" / "LGG"))
        == 4
    )
    assert "(mni)" in r_mni_stdout[0]
    assert len(os.listdir(tmp_path / "inbreast" / "AllDICOMs")) == 4


# --- MNI anatomy (the ICBM152 2009 templates shipped inside nilearn) ---------------------


def _load(c, name):
    return np.asarray(nib.load(c["files"][name]).dataobj)


def test_brats_mni_full_size_headers_labels_and_grades(tmp_path):
    cases = phantom.write_brats(tmp_path, cases=2, seed=0, anatomy="mni")  # one HGG, one LGG
    assert [c["grade"] for c in cases] == ["HGG", "LGG"]
    for c in cases:
        for name, path in c["files"].items():
            img = nib.load(path)
            assert img.shape == (240, 240, 155)
            assert img.header.get_zooms() == (1.0, 1.0, 1.0)
            np.testing.assert_array_equal(img.affine, phantom.brats_affine((240, 240, 155)))
            assert img.get_data_dtype() == (np.uint8 if name == "seg" else np.int16)
        seg, t2 = _load(c, "seg"), _load(c, "t2")
        brain = t2 > 0
        # A brain, not a box: it fills a realistic part of the grid and is centred.
        assert 0.12 < brain.mean() < 0.25
        xs, ys = np.nonzero(brain.any(axis=2))
        assert abs(xs.mean() - 119.5) < 12 and abs(ys.mean() - 119.5) < 15
        assert (seg[~brain] == 0).all()  # tumours inside the brain only
        assert set(np.unique(seg[brain]).tolist()) == (
            {0, 1, 2, 4} if c["grade"] == "HGG" else {0, 1, 2}
        )
        paper = (90, 100) if c["grade"] == "HGG" else (90, 95, 100, 105)
        assert all(k in c["tumour_slices"] for k in paper)
        t1ce, t2 = _load(c, "t1ce").astype(float), t2.astype(float)
        assert t2[seg == 2].mean() > t2[brain & (seg == 0)].mean()  # oedema bright on T2
        if c["grade"] == "HGG":
            assert t1ce[seg == 4].mean() > 1.3 * t1ce[seg == 2].mean()  # enhancing rim
            assert t2[seg == 1].mean() > t2[seg == 4].mean()  # necrosis brightest on T2
    hgg, lgg = (_load(c, "seg") for c in cases)
    assert (hgg > 0).sum() > 1.5 * (lgg > 0).sum()  # HGG larger
    assert (hgg == 1).sum() > 2 * (lgg == 1).sum()  # LGG: little core, HGG: necrosis


def test_brats_mni_needs_no_network(tmp_path, monkeypatch):
    import socket

    from data_builders.phantom import mni

    def refuse(*args, **kwargs):
        raise AssertionError(f"network use: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    mni.tissue_maps.cache_clear()  # read the packaged templates again, under the ban
    mni._box.cache_clear()
    assert mni.template_dir().endswith(os.path.join("nilearn", "datasets", "data"))
    (case,) = phantom.write_brats(tmp_path, cases=1, shape=(40, 40, 32), anatomy="mni")
    assert (_load(case, "t2") > 0).mean() > 0.1
    assert mni.tissue_maps.cache_info().misses == 1


def test_brats_mni_t2_contrast_follows_the_tissue_maps():
    from data_builders.phantom import mni

    vols, seg, tissue = mni.make_case(np.random.default_rng(3), "LGG", 0, (120, 120, 78),
                                      return_tissue=True)
    t2 = vols["t2"].astype(float)
    free = seg == 0
    mean = {name: t2[(tissue[i] > 0.9) & free].mean() for i, name in enumerate(("gm", "wm", "csf"))}
    assert mean["csf"] > 1.3 * mean["gm"] > 1.3 * mean["wm"] > 0, mean
    t1 = vols["t1"].astype(float)
    assert t1[(tissue[1] > 0.9) & free].mean() > t1[(tissue[0] > 0.9) & free].mean()  # T1: WM>GM
    assert (seg[tissue.sum(axis=0) <= 0.5] == 0).all()


def test_brats_mni_is_seeded_by_seed_and_case_and_deformed_per_case(tmp_path):
    shape = (64, 64, 52)
    a = phantom.write_brats(tmp_path / "a", cases=3, shape=shape, seed=5, anatomy="mni")
    b = phantom.write_brats(tmp_path / "b", cases=5, shape=shape, seed=5, anatomy="mni")
    c = phantom.write_brats(tmp_path / "c", cases=1, shape=shape, seed=6, anatomy="mni")
    ida = {x["case_id"]: x for x in a}
    for x in b:
        if x["case_id"] in ida:  # the same (seed, case): identical bytes
            for name in x["files"]:
                assert _load(x, name).tobytes() == _load(ida[x["case_id"]], name).tobytes()
    assert {x["case_id"] for x in a} <= {x["case_id"] for x in b}
    assert _load(a[0], "t2").shape == shape
    assert not np.array_equal(_load(a[0], "t2"), _load(c[0], "t2"))  # another seed
    # Two cases differ in anatomy (deformation, flip), not only in gain and noise.
    m0, m1 = (_load(x, "t2") > 0 for x in a[:2])
    assert (m0 ^ m1).sum() > 0.05 * m0.sum()
    assert all(k in a[0]["tumour_slices"] for k in phantom.scale_slices((90, 100), shape[2]))


def test_brats2017_builds_from_an_mni_phantom(tmp_path):
    from conftest import prepare, read_all
    from data_builders.brats2017 import Brats2017, Brats2017Config

    shape = (48, 48, 40)
    hgg, lgg = phantom.scale_slices((90, 100), 40), phantom.scale_slices((90, 95, 100, 105), 40)
    cases = phantom.write_brats(tmp_path / "raw", cases=6, shape=shape, seed=0, anatomy="mni")
    config = Brats2017Config(name="tiny_mni", hgg_slices=hgg, lgg_slices=lgg)
    b = prepare(Brats2017(data_dir=str(tmp_path / "data"), config=config), tmp_path / "raw")
    ex = read_all(b)
    got = sorted((e["case_id"].decode(), int(e["slice_index"])) for s in ex.values() for e in s)
    expected, excluded = [], []
    for c in cases:
        for k in hgg if c["grade"] == "HGG" else lgg:
            (expected if k in c["tumour_slices"] else excluded).append((c["case_id"], k))
    assert got == sorted(expected) and excluded  # the special cases still exercise exclusion
    assert sorted(b.info.metadata["excluded_slices"]) == sorted(f"{c}/{k}" for c, k in excluded)
    for e in ex["train"] + ex["test"]:
        img, roi = e["image"][..., 0], e["roi"][..., 0]
        assert roi.sum() > 0 and img[roi == 1].mean() > img[(roi == 0) & (img > 0)].mean()
