"""Fproi-GAN on BRATS 2017 T2 slices (paper section 3.2)."""
from configs import base


def get_config():
    config = base.get_config()
    config.data.name = "brats2017"
    config.data.builder_config = "paper"
    return config
