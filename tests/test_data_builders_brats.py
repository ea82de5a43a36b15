"""brats2017 builder on tiny phantom volumes (48x48x40), built without TensorFlow."""

import gzip
import os
import re
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import tensorflow_datasets as tfds

import data_builders  # noqa: F401  (registers the builders)
from data_builders import common, phantom
from data_builders.brats2017 import Brats2017, Brats2017Config
from data_builders.common import BadInputError
from conftest import REPO, prepare, read_all

SHAPE = (48, 48, 40)
PAD = (256 - 48) // 2
HGG = phantom.scale_slices((90, 100), SHAPE[2])
LGG = phantom.scale_slices((90, 95, 100, 105), SHAPE[2])


def tiny_config(name="tiny", **kw):
    return Brats2017Config(name=name, hgg_slices=HGG, lgg_slices=LGG, **kw)


def build(manual_dir, data_dir, config=None, **kw):
    builder = Brats2017(data_dir=os.fspath(data_dir), config=config or tiny_config(), **kw)
    return prepare(builder, manual_dir)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    d = tmp_path_factory.mktemp("brats_raw")
    cases = phantom.write_brats(d, cases=6, shape=SHAPE, seed=0)
    return d, {c["case_id"]: c for c in cases}


@pytest.fixture(scope="module")
def built(raw, tmp_path_factory):
    d, cases = raw
    b = build(d, tmp_path_factory.mktemp("brats_data"))
    return b, read_all(b), cases


def copy_raw(raw, tmp_path):
    dst = tmp_path / "raw"
    shutil.copytree(raw[0], dst)
    return dst


def test_slices_taken_and_tumour_free_slices_excluded(built):
    b, ex, cases = built
    got = sorted((e["case_id"].decode(), int(e["slice_index"])) for s in ex.values() for e in s)
    expected, excluded = [], []
    for cid, c in cases.items():
        for k in (HGG if c["grade"] == "HGG" else LGG):
            (expected if k in c["tumour_slices"] else excluded).append((cid, k))
    assert got == sorted(expected)
    assert excluded, "phantom must exercise the exclusion path"
    assert any(
        all(k not in c["tumour_slices"] for k in LGG) for c in cases.values() if c["grade"] == "LGG"
    )
    md = b.info.metadata
    assert sorted(md["excluded_slices"]) == sorted(f"{c}/{k}" for c, k in excluded)
    assert md["excluded_slice_count"] == len(excluded)
    assert md["skipped"] == []


def test_image_roi_are_padded_slice_and_seg_exactly(built):
    _, ex, cases = built
    for e in ex["train"] + ex["test"]:
        c = cases[e["case_id"].decode()]
        k = int(e["slice_index"])
        t2 = np.asarray(nib.load(c["files"]["t2"]).dataobj)[:, :, k].astype(np.float32)
        seg = np.asarray(nib.load(c["files"]["seg"]).dataobj)[:, :, k]
        img, roi = e["image"][..., 0], e["roi"][..., 0]
        np.testing.assert_array_equal(roi[PAD : PAD + 48, PAD : PAD + 48], seg > 0)
        assert roi.sum() == (seg > 0).sum() > 0
        np.testing.assert_allclose(
            img[PAD : PAD + 48, PAD : PAD + 48], t2 / t2.max(), rtol=0, atol=1e-6
        )
        assert not img[:PAD].any() and not img[:, PAD + 48 :].any()
        # T2 phantom: tumour brighter than the rest of the head.
        assert img[roi == 1].mean() > img[(roi == 0) & (img > 0)].mean() + 0.1


def test_dtypes_ranges_and_features(built):
    _, ex, cases = built
    for e in ex["train"] + ex["test"]:
        assert e["image"].dtype == np.float32 and e["image"].shape == (256, 256, 1)
        assert e["image"].min() >= 0 and e["image"].max() == pytest.approx(1.0)
        assert e["roi"].dtype == np.uint8 and e["roi"].shape == (256, 256, 1)
        assert set(np.unique(e["roi"])) == {0, 1}
        c = cases[e["case_id"].decode()]
        assert ["HGG", "LGG"][int(e["grade"])] == c["grade"]
        assert e["patient_id"].decode() == c["case_id"].rsplit("_", 1)[0]
        assert e["affine"].dtype == np.float32 and e["affine"].shape == (4, 4)


