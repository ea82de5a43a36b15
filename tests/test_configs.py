"""The experiment configs: the paper's are faithful to it, the demo's departures are explicit."""
import importlib

import pytest


@pytest.mark.parametrize("name", ["base", "brats", "inbreast", "paper_brats", "paper_inbreast"])
def test_paper_configs_have_no_augmentation(name):
    config = importlib.import_module(f"configs.{name}").get_config()
    assert not any(config.data.augment.values()), f"configs/{name}.py augments: the paper does not"


def test_demo_config_flips():
    from configs import demo

    assert demo.get_config().data.augment.to_dict() == {"flip": True, "rot90": False}


@pytest.mark.parametrize("name", ["paper_brats", "paper_inbreast"])
def test_paper_comparison_configs_train_every_method_with_three_seeds(name):
    from fproi_jax.methods import COMPARISON

    config = importlib.import_module(f"configs.{name}").get_config()
    assert tuple(config.experiment.methods) == COMPARISON and config.experiment.seeds == 3
    train = config.train
    assert (train.learning_rate, train.adam_b1, train.adam_b2, train.num_epochs) == (
        2e-4, 0.9, 0.999, 300)


def test_paper_demo_config_halves_every_method():
    from configs import paper_demo

    config = paper_demo.get_config()
    assert config.experiment.seeds == 3 and config.data.image_size == 64
    assert config.model.cycle_gan.generator_width == 16
    assert config.model.pix2pix.discriminator_width == 16
    assert tuple(config.model.dcgan.generator_features) == (16, 32, 64, 128)
