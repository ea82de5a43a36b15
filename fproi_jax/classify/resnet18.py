"""ResNet-18 feature extractor (He et al. 2016, paper ref. [33]) in Flax linen.

Layout = torchvision's ``resnet18`` so that its ImageNet checkpoint converts one to one
(:mod:`fproi_jax.classify.convert`):

* stem: ``conv1`` 7x7 stride 2 padding 3, 64 channels, no bias; ``bn1``; ReLU; max pool
  3x3 stride 2 padding 1;
* ``layer1`` .. ``layer4``: two BasicBlocks each, 64, 128, 256, 512 channels; the first
  block of layers 2-4 has stride 2 and a ``downsample`` shortcut (1x1 conv stride 2, no
  bias, + BatchNorm). BasicBlock = 3x3 conv (stride s) - BN - ReLU - 3x3 conv - BN, + the
  shortcut, ReLU;
* head: global average pooling -> 512 features (torchvision's ``fc`` is not part of it).

Paddings are explicit (torch's symmetric ``padding=k//2``), not Flax ``SAME``, which pads
stride-2 convolutions asymmetrically. BatchNorm: epsilon 1e-5, momentum 0.9 (= torch's
0.1); ``train=False`` (the default, all feature extraction) uses the running statistics
(``use_running_average=True``). Submodule names mirror torchvision's keys with ``_`` for
``.``: ``layer2_0/downsample_0`` is ``layer2.0.downsample.0``.

Input choice: images are (N, H, W, 1) grey levels in [0, 1] (the builders' range). They are
replicated to 3 channels and normalised with the ImageNet mean (0.485, 0.456, 0.406) and
std (0.229, 0.224, 0.225), i.e. exactly what an ImageNet-trained ResNet expects of a grey
RGB picture; the same preprocessing is used for the random and in-domain sources, so
the three sources differ only in their weights. 3-channel input is normalised as is.

Random initialisation follows torchvision: convolutions Kaiming-normal (fan_out, ReLU
gain), BatchNorm scale 1 and bias 0, running mean 0 and variance 1.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

FEATURES = 512
STAGES = (("layer1", 64, 1), ("layer2", 128, 2), ("layer3", 256, 2), ("layer4", 512, 2))
BLOCKS_PER_STAGE = 2
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu"), an untruncated normal.
_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def preprocess(images: jax.Array) -> jax.Array:
    """(N, H, W, 1 or 3) in [0, 1] -> (N, H, W, 3) float32, ImageNet-normalised."""
    x = jnp.asarray(images, jnp.float32)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"expected images of shape (N, H, W, 1 or 3), got {x.shape}")
    if x.shape[-1] == 1:
        x = jnp.repeat(x, 3, axis=-1)
    mean = jnp.asarray(IMAGENET_MEAN, jnp.float32)
    std = jnp.asarray(IMAGENET_STD, jnp.float32)
    return (x - mean) / std


def _conv(features: int, kernel: int, strides: int, name: str) -> nn.Conv:
    pad = kernel // 2
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=(strides, strides),
        padding=((pad, pad), (pad, pad)),
        use_bias=False,
        kernel_init=_conv_init,
        name=name,
    )


class BasicBlock(nn.Module):
    """torchvision's BasicBlock (expansion 1)."""

    features: int
    strides: int = 1
    downsample: bool = False
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        norm = functools.partial(
            nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5,
            axis_name=self.axis_name,
        )
        y = _conv(self.features, 3, self.strides, "conv1")(x)
        y = nn.relu(norm(name="bn1")(y))
        y = _conv(self.features, 3, 1, "conv2")(y)
        y = norm(name="bn2")(y)
        if self.downsample:
            x = _conv(self.features, 1, self.strides, "downsample_0")(x)
            x = norm(name="downsample_1")(x)
        return nn.relu(x + y)


class ResNet18(nn.Module):
    """(N, H, W, 1 or 3) images in [0, 1] -> (N, 512) globally average-pooled features.

    ``axis_name``: the mesh axis a data-parallel training step splits the batch over, so
    that BatchNorm's batch statistics in training mode are those of the global batch.
    """

    axis_name: str | None = None

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        x = preprocess(images)
        x = _conv(64, 7, 2, "conv1")(x)
        x = nn.BatchNorm(
            use_running_average=not train, momentum=0.9, epsilon=1e-5, name="bn1",
            axis_name=self.axis_name,
        )(x)
        x = nn.relu(x)
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        in_features = 64
        for stage, features, strides in STAGES:
            for b in range(BLOCKS_PER_STAGE):
                s = strides if b == 0 else 1
                x = BasicBlock(
                    features,
                    strides=s,
                    downsample=(b == 0 and (s != 1 or in_features != features)),
                    axis_name=self.axis_name,
                    name=f"{stage}_{b}",
                )(x, train)
                in_features = features
        return jnp.mean(x, axis=(1, 2))


def init_variables(seed: int = 0, image_size: int = 64) -> dict:
    """Randomly initialised ``{'params', 'batch_stats'}`` (torchvision's init), as numpy.

    The shapes do not depend on ``image_size``; it only sizes the dummy input.
    """
    variables = ResNet18().init(
        jax.random.PRNGKey(seed), jnp.zeros((1, image_size, image_size, 1), jnp.float32)
    )
    return jax.tree_util.tree_map(np.asarray, dict(variables))
