"""What a synthesis method declares; the train step, state, export and evaluation ask it.

Every method of the paper's comparison is two generators and two discriminators, each with
its own optimizer:

    G:  X -> Y  (image -> ROI)          Dx: real vs synthesized images
    F:  Y -> X  (ROI -> image)          Dy: real vs synthesized ROIs

and two objectives, differentiated from the same state in this order: the generators'
(which also returns the step's synthesized samples) and the discriminators' (on those
samples, through the image pools when `pool_size` > 0). A method declares:

- `init`: fresh parameters per network, and BatchNorm statistics where a network has them;
- `generator_objective`, `discriminator_objective`: pure functions the sharded step
  differentiates and reduces;
- `image_synthesis` (x -> ROI -> x-hat) and `roi_synthesis` (y -> image -> y-hat), used by
  evaluation, synthesis and the sample grids, on `variables` = {'params', 'batch_stats'}
  holding at least the generators;
- `label` (its name in tables), `pool_size`, `export_networks` (what an export keeps).

`compute_dtype` (set by `get_method` from `config.train.compute_dtype`) is the dtype the
training objectives run their networks in; see `Networks`.
"""
import abc
from typing import Any

import jax
import jax.numpy as jnp

# config.train.compute_dtype -> the dtype the training networks compute in.
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

GENERATORS = ("G", "F")
DISCRIMINATORS = ("Dx", "Dy")
NETWORKS = GENERATORS + DISCRIMINATORS
# The images of both synthesis paths in reading order (pytree utilities sort dict keys).
CYCLE_NAMES = ("x", "G(x)", "F(G(x))", "y", "F(y)", "G(F(y))")


def _lookup(tree: dict, path: str):
    for key in path.split("/"):
        tree = tree[key]
    return tree


class Networks:
    """Applies a method's Flax modules by path ('F', 'G/rfb'), threading BatchNorm statistics.

    `modules` maps paths to modules; parameters and statistics are looked up at the same
    path in `params` and `batch_stats`. A module with statistics is called with `train=`:
    in training mode it normalises with batch statistics and its running averages are
    updated in call order (as every PyTorch forward pass does), and dropout draws a fresh
    key per call from `rng`; in evaluation mode it uses the running averages and no dropout.

    Mixed precision: with `compute_dtype` (e.g. bfloat16; the training objectives pass the
    method's, evaluation passes none) each call casts the module's floating-point
    parameters and inputs to it and its floating-point outputs back to float32. So the
    convolutions and activations inside run in `compute_dtype`, while the parameters, their
    gradients (the cast's transpose casts back) and the optimizer states stay float32, and
    the losses, computed on the float32 outputs, are float32. BatchNorm statistics are
    passed and kept uncast: flax's BatchNorm and InstanceNorm (flax 0.12,
    `force_float32_reductions=True` by default) compute means and variances in float32 for
    bfloat16 inputs, normalise in float32, and update float32 running averages.
    """

    def __init__(self, modules: dict, params: dict, batch_stats: dict, train: bool,
                 rng: jax.Array | None = None, compute_dtype=None):
        self.modules, self.params, self.batch_stats = modules, params, batch_stats
        self.train, self.rng, self.compute_dtype = train, rng, compute_dtype

    def _cast(self, tree, dtype):
        floating = lambda x: jnp.issubdtype(jnp.result_type(x), jnp.floating)  # noqa: E731
        return jax.tree.map(lambda x: x.astype(dtype) if floating(x) else x, tree)

    def __call__(self, path: str, *inputs):
        if self.compute_dtype is None or jnp.dtype(self.compute_dtype) == jnp.float32:
            return self._apply(path, _lookup(self.params, path), inputs)
        params = self._cast(_lookup(self.params, path), self.compute_dtype)
        out = self._apply(path, params, self._cast(inputs, self.compute_dtype))
        return self._cast(out, jnp.float32)

    def _apply(self, path: str, params, inputs):
        module = self.modules[path]
        variables = {"params": params}
        if path not in self.batch_stats:
            return module.apply(variables, *inputs)
        variables["batch_stats"] = self.batch_stats[path]
        if not self.train:
            return module.apply(variables, *inputs, train=False)
        self.rng, key = jax.random.split(self.rng)
        out, updated = module.apply(variables, *inputs, train=True, mutable=["batch_stats"],
                                    rngs={"dropout": key})
        self.batch_stats = {**self.batch_stats, path: updated["batch_stats"]}
        return out


def init_networks(modules: dict, rng: jax.Array, inputs: dict) -> tuple[dict, dict]:
    """(params, batch_stats) of `modules` ({path: module}) initialised on `inputs` ({path:
    example input}), one key per module in the order given."""
    params, batch_stats = {}, {}
    for key, (path, module) in zip(jax.random.split(rng, len(modules)), modules.items()):
        variables = module.init(key, inputs[path])
        params = _nest(params, path, variables["params"])
        if "batch_stats" in variables:
            batch_stats[path] = variables["batch_stats"]
    return params, batch_stats


def _nest(tree: dict, path: str, value) -> dict:
    head, _, rest = path.partition("/")
    if not rest:
        return {**tree, head: value}
    return {**tree, head: _nest(tree.get(head, {}), rest, value)}


class Method(abc.ABC):
    """The interface of a synthesis method (see the module docstring)."""

    label: str = ""
    pool_size: int = 0
    export_networks: tuple = GENERATORS
    compute_dtype = jnp.float32  # of the training networks (Networks); get_method sets it

    @abc.abstractmethod
    def init(self, rng: jax.Array, image_shape) -> tuple[dict, dict]:
        """(params {network: tree}, batch_stats {module path: tree}) for (H, W) images."""

    @abc.abstractmethod
    def generator_objective(self, gen_params: dict, params: dict, batch_stats: dict,
                            batch: dict, rng: jax.Array) -> tuple[jax.Array, Any]:
        """-> (total, (terms, fakes {'images', 'rois'}, batch_stats)); differentiated in
        gen_params ({'G', 'F'}), the rest of `params` held fixed."""

    @abc.abstractmethod
    def discriminator_objective(self, disc_params: dict, params: dict, batch_stats: dict,
                                batch: dict, fakes: dict, rng: jax.Array):
        """-> (total, (terms, batch_stats)); differentiated in disc_params ({'Dx', 'Dy'})."""

    @abc.abstractmethod
    def image_synthesis(self, variables: dict, x, y) -> tuple[jax.Array, jax.Array]:
        """x -> (synthesized ROI, reconstructed image x-hat); y is the real ROI."""

    @abc.abstractmethod
    def roi_synthesis(self, variables: dict, y) -> tuple[jax.Array, jax.Array]:
        """y -> (synthesized image, reconstructed ROI y-hat)."""

    def cycles(self, variables: dict, x, y) -> dict:
        """Both synthesis paths by name (CYCLE_NAMES), for sample grids."""
        g_x, f_g_x = self.image_synthesis(variables, x, y)
        f_y, g_f_y = self.roi_synthesis(variables, y)
        return {"x": x, "G(x)": g_x, "F(G(x))": f_g_x, "y": y, "F(y)": f_y, "G(F(y))": g_f_y}

    def export_variables(self, params: dict, batch_stats: dict) -> dict:
        """The {'params', 'batch_stats'} of `export_networks`: what inference needs."""
        keep = lambda path: path.split("/")[0] in self.export_networks  # noqa: E731
        return {"params": {k: v for k, v in params.items() if keep(k)},
                "batch_stats": {k: v for k, v in batch_stats.items() if keep(k)}}
