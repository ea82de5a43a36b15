"""DCGAN building blocks (Radford et al. 2016) as a conditional encoder-decoder and a
global discriminator, for the paper's DCGAN baseline.

EncoderDecoder, no skip connections:
    down: 4x4 stride-2 conv (features...), BatchNorm (not on the first), LeakyReLU 0.2
    up:   4x4 stride-2 transposed conv (reversed features), BatchNorm, ReLU
    out:  4x4 stride-2 transposed conv (with bias) to `out_channels`, output activation
DCGANDiscriminator: the same down path, flattened, a dense layer to one logit per image.
Weights ~ N(0, 0.02), BatchNorm scale ~ N(1, 0.02), as the DCGAN paper initialises.
"""
from typing import Sequence

import flax.linen as nn

from fproi_jax.models.layers import (OUTPUT_ACTIVATIONS, SubpixelConvTranspose, batch_norm,
                                     check_divisible, conv4x4, leaky_relu, normal_init)


def _down(x, features: Sequence[int], train: bool):
    for i, f in enumerate(features):
        x = conv4x4(f, 2, use_bias=i == 0)(x)
        if i > 0:
            x = batch_norm(train)(x)
        x = leaky_relu(x, 0.2)
    return x


class EncoderDecoder(nn.Module):
    """(N, H, W, C) -> (N, H, W, out_channels); H and W divisible by 2 ** len(features)."""

    features: Sequence[int] = (64, 128, 256, 512)
    out_channels: int = 1
    output_activation: str = "sigmoid"

    @nn.compact
    def __call__(self, x, train: bool = False):
        check_divisible(x, 2 ** len(self.features), "EncoderDecoder")
        h = _down(x, self.features, train)
        for f in reversed(self.features[:-1]):
            h = SubpixelConvTranspose(f, 4, 2, use_bias=False, kernel_init=normal_init())(h)
            h = nn.relu(batch_norm(train)(h))
        out = SubpixelConvTranspose(self.out_channels, 4, 2, kernel_init=normal_init())(h)
        return OUTPUT_ACTIVATIONS[self.output_activation](out)


class DCGANDiscriminator(nn.Module):
    """(N, H, W, C) -> (N,) real-vs-synthetic logits."""

    features: Sequence[int] = (64, 128, 256, 512)

    @nn.compact
    def __call__(self, x, train: bool = False):
        h = _down(x, self.features, train)
        return nn.Dense(1, kernel_init=normal_init())(h.reshape(h.shape[0], -1))[:, 0]
