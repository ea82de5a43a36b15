"""The four networks of Fproi-GAN and its two synthesis paths (paper Figure 2).

Parameters are a dict with one entry per optimizer:
    {'G': {'rfb': ..., 'net': ...},   # X -> Y generator together with the RFB
     'F': ...,                         # Y -> X generator
     'Dx': ..., 'Dy': ...}             # image and ROI discriminators

Image synthesis (i):  x -> G(x~) -> F(G(x~)) ~ x,   x~ = concat(x, RFB(x * y))
ROI synthesis  (ii):  y -> F(y)  -> G(concat(F(y), RFB(F(y) * y))) ~ y
With `use_rfb=False`, G sees x alone: the plain CycleGAN baseline with the same networks.
"""
import dataclasses

import jax
import jax.numpy as jnp
import ml_collections

from fproi_jax.models.discriminator import Discriminator
from fproi_jax.models.generator import Generator
from fproi_jax.models.rfb import RegionalFeatureBlock


# The images of both synthesis paths in reading order (pytree utilities sort dict keys).
CYCLE_NAMES = ("x", "G(x)", "F(G(x))", "y", "F(y)", "G(F(y))")


@dataclasses.dataclass(frozen=True)
class FproiGAN:
    rfb: RegionalFeatureBlock | None
    g: Generator
    f: Generator
    dx: Discriminator
    dy: Discriminator

    @classmethod
    def from_config(cls, model: ml_collections.ConfigDict) -> "FproiGAN":
        gen = dict(width=model.generator_width, output_activation=model.output_activation)
        disc = dict(features=tuple(model.discriminator_features))
        return cls(
            rfb=RegionalFeatureBlock(tuple(model.rfb_features)) if model.use_rfb else None,
            g=Generator(**gen), f=Generator(**gen),
            dx=Discriminator(**disc), dy=Discriminator(**disc))

    def init(self, rng: jax.Array, image_shape) -> dict:
        """Initialises all parameters for single-channel images of shape (H, W)."""
        k_rfb, k_g, k_f, k_dx, k_dy = jax.random.split(rng, 5)
        one = jnp.zeros((1, *image_shape, 1), jnp.float32)
        g = {} if self.rfb is None else {"rfb": self.rfb.init(k_rfb, one)}
        g["net"] = self.g.init(k_g, self._g_input(g, one, one))
        return {"G": g, "F": self.f.init(k_f, one),
                "Dx": self.dx.init(k_dx, one), "Dy": self.dy.init(k_dy, one)}

    def _g_input(self, g_params, x, y):
        """x~: the image fused with the RFB's features of the regional image x * y."""
        if self.rfb is None:
            return x
        return jnp.concatenate([x, self.rfb.apply(g_params["rfb"], x * y)], axis=-1)

    def apply_g(self, g_params, x, y):
        """G: X -> Y on the fused input; y is the ROI that selects the region."""
        return self.g.apply(g_params["net"], self._g_input(g_params, x, y))

    def apply_f(self, f_params, y):
        """F: Y -> X."""
        return self.f.apply(f_params, y)

    def image_synthesis(self, params, x, y):
        """Path (i): returns (G(x~), F(G(x~)))."""
        g_x = self.apply_g(params["G"], x, y)
        return g_x, self.apply_f(params["F"], g_x)

    def roi_synthesis(self, params, y):
        """Path (ii): returns (F(y), G(concat(F(y), RFB(F(y) * y))))."""
        f_y = self.apply_f(params["F"], y)
        return f_y, self.apply_g(params["G"], f_y, y)

    def cycles(self, params, x, y) -> dict:
        """Both synthesis paths by name (CYCLE_NAMES): x, G(x~), F(G(x~)), y, F(y), G(F(y)~)."""
        g_x, f_g_x = self.image_synthesis(params, x, y)
        f_y, g_f_y = self.roi_synthesis(params, y)
        return {"x": x, "G(x)": g_x, "F(G(x))": f_g_x, "y": y, "F(y)": f_y, "G(F(y))": g_f_y}

    def discriminate(self, params, images, rois):
        """Logits (Dx(images), Dy(rois))."""
        return self.dx.apply(params["Dx"], images), self.dy.apply(params["Dy"], rois)
