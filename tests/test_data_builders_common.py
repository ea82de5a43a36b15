"""Shared data-builder logic: patient split, normalisation, pad/resize, skip bookkeeping."""

import pickle

import numpy as np
import pytest

from data_builders import common
from data_builders.common import BadInputError


def test_patient_split_is_deterministic_disjoint_and_7_to_3():
    ids = [f"p{i:03d}" for i in range(100)]
    a = common.patient_split(ids, 0.7, seed=0)
    b = common.patient_split(list(reversed(ids)) + ids[:5], 0.7, seed=0)  # order, duplicates
    assert a == b
    assert set(a) == set(ids)
    assert sum(v == "train" for v in a.values()) == 70
    assert common.patient_split(ids, 0.7, seed=1) != a
    # not simply the first 70 sorted ids
    assert [k for k in sorted(a) if a[k] == "train"] != ids[:70]


@pytest.mark.parametrize("n", [2, 3, 4])
def test_patient_split_small_keeps_both_sides(n):
    s = common.patient_split([str(i) for i in range(n)])
    assert set(s.values()) == {"train", "test"}


def test_balance_classes_samples_larger_class_down_deterministically():
    items = {"HGG": [f"h{i:02d}" for i in range(30)], "LGG": [f"l{i:02d}" for i in range(12)]}
    a = common.balance_classes(items, seed=0)
    assert {k: len(v) for k, v in a.items()} == {"HGG": 12, "LGG": 12}
    assert a["LGG"] == items["LGG"]  # the smaller class is kept whole
    assert set(a["HGG"]) < set(items["HGG"]) and len(set(a["HGG"])) == 12
    shuffled = {"LGG": items["LGG"][::-1], "HGG": items["HGG"][::-1]}
    assert common.balance_classes(shuffled, seed=0) == a  # input order does not matter
    assert common.balance_classes(items, seed=1)["HGG"] != a["HGG"]
    assert common.balance_classes({}) == {}


def test_max_normalise():
    x = np.array([[0, 5], [10, -3]], np.int16)
    y = common.max_normalise(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [[0, 0.5], [1.0, 0]])
    assert not common.max_normalise(np.zeros((3, 3))).any()


def test_fit_to_size_pads_240_by_8_and_keeps_roi_exact():
    rng = np.random.default_rng(0)
    img = rng.random((240, 240)).astype(np.float32)
    roi = rng.random((240, 240)) > 0.7
    i2, r2 = common.fit_to_size(img, roi, 256)
    assert i2.shape == r2.shape == (256, 256) and r2.dtype == np.uint8
    np.testing.assert_array_equal(i2[8:248, 8:248], img)
    np.testing.assert_array_equal(r2[8:248, 8:248], roi)
    assert not i2[:8].any() and not r2[:, 248:].any()


def test_fit_to_size_resizes_larger_and_roi_stays_binary_and_aligned():
    img = np.zeros((300, 400), np.float32)
    roi = np.zeros((300, 400), bool)
    roi[100:200, 150:250] = True
    img[roi] = 1.0
    i2, r2 = common.fit_to_size(img, roi, 256)
    assert i2.shape == (256, 256) and set(np.unique(r2)) <= {0, 1}
    # ROI stays on the bright square
    assert i2[r2 == 1].mean() > 0.9 and i2[r2 == 0].mean() < 0.1


def test_pad_and_resize_binarise_a_soft_roi_as_fproi_jax_roi():
    """The builders' ROI threshold is the one of fproi_jax.roi: above 0.5 (0.5 itself is
    background), on the padding path and on the resizing one."""
    roi = np.resize(np.array([0.0, 0.3, 0.5, 0.51, 1.0, 255.0]), (24, 30))
    image = np.ones(roi.shape, np.float32)
    _, padded = common.fit_to_size(image, roi, 256)
    np.testing.assert_array_equal(padded[116:140, 113:143], roi > 0.5)  # (256 - 24) / 2, ...
    assert padded.sum() == (roi > 0.5).sum()
    _, same_size = common.resize_pair(image[:, :24], roi[:, :24], 24)  # nearest, 1:1
    np.testing.assert_array_equal(same_size, roi[:, :24] > 0.5)


def test_skip_log():
    def bad(path):
        raise BadInputError(path, "broken")

    with pytest.raises(BadInputError, match="x.nii.gz: broken"):
        common.SkipLog(skip_bad=False).call(bad, "x.nii.gz")
    log = common.SkipLog(skip_bad=True)
    assert log.call(bad, "x.nii.gz") is None
    assert log.call(lambda: 3) == 3
    assert log.skipped == [{"path": "x.nii.gz", "reason": "broken"}]
    e = pickle.loads(pickle.dumps(BadInputError("/a/b", "why")))
    assert (e.path, e.reason, str(e)) == ("/a/b", "why", "/a/b: why")


def _straddles(split, items):
    """The patients of (patient, item) pairs whose items `split` ({item: side}) puts on both
    sides."""
    sides = {}
    for patient, item in items:
        sides.setdefault(patient, set()).add(split[item])
    return {p for p, s in sides.items() if len(s) > 1}


def test_patient_split_keeps_each_patient_on_one_side_for_any_seed():
    """Patients with one to three cases each, listed case by case in a scrambled order: the
    split is the same as that of the distinct patients, 7:3 of PATIENTS, for every seed."""
    patients = [f"Brats17_TCIA_{i:03d}" for i in range(13)]
    cases = [(p, f"{p}_{k}") for i, p in enumerate(patients) for k in range(1, 2 + i % 3)]
    order = np.random.default_rng(7).permutation(len(cases))
    listed = [cases[i] for i in order]
    case_level_leaks = 0
    for seed in range(50):
        split = common.patient_split([p for p, _ in listed], 0.7, seed)
        assert split == common.patient_split(patients, 0.7, seed), seed
        assert set(split) == set(patients)
        assert sum(side == "train" for side in split.values()) == round(0.7 * 13), seed
        by_case = {case: split[p] for p, case in listed}
        assert not _straddles(by_case, listed), seed
        # The data can tell: a split of the case ids would put a patient on both sides.
        by_case_id = common.patient_split([case for _, case in listed], 0.7, seed)
        case_level_leaks += bool(_straddles(by_case_id, listed))
    assert case_level_leaks >= 45
