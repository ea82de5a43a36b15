"""The synthesis methods of the paper's comparison, found by name (`config.model.name`).

Each method's settings live under `config.model.<key>` with the defaults of its module;
the no-RFB ablation shares Fproi-GAN's settings, so it differs from it by the RFB alone.
Adding a method: one module with `default_config()` and a `Method` subclass, one line in
each table below.
"""
import functools

import ml_collections

from fproi_jax.methods import cycle_gan, dcgan, fproi_gan, pix2pix
from fproi_jax.methods.base import COMPUTE_DTYPES, Method

# name -> (key of its settings under config.model, factory(settings, image_size) -> Method)
REGISTRY = {
    "fproi_gan": ("fproi_gan", functools.partial(fproi_gan.FproiGAN.from_config, use_rfb=True)),
    "fproi_gan_no_rfb": ("fproi_gan",
                         functools.partial(fproi_gan.FproiGAN.from_config, use_rfb=False)),
    "cycle_gan": ("cycle_gan", cycle_gan.CycleGAN.from_config),
    "pix2pix": ("pix2pix", pix2pix.Pix2Pix.from_config),
    "dcgan": ("dcgan", dcgan.DCGAN.from_config),
}
# The methods with 3x3 stride-2 transposed convolutions, whose alignment changed in
# ALIGNMENT_COMMIT; their configs from before it (they lack model.fproi_gan.
# generator_upsample, added just after) are refused.
ALIGNMENT_COMMIT = "230de02"
REALIGNED = ("fproi_gan", "fproi_gan_no_rfb", "cycle_gan")
DEFAULT_SETTINGS = {
    "fproi_gan": fproi_gan.default_config,
    "cycle_gan": cycle_gan.default_config,
    "pix2pix": pix2pix.default_config,
    "dcgan": dcgan.default_config,
}


def model_config(name: str = "fproi_gan") -> ml_collections.ConfigDict:
    """config.model: the method's name and every method's default settings."""
    config = ml_collections.ConfigDict({"name": name})
    for key, defaults in DEFAULT_SETTINGS.items():
        config[key] = defaults()
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
    if name in REALIGNED and "generator_upsample" not in config.model.fproi_gan:
        raise ValueError(
            f"this {name} run was written before its 3x3 transposed convolutions were aligned "
            f"with PyTorch's (fproi-jax commit {ALIGNMENT_COMMIT}): with this code its "
            f"parameters would compute every upsampled map one pixel off. Retrain it, or "
            f"evaluate it with a checkout from before that commit.")
    key, factory = REGISTRY[name]
    method = factory(config.model[key], config.data.image_size)
    method.compute_dtype = COMPUTE_DTYPES[dtype]
    return method
