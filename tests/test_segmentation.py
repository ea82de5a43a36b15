"""The segmentation task (Table 6): a segmenter trained with and without synthesized pairs,
tested on held-out patients."""
import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import REPO, data_flags, fresh_export, tiny_config
from fproi_jax import statistics
from fproi_jax.tasks import InsufficientDataError, pairs, segmentation
from fproi_jax.train.fit import Fitter, batch_order


def test_batch_order_is_seeded_epochs_of_permutations():
    order = batch_order(10, steps=7, batch_size=4, seed=3)
    assert order.shape == (7, 4)
    flat = order.ravel()
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    np.testing.assert_array_equal(order, batch_order(10, 7, 4, 3))
    assert not np.array_equal(order, batch_order(10, 7, 4, 4))


def test_the_segmenter_learns_the_phantom_tumours_on_held_out_patients(classify_brats):
    config = tiny_config(classify_brats)
    train = pairs.load_slices(config, "train")
    test = pairs.load_slices(config, "test")
    pairs.check_disjoint(train, test, "train", "test")
    method = segmentation.SegmenterMethod((8, 8, 16, 32, 32, 8))
    fitter = Fitter(method, 3e-3, 48, batch_size=8)
    state, last = fitter.fit({"image": train["image"], "roi": train["roi"]}, 150, seed=0)
    scores = segmentation._scores(segmentation.make_scorer(method),
                                  {"params": jax.device_get(state.params)}, test, 16)
    assert last["dice_bce"] < 0.5
    assert np.mean(scores["dice"]) > 0.8, np.mean(scores["dice"])
    assert np.isfinite(scores["hd95"]).mean() > 0.9


def test_a_patient_on_both_sides_is_refused(classify_brats):
    config = tiny_config(classify_brats)
    train = pairs.load_slices(config, "train")
    with pytest.raises(InsufficientDataError, match="share patients"):
        pairs.check_disjoint(train, train, "train", "train")


def test_bootstrap_mean_is_the_mean_with_an_interval_around_it():
    values = np.arange(12, dtype=float).reshape(2, 6)
    d = statistics.bootstrap_mean(values, ["a", "a", "b", "b", "c", "c"])
    assert d["mean"] == pytest.approx(5.5) and d["low"] < 5.5 < d["high"]
    assert d["n_patients"] == 3


def test_segment_mode_writes_table6_with_every_group(classify_brats, tmp_path):
    """A freshly initialised Fproi-GAN export as the run: the plumbing, not the science."""
    config = tiny_config(classify_brats)
    export = fresh_export(config, tmp_path / "export")
    flags = [*data_flags(classify_brats), "--config.segment.seeds=2",
             "--config.segment.steps=3", "--config.segment.batch_size=4",
             "--config.segment.features=(4,4,8,8,16,4)",
             f"--config.segment.runs=Fproi-GAN={export}"]
    result = subprocess.run(
        [sys.executable, "launch.py", "--config=configs/base.py", f"--workdir={tmp_path}",
         "--mode=segment", *flags], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "segment"
    with np.load(out / "scores.npz") as scores:
        groups = list(scores["groups"])
        assert groups == ["Real only", "+ classical augmentation", "+ copy-paste",
                          "+ Fproi-GAN (new masks)", "+ Fproi-GAN (paper's pairs)",
                          "Fproi-GAN only"]
        n_test = len(pairs.load_slices(config, "test")["image"])
        assert scores["dice"].shape == (6, 2, n_test)
    n_train = len(pairs.load_slices(config, "train")["image"])
    assert "| Fproi-GAN only | " + str(2 * n_train) + " |" in result.stdout
    assert "| Real only | " + str(n_train) + " |" in result.stdout
    assert "(reference)" in result.stdout and "neither saw" in result.stdout
    assert (out / "dice_per_group.png").stat().st_size > 1000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["groups"]["Real only"]["n_train"] == n_train
    assert summary["groups"]["Fproi-GAN only"]["vs_real"]["n_patients"] > 0
    assert '<img src="dice_per_group.png"' in (out / "index.html").read_text()
    rows = summary["new_pairs"]["rows"]
    assert list(rows) == ["Real test images (reference)", "Fproi-GAN (new masks)"]
    # the real test images' consistency is the real-only segmenters' own test Dice
    assert rows["Real test images (reference)"]["consistency"]["mean"] == pytest.approx(
        summary["groups"]["Real only"]["dice"]["mean"])
    assert rows["Fproi-GAN (new masks)"]["n"] == n_train
    assert "| Fproi-GAN (new masks) | " + str(n_train) + " |" in result.stdout
    # realism on the 16 deepest features of a 3-step segmenter: numbers, not evidence
    assert summary["new_pairs"]["n_features"] == 16
    for row in rows.values():
        assert row["kid"]["low"] <= row["kid"]["kid"] <= row["kid"]["high"]
        assert 0 <= row["realism_auc"]["auc"] <= 1 and row["realism_auc"]["folds"] == 5
        assert row["diversity"] == {"similarity": None, "metric": "SSIM",
                                    "reason": "1 image per mask"}
    assert "| n/a (1 image per mask) |" in result.stdout and "KID x 1e3" in result.stdout


def test_copies_of_training_images_score_as_memorised_and_unseen_ones_do_not():
    from fproi_jax.tasks import new_pairs
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:24, :24]
    blobs = lambda n: np.stack([np.exp(-((yy - c[0]) ** 2 + (xx - c[1]) ** 2) / 30.0)  # noqa: E731
                                for c in rng.uniform(4, 20, (n, 2))])[..., None]
    train, test = blobs(40), blobs(40)
    copies = train[:10] + rng.normal(0, 1e-3, train[:10].shape)
    threshold = new_pairs.copy_threshold(train, test)
    memorised = new_pairs.memorisation(copies, train, threshold)
    assert memorised["likely_copies"] == 1.0 and memorised["median_ncc"] > 0.999
    unseen = new_pairs.memorisation(blobs(40), train, threshold)
    assert unseen["likely_copies"] < 0.2
    np.testing.assert_allclose(new_pairs.max_correlation(train[:3], train), 1.0)