def test_affine_round_trip(built, tmp_path):
    _, ex, cases = built
    e = ex["train"][0]
    c = cases[e["case_id"].decode()]
    src = nib.load(c["files"]["t2"])
    np.testing.assert_allclose(e["affine"], src.affine, atol=1e-6)
    vol = np.zeros(SHAPE, np.float32)
    vol[:, :, int(e["slice_index"])] = e["image"][PAD : PAD + 48, PAD : PAD + 48, 0]
    nib.save(nib.Nifti1Image(vol, e["affine"].astype(np.float64)), tmp_path / "syn.nii.gz")
    back = nib.load(tmp_path / "syn.nii.gz")
    np.testing.assert_allclose(back.affine, src.affine, atol=1e-6)
    k = int(e["slice_index"])
    t2 = np.asarray(src.dataobj)[:, :, k]
    np.testing.assert_allclose(back.get_fdata()[:, :, k], t2 / t2.max(), atol=1e-6)


def test_split_by_patient_without_leakage(built):
    b, ex, cases = built
    pats = {s: {e["patient_id"] for e in v} for s, v in ex.items()}
    assert pats["train"] and pats["test"]
    assert not pats["train"] & pats["test"]
    # two acquisitions of one patient (H001_1 and H001_2) end up on the same side
    sides = {s for s, v in ex.items() for e in v if e["patient_id"] == b"Brats17_PHANTOM_H001"}
    assert len(sides) == 1
    assert {e["grade"] for e in ex["train"]} == {0, 1}
    assert len(ex["train"]) + len(ex["test"]) == sum(s.num_examples for s in b.info.splits.values())


def add_acquisition(raw_dir, grade, case_id, new_case_id):
    """Copies case `case_id` as another acquisition `new_case_id` of the same patient."""
    src, dst = raw_dir / grade / case_id, raw_dir / grade / new_case_id
    dst.mkdir()
    for f in src.iterdir():
        shutil.copy(f, dst / f.name.replace(case_id, new_case_id))


@pytest.fixture(scope="module")
def multi_acquisition_raw(tmp_path_factory):
    """Phantom cases where every patient has three acquisitions (``_1``, ``_2``, ``_3``)."""
    d = tmp_path_factory.mktemp("brats_multi_raw")
    for c in phantom.write_brats(d, cases=10, shape=SHAPE, seed=1):
        stem = c["case_id"].rsplit("_", 1)[0]
        for k in (2, 3):
            if not (d / c["grade"] / f"{stem}_{k}").exists():
                add_acquisition(d, c["grade"], c["case_id"], f"{stem}_{k}")
    return d


def test_acquisitions_of_one_patient_never_straddle_the_split_for_any_seed(
    multi_acquisition_raw, tmp_path
):
    d = multi_acquisition_raw
    cases = {g: sorted(p.name for p in (d / g).iterdir()) for g in ("HGG", "LGG")}
    patients = {g: sorted({c.rsplit("_", 1)[0] for c in v}) for g, v in cases.items()}
    assert all(len(v) == 3 * len(patients[g]) for g, v in cases.items())
    case_level_leaks = 0
    for seed in range(4):
        b = build(d, tmp_path / str(seed), config=tiny_config(f"seed{seed}", split_seed=seed,
                                                              image_size=64))
        sides, case_sides = {}, {}
        for split, examples in read_all(b).items():
            for e in examples:
                sides.setdefault(e["patient_id"].decode(), set()).add(split)
                case_sides.setdefault(e["case_id"].decode(), set()).add(split)
        assert {p: s for p, s in sides.items() if len(s) > 1} == {}, f"split_seed={seed}"
        # per grade, exactly the patient split of the grade's patients
        for g, ids in patients.items():
            expected = common.patient_split(ids, 0.7, seed)
            assert {p: sides[p] for p in ids if p in sides} == {
                p: {expected[p]} for p in ids if p in sides
            }, f"split_seed={seed}"
        assert len(case_sides) > 2 * len(sides)  # patients with several acquisitions built
        # The data can tell: a split of this grade's case ids with this seed would put a
        # patient (among those with examples) on both sides.
        for g, ids in cases.items():
            by_case = common.patient_split(ids, 0.7, seed)
            built_cases = [c for c in ids if c in case_sides]
            case_level_leaks += any(
                len({by_case[c] for c in built_cases if c.rsplit("_", 1)[0] == p}) > 1
                for p in patients[g]
            )
    assert case_level_leaks >= 2


