"""The two-cycle objective shared by Fproi-GAN, its ablation, CycleGAN and DCGAN.

With x the image, y the ROI, G: X -> Y, F: Y -> X and lambda = cycle_weight (paper eqs.
1-2; Zhu et al. 2017 for the identity term):
  generators:      L_GAN(G, Dy) + L_GAN(F, Dx) + lambda (|F(G(x)) - x|_1 + |G(F(y)) - y|_1)
                   + lambda * identity_weight (|G(y) - y|_1 + |F(x) - x|_1)   [if > 0]
  discriminators:  L_GAN(Dx) on x vs F(y), L_GAN(Dy) on y vs G(x), through the pools.
L_GAN is the log loss or the least-squares loss (`gan_mode`, losses.py). The
discriminators are updated from the same state as the generators, on the fakes that state
produced (the canonical CycleGAN order, computed in one pass). A subclass only says how
its networks map an image to a ROI (`to_roi`, which may look at the ROI y, as
Fproi-GAN's RFB does) and a ROI to an image (`to_image`).
"""
import jax.numpy as jnp

from fproi_jax import losses
from fproi_jax.methods.base import Networks, init_networks
from fproi_jax.methods.paired import PairedMethod


class TwoCycleMethod(PairedMethod):
    """A Method whose generators G (X -> Y) and F (Y -> X) train on both cycles."""

    def __init__(self, modules: dict, *, label: str, gan_mode: str, cycle_weight: float,
                 identity_weight: float = 0.0, pool_size: int = 0):
        if gan_mode not in losses.GAN_MODES:
            raise ValueError(f"gan_mode must be one of {losses.GAN_MODES}, got {gan_mode!r}")
        self.modules, self.label, self.gan_mode = modules, label, gan_mode
        self.cycle_weight, self.identity_weight = cycle_weight, identity_weight
        self.pool_size = pool_size

    def init_inputs(self, image_shape) -> dict:
        """An example input per module path, for initialisation (shapes only matter)."""
        one = jnp.zeros((1, *image_shape, 1), jnp.float32)
        return {path: one for path in self.modules}

    def init(self, rng, image_shape):
        return init_networks(self.modules, rng, self.init_inputs(image_shape))

    def to_roi(self, nets: Networks, x, y):
        """G: the ROI synthesized from image x (y: the ROI that goes with x, if used)."""
        del y
        return nets("G", x)

    def to_image(self, nets: Networks, y):
        """F: the image synthesized from ROI y."""
        return nets("F", y)

    def generator_objective(self, gen_params, params, batch_stats, batch, earlier, rng):
        del earlier
        nets = Networks(self.modules, {**params, **gen_params}, batch_stats, True, rng,
                        self.compute_dtype)
        x, y = batch["image"], batch["roi"]
        g_x = self.to_roi(nets, x, y)
        f_g_x = self.to_image(nets, g_x)
        f_y = self.to_image(nets, y)
        g_f_y = self.to_roi(nets, f_y, y)
        fake_x_logits, fake_y_logits = nets("Dx", f_y), nets("Dy", g_x)
        terms = {
            "g_adversarial": losses.generator_adversarial_loss(fake_y_logits, self.gan_mode),
            "f_adversarial": losses.generator_adversarial_loss(fake_x_logits, self.gan_mode),
            "cycle_image": losses.cycle_loss(f_g_x, x),
            "cycle_roi": losses.cycle_loss(g_f_y, y),
        }
        total = (terms["g_adversarial"] + terms["f_adversarial"]
                 + self.cycle_weight * (terms["cycle_image"] + terms["cycle_roi"]))
        if self.identity_weight:
            terms["identity_roi"] = losses.cycle_loss(self.to_roi(nets, y, y), y)
            terms["identity_image"] = losses.cycle_loss(self.to_image(nets, x), x)
            total = total + self.cycle_weight * self.identity_weight * (
                terms["identity_roi"] + terms["identity_image"])
        return total, (terms, {"images": f_y, "rois": g_x}, nets.batch_stats)

    def discriminator_objective(self, disc_params, params, batch_stats, batch, earlier, rng):
        nets = Networks(self.modules, {**params, **disc_params}, batch_stats, True, rng,
                        self.compute_dtype)
        real_x_logits, real_y_logits = nets("Dx", batch["image"]), nets("Dy", batch["roi"])
        fake_x_logits, fake_y_logits = nets("Dx", earlier["images"]), nets("Dy", earlier["rois"])
        terms = {"dx": losses.discriminator_loss(real_x_logits, fake_x_logits, self.gan_mode),
                 "dy": losses.discriminator_loss(real_y_logits, fake_y_logits, self.gan_mode)}
        return terms["dx"] + terms["dy"], (terms, {}, nets.batch_stats)

    def _eval_networks(self, variables):
        return Networks(self.modules, variables["params"], variables["batch_stats"], False)

    def image_synthesis(self, variables, x, y):
        nets = self._eval_networks(variables)
        g_x = self.to_roi(nets, x, y)
        return g_x, self.to_image(nets, g_x)

    def roi_synthesis(self, variables, y):
        nets = self._eval_networks(variables)
        f_y = self.to_image(nets, y)
        return f_y, self.to_roi(nets, f_y, y)

