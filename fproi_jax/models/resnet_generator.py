"""The canonical CycleGAN generator (Zhu et al. 2017; junyanz/pytorch-CycleGAN-and-pix2pix
`ResnetGenerator`, resnet_9blocks), for one-channel images.

    reflect-pad 3, 7x7 conv (w), IN, ReLU
    2 x [3x3 stride-2 conv (2w, 4w), IN, ReLU]
    `blocks` x residual block [reflect-pad 1, 3x3 conv, IN, ReLU, reflect-pad 1, 3x3 conv, IN]
    2 x [3x3 stride-2 transposed conv (2w, w), IN, ReLU]
    reflect-pad 3, 7x7 conv to `out_channels`, output activation

IN is instance normalisation without affine parameters, as the reference's default; every
convolution has a bias (the reference sets bias=True with instance norm), N(0, 0.02) weights.
With w = 64 and 9 blocks: 11,365,633 parameters for one input and one output channel.
The reference ends in tanh for [-1, 1] data; ours lie in [0, 1], so sigmoid is the default.
Transposed convolutions are the exact sub-pixel form and the last 7x7 convolution the exact
space-to-depth form (layers.py), which XLA runs faster on CPU.
"""
import flax.linen as nn

from fproi_jax.models.layers import (OUTPUT_ACTIVATIONS, Conv, SpaceToDepthConv,
                                     SubpixelConvTranspose, check_divisible, instance_norm,
                                     normal_init, reflect_pad)


def _conv(features: int, kernel_size: int, strides: int = 1, padding="VALID") -> nn.Module:
    return Conv(features, (kernel_size,) * 2, strides=strides, padding=padding,
                   kernel_init=normal_init())


class ResnetBlock(nn.Module):
    """x + [pad, conv, IN, ReLU, pad, conv, IN](x)."""

    features: int

    @nn.compact
    def __call__(self, x):
        h = nn.relu(instance_norm()(_conv(self.features, 3)(reflect_pad(x, 1))))
        return x + instance_norm()(_conv(self.features, 3)(reflect_pad(h, 1)))


class ResnetGenerator(nn.Module):
    """(N, H, W, C) -> (N, H, W, out_channels); H and W divisible by 4."""

    width: int = 64
    blocks: int = 9
    out_channels: int = 1
    output_activation: str = "sigmoid"

    @nn.compact
    def __call__(self, x):
        check_divisible(x, 4, "ResnetGenerator")
        w = self.width
        h = nn.relu(instance_norm()(_conv(w, 7)(reflect_pad(x, 3))))
        for features in (2 * w, 4 * w):
            h = nn.relu(instance_norm()(_conv(features, 3, 2, [(1, 1), (1, 1)])(h)))
        for _ in range(self.blocks):
            h = ResnetBlock(4 * w)(h)
        for features in (2 * w, w):
            h = SubpixelConvTranspose(features, 3, 2, kernel_init=normal_init())(h)
            h = nn.relu(instance_norm()(h))
        out = SpaceToDepthConv(self.out_channels, 7, block=2, kernel_init=normal_init())(
            reflect_pad(h, 3))
        return OUTPUT_ACTIVATIONS[self.output_activation](out)