def test_data_source_reads_after_import_and_metadata_round_trip(built):
    b, ex, _ = built
    data_dir = os.fspath(b.data_dir_root)
    ds = tfds.data_source("brats2017/tiny", data_dir=data_dir, split="test")
    assert len(ds) == len(ex["test"])
    rb = tfds.builder("brats2017/tiny", data_dir=data_dir)
    assert rb.info.metadata["excluded_slice_count"] == b.info.metadata["excluded_slice_count"]
    assert rb.info.metadata["skipped"] == []
    counts = {s: {g: sum(int(e["grade"]) == i for e in v) for i, g in enumerate(("HGG", "LGG"))}
              for s, v in ex.items()}
    assert rb.info.metadata["examples"] == counts
    assert "balance" not in rb.info.metadata  # off unless the config asks for it
    # the side of the volumes' slices, for their geometry (data_builders.registry)
    assert ds.dataset_info.metadata["source_slice_size"] == SHAPE[0]


def test_no_source_slice_size_is_recorded_for_slices_that_are_not_square(tmp_path):
    phantom.write_brats(tmp_path / "raw", cases=6, shape=(48, 40, 40), seed=0)
    b = build(tmp_path / "raw", tmp_path / "data")
    assert sum(s.num_examples for s in b.info.splits.values()) > 0
    assert b.info.metadata["source_slice_size"] is None


def test_all_tumour_slices_config(raw, tmp_path):
    d, cases = raw
    b = Brats2017(data_dir=os.fspath(tmp_path), config="all_tumour_slices")
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(d)))
    ex = read_all(b)
    got = sorted((e["case_id"].decode(), int(e["slice_index"])) for v in ex.values() for e in v)
    assert got == sorted((cid, k) for cid, c in cases.items() for k in c["tumour_slices"])


def test_balance_grades_equal_counts_split_7_to_3_by_patient(tmp_path):
    """Paper reading: tumour-free slices out, larger grade sampled down, then 7:3 by patient."""
    cases = {c["case_id"]: c for c in phantom.write_brats(tmp_path / "raw", cases=30,
                                                          shape=SHAPE, seed=1)}
    b = build(tmp_path / "raw", tmp_path / "data", config=tiny_config("bal", balance_grades=True))
    ex = read_all(b)
    md = b.info.metadata
    grade = {s: np.array([int(e["grade"]) for e in v]) for s, v in ex.items()}
    per = {s: [int((g == 0).sum()), int((g == 1).sum())] for s, g in grade.items()}
    n_hgg, n_lgg = per["train"][0] + per["test"][0], per["train"][1] + per["test"][1]
    assert n_hgg == n_lgg > 0
    for i in (0, 1):  # roughly the paper's 190:82 within each grade
        assert 0.55 <= per["train"][i] / (per["train"][i] + per["test"][i]) <= 0.85, per
    pats = {s: {e["patient_id"] for e in v} for s, v in ex.items()}
    assert not pats["train"] & pats["test"]
    # every kept slice has tumour; the smaller grade is kept whole
    tumour = {(cid, k) for cid, c in cases.items() for k in c["tumour_slices"]}
    kept = {(e["case_id"].decode(), int(e["slice_index"])) for v in ex.values() for e in v}
    assert kept <= tumour
    requested = {g: {(cid, k) for cid, c in cases.items() if c["grade"] == g
                     for k in (HGG if g == "HGG" else LGG)} & tumour for g in ("HGG", "LGG")}
    small = min(requested, key=lambda g: len(requested[g]))
    assert requested[small] <= kept
    assert md["balance"]["slices_before"] == {g: len(v) for g, v in requested.items()}
    assert md["balance"]["slices_after"] == {"HGG": n_hgg, "LGG": n_lgg}
    assert md["examples"] == {s: dict(zip(("HGG", "LGG"), p)) for s, p in per.items()}
    assert md["excluded_slice_count"] == len(md["excluded_slices"]) > 0


