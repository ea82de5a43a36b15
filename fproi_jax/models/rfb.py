"""Regional feature block (RFB), paper section 2.2.1 and Figure 3.

"Two mirror fill layers, three convolutional layers, one deconvolutional layer", each
conv = conv + instance norm + ReLU. Our reading of Figure 3 (the paper gives no strides
for the middle layers): reflect-pad 3 -> 7x7 conv (32) -> reflect-pad 1 -> 3x3 stride-2
conv (64) -> 3x3 conv (64) -> 3x3 stride-2 transposed conv back to full size (32).
The input is the regional image r = x * y; the output is fused with x by concatenation.
`upsample='resize'` makes the last block a resize-convolution; it did not change the
texture of F's outputs on the paper demo (generator.py says where that comes from).
"""
from typing import Sequence

import flax.linen as nn

from fproi_jax.models.layers import ConvBlock, upsample_block


class RegionalFeatureBlock(nn.Module):
    """Maps a regional image (N, H, W, 1) to regional features (N, H, W, features[-1]).

    `upsample`: 'transposed' (Figure 3's deconvolution, a 3x3 stride-2 transposed conv) or
    'resize' (nearest-neighbour 2x + 3x3 conv, layers.ResizeUpBlock)."""

    features: Sequence[int] = (32, 64, 64, 32)
    upsample: str = "transposed"

    @nn.compact
    def __call__(self, regional_image):
        up = upsample_block(self.upsample)
        f1, f2, f3, f4 = self.features
        x = ConvBlock(f1, 7, reflect=3)(regional_image)
        x = ConvBlock(f2, 3, strides=2, reflect=1)(x)
        x = ConvBlock(f3, 3)(x)
        return up(f4)(x)
