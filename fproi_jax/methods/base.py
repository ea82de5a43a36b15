"""What a method declares; the train step, state, export and evaluation ask it.

A method is a set of named networks (`networks`), each with its own optimizer, trained by
its update groups (`update_groups`), in order, each step:

    UpdateGroup(name, networks, objective, pooled=())

Every group's `objective(own_params, params, batch_stats, batch, earlier, rng) -> (total,
(terms, outputs, batch_stats))` is differentiated in `own_params` (its networks) from the
same state, the other networks held fixed. BatchNorm statistics are threaded through the
groups in order; `earlier` holds the outputs of the earlier groups (gradients stopped),
those a group names in `pooled` drawn through the image pools when `pool_size` > 0. Every
network is updated by exactly one group. The step reports each group's terms and its
total as `<name>_total`. `rng` is the same on every device: a per-example draw folds in
the example's `batch['index']`, so it does not depend on how the batch is split (dropout,
in `Networks`, folds in the device). A pool entry has `pooled_shape` (an image unless the
method says otherwise).

A trained method synthesizes in the directions it declares (`syntheses`), which the
sample grids and the exported programs take in order:

    Synthesis(name, source, outputs, fn, given=())   # fn(variables, source, *given)

with inputs named in the paper's notation (INPUTS: x the image, y the ROI; m a region to
erase and z noise, for methods that draw into an image). `synthesize` calls a direction by
name on a batch of those inputs; an optional input the batch lacks (OPTIONAL: m, z) is
filled in: m with zeros (nothing more to erase), z with one draw per example seeded by
DEFAULT_NOISE_SEED and the batch's 'index' (its position in the batch without one). Not
z = 0: a field of zeros is no draw of N(0, 1) noise, and F's output there is not its mean
output (measured on the paper demo: Fproi-GAN + context filled erased healthy tissue
white at z = 0, with the tissue's brightness at a draw). `reads` tells
which inputs a direction sees, `example_noise` is the noise z of one that reads it,
seeded per example. Evaluation,
synthesis and classification score the two directions of the paired methods
(methods/paired.py) and call them by name. It also
declares `init` (fresh parameters per network, and BatchNorm statistics where a network
has them), `label` (its name in tables), `export_networks` (what an export keeps; all its
networks unless it says otherwise) and `progress_terms` (the metrics its progress bar
shows). A method module registers it with an `Entry` (methods/__init__.py).

`compute_dtype` (set by `get_method` from `config.train.compute_dtype`) is the dtype the
training objectives run their networks in; see `Networks`.
"""
import abc
import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from fproi_jax.mesh import DATA_AXIS

