"""deform_roi: elastic deformations of a real ROI stay binary, of similar area, seeded."""
import jax
import numpy as np
import pytest

from fproi_jax.data.deform import deform_roi


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
