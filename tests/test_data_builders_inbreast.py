"""inbreast builder on tiny phantom mammograms (400x320 and 330x260), without TensorFlow."""

import os
import plistlib
import shutil
import subprocess
import sys

import numpy as np
import pydicom
import pytest
from scipy import ndimage
from skimage.draw import polygon as sk_polygon, polygon_perimeter
import tensorflow_datasets as tfds
from pydicom.pixels import pixel_array

import data_builders  # noqa: F401  (registers the builders)
from data_builders import common, phantom
from data_builders.common import BadInputError
from data_builders.inbreast import Inbreast, InbreastConfig, crop_lesion, polygon_mask, read_dicom
from conftest import REPO, prepare, read_all

SIZES = ((400, 320), (330, 260))
N_IMAGES = 12
EIGHT = np.ones((3, 3), bool)  # 8-neighbourhood: PIL and skimage differ only on edge pixels


def build(manual_dir, data_dir, **kw):
    return prepare(Inbreast(data_dir=os.fspath(data_dir), **kw), manual_dir)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    d = tmp_path_factory.mktemp("inbreast_raw")
    recs = phantom.write_inbreast(d, images=N_IMAGES, sizes=SIZES, seed=0)
    return d, {r["file_id"]: r for r in recs}


@pytest.fixture(scope="module")
def built(raw, tmp_path_factory):
    b = build(raw[0], tmp_path_factory.mktemp("inbreast_data"))
    ex = read_all(b)
    return b, ex, raw[1]


def copy_raw(raw, tmp_path):
    dst = tmp_path / "raw"
    shutil.copytree(raw[0], dst)
    return dst


def sk_mask(points, shape, outline=False):
    """skimage reference fill (interior); with outline=True also the polygon's edge pixels."""
    m = np.zeros(shape, bool)
    rr, cc = sk_polygon(points[:, 1], points[:, 0], shape)
    m[rr, cc] = True
    if outline:
        rr, cc = polygon_perimeter(
            np.round(points[:, 1]), np.round(points[:, 0]), shape, clip=False
        )
        m[rr, cc] = True
    return m


def test_one_example_per_mass_with_features(built):
    b, ex, recs = built
    all_ex = ex["train"] + ex["test"]
    by_file = {}
    for e in all_ex:
        by_file.setdefault(e["file_id"].decode(), []).append(e)
    assert {f: len(v) for f, v in by_file.items()} == {
        f: len(r["masses"]) for f, r in recs.items() if r["masses"]
    }
    for f, v in by_file.items():
        r = recs[f]
        for e in v:
            assert e["patient_id"].decode() == r["patient"]
            assert e["laterality"].decode() == r["laterality"]
            assert e["view"].decode() == r["view"]
            assert e["birads"].decode() == r["birads"].strip()
    assert any(r["rle"] for f, r in recs.items() if f in by_file), "an RLE-compressed mass image"
    assert any(len(r["masses"]) == 2 for r in recs.values())
    md = b.info.metadata
    assert md["images_without_xml"] == sum(r["xml"] is None for r in recs.values())
    assert md["images_without_mass"] == sum(
        r["xml"] is not None and not r["masses"] for r in recs.values()
    )
    assert md["skipped"] == []


def test_dtypes_and_ranges(built):
    _, ex, _ = built
    for e in ex["train"] + ex["test"]:
        assert e["image"].dtype == np.float32 and e["image"].shape == (256, 256, 1)
        assert e["image"].min() >= 0 and e["image"].max() == pytest.approx(1.0)
        assert e["roi"].dtype == np.uint8 and e["roi"].shape == (256, 256, 1)
        assert set(np.unique(e["roi"])) == {0, 1}


