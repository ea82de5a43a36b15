"""Fproi-GAN + context: F draws the ROI into a real image, so new pairs keep real anatomy.

Fproi-GAN's F must invent a whole slice from a mask alone. Here F sees the image around the
ROI (inpainting, as DiffTumor, GliGAN and ciGAN do for tumours, and the BraTS challenge
"local synthesis of healthy brain tissue" for healthy tissue), and noise:

    erased  E = dilate(max(y, m))          y the ROI asked for, m any further region to erase
    context c = x * (1 - E)                x the image drawn into
    F(y, c) = c + E * F_net(concat(y, c, E, z)),   z ~ N(0, 1) per pixel

so F's output is the context outside E, exactly. dilate is a square max filter of radius
`erase_margin` * image size (2 px at 64 px, 8 px at 256): the tumour's border and some
tissue around it are redrawn, not copied. G (the RFB + U-Net), Dx, Dy and both cycles are
Fproi-GAN's, with E from the real ROI in both: G(F(y, c)~) ~ y and F(G(x~), c) ~ x.

Trained self-supervised on the real pairs, where c is the pair's own image with
dilate(y) erased, plus, per example, a random healthy box (side `healthy_box` * image
size) erased where y is 0: so an empty ROI over an erased region asks for healthy tissue
(the BraTS inpainting task) from the same network. The box lies inside the tissue (pixels
above deform.TISSUE_THRESHOLD; where no place is all tissue, one of those with the most),
each such place equally likely, as the BraTS challenge's masks lie in the brain: a box
anywhere falls mostly on the background at the demo's size and teaches F that an erased
healthy region is dark (`healthy_box_in_tissue=False`, the first runs' placement, kept
for them). Generator objective:

    L_GAN(G, Dy) + L_GAN(F, Dx) + local_weight * L_GAN(F, Dl)
    + cycle_weight * (|F(G(x), c) - x|_1 + |G(F(y, c)) - y|_1)
    + reconstruction_weight * |F(y, c) - x|_1 over E (per erased pixel)
    + diversity_weight * mean|z - z'| / (mean over E |F(y, c; z) - F(y, c; z')| + 1e-5)

Dl, the local discriminator (Iizuka et al. 2017; GliGAN's), is the Figure 5 discriminator
on a square crop of side `local_crop` * image size (32 px at 64), centred on the ROI's
bounding box and shifted to stay inside the image: cheaper than a second full-size
network, and a fixed crop, unlike a masked PatchGAN loss, keeps past crops in an image pool
of their own. The last term is the mode-seeking loss (Mao et al. 2019, MSGAN, weight 1
as theirs): conditional GANs learn to ignore an input noise (Isola et al. 2017), so one mask
and one context would give one image; with it, K noises give K images. It costs a second
F pass in the ROI path; 0 turns it off. The noise of each example is drawn from the step's
key and `batch['index']`, so it does not depend on the devices. A synthesis given no noise
draws one per example, seeded by its index (Method.synthesis_inputs; z = 0 is no draw of
the noise, and F's output there is no mean: at the paper demo it filled healthy regions
white).
"""
import jax
import jax.numpy as jnp
import ml_collections

from fproi_jax import losses
from fproi_jax.data import deform
from fproi_jax.methods import fproi_gan
from fproi_jax.methods.base import Entry, Networks, Synthesis, UpdateGroup
from fproi_jax.methods.paired import DISCRIMINATORS, FAKES, GENERATORS
from fproi_jax.models.discriminator import Discriminator
from fproi_jax.roi import binarise

LOCAL = "Dl"
LOCAL_FAKES = "local_images"
# F's input channels: the ROI, the context, the erased region, the noise.
F_CHANNELS = 4


def default_config() -> ml_collections.ConfigDict:
    config = fproi_gan.default_config()
    config.update({
        "erase_margin": 1 / 32,        # dilation radius of the erased ROI, per image side
        "healthy_box": 1 / 4,          # side of the healthy box erased in training, per side
        "local_crop": 1 / 2,           # side of the local discriminator's crop, per side
        "local_weight": 1.0,
        "reconstruction_weight": 10.0,  # L1 inside the erased region (as the cycle's lambda)
        "diversity_weight": 1.0,       # mode-seeking term (MSGAN's 1); 0: none
        "healthy_box_in_tissue": True,  # the training box inside the tissue (docstring)
    })
    return config


def dilate(mask, radius: int):
    """The binarised (N, H, W, 1) `mask` grown by a square max filter of `radius` px."""
    window = (1, 2 * radius + 1, 2 * radius + 1, 1)
    return jax.lax.reduce_window(binarise(mask).astype(jnp.float32), 0.0, jax.lax.max,
                                 window, (1, 1, 1, 1), "SAME")