# config.train.compute_dtype -> the dtype the training networks compute in.
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# The paper's names of the batch entries a synthesis reads.
INPUTS = {"x": "image", "y": "roi", "m": "erase", "z": "noise"}
# Inputs a batch may lack: m zeros of the source's shape (nothing more to erase), z a seeded
# draw per example (the module docstring).
OPTIONAL = ("m", "z")
DEFAULT_NOISE_SEED = 0


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
    key per call from `rng` (the train step's, equal on every device) with the device's
    index folded in, so devices drop different units; in evaluation mode it uses the
    running averages and no dropout.

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
        key = jax.random.fold_in(key, jax.lax.axis_index(DATA_AXIS))
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


@dataclasses.dataclass(frozen=True)
class UpdateGroup:
    """Networks updated together from one objective (see the module docstring)."""
    name: str                      # its total is reported as f"{name}_total"
    networks: tuple[str, ...]      # the networks its objective is differentiated in
    objective: Callable[..., tuple[jax.Array, Any]]
    pooled: tuple[str, ...] = ()   # earlier outputs it sees through the image pools


@dataclasses.dataclass(frozen=True)
class Synthesis:
    """A direction a trained method synthesizes in: fn(variables, source, *given) -> outputs."""
    name: str                      # its exported program: <name>.jaxexport
    source: str                    # the input it maps (INPUTS): 'x'
    outputs: tuple[str, ...]       # what fn returns, in order: ('G(x)', 'F(G(x))')
    fn: Callable[..., tuple[jax.Array, ...]]
    given: tuple[str, ...] = ()    # further inputs fn sees: ('y',) for Fproi-GAN's RFB


@dataclasses.dataclass(frozen=True)
class Entry:
    """A method's line in the registry: `factory(config.model[settings_key], image_size)`."""
    name: str                      # config.model.name
    settings_key: str              # its settings: config.model.<settings_key>
    default_config: Callable[[], ml_collections.ConfigDict]
    factory: Callable[[ml_collections.ConfigDict, int], "Method"]
    # Its 3x3 transposed convolutions were aligned with PyTorch's at ALIGNMENT_COMMIT
    # (methods/__init__.py): its configs from before are refused.
    realigned: bool = False


class Method(abc.ABC):
    """The interface of a method (see the module docstring)."""

    networks: tuple[str, ...]      # declared by every method
    label: str = ""
    pool_size: int = 0
    compute_dtype = jnp.float32  # of the training networks (Networks); get_method sets it

    @abc.abstractmethod
    def init(self, rng: jax.Array, image_shape) -> tuple[dict, dict]:
        """(params {network: tree}, batch_stats {module path: tree}) for (H, W) images."""

    @property
    @abc.abstractmethod
    def update_groups(self) -> tuple[UpdateGroup, ...]:
        """The groups of networks updated each step, in order."""

    @property
    @abc.abstractmethod
    def syntheses(self) -> tuple[Synthesis, ...]:
        """The directions it synthesizes in, in reading order."""

    @property
    def export_networks(self) -> tuple[str, ...]:
        return self.networks

    def pooled_shape(self, name: str, image_size: int) -> tuple[int, ...]:
        """The shape of one entry of the image pool of output `name`: an image by default."""
        del name
        return (image_size, image_size, 1)

    @property
    def progress_terms(self) -> dict:
        """{label: metric} shown by the progress bar; by default each group's total."""
        return {group.name: f"{group.name}_total" for group in self.update_groups}

    @property
    def pooled(self) -> tuple[str, ...]:
        """The outputs kept in image pools (when pool_size > 0), in the groups' order."""
        return tuple(name for group in self.update_groups for name in group.pooled)

    @property
    def sample_names(self) -> tuple[str, ...]:
        """The columns of `samples` in reading order (pytree utilities sort dict keys)."""
        return tuple(name for s in self.syntheses for name in (s.source, *s.outputs))

    def synthesis_inputs(self, synthesis: Synthesis, batch: dict) -> list:
        """The inputs of `synthesis` from `batch`, in its order; OPTIONAL ones it lacks are
        filled in (the module docstring). A missing required input is a KeyError naming the
        batch entry."""
        inputs = []
        for name in (synthesis.source, *synthesis.given):
            if INPUTS[name] in batch:
                inputs.append(batch[INPUTS[name]])
            elif name == "z":
                source = batch[INPUTS[synthesis.source]]
                index = batch.get("index", jnp.arange(len(source)))
                inputs.append(self.example_noise(jax.random.key(DEFAULT_NOISE_SEED), index,
                                                 source.shape[1:3]))
            elif name in OPTIONAL:
                inputs.append(jnp.zeros_like(batch[INPUTS[synthesis.source]], jnp.float32))
            else:
                raise KeyError(f"{self.label}'s {synthesis.name} needs {name} (the batch "
                               f"entry {INPUTS[name]!r}), given only {sorted(batch)}")
        return inputs

    def reads(self, name: str, input_name: str) -> bool:
        """Whether the synthesis called `name` sees input `input_name` (INPUTS): 'x' for a
        method that draws into an image, 'z' for one that draws noise."""
        synthesis = {s.name: s for s in self.syntheses}[name]
        return input_name in (synthesis.source, *synthesis.given)

    @staticmethod
    def example_noise(key, index, image_shape):
        """The noise z of a method that reads it: N(0, 1) per pixel, one (H, W, 1) field per
        example, seeded by (key, index)."""
        return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i),
                                                    (*image_shape, 1)))(index)

    def synthesize(self, name: str, variables: dict, batch: dict) -> tuple:
        """The outputs of the synthesis called `name` on `batch` (entries named by INPUTS)."""
        synthesis = {s.name: s for s in self.syntheses}[name]
        return synthesis.fn(variables, *self.synthesis_inputs(synthesis, batch))

    def samples(self, variables: dict, batch: dict) -> dict:
        """Every synthesis of `batch` ({'image', 'roi'}) and its source, by name, for the
        sample grids."""
        out = {}
        for synthesis in self.syntheses:
            inputs = self.synthesis_inputs(synthesis, batch)
            out[synthesis.source] = inputs[0]
            out.update(zip(synthesis.outputs, synthesis.fn(variables, *inputs)))
        return out

    def export_variables(self, params: dict, batch_stats: dict) -> dict:
        """The {'params', 'batch_stats'} of `export_networks`: what inference needs."""
        keep = lambda path: path.split("/")[0] in self.export_networks  # noqa: E731
        return {"params": {k: v for k, v in params.items() if keep(k)},
                "batch_stats": {k: v for k, v in batch_stats.items() if keep(k)}}
