"""DCGAN baseline (Radford et al. 2016), made conditional so it can be scored as the paper
scores it.

Our reading: the paper compares DCGAN by PSNR and Dice against each test input, so its
DCGAN must map a given image to a ROI and a given ROI to an image. We build that from
DCGAN's blocks: G and F are encoder-decoders without skip connections (4x4 stride-2 convs
+ BatchNorm + LeakyReLU 0.2 down, 4x4 stride-2 transposed convs + BatchNorm + ReLU up;
models/dcgan.py), Dx and Dy global DCGAN discriminators (one logit per image), the log
(binary cross-entropy) GAN loss, N(0, 0.02) initialisation, and the same two-cycle
objective as Fproi-GAN (cycle weight 10, no pool, no identity term). BatchNorm statistics
live in the train state; evaluation uses their running averages.
"""
import ml_collections

from fproi_jax.methods.base import Entry
from fproi_jax.methods.two_cycle import TwoCycleMethod
from fproi_jax.models.dcgan import DCGANDiscriminator, EncoderDecoder


def default_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({
        "generator_features": (64, 128, 256, 512),
        "discriminator_features": (64, 128, 256, 512),
        "output_activation": "sigmoid",
        "cycle_weight": 10.0,
    })


class DCGAN(TwoCycleMethod):

    @classmethod
    def from_config(cls, settings: ml_collections.ConfigDict, image_size: int) -> "DCGAN":
        del image_size
        gen = dict(features=tuple(settings.generator_features),
                   output_activation=settings.output_activation)
        disc = dict(features=tuple(settings.discriminator_features))
        modules = {"G": EncoderDecoder(**gen), "F": EncoderDecoder(**gen),
                   "Dx": DCGANDiscriminator(**disc), "Dy": DCGANDiscriminator(**disc)}
        return cls(modules, label="DCGAN", gan_mode="log", cycle_weight=settings.cycle_weight)


ENTRY = Entry("dcgan", "dcgan", default_config, DCGAN.from_config)
