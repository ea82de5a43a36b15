"""Fproi-GAN on INbreast mass crops (paper section 3.1)."""
from configs import base


def get_config():
    config = base.get_config()
    config.data.name = "inbreast"
    config.data.builder_config = ""
    return config