def per_erased_pixel(values, erased):
    """Per example, the mean of (N, H, W, 1) `values` over its erased pixels (0 if none)."""
    return (values * erased).sum((1, 2, 3)) / jnp.maximum(erased.sum((1, 2, 3)), 1.0)


def crop_at_roi(images, rois, size: int):
    """(N, size, size, C) crops of `images` centred on each ROI's bounding box (the image
    centre for an empty ROI), shifted to lie inside the image."""
    height, width = images.shape[1:3]

    def one(image, roi):
        inside = binarise(roi[..., 0])
        centre = []
        for axis, length in ((1, height), (0, width)):
            present = inside.any(axis=axis)
            positions = jnp.arange(length)
            low = jnp.min(jnp.where(present, positions, length))
            high = jnp.max(jnp.where(present, positions, -1))
            centre.append(jnp.where(present.any(), (low + high) // 2, length // 2))
        # Clipped: dynamic_slice would read a negative start from the far edge.
        start = [jnp.clip(c - size // 2, 0, length - size)
                 for c, length in zip(centre, (height, width))]
        return jax.lax.dynamic_slice(image, (start[0], start[1], 0), (size, size, image.shape[-1]))

    return jax.vmap(one)(images, rois)


class FproiGANContext(fproi_gan.FproiGAN):
    """Fproi-GAN whose F draws into a context image (see the module docstring)."""

    networks = GENERATORS + DISCRIMINATORS + (LOCAL,)

    def __init__(self, settings: ml_collections.ConfigDict, image_size: int):
        super().__init__(settings, use_rfb=True, image_size=image_size)
        self.label = "Fproi-GAN + context"
        self.margin = max(1, round(settings.erase_margin * image_size))
        self.box = max(1, round(settings.healthy_box * image_size))
        self.crop = round(settings.local_crop * image_size)
        smallest = 2 ** len(settings.discriminator_features)
        if self.crop < smallest or self.crop > image_size:
            raise ValueError(
                f"model.fproi_gan_context.local_crop={settings.local_crop} gives a "
                f"{self.crop} px crop of {image_size} px images; the local discriminator "
                f"needs {smallest} to {image_size} px")
        self.local_weight = settings.local_weight
        self.reconstruction_weight = settings.reconstruction_weight
        self.diversity_weight = settings.diversity_weight
        self.box_in_tissue = settings.healthy_box_in_tissue
        self.modules = {**self.modules, LOCAL: Discriminator(
            features=tuple(settings.discriminator_features))}

    def init_inputs(self, image_shape):
        inputs = super().init_inputs(image_shape)
        inputs["F"] = jnp.zeros((1, *image_shape, F_CHANNELS), jnp.float32)
        inputs[LOCAL] = jnp.zeros((1, self.crop, self.crop, 1), jnp.float32)
        return inputs

    def pooled_shape(self, name, image_size):
        if name == LOCAL_FAKES:
            return (self.crop, self.crop, 1)
        return super().pooled_shape(name, image_size)

    @property
    def progress_terms(self):
        return {**super().progress_terms, "dl": "dl"}

    @property
    def update_groups(self):
        return (UpdateGroup("generator", GENERATORS, self.generator_objective),
                UpdateGroup("discriminator", DISCRIMINATORS + (LOCAL,),
                            self.discriminator_objective, pooled=FAKES + (LOCAL_FAKES,)))

    @property
    def syntheses(self):
        return (Synthesis("image_synthesis", "x", ("G(x)", "F(G(x))"), self.image_synthesis,
                          given=("y", "z")),
                Synthesis("roi_synthesis", "y", ("F(y)", "G(F(y))"), self.roi_synthesis,
                          given=("x", "m", "z")))

    def erased_region(self, y, m):
        """E = dilate(max(y, m)): where F redraws the image."""
        return dilate(jnp.maximum(binarise(y), binarise(m)).astype(jnp.float32), self.margin)

    def draw(self, nets: Networks, y, x, erased, z):
        """F(y, c): x outside `erased`, F's drawing of ROI y inside it."""
        context = x * (1 - erased)
        return context + erased * nets("F", jnp.concatenate([y, context, erased, z], axis=-1))

    def healthy_boxes(self, key, index, images):
        """Per example of `images` (seeded by `index`), a box of side self.box at a random
        place: one inside the tissue (module docstring), or anywhere without
        healthy_box_in_tissue."""
        height, width = images.shape[1:3]
        box = self.box
        # Tissue share of the box at each top-left corner, from a summed-area table.
        tissue = (images[..., 0] > deform.TISSUE_THRESHOLD).astype(jnp.float32)
        table = jnp.pad(tissue.cumsum(1).cumsum(2), ((0, 0), (1, 0), (1, 0)))
        share = (table[:, box:, box:] - table[:, :-box, box:] - table[:, box:, :-box]
                 + table[:, :-box, :-box]) / box ** 2
        best = jnp.minimum(share.max(axis=(1, 2), keepdims=True), 1.0)
        allowed = share >= best - 1e-6 if self.box_in_tissue else jnp.ones_like(share, bool)

        def one(i, allowed):
            corner = jax.random.categorical(jax.random.fold_in(key, i),
                                            jnp.where(allowed, 0.0, -jnp.inf).ravel())
            top, left = corner // allowed.shape[1], corner % allowed.shape[1]
            rows, cols = jnp.arange(height)[:, None], jnp.arange(width)[None, :]
            inside = ((rows >= top) & (rows < top + box) & (cols >= left) & (cols < left + box))
            return inside[..., None].astype(jnp.float32)

        return jax.vmap(one)(index, allowed)

    def generator_objective(self, gen_params, params, batch_stats, batch, earlier, rng):
        del earlier
        if "index" not in batch:
            raise KeyError(f"{self.label} draws its noise and healthy boxes per example: the "
                           f"batch needs 'index', given only {sorted(batch)}")
        noise_key, other_noise_key, box_key, net_key = jax.random.split(rng, 4)
        nets = Networks(self.modules, {**params, **gen_params}, batch_stats, True, net_key,
                        self.compute_dtype)
        x, y, index = batch["image"], batch["roi"], batch["index"]
        shape = x.shape[1:3]
        erased = self.erased_region(y, self.healthy_boxes(box_key, index, x))
        z = self.example_noise(noise_key, index, shape)
        f_y = self.draw(nets, y, x, erased, z)
        g_f_y = self.to_roi(nets, f_y, y)
        g_x = self.to_roi(nets, x, y)
        f_g_x = self.draw(nets, g_x, x, erased, z)
        local = crop_at_roi(f_y, y, self.crop)
        inside = lambda a: per_erased_pixel(a, erased)  # noqa: E731
        terms = {
            "g_adversarial": losses.generator_adversarial_loss(nets("Dy", g_x), self.gan_mode),
            "f_adversarial": losses.generator_adversarial_loss(nets("Dx", f_y), self.gan_mode),
            "f_local_adversarial": losses.generator_adversarial_loss(nets(LOCAL, local),
                                                                     self.gan_mode),
            "cycle_image": losses.cycle_loss(f_g_x, x),
            "cycle_roi": losses.cycle_loss(g_f_y, y),
            "reconstruction": inside(jnp.abs(f_y - x)).mean(),
        }
        total = (terms["g_adversarial"] + terms["f_adversarial"]
                 + self.local_weight * terms["f_local_adversarial"]
                 + self.cycle_weight * (terms["cycle_image"] + terms["cycle_roi"])
                 + self.reconstruction_weight * terms["reconstruction"])
        if self.diversity_weight:
            other_z = self.example_noise(other_noise_key, index, shape)
            other = self.draw(nets, y, x, erased, other_z)
            terms["diversity"] = (jnp.abs(z - other_z).mean((1, 2, 3))
                                  / (inside(jnp.abs(f_y - other)) + 1e-5)).mean()
            total = total + self.diversity_weight * terms["diversity"]
        return total, (terms, {"images": f_y, "rois": g_x, LOCAL_FAKES: local},
                       nets.batch_stats)

    def discriminator_objective(self, disc_params, params, batch_stats, batch, earlier, rng):
        total, (terms, outputs, batch_stats) = super().discriminator_objective(
            disc_params, params, batch_stats, batch, earlier, rng)
        nets = Networks(self.modules, {**params, **disc_params}, batch_stats, True, rng,
                        self.compute_dtype)
        real = nets(LOCAL, crop_at_roi(batch["image"], batch["roi"], self.crop))
        terms = {**terms, "dl": losses.discriminator_loss(real, nets(LOCAL, earlier[LOCAL_FAKES]),
                                                          self.gan_mode)}
        return total + terms["dl"], (terms, outputs, nets.batch_stats)

    def image_synthesis(self, variables, x, y, z):
        """x -> (G(x~), F(G(x~), c)), c = x with dilate(y) erased (y the real ROI)."""
        nets = self._eval_networks(variables)
        g_x = self.to_roi(nets, x, y)
        return g_x, self.draw(nets, g_x, x, self.erased_region(y, jnp.zeros_like(y)), z)

    def roi_synthesis(self, variables, y, x, m, z):
        """y drawn into x (with dilate(max(y, m)) erased) -> (F(y, c), G(F(y, c)~)).
        An empty y over a region m asks for healthy tissue there."""
        nets = self._eval_networks(variables)
        f_y = self.draw(nets, y, x, self.erased_region(y, m), z)
        return f_y, self.to_roi(nets, f_y, y)


ENTRY = Entry("fproi_gan_context", "fproi_gan_context", default_config, FproiGANContext)
