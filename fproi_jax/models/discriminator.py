"""Discriminator used as Dx (images) and Dy (ROIs), paper Figure 5.

Four conv blocks (4x4 stride-2 Conv2D + LeakyReLU 0.2; 64, 128, 256, 512 channels; the
figure shows no normalisation), flatten (16 x 16 x 512 at 256 x 256 input), and a dense
layer to one value. The paper's final sigmoid is folded into the loss: the module
returns a logit.
"""
from typing import Sequence

import flax.linen as nn

from fproi_jax.models.layers import Conv, leaky_relu


class Discriminator(nn.Module):
    """(N, H, W, C) -> (N,) real-vs-synthetic logits."""

    features: Sequence[int] = (64, 128, 256, 512)
    negative_slope: float = 0.2

    @nn.compact
    def __call__(self, x):
        smallest = 2 ** len(self.features)  # each block halves; a 1-px map can not halve
        if min(x.shape[1:3]) < smallest:
            raise ValueError(f"Discriminator with {len(self.features)} stride-2 blocks needs "
                             f"images of at least {smallest}x{smallest} px, got {x.shape}")
        for f in self.features:
            x = Conv(f, (4, 4), strides=2, padding=[(1, 1), (1, 1)])(x)
            x = leaky_relu(x, self.negative_slope)
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(1)(x)[:, 0]
