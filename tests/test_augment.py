"""data/augment.py: the cheap baselines of the segmentation task, on real-looking pairs."""
import numpy as np
import pytest

from fproi_jax.data import augment


def _pairs(n=6, size=48, seed=0):
    """Discs of tissue (grey 0.3-0.7) holding a bright square tumour; background 0."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.zeros((n, size, size, 1), np.float32)
    rois = np.zeros_like(images)
    for i in range(n):
        tissue = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.42 * size) ** 2
        images[i, tissue, 0] = rng.uniform(0.3, 0.7)
        y0, x0 = rng.integers(size // 3, size // 2, 2)
        rois[i, y0:y0 + 6, x0:x0 + 5, 0] = 1.0
        images[i, rois[i, ..., 0] > 0, 0] = 0.95
    return images, rois


def test_classical_keeps_image_and_mask_aligned_and_binary():
    images, rois = _pairs()
    new_images, new_rois = augment.classical(images, rois, seed=0)
    assert new_images.shape == images.shape and set(np.unique(new_rois)) <= {0.0, 1.0}
    for image, roi in zip(new_images, new_rois):
        inside, outside = image[roi[..., 0] > 0, 0], image[roi[..., 0] == 0, 0]
        # the tumour's grey (0.95, jittered by at most 10% and gamma e^0.1) stays under the
        # mask; its edge pixels are interpolated with the tissue around it
        assert inside.size and np.median(inside) > 0.85 and outside.max() < 0.95
        assert abs(roi.sum() - 30) < 15
    assert not np.allclose(new_images, images)
    again = augment.classical(images, rois, seed=0)
    np.testing.assert_array_equal(again[0], new_images)
    assert not np.allclose(augment.classical(images, rois, seed=1)[0], new_images)


def test_copy_paste_pastes_a_donor_tumour_inside_the_tissue():
    images, rois = _pairs()
    new_images, new_rois, donors = augment.copy_paste(images, rois, seed=0)
    for i, donor in enumerate(donors):
        assert donor != i and donor >= 0
        pasted = (new_rois[i, ..., 0] > 0) & (rois[i, ..., 0] == 0)
        assert pasted.sum() == rois[donor].sum()               # the whole donor tumour
        assert (images[i, pasted, 0] > augment.TISSUE).all()     # inside the tissue
        np.testing.assert_allclose(new_images[i, pasted, 0], 0.95)  # its own grey
        keep = ~pasted
        np.testing.assert_array_equal(new_images[i, keep], images[i, keep])
        assert (new_rois[i][rois[i] > 0] == 1).all()             # the own tumour is kept


def test_copy_paste_names_a_slice_no_donor_fits():
    images, rois = _pairs(n=3)
    images[1] = 0.0  # no tissue
    with pytest.raises(ValueError, match="tissue of slice case_b in 50 draws"):
        augment.copy_paste(images, rois, seed=0, tries=50, ids=["case_a", "case_b", "case_c"])
