"""The shape of every method of the paper's comparison: two generators, two discriminators.

    G:  X -> Y  (image -> ROI)          Dx: real vs synthesized images
    F:  Y -> X  (ROI -> image)          Dy: real vs synthesized ROIs

Two update groups, in this order: the generators' objective, which also returns the step's
synthesized images F(y) and ROIs G(x) (`FAKES`), then the discriminators' on those fakes,
drawn through the image pools when `pool_size` > 0. Two synthesis directions, used by
evaluation, synthesis, the exported programs and the sample grids:

    image_synthesis:  x -> (G(x), F(G(x)))   (G may also see the ROI y)
    roi_synthesis:    y -> (F(y), G(F(y)))

An export keeps the generators; the progress bar shows the generators' total and each
discriminator's loss.
"""
import abc

from fproi_jax.methods.base import Method, Synthesis, UpdateGroup

GENERATORS = ("G", "F")
DISCRIMINATORS = ("Dx", "Dy")
# The generators' outputs the discriminators judge: F(y) and G(x).
FAKES = ("images", "rois")


class PairedMethod(Method):
    """A Method of the four networks G, F, Dx, Dy (see the module docstring)."""

    networks = GENERATORS + DISCRIMINATORS
    export_networks = GENERATORS

    @property
    def progress_terms(self):
        return {"gen": "generator_total", "dx": "dx", "dy": "dy"}

    @property
    def update_groups(self):
        return (UpdateGroup("generator", GENERATORS, self.generator_objective),
                UpdateGroup("discriminator", DISCRIMINATORS, self.discriminator_objective,
                            pooled=FAKES))

    @property
    def syntheses(self):
        return (Synthesis("image_synthesis", "x", ("G(x)", "F(G(x))"), self.image_synthesis,
                          given=("y",)),
                Synthesis("roi_synthesis", "y", ("F(y)", "G(F(y))"), self.roi_synthesis))

    @abc.abstractmethod
    def generator_objective(self, gen_params: dict, params: dict, batch_stats: dict,
                            batch: dict, earlier: dict, rng):
        """-> (total, (terms, fakes {'images', 'rois'}, batch_stats)); differentiated in
        gen_params ({'G', 'F'}), the rest of `params` held fixed; `earlier` is empty."""

    @abc.abstractmethod
    def discriminator_objective(self, disc_params: dict, params: dict, batch_stats: dict,
                                batch: dict, earlier: dict, rng):
        """-> (total, (terms {'dx', 'dy', ...}, {}, batch_stats)); differentiated in
        disc_params ({'Dx', 'Dy'}) on the fakes in `earlier`."""

    @abc.abstractmethod
    def image_synthesis(self, variables: dict, x, y):
        """x -> (synthesized ROI, reconstructed image x-hat); y is the real ROI."""

    @abc.abstractmethod
    def roi_synthesis(self, variables: dict, y):
        """y -> (synthesized image, reconstructed ROI y-hat)."""