def test_paper_slices_out_of_range_error_names_file(raw, tmp_path):
    with pytest.raises(BadInputError, match=r"_t2\.nii\.gz.*out of range"):
        build(raw[0], tmp_path, config="paper")
    assert not (tmp_path / "brats2017" / "paper" / str(Brats2017.VERSION)).exists()


def test_other_modality(raw, tmp_path):
    b = build(raw[0], tmp_path, config=tiny_config("tiny_flair", modality="flair"))
    e = read_all(b)["train"][0]
    fl = nib.load(raw[1][e["case_id"].decode()]["files"]["flair"]).get_fdata()[
        :, :, int(e["slice_index"])
    ]
    np.testing.assert_allclose(
        e["image"][PAD : PAD + 48, PAD : PAD + 48, 0], fl / fl.max(), atol=1e-6
    )


# ---------------------------------------------------------------------------- bad input


def _case(d, cid="Brats17_PHANTOM_H000_1"):
    return d / ("LGG" if "_L" in cid else "HGG") / cid / cid


def corrupt(d):
    p = f"{_case(d)}_t2.nii.gz"
    with open(p, "wb") as f:
        f.write(b"this is not a nifti file" * 10)
    return p


def truncate(d, cid="Brats17_PHANTOM_H000_1"):
    p = f"{_case(d, cid)}_t2.nii.gz"
    data = open(p, "rb").read()
    open(p, "wb").write(data[: len(data) // 2])
    return p


def missing_seg(d, cid="Brats17_PHANTOM_H000_1"):
    p = f"{_case(d, cid)}_seg.nii.gz"
    os.remove(p)
    return p


def seg_shape(d):
    p = f"{_case(d)}_seg.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((48, 48, 39), np.uint8), np.eye(4)), p)
    return p


def corrupt_gzip_payload(d):
    """Valid gzip stream with a too-short NIfTI inside."""
    p = f"{_case(d)}_t2.nii.gz"
    raw = gzip.decompress(open(p, "rb").read())
    open(p, "wb").write(gzip.compress(raw[:600]))
    return p


@pytest.mark.parametrize(
    "damage", [corrupt, truncate, missing_seg, seg_shape, corrupt_gzip_payload]
)
def test_bad_input_error_names_file_and_leaves_no_dataset(raw, tmp_path, damage):
    d = copy_raw(raw, tmp_path)
    path = damage(d)
    with pytest.raises(BadInputError) as err:
        build(d, tmp_path / "data")
    assert os.path.basename(path) in str(err.value)
    assert err.value.path == os.fspath(path)
    out = tmp_path / "data" / "brats2017" / "tiny"
    assert not (out / str(Brats2017.VERSION)).exists()
    assert not [p for p in out.iterdir() if "incomplete" in p.name] if out.exists() else True
    # Nothing readable was left behind: TFDS finds no prepared 'tiny' in that data dir.
    data_dir = os.fspath(tmp_path / "data")
    with pytest.raises(ValueError, match=r"BuilderConfig tiny not found") as not_found:
        tfds.data_source("brats2017/tiny", data_dir=data_dir, split="train", download=False)
    assert f"'data_dir': '{data_dir}'" in str(not_found.value)


def _rewrite(path, change, dtype=None):
    """Saves NIfTI ``path`` again (same affine) with ``change(data)`` applied in place."""
    img = nib.load(path)
    data = np.asarray(img.dataobj).astype(dtype or img.get_data_dtype())
    change(data)
    nib.save(nib.Nifti1Image(data, img.affine), path)
    return path


def nan_voxel(d, cid="Brats17_PHANTOM_H000_1"):
    """A NaN in a requested tumour slice (slice 23 of both grades)."""
    return _rewrite(f"{_case(d, cid)}_t2.nii.gz",
                    lambda v: v.__setitem__((24, 24, HGG[0]), np.nan), np.float32)


def inf_voxel_in_unused_slice(d):
    return _rewrite(f"{_case(d)}_t2.nii.gz",
                    lambda v: v.__setitem__((0, 0, 0), np.inf), np.float32)


def zero_t2(d):
    return _rewrite(f"{_case(d)}_t2.nii.gz", lambda v: v.fill(0))


def zero_tumour_slice(d):
    return _rewrite(f"{_case(d)}_t2.nii.gz", lambda v: v.__setitem__((..., HGG[1]), 0))


def seg_label_3(d):
    return _rewrite(f"{_case(d)}_seg.nii.gz", lambda s: s.__setitem__((0, 0, HGG[0]), 3))


def seg_label_negative(d):
    return _rewrite(f"{_case(d)}_seg.nii.gz",
                    lambda s: s.__setitem__((0, 0, HGG[0]), -1), np.int16)


@pytest.mark.parametrize("damage, reason", [
    (nan_voxel, r"^non-finite values \(NaN or Inf\) in the volume: 1 of 92160$"),
    (inf_voxel_in_unused_slice, r"^non-finite values \(NaN or Inf\) in the volume: 1 of 92160$"),
    (zero_t2, r"^axial slice 23 has no positive intensity, but its ROI is not empty$"),
    (zero_tumour_slice, r"^axial slice 26 has no positive intensity, but its ROI is not empty$"),
    (seg_label_3, r"^labels \[3\] outside \{0, 1, 2, 4\}$"),
    (seg_label_negative, r"^labels \[-1\] outside \{0, 1, 2, 4\}$"),
])
def test_bad_voxels_and_labels_name_the_file_and_are_skipped_with_skip_bad(
    raw, tmp_path, damage, reason
):
    d = copy_raw(raw, tmp_path)
    path = damage(d)
    with pytest.raises(BadInputError) as err:
        build(d, tmp_path / "data")
    assert err.value.path == os.fspath(path)
    assert re.search(reason, err.value.reason), err.value.reason
    assert not (tmp_path / "data" / "brats2017" / "tiny" / str(Brats2017.VERSION)).exists()
    b = build(d, tmp_path / "data2", skip_bad=True)
    assert b.info.metadata["skipped"] == [{"path": os.fspath(path), "reason": err.value.reason}]
    cids = {e["case_id"].decode() for v in read_all(b).values() for e in v}
    assert cids == {"Brats17_PHANTOM_H001_1", "Brats17_PHANTOM_H001_2", "Brats17_PHANTOM_H003_1",
                    "Brats17_PHANTOM_L000_1"}


@pytest.mark.parametrize("damage", [truncate, nan_voxel])
def test_skip_bad_drops_bad_cases_before_the_grades_are_balanced(tmp_path, damage):
    """12 phantom cases: 13 HGG and 10 LGG tumour slices; LGG L000 (4 slices) is bad, so
    6 LGG remain and HGG is sampled down to 6, not to 10."""
    phantom.write_brats(tmp_path / "raw", cases=12, shape=SHAPE, seed=0)
    path = damage(tmp_path / "raw", "Brats17_PHANTOM_L000_1")
    b = build(tmp_path / "raw", tmp_path / "data",
              config=tiny_config("bal", balance_grades=True), skip_bad=True)
    md = b.info.metadata
    assert [s["path"] for s in md["skipped"]] == [os.fspath(path)]
    assert md["balance"]["slices_before"] == {"HGG": 13, "LGG": 6}
    assert md["balance"]["slices_after"] == {"HGG": 6, "LGG": 6}
    written = {g: md["examples"]["train"][g] + md["examples"]["test"][g] for g in ("HGG", "LGG")}
    assert written == {"HGG": 6, "LGG": 6}
    assert sum(len(v) for v in read_all(b).values()) == 12


@pytest.mark.parametrize("layout", ["empty", "wrong"])
def test_empty_or_wrong_manual_dir(tmp_path, layout):
    m = tmp_path / "manual"
    m.mkdir()
    if layout == "wrong":
        (m / "Brats17_X_1").mkdir()
        (m / "Brats17_X_1" / "Brats17_X_1_t2.nii.gz").write_bytes(b"x")
    with pytest.raises(BadInputError, match=str(m)):
        build(m, tmp_path / "data")


def test_skip_bad_lists_skipped_files_in_metadata(raw, tmp_path):
    d = copy_raw(raw, tmp_path)
    bad1 = corrupt(d)
    bad2 = missing_seg(d, "Brats17_PHANTOM_L000_1")
    b = build(d, tmp_path / "data", skip_bad=True)
    skipped = tfds.builder("brats2017/tiny", data_dir=os.fspath(tmp_path / "data")).info.metadata[
        "skipped"
    ]
    assert {s["path"] for s in skipped} == {os.fspath(bad1), os.fspath(bad2)}
    assert all(s["reason"] for s in skipped)
    cids = {e["case_id"] for v in read_all(b).values() for e in v}
    assert b"Brats17_PHANTOM_H000_1" not in cids and cids
    # the config field works as well as the constructor argument
    b2 = build(d, tmp_path / "data2", config=tiny_config(skip_bad=True))
    assert len(b2.info.metadata["skipped"]) == 2


def test_cli_builds_and_reports(raw, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [
        sys.executable,
        "-m",
        "data_builders",
        "brats2017",
        f"--manual_dir={raw[0]}",
        f"--data_dir={tmp_path / 'data'}",
        "--config=all_tumour_slices",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "train:" in r.stdout and "skipped files: 0" in r.stdout
    ds = tfds.data_source(
        "brats2017/all_tumour_slices", data_dir=os.fspath(tmp_path / "data"), split="train"
    )
    assert len(ds) > 0
    d = copy_raw(raw, tmp_path)
    bad = truncate(d)
    cmd2 = [c if not c.startswith("--manual_dir") else f"--manual_dir={d}" for c in cmd]
    cmd2 = [
        c if not c.startswith("--data_dir") else f"--data_dir={tmp_path / 'data2'}" for c in cmd2
    ]
    r = subprocess.run(cmd2, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert r.returncode != 0 and bad in r.stderr
    r = subprocess.run(
        cmd2 + ["--skip_bad"], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "skipped files: 1" in r.stdout and bad in r.stdout


def test_healthy_slices_go_to_healthy_splits_of_the_same_patients(raw, built, tmp_path):
    d, cases = raw
    b = build(d, tmp_path / "data", config=tiny_config("healthy", healthy_slices=(18, 36)))
    ex = read_all(b)
    _, default, _ = built
    for split in ("train", "test"):  # the tumour splits are those of the default build
        assert len(ex[split]) == len(default[split])
        for a, e in zip(ex[split], default[split]):
            assert a.keys() == e.keys()
            for key in a:
                np.testing.assert_array_equal(a[key], e[key])
        for e in ex[f"{split}_healthy"]:
            case = e["case_id"].decode()
            k = int(e["slice_index"])
            assert k in (18, 36) and not e["roi"].any() and e["image"].max() == 1.0
            seg = nib.load(next(d.glob(f"*/{case}/{case}_seg.nii.gz"))).get_fdata()
            assert not seg[:, :, k].any()
    # By the same patient split: no patient on both sides, healthy or not.
    sides = [{e["patient_id"] for e in ex[split] + ex[f"{split}_healthy"]}
             for split in ("train", "test")]
    assert all(sides) and not sides[0] & sides[1]
    wanted = sum(not nib.load(next(d.glob(f"*/{c}/{c}_seg.nii.gz"))).get_fdata()[:, :, k].any()
                 for c in cases for k in (18, 36))
    assert len(ex["train_healthy"]) + len(ex["test_healthy"]) == wanted
    md = b.info.metadata
    assert md["examples"]["test_healthy"]["HGG"] + md["examples"]["test_healthy"]["LGG"] == \
        len(ex["test_healthy"])
    assert "train_healthy" not in default and "healthy_slices" not in built[0].info.metadata
    with pytest.raises(BadInputError, match=r"_t2\.nii\.gz.*healthy slice indices \[40\]"):
        build(d, tmp_path / "bad", config=tiny_config("bad", healthy_slices=(40,)))
