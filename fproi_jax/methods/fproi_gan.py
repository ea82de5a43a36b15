"""Fproi-GAN (paper Figure 2), and the ablation without the regional feature block.

Networks (models/): G = RFB (Figure 3) + U-Net generator (Figure 4) on the fused input
x~ = concat(x, RFB(x * y)); F = the same U-Net design on y; Dx, Dy = the discriminator of
Figure 5. Trained with the two-cycle objective (two_cycle.py) and the log loss of eq. 1:

Image synthesis (i):  x -> G(x~) -> F(G(x~)) ~ x,   x~ = concat(x, RFB(x * y))
ROI synthesis  (ii):  y -> F(y)  -> G(concat(F(y), RFB(F(y) * y))) ~ y

`fproi_gan_no_rfb` ("Fproi-GAN w/o RFB") is the same networks and objective with G seeing
x alone: it isolates what the RFB adds. It is not the CycleGAN baseline (cycle_gan.py).

Three options away from the paper, to find why Dx wins on the demo (README, "The demos'
results"): `image_discriminator='patch_gan'` makes Dx CycleGAN's 70x70 PatchGAN (width the
first of discriminator_features, instance norm) instead of Figure 5's dense-headed
network, `gan_mode='lsgan'` the least-squares loss instead of eq. 1's log loss, and
`image_generator='resnet'` makes F CycleGAN's ResNet generator (width generator_width; 6
residual blocks up to 128 px, 9 above, as the reference's resnet_6blocks and
resnet_9blocks) instead of Figure 4's U-Net, whose skips carry the mask to F's output.
"""
import functools

import jax.numpy as jnp
import ml_collections

from fproi_jax.methods.base import Entry, Networks
from fproi_jax.methods.two_cycle import TwoCycleMethod
from fproi_jax.models.discriminator import Discriminator
from fproi_jax.models.generator import Generator
from fproi_jax.models.patch_gan import PatchDiscriminator
from fproi_jax.models.resnet_generator import ResnetGenerator
from fproi_jax.models.rfb import RegionalFeatureBlock


def default_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({
        "rfb_features": (32, 64, 64, 32),
        "rfb_upsample": "transposed",  # Figure 3's deconvolution; 'resize': resize-conv
        "generator_width": 32,
        "generator_upsample": "transposed",  # Figure 4's deconvolutions; 'resize': resize-conv
        "output_activation": "sigmoid",
        "discriminator_features": (64, 128, 256, 512),
        "image_discriminator": "figure5",  # Dx: Figure 5's network; 'patch_gan': CycleGAN's
        "gan_mode": "log",      # eq. 1; 'lsgan': the least-squares loss (CycleGAN's)
        "image_generator": "unet",  # F: Figure 4's U-Net; 'resnet': CycleGAN's ResNet
        "cycle_weight": 10.0,   # lambda of the full objective; the paper gives none (CycleGAN's)
        "pool_size": 50,        # past fakes shown to each discriminator (CycleGAN); 0: none
    })


IMAGE_DISCRIMINATORS = ("figure5", "patch_gan")
IMAGE_GENERATORS = ("unet", "resnet")


class FproiGAN(TwoCycleMethod):

    def __init__(self, settings: ml_collections.ConfigDict, use_rfb: bool = True,
                 image_size: int = 256):
        gen = dict(width=settings.generator_width, output_activation=settings.output_activation,
                   upsample=settings.generator_upsample)
        disc = dict(features=tuple(settings.discriminator_features))
        if settings.image_discriminator not in IMAGE_DISCRIMINATORS:
            raise ValueError(f"model.fproi_gan.image_discriminator must be one of "
                             f"{IMAGE_DISCRIMINATORS}, got {settings.image_discriminator!r}")
        image_disc = (Discriminator(**disc) if settings.image_discriminator == "figure5" else
                      PatchDiscriminator(width=disc["features"][0], norm="instance"))
        if settings.image_generator not in IMAGE_GENERATORS:
            raise ValueError(f"model.fproi_gan.image_generator must be one of "
                             f"{IMAGE_GENERATORS}, got {settings.image_generator!r}")
        image_gen = (Generator(**gen) if settings.image_generator == "unet" else
                     ResnetGenerator(width=settings.generator_width,
                                     blocks=6 if image_size <= 128 else 9,
                                     output_activation=settings.output_activation))
        modules = {"G/net": Generator(**gen), "F": image_gen,
                   "Dx": image_disc, "Dy": Discriminator(**disc)}
        if use_rfb:
            rfb = RegionalFeatureBlock(tuple(settings.rfb_features), settings.rfb_upsample)
            modules = {"G/rfb": rfb, **modules}
        super().__init__(modules, label="Fproi-GAN" if use_rfb else "Fproi-GAN w/o RFB",
                         gan_mode=settings.gan_mode, cycle_weight=settings.cycle_weight,
                         pool_size=settings.pool_size)
        self.use_rfb = use_rfb

    @classmethod
    def from_config(cls, settings, image_size: int, use_rfb: bool = True) -> "FproiGAN":
        return cls(settings, use_rfb, image_size)

    def init_inputs(self, image_shape):
        inputs = super().init_inputs(image_shape)
        if self.use_rfb:
            channels = 1 + self.modules["G/rfb"].features[-1]
            inputs["G/net"] = jnp.zeros((1, *image_shape, channels), jnp.float32)
        return inputs

    def fused_input(self, nets: Networks, x, y):
        """x~: the image fused with the RFB's features of the regional image x * y."""
        if not self.use_rfb:
            return x
        return jnp.concatenate([x, nets("G/rfb", x * y)], axis=-1)

    def to_roi(self, nets, x, y):
        return nets("G/net", self.fused_input(nets, x, y))


ENTRY = Entry("fproi_gan", "fproi_gan", default_config,
              functools.partial(FproiGAN.from_config, use_rfb=True), realigned=True)
# The ablation shares Fproi-GAN's settings, so it differs from it by the RFB alone.
NO_RFB_ENTRY = Entry("fproi_gan_no_rfb", "fproi_gan", default_config,
                     functools.partial(FproiGAN.from_config, use_rfb=False), realigned=True)
