"""Losses of paper section 2.2.3.

Adversarial loss (eq. 1): the log loss of a discriminator that outputs logits, written
with sigmoid cross-entropy so that it is stable for any logit. Generators minimise the
non-saturating form -log D(G(x)) (Goodfellow et al. 2014; the canonical CycleGAN's GAN
mode), which has the same fixed point as min log(1 - D(G(x))) and useful gradients early.
Cycle-consistency loss (eq. 2): mean absolute error between the input and its cycle.
"""
import jax.numpy as jnp
import optax


def discriminator_loss(real_logits, fake_logits):
    """-[log D(real) + log(1 - D(fake))], averaged over the batch, halved as in CycleGAN."""
    real = optax.sigmoid_binary_cross_entropy(real_logits, jnp.ones_like(real_logits))
    fake = optax.sigmoid_binary_cross_entropy(fake_logits, jnp.zeros_like(fake_logits))
    return 0.5 * (real.mean() + fake.mean())


def generator_adversarial_loss(fake_logits):
    """-log D(G(x)), averaged over the batch."""
    return optax.sigmoid_binary_cross_entropy(fake_logits, jnp.ones_like(fake_logits)).mean()


def cycle_loss(reconstruction, original):
    """Eq. 2 term: E ||reconstruction - original||_1, as a per-pixel mean."""
    return jnp.abs(reconstruction - original).mean()
