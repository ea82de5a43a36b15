"""Losses of paper section 2.2.3, and the GAN losses of the baselines.

Adversarial loss (eq. 1): the log loss of a discriminator that outputs logits, written
with sigmoid cross-entropy so that it is stable for any logit. Generators minimise the
non-saturating form -log D(G(x)) (Goodfellow et al. 2014; the canonical CycleGAN's GAN
mode), which has the same fixed point as min log(1 - D(G(x))) and useful gradients early.
Cycle-consistency loss (eq. 2): mean absolute error between the input and its cycle.

`gan_mode='lsgan'` is the least-squares GAN (Mao et al. 2017) of the canonical CycleGAN:
discriminator 0.5 (D(real) - 1)^2 + 0.5 D(fake)^2, generator (D(G(x)) - 1)^2. Logits of
any shape (one per image, or a PatchGAN map) are averaged over every element.

`dice_bce_loss` is the downstream segmenter's (tasks/segmentation.py).
"""
import jax
import jax.numpy as jnp
import optax

GAN_MODES = ("log", "lsgan")


def discriminator_loss(real_logits, fake_logits, gan_mode: str = "log"):
    """-[log D(real) + log(1 - D(fake))] (or the LSGAN form), averaged, halved as in CycleGAN."""
    if gan_mode == "lsgan":
        return 0.5 * (jnp.square(real_logits - 1.0).mean() + jnp.square(fake_logits).mean())
    real = optax.sigmoid_binary_cross_entropy(real_logits, jnp.ones_like(real_logits))
    fake = optax.sigmoid_binary_cross_entropy(fake_logits, jnp.zeros_like(fake_logits))
    return 0.5 * (real.mean() + fake.mean())


def generator_adversarial_loss(fake_logits, gan_mode: str = "log"):
    """-log D(G(x)) (or (D(G(x)) - 1)^2 for LSGAN), averaged over the batch."""
    if gan_mode == "lsgan":
        return jnp.square(fake_logits - 1.0).mean()
    return optax.sigmoid_binary_cross_entropy(fake_logits, jnp.ones_like(fake_logits)).mean()


def cycle_loss(reconstruction, original):
    """Eq. 2 term: E ||reconstruction - original||_1, as a per-pixel mean."""
    return jnp.abs(reconstruction - original).mean()


def dice_bce_loss(logits, target, smooth: float = 1e-5):
    """The segmenter's loss, MONAI's DiceCELoss for one sigmoid channel: soft Dice loss
    1 - (2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth) per example (p = sigmoid(logits),
    smooth 1e-5 as MONAI's smooth_nr/smooth_dr), averaged, plus the mean binary
    cross-entropy, weighted 1:1."""
    p = jax.nn.sigmoid(logits)
    axes = tuple(range(1, logits.ndim))
    dice = (2 * (p * target).sum(axes) + smooth) / (p.sum(axes) + target.sum(axes) + smooth)
    return (1 - dice).mean() + optax.sigmoid_binary_cross_entropy(logits, target).mean()