def test_crops_are_raw_windows_around_each_mass_and_roi_is_the_polygon(built):
    _, ex, recs = built
    for e in ex["train"] + ex["test"]:
        r = recs[e["file_id"].decode()]
        raw = pydicom.dcmread(r["dcm"]).pixel_array.astype(np.float32)
        H, W = raw.shape
        union = np.logical_or.reduce([sk_mask(p, raw.shape) for p in r["masses"]])
        edges = np.logical_or.reduce([sk_mask(p, raw.shape, outline=True) for p in r["masses"]])
        img, roi = e["image"][..., 0], e["roi"][..., 0]
        found = None
        for pts in r["masses"]:
            m = sk_mask(pts, raw.shape)
            rows, cols = np.nonzero(m)
            r0 = int(np.clip(round((rows.min() + rows.max()) / 2 + 0.5 - 128), 0, H - 256))
            c0 = int(np.clip(round((cols.min() + cols.max()) / 2 + 0.5 - 128), 0, W - 256))
            for dr in (0, -1, 1):
                for dc in (0, -1, 1):
                    a, b = min(max(r0 + dr, 0), H - 256), min(max(c0 + dc, 0), W - 256)
                    win = raw[a : a + 256, b : b + 256]
                    if np.allclose(img, win / win.max(), atol=1e-6):
                        found = (a, b, m)
        assert found is not None, "crop is not a max-normalised 256x256 window around a mass"
        a, b, m = found
        # the lesion lies in the window, and the ROI is the filled polygon(s), up to 1 px at edges
        assert m[a : a + 256, b : b + 256].sum() == m.sum()
        exp = union[a : a + 256, b : b + 256]
        assert np.all(roi[ndimage.binary_erosion(exp, EIGHT)] == 1)
        near = ndimage.binary_dilation(edges[a : a + 256, b : b + 256], EIGHT)
        assert np.all(near[roi == 1])
        # phantom masses are brighter than the tissue around them
        ring = ndimage.binary_dilation(roi == 1, iterations=6) & (roi == 0) & (img > 0)
        assert img[roi == 1].mean() > img[ring].mean() + 0.05


def test_split_by_patient(built):
    _, ex, _ = built
    pats = {s: {e["patient_id"] for e in v} for s, v in ex.items()}
    assert pats["train"] and pats["test"] and not pats["train"] & pats["test"]



def test_images_of_one_patient_never_straddle_the_split_for_any_seed(raw, tmp_path):
    d, recs = raw
    mass_images = sorted(f for f, r in recs.items() if r["masses"])
    patient_of = {f: recs[f]["patient"] for f in mass_images}
    patients = sorted(set(patient_of.values()))
    # every patient has several mass images (and so several examples)
    assert all(sum(p == q for q in patient_of.values()) >= 2 for p in patients)
    image_level_leaks = 0
    for seed in range(6):
        b = build(d, tmp_path / str(seed),
                  config=InbreastConfig(name=f"seed{seed}", split_seed=seed, image_size=64))
        sides = {}
        for split, examples in read_all(b).items():
            for e in examples:
                sides.setdefault(e["patient_id"].decode(), set()).add(split)
        assert {p: s for p, s in sides.items() if len(s) > 1} == {}, f"split_seed={seed}"
        expected = common.patient_split(patients, 0.7, seed)
        assert sides == {p: {expected[p]} for p in patients}, f"split_seed={seed}"
        # The data can tell: splitting the image (file) ids with this seed would put a
        # patient on both sides.
        by_image = common.patient_split(mass_images, 0.7, seed)
        image_level_leaks += any(
            len({by_image[f] for f in mass_images if patient_of[f] == p}) > 1 for p in patients
        )
    assert image_level_leaks >= 3

def test_healthy_crops_are_breast_windows_of_the_mass_free_mammograms(raw, tmp_path):
    """64 px windows: the phantom's breasts (a few hundred px) hold few 256 px ones."""
    d, recs = raw
    b = build(d, tmp_path / "healthy",
              config=InbreastConfig(name="healthy", healthy_crops=2, image_size=64))
    ex = read_all(b)
    assert set(ex) == {"train", "test", "train_healthy", "test_healthy"}
    # The mass crops are those of the build without healthy crops, example for example.
    plain = read_all(build(d, tmp_path / "plain", config=InbreastConfig(name="p", image_size=64)))
    for split in ("train", "test"):
        assert [e["image"].tobytes() for e in ex[split]] == [
            e["image"].tobytes() for e in plain[split]]
    side_of = {e["patient_id"].decode(): s for s in ("train", "test") for e in ex[s]}
    per_image = {}
    for split in ("train_healthy", "test_healthy"):
        for e in ex[split]:
            r = recs[e["file_id"].decode()]
            assert not r["masses"], "a healthy crop from a mammogram with a mass"
            patient = e["patient_id"].decode()
            if patient in side_of:  # a patient of the mass split keeps its side
                assert split == f"{side_of[patient]}_healthy"
            assert e["roi"].shape == (64, 64, 1) and not e["roi"].any()
            raw_image = read_dicom(r["dcm"])
            found = [(a, c) for a in range(0, raw_image.shape[0] - 63, 32)
                     for c in range(0, raw_image.shape[1] - 63, 32)
                     if raw_image[a:a + 64, c:c + 64].max() > 0
                     and np.allclose(e["image"][..., 0], raw_image[a:a + 64, c:c + 64]
                                    / raw_image[a:a + 64, c:c + 64].max(), atol=1e-6)]
            assert found, "a healthy crop is not a max-normalised window of its mammogram"
            a, c = found[0]
            window = raw_image[a:a + 64, c:c + 64]
            assert (window > 0.05 * raw_image.max()).mean() >= 0.9  # breast, not background
            per_image.setdefault(e["file_id"].decode(), set()).add((a, c))
    assert per_image and all(1 <= len(v) <= 2 for v in per_image.values())
    sides = {}
    for split in ("train_healthy", "test_healthy"):
        for e in ex[split]:
            sides.setdefault(e["patient_id"].decode(), set()).add(split)
    assert all(len(v) == 1 for v in sides.values()) and len(ex["test_healthy"]) > 0
    md = b.info.metadata
    assert md["healthy_crops"] == 2
    assert sum(md["healthy_images"].values()) == sum(not r["masses"] for r in recs.values())
    with pytest.raises(BadInputError, match=r"healthy_crops: none of the \d+ mass-free "
                                            r"mammograms of split \w+ has a 256x256 window"):
        build(d, tmp_path / "big", config=InbreastConfig(name="big", healthy_crops=2))


