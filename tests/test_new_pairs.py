"""The realism and diversity scores of new pairs (tasks/new_pairs.py) on constructed cases:
KID against a double loop, KID and the two-sample AUC on equal and on different
distributions, patient-grouped folds, diversity of equal and of independent images."""
import itertools

import jax
import numpy as np
import pytest

from fproi_jax.models.segmenter import Segmenter
from fproi_jax.tasks import new_pairs


def _double_loop_kid(x, y, x_units, y_units):
    """Binkowski et al.'s unbiased MMD^2, cubic kernel, pairs of one patient left out."""
    k = lambda a, b: (np.dot(a, b) / len(a) + 1.0) ** 3  # noqa: E731

    def within(z, units):
        pairs = [(i, j) for i, j in itertools.permutations(range(len(z)), 2)
                 if units[i] != units[j]]
        return sum(k(z[i], z[j]) for i, j in pairs) / len(pairs)

    cross = sum(k(a, b) for a in x for b in y) / (len(x) * len(y))
    return within(x, x_units) + within(y, y_units) - 2 * cross


def test_kid_is_the_unbiased_estimate_of_a_double_loop():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(0.5, 1.0, size=(5, 3))
    one_each = new_pairs.kid(x, y, np.arange(7), 10 + np.arange(5))
    assert one_each["kid"] == pytest.approx(
        _double_loop_kid(x, y, np.arange(7), 10 + np.arange(5)), rel=1e-10)
    shared = ["a", "a", "b", "c", "c", "c", "d"], ["e", "f", "f", "g", "g"]
    assert new_pairs.kid(x, y, *shared)["kid"] == pytest.approx(
        _double_loop_kid(x, y, *shared), rel=1e-10)
    assert one_each["low"] < one_each["kid"] < one_each["high"]


def _features(n, shift, seed):
    return np.random.default_rng(seed).normal(shift, 1.0, size=(n, 8))


def test_equal_distributions_score_as_real_and_different_ones_do_not():
    pool = _features(240, 0.0, seed=1)
    first, second = pool[:120], pool[120:]
    units = np.arange(120) // 2                    # two images per patient
    same_kid = new_pairs.kid(first, second, units, 100 + units)
    same_auc = new_pairs.two_sample_auc(first, second, units, 100 + units)
    assert abs(same_kid["kid"]) < 0.05 and same_kid["low"] < 0 < same_kid["high"]
    assert 0.35 < same_auc["auc"] < 0.65 and same_auc["folds"] == 5
    other = _features(120, 1.5, seed=2)     # a shift of 4.2 sd along the diagonal
    other_kid = new_pairs.kid(other, second, units, 100 + units)
    other_auc = new_pairs.two_sample_auc(other, second, units, 100 + units)
    assert other_kid["low"] > 1.0, other_kid   # equal ones: within 0.2 of 0
    assert other_auc["auc"] > 0.95 and other_auc["low"] > 0.9, other_auc


def test_grouped_folds_never_put_a_patient_on_both_sides():
    # patients hold images of both labels, as a patient with real and synthetic slices would
    units = np.repeat(np.arange(12), 5)
    labels = np.tile([0, 1, 1, 0, 1], 12)
    folds = new_pairs.grouped_folds(labels, units, folds=4)
    assert len(folds) == 4
    for train, held_out in folds:
        assert not set(units[train]) & set(units[held_out])
        assert set(labels[held_out]) == {0, 1}
    assert sorted(np.concatenate([held_out for _, held_out in folds])) == list(range(60))


def test_too_few_patients_or_samples_give_a_reason_not_a_crash():
    x = _features(6, 0.0, seed=3)
    for score in (new_pairs.kid, new_pairs.two_sample_auc):
        result = score(x, x, np.zeros(6), np.arange(6))
        assert result["reason"] == ("needs images of at least 2 patients on each side; the "
                                    "images have 1, the reference 6")
        assert None in result.values()
    assert new_pairs.two_sample_auc(x, x, [0, 0, 0, 1, 1, 1], np.arange(6))["folds"] == 2
    single = new_pairs.diversity(np.zeros((3, 1, 16, 16, 1)))
    assert single == {"similarity": None, "metric": "SSIM", "reason": "1 image per mask"}


@pytest.mark.parametrize("side, metric", [(24, "SSIM"), (176, "MS-SSIM")])
def test_diversity_of_equal_images_is_1_and_of_independent_noise_near_0(side, metric):
    rng = np.random.default_rng(4)
    equal = np.repeat(rng.uniform(size=(2, 1, side, side, 1)), 3, axis=1)
    same = new_pairs.diversity(equal)
    assert same["metric"] == metric and same["similarity"] == pytest.approx(1.0, abs=1e-5)
    noise = new_pairs.diversity(rng.uniform(size=(2, 3, side, side, 1)))
    assert abs(noise["similarity"]) < 0.05, noise


def test_the_features_are_the_segmenters_pooled_deepest_map():
    widths = (4, 4, 8, 8, 16, 4)
    module = Segmenter(widths)
    images = np.random.default_rng(5).uniform(size=(3, 32, 32, 1)).astype(np.float32)
    params = jax.jit(module.init)(jax.random.key(0), images)["params"]
    features = new_pairs.make_featurizer(module)(params, {"image": images})["features"]
    assert features.shape == (3, widths[4])
    assert np.all(np.asarray(features) > -1.0) and np.ptp(np.asarray(features)) > 0
