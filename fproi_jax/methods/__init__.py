"""The methods of the paper's comparison, found by name (`config.model.name`).

Each method module provides its `Entry` (name, settings key, default settings, factory);
REGISTRY is their one table, in the order the experiments list them; COMPARISON the
paper's five, which the experiment runs unless told otherwise. A method's settings
live under `config.model.<settings key>` with the defaults of its module. Adding a method:
one module (networks, a `Method` subclass, its `Entry`) and one line below.
"""
import ml_collections

from fproi_jax.methods import cycle_gan, dcgan, fproi_gan, fproi_gan_context, pix2pix
from fproi_jax.methods.base import COMPUTE_DTYPES, Entry, Method

REGISTRY: dict[str, Entry] = {entry.name: entry for entry in (
    fproi_gan.ENTRY,
    fproi_gan.NO_RFB_ENTRY,
    cycle_gan.ENTRY,
    pix2pix.ENTRY,
    dcgan.ENTRY,
    fproi_gan_context.ENTRY,
)}
# The paper's comparison: the default of config.experiment.methods and of `make parity`.
COMPARISON = ("fproi_gan", "fproi_gan_no_rfb", "cycle_gan", "pix2pix", "dcgan")
# The methods with 3x3 stride-2 transposed convolutions (`Entry.realigned`) changed their
# alignment in ALIGNMENT_COMMIT; their configs from before it (they lack
# model.fproi_gan.generator_upsample, added just after) are refused.
ALIGNMENT_COMMIT = "230de02"


def model_config(name: str = "fproi_gan") -> ml_collections.ConfigDict:
    """config.model: the method's name and every method's default settings."""
    config = ml_collections.ConfigDict({"name": name})
    for entry in REGISTRY.values():
        if entry.settings_key not in config:
            config[entry.settings_key] = entry.default_config()
    return config


def get_method(config: ml_collections.ConfigDict) -> Method:
    """The method of a run config (config.model.name), built for config.data.image_size,
    training its networks in config.train.compute_dtype (float32 for configs saved before
    the option existed)."""
    name = config.model.name
    if name not in REGISTRY:
        raise ValueError(f"config.model.name={name!r} is not a method; choose one of "
                         f"{', '.join(REGISTRY)}")
    dtype = config.train.get("compute_dtype", "float32") if "train" in config else "float32"
    if dtype not in COMPUTE_DTYPES:
        raise ValueError(f"config.train.compute_dtype={dtype!r} is not supported; choose one "
                         f"of {', '.join(COMPUTE_DTYPES)}")
    entry = REGISTRY[name]
    if entry.realigned and "generator_upsample" not in config.model.fproi_gan:
        raise ValueError(
            f"this {name} run was written before its 3x3 transposed convolutions were aligned "
            f"with PyTorch's (fproi-jax commit {ALIGNMENT_COMMIT}): with this code its "
            f"parameters would compute every upsampled map one pixel off. Retrain it, or "
            f"evaluate it with a checkout from before that commit.")
    method = entry.factory(config.model[entry.settings_key], config.data.image_size)
    method.compute_dtype = COMPUTE_DTYPES[dtype]
    return method