def test_point_rois_and_other_names_are_not_masses(raw, tmp_path):
    d = copy_raw(raw, tmp_path)
    f, r = next((f, r) for f, r in raw[1].items() if r["masses"])
    xml = d / "AllXML" / f"{f}.xml"
    pl = plistlib.loads(xml.read_bytes())
    pl["Images"][0]["ROIs"] += [
        {"Name": " mass ", "Point_px": ["(10.0, 12.0)"]},
        {"Name": "MASS", "Point_px": ["(10.0, 12.0)", "(11.0, 12.0)"]},
        {"Name": "Cluster", "Point_px": ["(10, 12)", "(40, 12)", "(40, 50)"]},
    ]
    xml.write_bytes(plistlib.dumps(pl))
    b = build(d, tmp_path / "data")
    assert b.info.metadata["ignored_point_rois"] == 2
    assert b.info.metadata["ignored_roi_names"]["Cluster"] == 1
    assert b.info.metadata["ignored_roi_names"]["Calcification"] > 0
    n = sum(1 for v in read_all(b).values() for e in v if e["file_id"].decode() == f)
    assert n == len(r["masses"])


def test_monochrome1_is_inverted(raw, tmp_path):
    r = next(r for r in raw[1].values() if not r["rle"])
    ds = pydicom.dcmread(r["dcm"])
    ref = read_dicom(r["dcm"])
    bits = int(ds.BitsStored)
    inv = (2**bits - 1 - ds.pixel_array.astype(np.int64)).astype(np.uint16)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.PixelData = inv.tobytes()
    p = tmp_path / "m1.dcm"
    ds.save_as(p)
    np.testing.assert_array_equal(read_dicom(p), ref)


def test_roi_half_outside_the_image_is_clipped_and_listed_in_the_summary(raw, tmp_path):
    from data_builders.__main__ import summary

    d = copy_raw(raw, tmp_path)
    f, r = next((f, r) for f, r in sorted(raw[1].items()) if len(r["masses"]) == 1)
    xml = d / "AllXML" / f"{f}.xml"
    pl = plistlib.loads(xml.read_bytes())
    roi = next(m for m in pl["Images"][0]["ROIs"] if m["Name"] == "Mass")
    pts = r["masses"][0] + [r["cols"] - r["masses"][0][:, 0].mean(), 0]  # centred on the edge
    roi["Point_px"] = [f"({x:.6f}, {y:.6f})" for x, y in pts]
    xml.write_bytes(plistlib.dumps(pl))
    outside = int((pts[:, 0] >= r["cols"]).sum())
    assert 0 < outside < len(pts)
    b = build(d, tmp_path / "data")
    reason = (f"Mass #0: {outside} of {len(pts)} points outside the "
              f"{r['rows']}x{r['cols']} image {os.path.basename(r['dcm'])}, clipped to it")
    expected = [{"path": os.fspath(xml), "reason": reason}]
    assert b.info.metadata["clipped_rois"] == expected
    stored = tfds.builder("inbreast", data_dir=os.fspath(tmp_path / "data")).info.metadata
    assert stored["clipped_rois"] == expected
    text = summary(b)
    assert "  clipped ROIs: 1\n" in text and f"    {xml}: {reason}" in text
    # still one example for it, whose ROI is the inside half
    (e,) = [e for v in read_all(b).values() for e in v if e["file_id"].decode() == f]
    assert e["roi"].sum() > 0


