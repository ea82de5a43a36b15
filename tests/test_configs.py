"""The experiment configs: the paper's are faithful to it, the demo's departures are explicit."""
import importlib

import pytest


@pytest.mark.parametrize("name", ["base", "brats", "inbreast"])
def test_paper_configs_have_no_augmentation(name):
    config = importlib.import_module(f"configs.{name}").get_config()
    assert not any(config.data.augment.values()), f"configs/{name}.py augments: the paper does not"


def test_demo_config_flips():
    from configs import demo

    assert demo.get_config().data.augment.to_dict() == {"flip": True, "rot90": False}
