"""The pix2pix U-Net generator (Isola et al. 2017; the reference's `UnetGenerator`,
unet_256 with BatchNorm and dropout), for one-channel images.

`levels` = log2(image size) down-sampling steps take the image to 1 x 1 (8 at 256 px, as
unet_256; 6 at 64 px). Encoder level i: [LeakyReLU 0.2 except at i = 0] 4x4 stride-2 conv
to (w, 2w, 4w, 8w, 8w, ...) channels, BatchNorm except at the outermost and innermost
levels. Decoder, innermost first: ReLU, 4x4 stride-2 transposed conv, BatchNorm, dropout
0.5 on the levels between the (4w -> 8w) level and the innermost one (three at unet_256),
then concatenation with the encoder input of that level (the skip); the outermost level
ends in a transposed conv with bias to `out_channels` and the output activation.
As the reference, convolutions followed by BatchNorm have no bias, weights ~ N(0, 0.02):
54,407,809 parameters at 256 px, w = 64, one input and one output channel.
The reference ends in tanh for [-1, 1] data; ours lie in [0, 1], so sigmoid is the default.
"""
import math

import flax.linen as nn
import jax.numpy as jnp

from fproi_jax.models.layers import (OUTPUT_ACTIVATIONS, SubpixelConvTranspose, batch_norm,
                                     conv4x4, leaky_relu, normal_init)


def unet_levels(image_size: int) -> int:
    """log2(image_size): the levels that take the image to 1 x 1 (at least 5)."""
    levels = round(math.log2(image_size))
    if 2 ** levels != image_size or levels < 5:
        raise ValueError(f"the pix2pix U-Net needs a power-of-two image size >= 32, "
                         f"got {image_size}")
    return levels


class UnetGenerator(nn.Module):
    """(N, S, S, C) -> (N, S, S, out_channels), S = 2 ** levels."""

    levels: int = 8
    width: int = 64
    out_channels: int = 1
    dropout: float = 0.5
    output_activation: str = "sigmoid"

    @nn.compact
    def __call__(self, x, train: bool = False):
        w, n = self.width, self.levels
        if x.shape[1] != 2 ** n or x.shape[2] != 2 ** n:
            raise ValueError(f"UnetGenerator with {n} levels needs {2 ** n} x {2 ** n} inputs, "
                             f"got {x.shape}")
        inner = [w, 2 * w, 4 * w] + [8 * w] * (n - 3)
        outer = [self.out_channels, w, 2 * w, 4 * w] + [8 * w] * (n - 4)
        skips, h = [], x
        for i in range(n):
            skips.append(h)
            if i > 0:
                h = leaky_relu(h, 0.2)
            h = conv4x4(inner[i], 2, use_bias=False)(h)
            if 0 < i < n - 1:
                h = batch_norm(train)(h)
        for i in reversed(range(1, n)):
            h = SubpixelConvTranspose(outer[i], 4, 2, use_bias=False,
                                      kernel_init=normal_init())(nn.relu(h))
            h = batch_norm(train)(h)
            if 4 <= i <= n - 2:
                h = nn.Dropout(self.dropout, deterministic=not train)(h)
            h = jnp.concatenate([skips[i], h], axis=-1)
        out = SubpixelConvTranspose(outer[0], 4, 2, kernel_init=normal_init())(nn.relu(h))
        return OUTPUT_ACTIVATIONS[self.output_activation](out)