# ---------------------------------------------------------------------------- JPEG DICOMs


def jpeg_lossless_pixels():
    """The pixels of tests/data/jpeg_lossless_sv1.dcm (as in tests/data/make_jpeg_lossless.py)."""
    rows, cols = np.indices((40, 32))
    return ((rows * 97 + cols * 31 + (rows * cols) % 251) * 13 % 4096).astype(np.uint16)


def test_jpeg_lossless_dicom_is_decoded():
    # Written by GDCM (no installable encoder for it); decoded by pylibjpeg-libjpeg.
    path = REPO / "tests" / "data" / "jpeg_lossless_sv1.dcm"
    syntax = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    assert syntax == pydicom.uid.JPEGLosslessSV1
    np.testing.assert_array_equal(read_dicom(path), jpeg_lossless_pixels())


def test_jpeg_ls_lossless_mammogram_builds_like_the_uncompressed_one(raw, built, tmp_path):
    d = copy_raw(raw, tmp_path)
    file_id, path, _ = _mass_file(d, raw)
    ds = pydicom.dcmread(path)
    ds.compress(pydicom.uid.JPEGLSLossless, ds.pixel_array, generate_instance_uid=False)
    ds.save_as(path)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == pydicom.uid.JPEGLSLossless
    np.testing.assert_array_equal(read_dicom(path), read_dicom(raw[1][file_id]["dcm"]))
    # pyjpegls (a test requirement) decodes JPEG-LS too; the runtime plugin must as well.
    np.testing.assert_array_equal(pixel_array(path, decoding_plugin="pylibjpeg"),
                                  pydicom.dcmread(raw[1][file_id]["dcm"]).pixel_array)

    def crops(examples):
        return sorted((e["image"].tobytes(), e["roi"].tobytes()) for split in examples.values()
                      for e in split if e["file_id"].decode() == file_id)

    assert crops(read_all(build(d, tmp_path / "data"))) == crops(built[1]) != []


def test_polygon_mask_matches_skimage_up_to_edges():
    pts = np.array([[10.3, 5.2], [60.7, 12.1], [50.2, 70.9], [14.4, 40.5]])
    ours, ref = polygon_mask(pts, (80, 80)), sk_mask(pts, (80, 80))
    assert np.all(ours[ndimage.binary_erosion(ref, EIGHT)])
    assert np.all(ndimage.binary_dilation(sk_mask(pts, (80, 80), outline=True), EIGHT)[ours])
    # x is the column: a wide flat polygon gives a wide flat mask
    flat = polygon_mask(np.array([[5, 10], [70, 10], [70, 14], [5, 14]]), (80, 80))
    rows, cols = np.nonzero(flat)
    assert np.ptp(cols) > 60 and np.ptp(rows) < 6


def test_crop_lesion_shifts_pads_and_resizes():
    img = np.arange(1000 * 800, dtype=np.float32).reshape(1000, 800)
    lesion = np.zeros(img.shape, bool)
    lesion[0:20, 790:800] = True  # corner: the window shifts inside the image
    out, roi, (r0, c0, side) = crop_lesion(img, lesion, lesion)
    assert (r0, c0, side) == (0, 800 - 256, 256) and roi.sum() == 200
    np.testing.assert_allclose(out, img[:256, 544:] / img[:256, 544:].max(), atol=1e-6)
    big = np.zeros(img.shape, bool)
    big[300:700, 200:500] = True  # 400 x 300: larger than 256
    out, roi, (r0, c0, side) = crop_lesion(img, big, big)
    assert side == 480 and out.shape == roi.shape == (256, 256)
    assert set(np.unique(roi)) == {0, 1}
    assert abs(roi.sum() - 400 * 300 * (256 / 480) ** 2) < 0.02 * roi.sum()
    assert 0 <= out.min() and out.max() <= 1
    small = np.ones((100, 120), np.float32)
    les = np.zeros((100, 120), bool)
    les[40:60, 50:70] = True
    out, roi, _ = crop_lesion(small, les, les)  # image smaller than the window: zero padding
    assert out.shape == (256, 256) and out.sum() == 100 * 120 and roi.sum() == 400


