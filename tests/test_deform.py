"""deform_roi: elastic deformations of a real ROI stay binary, of similar area, seeded."""
import jax
import numpy as np
import pytest

from fproi_jax.data.deform import deform_roi, place_roi, tissue_mask


def _disk(size=64, radius=12):
    rows, cols = np.indices((size, size))
    return (((rows - 30) ** 2 + (cols - 34) ** 2 <= radius**2)[..., None]).astype(np.uint8)


@pytest.mark.parametrize("seed", range(4))
def test_deformed_roi_is_binary_similar_in_area_and_new(seed):
    roi = _disk()
    out = np.asarray(deform_roi(roi, jax.random.PRNGKey(seed), alpha=40.0, sigma=4.0))
    assert out.shape == roi.shape and out.dtype == np.float32
    assert set(np.unique(out)) == {0.0, 1.0}
    assert out.sum() == pytest.approx(roi.sum(), rel=0.2)
    changed = np.sum(out != roi)
    assert changed > 0.05 * roi.sum()            # a new shape, not the input
    # ... of the same tumour: most of it still overlaps the input
    assert 2 * np.sum(out * roi) / (out.sum() + roi.sum()) > 0.7


def test_deformation_is_deterministic_for_a_key():
    roi = _disk()
    a, b, c = (np.asarray(deform_roi(roi, jax.random.PRNGKey(k), alpha=40.0, sigma=4.0))
               for k in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert np.any(a != c)


def test_a_roi_without_channel_axis_is_rejected():
    with pytest.raises(ValueError, match=r"\(H, W, 1\)"):
        deform_roi(_disk()[..., 0], jax.random.PRNGKey(0), alpha=40.0, sigma=4.0)


def test_placed_roi_lies_inside_the_tissue_off_the_lesion_and_is_seeded():
    roi = _disk(radius=5)
    image = np.zeros((64, 64, 1), np.float32)
    image[8:56, 10:40] = 0.5          # the tissue: a 48x30 block
    lesion = np.zeros((64, 64, 1), bool)
    lesion[8:30, 10:40] = True        # its upper part is taken
    tissue = tissue_mask(image)
    places = [place_roi(roi, tissue, lesion, np.random.default_rng(seed)) for seed in range(6)]
    for placed in places:
        assert placed.sum() == roi.sum()  # the same shape, moved
        assert not placed[~tissue].any() and not placed[lesion].any()
    assert len({p.tobytes() for p in places}) > 3  # random positions
    np.testing.assert_array_equal(place_roi(roi, tissue, lesion, np.random.default_rng(2)),
                                  places[2])


def test_a_roi_that_fits_nowhere_is_a_clear_error():
    tissue = np.zeros((64, 64, 1), bool)
    tissue[20:30, 20:30] = True
    with pytest.raises(ValueError, match=r"mask a.png \(377 px, 23x23\) fits nowhere inside "
                                         r"the tissue \(100 free px\)"):
        place_roi(_disk(radius=11), tissue, np.zeros_like(tissue), np.random.default_rng(0),
                  "mask a.png")
