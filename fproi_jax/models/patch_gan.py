"""The 70x70 PatchGAN discriminator of pix2pix and CycleGAN (Isola et al. 2017; the
reference's `NLayerDiscriminator` with n_layers = 3).

    4x4 stride-2 conv (w), LeakyReLU 0.2
    4x4 stride-2 conv (2w), norm, LeakyReLU;  4x4 stride-2 conv (4w), norm, LeakyReLU
    4x4 stride-1 conv (8w), norm, LeakyReLU;  4x4 stride-1 conv to 1: a map of patch logits

All 1 px zero padding, N(0, 0.02) weights. `norm='instance'` (CycleGAN: no affine, convs
with bias; 2,762,689 parameters for one input channel at w = 64) or `norm='batch'` (pix2pix:
convs without bias, BatchNorm with scale and offset). Each output logit sees a 70x70 patch.
"""
import flax.linen as nn

from fproi_jax.models.layers import batch_norm, conv4x4, instance_norm, leaky_relu

NORMS = ("instance", "batch")


class PatchDiscriminator(nn.Module):
    """(N, H, W, C) -> (N, H/8 - 2, W/8 - 2) patch logits."""

    width: int = 64
    layers: int = 3
    norm: str = "instance"

    @nn.compact
    def __call__(self, x, train: bool = False):
        if self.norm not in NORMS:
            raise ValueError(f"PatchDiscriminator norm must be one of {NORMS}, got {self.norm!r}")
        with_bias = self.norm == "instance"
        normalise = instance_norm if with_bias else lambda: batch_norm(train)
        h = leaky_relu(conv4x4(self.width, 2, use_bias=True)(x), 0.2)
        for n in range(1, self.layers + 1):
            strides = 2 if n < self.layers else 1
            h = conv4x4(self.width * min(2 ** n, 8), strides, use_bias=with_bias)(h)
            h = leaky_relu(normalise()(h), 0.2)
        return conv4x4(1, 1, use_bias=True)(h)[..., 0]