# ---------------------------------------------------------------------------- bad input


def _mass_file(d, raw, rle=False, which=0):
    f, r = [(f, r) for f, r in sorted(raw[1].items()) if r["masses"] and r["rle"] == rle][which]
    return f, d / "AllDICOMs" / os.path.basename(r["dcm"]), d / "AllXML" / f"{f}.xml"


def corrupt_dcm(d, raw):
    p = _mass_file(d, raw)[1]
    p.write_bytes(b"not a dicom" * 50)
    return p


def truncated_dcm(d, raw):
    p = _mass_file(d, raw)[1]
    data = p.read_bytes()
    p.write_bytes(data[: len(data) * 2 // 3])
    return p


def truncated_rle_dcm(d, raw):
    p = _mass_file(d, raw, rle=True)[1]
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


def malformed_point(d, raw, which=0):
    p = _mass_file(d, raw, which=which)[2]
    pl = plistlib.loads(p.read_bytes())
    roi = next(r for r in pl["Images"][0]["ROIs"] if r["Name"] in ("Mass", "Spiculated Region"))
    roi["Point_px"][3] = "(12.5; abc)"
    p.write_bytes(plistlib.dumps(pl))
    return p


def not_a_plist(d, raw):
    p = _mass_file(d, raw)[2]
    p.write_bytes(b"<?xml version='1.0'?><plist><dict><key>Images</key>")
    return p


def missing_csv(d, raw):
    p = d / "INbreast.csv"
    p.unlink()
    return p


def csv_missing_row(d, raw):
    p = d / "INbreast.csv"
    f = _mass_file(d, raw)[0]
    p.write_text("\n".join(l for l in p.read_text().splitlines() if f";{f};" not in l) + "\n")
    return p


def bad_file_name(d, raw):
    p = d / "AllDICOMs" / "scan.dcm"
    shutil.copy(_mass_file(d, raw)[1], p)
    return p


@pytest.mark.parametrize(
    "damage",
    [
        corrupt_dcm,
        truncated_dcm,
        truncated_rle_dcm,
        malformed_point,
        not_a_plist,
        missing_csv,
        csv_missing_row,
        bad_file_name,
    ],
)
def test_bad_input_error_names_file_and_leaves_no_dataset(raw, tmp_path, damage):
    d = copy_raw(raw, tmp_path)
    path = damage(d, raw)
    with pytest.raises(BadInputError) as err:
        build(d, tmp_path / "data")
    assert err.value.path == os.fspath(path), str(err.value)
    assert os.path.basename(path) in str(err.value)
    out = tmp_path / "data" / "inbreast" / "paper"
    assert not (out / "1.0.0").exists()
    assert not out.exists() or not [p for p in out.iterdir() if "incomplete" in p.name]


@pytest.mark.parametrize("layout", ["empty", "wrong"])
def test_empty_or_wrong_manual_dir(tmp_path, layout):
    m = tmp_path / "manual"
    m.mkdir()
    if layout == "wrong":
        (m / "dicoms").mkdir()
        (m / "dicoms" / "a.dcm").write_bytes(b"x")
    with pytest.raises(BadInputError, match=str(m)):
        build(m, tmp_path / "data")


def test_skip_bad_lists_every_skipped_file(raw, tmp_path):
    d = copy_raw(raw, tmp_path)
    bad = {os.fspath(corrupt_dcm(d, raw)), os.fspath(malformed_point(d, raw, which=1))}
    b = build(d, tmp_path / "data", skip_bad=True)
    skipped = tfds.builder("inbreast", data_dir=os.fspath(tmp_path / "data")).info.metadata[
        "skipped"
    ]
    assert {s["path"] for s in skipped} == bad
    n_ok = sum(len(r["masses"]) for r in raw[1].values()) - sum(
        len(r["masses"])
        for f, r in raw[1].items()
        if any(os.path.basename(p).startswith(f) for p in bad)
    )
    assert sum(len(v) for v in read_all(b).values()) == n_ok


def test_cli(raw, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "data_builders",
            "inbreast",
            f"--manual_dir={raw[0]}",
            f"--data_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    n = sum(len(v["masses"]) for v in raw[1].values())
    ds = [
        tfds.data_source("inbreast", data_dir=os.fspath(tmp_path), split=s)
        for s in ("train", "test")
    ]
    assert sum(len(x) for x in ds) == n
    assert "skipped files: 0" in r.stdout
