"""CycleGAN baseline (Zhu et al. 2017), as the canonical reference implementation
(junyanz/pytorch-CycleGAN-and-pix2pix) sets it up, for one-channel images and ROIs.

Our reading (the paper names CycleGAN but gives no settings beyond "Adam, lr 2e-4"):
G (image -> ROI) and F (ROI -> image) are ResNet generators with 9 residual blocks (ngf
64, instance norm, reflection padding; models/resnet_generator.py); Dx and Dy are 70x70
PatchGANs (3 layers, ndf 64, instance norm; models/patch_gan.py); least-squares GAN loss,
cycle weight 10, identity loss 0.5 (times the cycle weight, as the reference), a pool of 50
past fakes, N(0, 0.02) initialisation. The reference trains with Adam b1 0.5 and a linear
decay to zero over the second half: `--config.train.adam_b1=0.5
--config.train.lr_schedule=linear_decay`; the paper configs keep the paper's Adam defaults
for every method. G does not see the ROI: CycleGAN has no regional features.
"""
import ml_collections

from fproi_jax.methods.base import Entry
from fproi_jax.methods.two_cycle import TwoCycleMethod
from fproi_jax.models.patch_gan import PatchDiscriminator
from fproi_jax.models.resnet_generator import ResnetGenerator


def default_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({
        "generator_width": 64,       # ngf
        "residual_blocks": 9,        # resnet_9blocks
        "discriminator_width": 64,   # ndf
        "discriminator_layers": 3,   # 70x70 PatchGAN
        "output_activation": "sigmoid",
        "gan_mode": "lsgan",
        "cycle_weight": 10.0,
        "identity_weight": 0.5,
        "pool_size": 50,
    })


class CycleGAN(TwoCycleMethod):

    @classmethod
    def from_config(cls, settings: ml_collections.ConfigDict, image_size: int) -> "CycleGAN":
        del image_size
        gen = dict(width=settings.generator_width, blocks=settings.residual_blocks,
                   output_activation=settings.output_activation)
        disc = dict(width=settings.discriminator_width, layers=settings.discriminator_layers,
                    norm="instance")
        modules = {"G": ResnetGenerator(**gen), "F": ResnetGenerator(**gen),
                   "Dx": PatchDiscriminator(**disc), "Dy": PatchDiscriminator(**disc)}
        return cls(modules, label="CycleGAN", gan_mode=settings.gan_mode,
                   cycle_weight=settings.cycle_weight, identity_weight=settings.identity_weight,
                   pool_size=settings.pool_size)


ENTRY = Entry("cycle_gan", "cycle_gan", default_config, CycleGAN.from_config, realigned=True)
