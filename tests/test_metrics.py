"""Metrics against reference computations (skimage, scipy, numpy) and their edge cases."""
import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import directed_hausdorff
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from fproi_jax.metrics import (dice, hausdorff, hausdorff_distances, ms_ssim, psnr, ssim,
                               surface_hausdorff, tumour_region)
from fproi_jax.metrics.hausdorff import _squared_distance_transform

RNG = np.random.default_rng(0)
WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def batch(*images):
    """Stacks (H, W) arrays into an (N, H, W, 1) float32 batch."""
    return np.stack(images)[..., None].astype(np.float32)


def noisy_pair(shape, noise):
    target = RNG.random(shape)
    return np.clip(target + RNG.normal(0, noise, shape), 0, 1), target


def disk(shape, centre, radius):
    rows, cols = np.indices(shape)
    return ((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2).astype(np.float32)


def smooth_image(shape):
    """Structured test image: smoothed noise plus a bright disk."""
    base = ndimage.gaussian_filter(RNG.random(shape), 4)
    base = (base - base.min()) / (base.max() - base.min())
    lesion = disk(shape, (shape[0] // 3, shape[1] // 2), shape[0] // 6)
    return np.clip(0.7 * base + 0.3 * lesion, 0, 1)


# ---------------------------------------------------------------- references


def ref_ssim(pred, target):
    return structural_similarity(
        pred, target, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1
    )


def ref_ssim_cs(pred, target):
    """numpy SSIM and contrast-structure means over the valid region (float64)."""
    filt = lambda a: ndimage.gaussian_filter(a, 1.5, truncate=3.5)[5:-5, 5:-5]  # noqa: E731
    mu_x, mu_y = filt(pred), filt(target)
    var_x = filt(pred * pred) - mu_x**2
    var_y = filt(target * target) - mu_y**2
    cov = filt(pred * target) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    return np.mean(luminance * cs), np.mean(cs)


def ref_pool(image):
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    return image[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def ref_ms_ssim(pred, target):
    value = 1.0
    for scale, weight in enumerate(WEIGHTS):
        if scale:
            pred, target = ref_pool(pred), ref_pool(target)
        full, cs = ref_ssim_cs(pred, target)
        term = full if scale == len(WEIGHTS) - 1 else cs
        value *= max(term, 0.0) ** weight
    return value


def ref_hausdorff(pred, target, percentile=None):
    a, b = np.argwhere(pred > 0.5), np.argwhere(target > 0.5)
    if percentile is None:
        return max(directed_hausdorff(a, b)[0], directed_hausdorff(b, a)[0])
    d = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
    return max(np.percentile(d.min(1), percentile), np.percentile(d.min(0), percentile))


def ref_surface_hausdorff(pred, target, percentile=None):
    """MONAI's HausdorffDistanceMetric written out with scipy: boundaries (mask ^ its
    erosion), edge-to-edge distances by distance_transform_edt, max of the directed values."""
    edges = [m ^ ndimage.binary_erosion(m) for m in (pred > 0.5, target > 0.5)]
    directed = [ndimage.distance_transform_edt(~b)[a] for a, b in (edges, edges[::-1])]
    reduce = np.max if percentile is None else lambda d: np.percentile(d, percentile)
    return max(reduce(d) for d in directed)


def ref_dice(pred, target):
    p, t = pred > 0.5, target > 0.5
    return 2 * np.sum(p & t) / (p.sum() + t.sum())


# ---------------------------------------------------------------- PSNR


def test_psnr_matches_skimage():
    shape = (32, 40)
    structured = smooth_image(shape), smooth_image(shape)
    # A dark pair (max 0.2): MAX is the data range 1 of [0, 1] images, not the image's max.
    dark = tuple(0.2 * image for image in noisy_pair(shape, 0.05))
    pairs = [noisy_pair(shape, 0.1), noisy_pair(shape, 0.01), structured, dark]
    got = psnr(batch(*(p for p, _ in pairs)), batch(*(t for _, t in pairs)))
    want = [
        peak_signal_noise_ratio(t.astype(np.float32), p.astype(np.float32), data_range=1)
        for p, t in pairs
    ]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_psnr_identical_images_is_inf():
    image = np.full((16, 16), 0.3)
    assert np.isposinf(psnr(batch(image), batch(image))).all()


def test_psnr_constant_images_differing_by_a_tenth_is_20_db():
    got = psnr(batch(np.full((16, 16), 0.4)), batch(np.full((16, 16), 0.5)))
    np.testing.assert_allclose(got, [20.0], rtol=1e-5)


# ---------------------------------------------------------------- SSIM


@pytest.mark.parametrize("noise", [0.01, 0.3])
def test_ssim_matches_skimage_on_random_images(noise):
    pred, target = noisy_pair((2, 48, 56), noise)
    got = ssim(batch(*pred), batch(*target))
    want = [ref_ssim(p, t) for p, t in zip(pred.astype(np.float32), target.astype(np.float32))]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_ssim_matches_skimage_on_structured_and_low_contrast_images():
    shifted = np.roll(smooth_image((48, 56)), 3, axis=1)
    images = [smooth_image((48, 56)), 0.9 + 0.001 * RNG.random((48, 56)), np.zeros((48, 56))]
    targets = [shifted, 0.9 + 0.001 * RNG.random((48, 56)), disk((48, 56), (20, 20), 8)]
    got = ssim(batch(*images), batch(*targets))
    want = [ref_ssim(p.astype(np.float32), t.astype(np.float32)) for p, t in zip(images, targets)]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_ssim_is_hand_written_because_dm_pix_drifts_on_bright_low_contrast_images():
    """Why ssim.py does not call dm_pix.ssim: the same definition (equal on ordinary
    images), but in float32 its E[x^2] - mu^2 loses ~5e-5 on bright low-contrast images,
    where the centred core here stays within 1e-6 of skimage (float64)."""
    import dm_pix

    rng = np.random.default_rng(0)
    ordinary = noisy_pair((64, 64), 0.1)
    bright = tuple(0.9 + 3e-4 * rng.standard_normal((64, 64)) for _ in range(2))
    pred, target = batch(ordinary[0], bright[0]), batch(ordinary[1], bright[1])
    want = [ref_ssim(p[..., 0].astype(np.float64), t[..., 0].astype(np.float64))
            for p, t in zip(pred, target)]
    ours = np.asarray(ssim(pred, target))
    pix = np.asarray(dm_pix.ssim(pred, target))
    np.testing.assert_allclose(ours, want, atol=1e-6)
    assert abs(pix[0] - want[0]) < 1e-6          # the same SSIM ...
    assert abs(pix[1] - want[1]) > 1e-5          # ... that drifts where ours does not


def test_ssim_constant_images():
    equal = ssim(batch(np.full((16, 16), 0.5)), batch(np.full((16, 16), 0.5)))
    differ = ssim(batch(np.full((16, 16), 0.2)), batch(np.full((16, 16), 0.6)))
    np.testing.assert_allclose(equal, [1.0], atol=1e-6)
    want = ref_ssim(np.full((16, 16), 0.2), np.full((16, 16), 0.6))
    np.testing.assert_allclose(differ, [want], atol=1e-5)


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((1, 10, 32, 1)), np.zeros((1, 10, 32, 1)))


# ---------------------------------------------------------------- MS-SSIM


@pytest.mark.parametrize("shape", [(176, 176), (181, 190)])
def test_ms_ssim_matches_numpy_reference(shape):
    pred, target = noisy_pair(shape, 0.05)
    structured = smooth_image(shape), np.roll(smooth_image(shape), 2, axis=0)
    got = ms_ssim(batch(pred, structured[0]), batch(target, structured[1]))
    want = [ref_ms_ssim(pred, target), ref_ms_ssim(*structured)]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_ms_ssim_clips_negative_contrast_structure_to_zero():
    target = smooth_image((176, 176))
    got = ms_ssim(batch(target, target), batch(1 - target, target))
    np.testing.assert_allclose(got, [ref_ms_ssim(target, 1 - target), 1.0], atol=1e-5)
    assert got[0] == 0.0


def test_ms_ssim_too_small_names_the_minimum_size():
    with pytest.raises(ValueError, match="at least 176x176 pixels, got 175x256"):
        ms_ssim(np.zeros((1, 175, 256, 1)), np.zeros((1, 175, 256, 1)))


# ---------------------------------------------------------------- Dice


def test_dice_matches_numpy_and_binarises_at_half():
    pred = [disk((32, 32), (12, 12), 6), 0.6 * disk((32, 32), (14, 12), 6), RNG.random((32, 32))]
    target = [disk((32, 32), (16, 14), 7), disk((32, 32), (12, 12), 6), RNG.random((32, 32))]
    got = dice(batch(*pred), batch(*target))
    np.testing.assert_allclose(got, [ref_dice(p, t) for p, t in zip(pred, target)], rtol=1e-6)


def test_dice_edge_cases():
    empty, half = np.zeros((8, 8)), np.full((8, 8), 0.5)
    pixel = np.zeros((8, 8))
    pixel[7, 0] = 1
    got = dice(batch(empty, empty, pixel, half, pixel), batch(empty, pixel, empty, empty, pixel))
    np.testing.assert_array_equal(got, [1.0, 0.0, 0.0, 1.0, 1.0])


# ---------------------------------------------------------------- Hausdorff


@pytest.mark.parametrize("percentile", [None, 95])
def test_hausdorff_matches_scipy_on_random_masks(percentile):
    pred = (RNG.random((4, 24, 30)) > 0.95).astype(np.float32)
    target = (RNG.random((4, 24, 30)) > 0.97).astype(np.float32)
    got = hausdorff(batch(*pred), batch(*target), percentile=percentile)
    want = [ref_hausdorff(p, t, percentile) for p, t in zip(pred, target)]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_hausdorff_shifted_disks_at_full_size():
    shape = (256, 256)
    pred = [disk(shape, (128, 128), 30), disk(shape, (5, 250), 12), disk(shape, (60, 60), 20)]
    target = [disk(shape, (131, 124), 30), disk(shape, (200, 20), 3), disk(shape, (64, 64), 10)]
    for percentile in (None, 95):
        got = hausdorff(batch(*pred), batch(*target), percentile=percentile)
        want = [ref_hausdorff(p, t, percentile) for p, t in zip(pred, target)]
        np.testing.assert_allclose(got, want, rtol=1e-5)


def test_hausdorff_edge_cases():
    empty = np.zeros((10, 12))
    corner, opposite = empty.copy(), empty.copy()
    corner[0, 0] = 1
    opposite[9, 11] = 1
    soft = 0.5 * opposite + 0.51 * corner
    pred = batch(empty, corner, empty, corner, corner, soft)
    target = batch(empty, empty, corner, opposite, corner, opposite)
    for percentile in (None, 95):
        got = hausdorff(pred, target, percentile=percentile)
        far = np.hypot(9, 11)
        np.testing.assert_allclose(got, [0.0, np.inf, np.inf, far, 0.0, far])


@pytest.mark.parametrize("percentile", [None, 95])
def test_surface_hausdorff_matches_scipy_on_random_masks(percentile):
    # Blobs (smoothed noise), so that boundaries and interiors differ; one touches the border.
    noise = ndimage.gaussian_filter(RNG.random((8, 40, 36)), (0, 2, 2))
    masks = (noise > np.quantile(noise, 0.6, axis=(1, 2), keepdims=True)).astype(np.float32)
    masks[0, :, :5] = 1
    # A disc and a ring in it: 6 px between all pixels (the hole's centre), 9 px between
    # the boundaries (the ring's inner edge to the disc's edge).
    disc, hole = disk((40, 36), (20, 18), 15), disk((40, 36), (20, 18), 6)
    pred, target = np.stack([*masks[:4], disc]), np.stack([*masks[4:], disc - hole])
    got = surface_hausdorff(batch(*pred), batch(*target), percentile=percentile)
    want = [ref_surface_hausdorff(p, t, percentile) for p, t in zip(pred, target)]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert not np.allclose(got, hausdorff(batch(*pred), batch(*target), percentile=percentile))


def test_surface_hd95_of_shifted_discs_is_the_shift():
    """Two discs of radius 30, centres 3 px apart: the boundaries are up to 3 px apart almost
    everywhere, while most pixels of one disc lie inside the other."""
    shape = (256, 256)
    pred, target = batch(disk(shape, (128, 128), 30)), batch(disk(shape, (131, 128), 30))
    np.testing.assert_allclose(surface_hausdorff(pred, target, percentile=95), [3.0])
    np.testing.assert_allclose(hausdorff(pred, target, percentile=95), [1.0])
    np.testing.assert_allclose(surface_hausdorff(pred, target), [3.0])
    np.testing.assert_allclose(hausdorff(pred, target), [3.0])


def test_surface_hausdorff_edge_cases():
    empty = np.zeros((10, 12))
    square, inner = empty.copy(), empty.copy()
    square[2:8, 2:8] = 1
    inner[4:6, 4:6] = 1
    full = np.ones((10, 12))
    pred = batch(empty, square, empty, square, full)
    target = batch(empty, empty, square, inner, full)
    got = surface_hausdorff(pred, target)
    # square vs the 2x2 square inside it: the outer ring is 2 px from the inner one (corner
    # to corner 2*sqrt(2)); the whole image: its boundary is its outer ring, distance 0.
    np.testing.assert_allclose(got, [0.0, np.inf, np.inf, np.hypot(2, 2), 0.0])
    assert float(hausdorff(pred[3:4], target[3:4])[0]) == pytest.approx(np.hypot(2, 2))



def mask_cases(shape):
    """Random masks of several densities, and the edge cases: empty, one pixel (in a corner
    and inside), the full image, a blob and a bar touching the border, one full row."""
    rng = np.random.default_rng(3)
    masks = [rng.random(shape) > density for density in (0.5, 0.9, 0.98, 0.995)]
    empty = np.zeros(shape, bool)
    corner, pixel, border, row = empty.copy(), empty.copy(), empty.copy(), empty.copy()
    corner[-1, 0] = pixel[shape[0] // 2, shape[1] // 3] = True
    border[:, -3:] = border[:4, :5] = True
    row[shape[0] // 3] = True
    return masks + [empty, corner, pixel, np.ones(shape, bool), border, row]


@pytest.mark.parametrize("shape", [(37, 23), (32, 40), (5, 7)])
def test_distance_transform_equals_scipy(shape):
    """Squared distances exactly scipy's distance_transform_edt squared, on heights of several
    steps of ROWS_PER_STEP (16) rows, whole or not, and under one; +inf for an empty mask."""
    for mask in mask_cases(shape):
        got = np.asarray(_squared_distance_transform(mask))
        if mask.any():
            np.testing.assert_array_equal(got, np.round(ndimage.distance_transform_edt(~mask) ** 2))
        else:
            assert np.isposinf(got).all()


def test_hausdorff_distances_equal_scipy_on_random_and_edge_case_masks():
    """All four numbers of one call against scipy (directed_hausdorff, distance_transform_edt)
    for every pair of mask_cases, and against hausdorff and surface_hausdorff themselves."""
    cases = mask_cases((21, 34))
    pairs = [(p, t) for p in cases for t in cases]
    pred, target = batch(*(p for p, _ in pairs)), batch(*(t for _, t in pairs))
    got = hausdorff_distances(pred, target, percentile=95)
    assert set(got) == {"hausdorff", "hausdorff95", "surface_hausdorff", "surface_hausdorff95"}
    references = {"hausdorff": (ref_hausdorff, None), "hausdorff95": (ref_hausdorff, 95),
                  "surface_hausdorff": (ref_surface_hausdorff, None),
                  "surface_hausdorff95": (ref_surface_hausdorff, 95)}
    for name, (reference, percentile) in references.items():
        want = [0.0 if not (p.any() or t.any()) else np.inf if not (p.any() and t.any())
                else reference(p, t, percentile) for p, t in pairs]
        np.testing.assert_allclose(got[name], want, rtol=1e-6, err_msg=name)
    for function in (hausdorff, surface_hausdorff):
        for percentile in (None, 95):
            name = function.__name__ + ("" if percentile is None else "95")
            np.testing.assert_array_equal(function(pred, target, percentile=percentile),
                                          got[name])


# ---------------------------------------------------------------- regions, batching, shapes


def test_tumour_region_ignores_differences_outside_the_real_roi():
    roi = disk((32, 32), (16, 16), 6)
    real = RNG.random((32, 32))
    synth = np.where(roi > 0, real, RNG.random((32, 32)))
    x, s, y = batch(real), batch(synth), batch(roi)
    np.testing.assert_array_equal(tumour_region(x, y), x * y)
    assert np.isposinf(psnr(tumour_region(s, y), tumour_region(x, y))).all()
    assert psnr(s, x)[0] < 20
    with pytest.raises(ValueError, match="image and roi"):
        tumour_region(x, y[:, :16])


@pytest.mark.parametrize(
    "metric, size",
    [(psnr, 24), (ssim, 24), (ms_ssim, 176), (dice, 24), (hausdorff, 24),
     (surface_hausdorff, 24)],
)
def test_batch_equals_one_example_at_a_time(metric, size):
    shape = (3, size, size, 1)
    pred = (RNG.random(shape) > 0.9).astype(np.float32) * RNG.random(shape)
    target = np.clip(pred + RNG.normal(0, 0.2, pred.shape), 0, 1).astype(np.float32)
    together = metric(pred, target)
    assert together.shape == (3,)
    one_by_one = [metric(pred[i : i + 1], target[i : i + 1])[0] for i in range(3)]
    np.testing.assert_allclose(together, one_by_one, rtol=1e-6)


@pytest.mark.parametrize("metric", [psnr, ssim, dice, hausdorff, surface_hausdorff])
def test_shape_errors_name_the_argument(metric):
    with pytest.raises(ValueError, match=r"pred must have shape \(N, H, W, 1\)"):
        metric(np.zeros((2, 16, 16)), np.zeros((2, 16, 16)))
    with pytest.raises(ValueError, match="pred and target shapes differ"):
        metric(np.zeros((2, 16, 16, 1)), np.zeros((1, 16, 16, 1)))


def test_mae_is_the_mean_absolute_difference_per_example():
    from fproi_jax.metrics import mae
    rng = np.random.default_rng(0)
    a, b = rng.uniform(size=(2, 3, 9, 7, 1))
    np.testing.assert_allclose(mae(a, b), np.abs(a - b).mean(axis=(1, 2, 3)), rtol=1e-6)
    np.testing.assert_array_equal(mae(a, a), 0.0)
