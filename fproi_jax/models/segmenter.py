"""The downstream segmenter: a 2D U-Net (Ronneberger et al. 2015) laid out as MONAI's
BasicUNet, for one-channel images and one tumour mask.

Features (f0, f1, f2, f3, f4, f5), MONAI's default (32, 32, 64, 128, 256, 32):
    TwoConv(f0) at full size; four Down levels (2x2 max-pool, TwoConv) to f1..f4;
    four UpCat levels (2x2 stride-2 transposed conv, concat the encoder map of that size,
    TwoConv) back to f3, f2, f1 and f5; a 1x1 conv to one logit per pixel.
TwoConv: twice (3x3 conv with bias, zero padding, normalisation, LeakyReLU 0.1).
Normalisation: instance norm with a learned scale and shift (MONAI's default "instance"),
chosen over BatchNorm so that training and inference normalise alike and the segmenter
keeps no running statistics. The image side must be divisible by 16.
"""
import flax.linen as nn
import jax.numpy as jnp

from fproi_jax.models.layers import check_divisible, leaky_relu

DEFAULT_FEATURES = (32, 32, 64, 128, 256, 32)


class TwoConv(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x):
        for _ in range(2):
            x = nn.Conv(self.features, (3, 3), padding=1)(x)
            x = nn.InstanceNorm(epsilon=1e-5, use_fast_variance=False)(x)
            x = leaky_relu(x, 0.1)
        return x


class Segmenter(nn.Module):
    """(N, S, S, 1) images -> (N, S, S, 1) logits of the tumour mask."""

    features: tuple = DEFAULT_FEATURES

    @nn.compact
    def __call__(self, x):
        check_divisible(x, 16, "Segmenter")
        f = self.features
        skips = [TwoConv(f[0])(x)]
        for width in f[1:5]:
            skips.append(TwoConv(width)(nn.max_pool(skips[-1], (2, 2), (2, 2))))
        h = skips.pop()
        for width in (f[3], f[2], f[1], f[5]):
            h = nn.ConvTranspose(h.shape[-1] // 2, (2, 2), strides=(2, 2))(h)
            h = TwoConv(width)(jnp.concatenate([skips.pop(), h], axis=-1))
        return nn.Conv(1, (1, 1))(h)
