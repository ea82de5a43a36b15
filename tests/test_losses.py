"""Eq. 1 and eq. 2 losses on hand-made inputs, and the image pool."""
import jax
import jax.numpy as jnp
import numpy as np

from fproi_jax import losses
from fproi_jax.train import image_pool

LOG2 = float(np.log(2.0))


def test_discriminator_loss_values():
    zeros = jnp.zeros(3)
    np.testing.assert_allclose(losses.discriminator_loss(zeros, zeros), LOG2, rtol=1e-6)
    # Confident and right: near zero; confident and wrong: large but finite (stable form).
    assert float(losses.discriminator_loss(jnp.full(3, 100.0), jnp.full(3, -100.0))) < 1e-6
    wrong = float(losses.discriminator_loss(jnp.full(3, -1000.0), jnp.full(3, 1000.0)))
    np.testing.assert_allclose(wrong, 1000.0, rtol=1e-6)
    # -0.5 * (log sigmoid(2) + log(1 - sigmoid(-1)))
    want = -0.5 * (np.log(1 / (1 + np.exp(-2.0))) + np.log(1 - 1 / (1 + np.exp(1.0))))
    np.testing.assert_allclose(losses.discriminator_loss(jnp.array([2.0]), jnp.array([-1.0])),
                               want, rtol=1e-6)


def test_generator_adversarial_loss_values():
    np.testing.assert_allclose(losses.generator_adversarial_loss(jnp.zeros(2)), LOG2, rtol=1e-6)
    np.testing.assert_allclose(losses.generator_adversarial_loss(jnp.array([1.5])),
                               np.log1p(np.exp(-1.5)), rtol=1e-6)


def test_cycle_loss_is_mean_absolute_error():
    a = jnp.array([[0.0, 0.5], [1.0, 0.25]])
    b = jnp.array([[1.0, 0.5], [0.0, 0.75]])
    np.testing.assert_allclose(losses.cycle_loss(a, b), (1 + 0 + 1 + 0.5) / 4)


def test_image_pool_fills_then_swaps():
    pool = jnp.zeros((3, 2, 2, 1))
    fakes = jnp.arange(1.0, 3.0)[:, None, None, None] * jnp.ones((2, 2, 2, 1))
    pool, count, out = image_pool.query(pool, jnp.int32(0), fakes, jax.random.key(0))
    np.testing.assert_array_equal(out, fakes)       # while filling, fakes pass through
    assert int(count) == 2
    assert set(np.unique(pool)) == {0.0, 1.0, 2.0}
    seen = set()
    for i in range(20):
        new = jnp.full((2, 2, 2, 1), 10.0 + i)
        pool, count, out = image_pool.query(pool, count, new, jax.random.key(i + 1))
        assert int(count) == 3
        for j in range(2):
            value = float(out[j, 0, 0, 0])
            seen.add(value == 10.0 + i)
            # Either the new fake or a stored one, whole images only.
            assert np.all(out[j] == value)
    assert seen == {True, False}                    # both branches were taken


def test_image_pool_of_size_zero_passes_through():
    fakes = jnp.ones((2, 4, 4, 1))
    _, _, out = image_pool.query(jnp.zeros((0, 4, 4, 1)), jnp.int32(0), fakes, jax.random.key(0))
    np.testing.assert_array_equal(out, fakes)


def test_dice_bce_loss_is_soft_dice_plus_mean_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 8, 8, 1)).astype(np.float32)
    target = (rng.uniform(size=logits.shape) > 0.7).astype(np.float32)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    dice = [(2 * (p[i] * target[i]).sum() + 1e-5) / (p[i].sum() + target[i].sum() + 1e-5)
            for i in range(3)]
    bce = -(target * np.log(p) + (1 - target) * np.log(1 - p)).mean()
    np.testing.assert_allclose(losses.dice_bce_loss(logits, target), 1 - np.mean(dice) + bce,
                               rtol=1e-5)
    # a confident, correct prediction costs almost nothing; an empty one misses the Dice
    assert losses.dice_bce_loss(40 * (2 * target - 1), target) < 1e-5
    assert losses.dice_bce_loss(-40 * np.ones_like(target), target) > 0.99
