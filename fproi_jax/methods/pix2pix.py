"""Pix2Pix baseline (Isola et al. 2017): two directional conditional GANs.

Our reading (the paper names Pix2Pix but gives no settings beyond "Adam, lr 2e-4"): one
conditional model per direction, G: image -> ROI judged by Dy on concat(image, ROI), and
F: ROI -> image judged by Dx on concat(ROI, image). Generators: the reference's U-Net
(unet_256 at 256 px, depth log2(image size); BatchNorm, dropout 0.5; models/unet.py);
discriminators: 70x70 PatchGANs with BatchNorm on the 2-channel pair (models/patch_gan.py).
Per direction, the vanilla (log) GAN loss + 100 * L1 to the paired target; the
discriminators halve their loss, as the reference. No image pool: a conditional
discriminator must see each fake with its own input. The reference trains with Adam
b1 0.5: `--config.train.adam_b1=0.5`.

Unpaired cycles do not exist here; evaluation chains the two models: image synthesis
x -> G(x) -> F(G(x)), ROI synthesis y -> F(y) -> G(F(y)).
While training, BatchNorm uses batch statistics synchronised over the devices and dropout
is on (masks drawn per device). At evaluation and in exports, BatchNorm uses the running
averages kept in the train state and dropout is off, so results do not depend on how test
examples are batched (the pix2pix paper instead keeps dropout and batch statistics at test
time).
"""
import jax.numpy as jnp
import ml_collections

from fproi_jax import losses
from fproi_jax.methods.base import Entry, Networks, init_networks
from fproi_jax.methods.paired import PairedMethod
from fproi_jax.models.patch_gan import PatchDiscriminator
from fproi_jax.models.unet import UnetGenerator, unet_levels


def default_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({
        "generator_width": 64,       # ngf
        "dropout": 0.5,
        "discriminator_width": 64,   # ndf
        "discriminator_layers": 3,   # 70x70 PatchGAN
        "output_activation": "sigmoid",
        "l1_weight": 100.0,
    })


class Pix2Pix(PairedMethod):
    label = "Pix2Pix"

    def __init__(self, modules: dict, l1_weight: float):
        self.modules, self.l1_weight = modules, l1_weight

    @classmethod
    def from_config(cls, settings: ml_collections.ConfigDict, image_size: int) -> "Pix2Pix":
        gen = dict(levels=unet_levels(image_size), width=settings.generator_width,
                   dropout=settings.dropout, output_activation=settings.output_activation)
        disc = dict(width=settings.discriminator_width, layers=settings.discriminator_layers,
                    norm="batch")
        modules = {"G": UnetGenerator(**gen), "F": UnetGenerator(**gen),
                   "Dx": PatchDiscriminator(**disc), "Dy": PatchDiscriminator(**disc)}
        return cls(modules, settings.l1_weight)

    def init(self, rng, image_shape):
        one = jnp.zeros((1, *image_shape, 1), jnp.float32)
        pair = jnp.zeros((1, *image_shape, 2), jnp.float32)
        return init_networks(self.modules, rng, {"G": one, "F": one, "Dx": pair, "Dy": pair})

    def generator_objective(self, gen_params, params, batch_stats, batch, earlier, rng):
        del earlier
        nets = Networks(self.modules, {**params, **gen_params}, batch_stats, True, rng,
                        self.compute_dtype)
        x, y = batch["image"], batch["roi"]
        g_x, f_y = nets("G", x), nets("F", y)
        fake_y_logits = nets("Dy", jnp.concatenate([x, g_x], axis=-1))
        fake_x_logits = nets("Dx", jnp.concatenate([y, f_y], axis=-1))
        terms = {
            "g_adversarial": losses.generator_adversarial_loss(fake_y_logits),
            "f_adversarial": losses.generator_adversarial_loss(fake_x_logits),
            "l1_roi": losses.cycle_loss(g_x, y),
            "l1_image": losses.cycle_loss(f_y, x),
        }
        total = (terms["g_adversarial"] + terms["f_adversarial"]
                 + self.l1_weight * (terms["l1_roi"] + terms["l1_image"]))
        return total, (terms, {"images": f_y, "rois": g_x}, nets.batch_stats)

    def discriminator_objective(self, disc_params, params, batch_stats, batch, earlier, rng):
        nets = Networks(self.modules, {**params, **disc_params}, batch_stats, True, rng,
                        self.compute_dtype)
        x, y = batch["image"], batch["roi"]
        pair = lambda a, b: jnp.concatenate([a, b], axis=-1)  # noqa: E731
        terms = {
            "dx": losses.discriminator_loss(nets("Dx", pair(y, x)),
                                            nets("Dx", pair(y, earlier["images"]))),
            "dy": losses.discriminator_loss(nets("Dy", pair(x, y)),
                                            nets("Dy", pair(x, earlier["rois"]))),
        }
        return terms["dx"] + terms["dy"], (terms, {}, nets.batch_stats)

    def image_synthesis(self, variables, x, y):
        del y
        nets = Networks(self.modules, variables["params"], variables["batch_stats"], False)
        g_x = nets("G", x)
        return g_x, nets("F", g_x)

    def roi_synthesis(self, variables, y):
        nets = Networks(self.modules, variables["params"], variables["batch_stats"], False)
        f_y = nets("F", y)
        return f_y, nets("G", f_y)


ENTRY = Entry("pix2pix", "pix2pix", default_config, Pix2Pix.from_config)
