"""evaluation/scores.py: one registry of per-run metrics for the eval step and the tables."""
import numpy as np
import pytest

from fproi_jax import metrics
from fproi_jax.evaluation import report, scores


def _pairs(size, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(size=(2, size, size, 1)).astype(np.float32)
    rois = np.zeros_like(images)
    rois[:, size // 4:size // 2, size // 4:size // 2] = 1.0
    synthesized = np.clip(images + rng.normal(0, 0.05, images.shape), 0, 1).astype(np.float32)
    synthesized_rois = np.roll(rois, 2, axis=1)
    return images, rois, synthesized, synthesized_rois


def test_compute_gives_every_column_from_the_metric_functions():
    images, rois, synthesized, synthesized_rois = _pairs(176)
    out = scores.compute(images, rois, synthesized, synthesized_rois, 176)
    assert list(out) == list(scores.ALL_METRICS) == list(report.ALL_METRICS)
    region = metrics.tumour_region  # both images times the REAL ROI
    np.testing.assert_allclose(out["tumour_psnr"], metrics.psnr(region(synthesized, rois),
                                                                region(images, rois)))
    np.testing.assert_allclose(out["whole_ms_ssim"], metrics.ms_ssim(synthesized, images))
    np.testing.assert_allclose(out["dice"], metrics.dice(synthesized_rois, rois))
    np.testing.assert_allclose(out["whole_mae"], np.abs(synthesized - images).mean(axis=(1, 2, 3)),
                               rtol=1e-6)
    np.testing.assert_allclose(out["surface_hausdorff95"], metrics.surface_hausdorff(
        synthesized_rois, rois, percentile=95))


def test_small_images_leave_the_size_limited_columns_out_and_the_note_says_why():
    out = scores.compute(*_pairs(64), 64)
    assert scores.size_limited(64) == ["whole_ms_ssim", "tumour_ms_ssim"]
    assert scores.size_limited(176) == []
    assert set(scores.ALL_METRICS) - set(out) == {"whole_ms_ssim", "tumour_ms_ssim"}
    assert scores.size_note() == "— MS-SSIM not computed: it needs images of at least 176 px."


@pytest.mark.parametrize("column, label, higher", [
    ("tumour_psnr", "PSNR (tumour region)", True),
    ("whole_ms_ssim", "MS-SSIM (whole image)", True),
    ("dice", "Dice", True),
    ("hausdorff95", "HD95 (eq. 6, pixels)", False),
    ("tumour_mae", "MAE (tumour region)", False),
])
def test_labels_and_directions_come_from_the_registry(column, label, higher):
    assert scores.label(column) == label
    assert scores.higher_is_better(column) is higher


def test_an_unknown_column_is_named():
    with pytest.raises(KeyError, match="'whole_fid' is not a column"):
        scores.label("whole_fid")


def test_columns_added_later_are_optional_for_old_runs():
    assert set(scores.optional_columns()) == {
        "whole_ms_ssim", "tumour_ms_ssim", "whole_mae", "tumour_mae", "hausdorff95",
        "surface_hausdorff", "surface_hausdorff95"}
