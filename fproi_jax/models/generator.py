"""Generator shared by G: X -> Y and F: Y -> X, paper section 2.2.2 and Figure 4.

"Four convolutional layers, two fusion layers, two deconvolutional layers"; a 3-pixel
mirror fill takes 256 to 262; "after three convolutions a 128-dimensional 64x64 map".
Our reading, a small U-Net:

    reflect-pad 3, 7x7 conv (w)            -> e1  (H,   W,   w)
    reflect-pad 1, 3x3 stride-2 conv (2w)  -> e2  (H/2, W/2, 2w)
    reflect-pad 1, 3x3 stride-2 conv (4w)  -> e3  (H/4, W/4, 4w)   [128 x 64 x 64 at w=32]
    3x3 stride-2 transposed conv (2w), fusion = concat with e2
    3x3 stride-2 transposed conv (w),  fusion = concat with e1
    reflect-pad 3, 7x7 conv to `out_channels`, then `output_activation`.

The paper states no output activation; data lie in [0, 1], so sigmoid is the default
('tanh' for [-1, 1] data, 'linear' for none).

`upsample='resize'` replaces the two deconvolutions by nearest 2x + 3x3 conv blocks
(layers.ResizeUpBlock). Measured on the paper demo (300 steps, one seed, 64 px): the
mottled texture inside the tumour in F(y) and F(G(x)) comes from F's 3x3 stride-2
transposed convolutions (local alternation in the ROI 0.066 with them, 0.023 with resize
in F and the RFB, 0.027 in real images) and is drawn alike by the PyTorch twin; but with
resize F no longer reconstructed the brain at 300 steps (README "The checkerboard").
"""
import flax.linen as nn
import jax.numpy as jnp

from fproi_jax.models.layers import (OUTPUT_ACTIVATIONS, ConvBlock, SpaceToDepthConv,
                                     check_divisible, reflect_pad, upsample_block)


class Generator(nn.Module):
    """U-Net-like generator: (N, H, W, C_in) -> (N, H, W, out_channels), H and W divisible by 4."""

    width: int = 32
    out_channels: int = 1
    output_activation: str = "sigmoid"
    upsample: str = "transposed"  # the deconvolutions; 'resize': layers.ResizeUpBlock

    @nn.compact
    def __call__(self, x):
        check_divisible(x, 4, "Generator")
        up = upsample_block(self.upsample)
        w = self.width
        e1 = ConvBlock(w, 7, reflect=3)(x)
        e2 = ConvBlock(2 * w, 3, strides=2, reflect=1)(e1)
        e3 = ConvBlock(4 * w, 3, strides=2, reflect=1)(e2)
        d2 = jnp.concatenate([up(2 * w)(e3), e2], axis=-1)
        d1 = jnp.concatenate([up(w)(d2), e1], axis=-1)
        # The same 7x7 VALID conv as nn.Conv, on 2x2 cells: ~2x faster on CPU (layers.py).
        out = SpaceToDepthConv(self.out_channels, 7, block=2)(reflect_pad(d1, 3))
        return OUTPUT_ACTIVATIONS[self.output_activation](out)
