"""The dataset registry: each dataset's facts, and the one list of what `python -m
data_builders` builds."""
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import REPO
from data_builders import registry


def test_every_dataset_is_its_builders_tfds_name():
    for name, dataset in registry.DATASETS.items():
        assert dataset.builder.name == name
    for name in registry.BUILDABLE:  # registered: tfds.data_source finds them by name
        assert tfds.builder_cls(name) is registry.DATASETS[name].builder
        assert registry.DATASETS[name].phantom
    assert registry.BUILDABLE == ("brats2017", "inbreast")


def test_the_facts_of_an_example_of_each_dataset():
    brats = {"case_id": b"Brats17_TCIA_105_1", "slice_index": np.int32(90),
             "patient_id": b"Brats17_TCIA_105", "grade": np.int64(1)}
    dataset = registry.get("brats2017")
    assert dataset.example_id(brats, 7) == "Brats17_TCIA_105_1/90"
    assert dataset.patient_id(brats, 7) == "Brats17_TCIA_105"
    assert dataset.groups[dataset.group(brats)] == "LGG"
    assert dataset.groups == ("HGG", "LGG") and dataset.source_slice_size == 240

    mass = {"file_id": b"22678622", "patient_id": b"ab12", "birads": b"4a"}
    dataset = registry.get("inbreast")
    assert dataset.example_id(mass, 3) == "22678622/3"  # one example per mass of a file
    assert dataset.patient_id(mass, 3) == "ab12"
    assert dataset.group(mass) == registry.NO_GROUP and dataset.groups == ()
    assert dataset.source_slice_size is None

    pair = {"source_id": b"brats2017/Brats17_TCIA_105_1/90", "patient_id": b"Brats17_TCIA_105",
            "grade": np.int32(-1), "case_id": b"", "slice_index": np.int32(-1),
            "context_id": b"", "sample": np.int32(1)}
    dataset = registry.get("synthetic_pairs")
    assert dataset.example_id(pair, 0) == "brats2017/Brats17_TCIA_105_1/90/1"
    assert dataset.group(pair) == registry.NO_GROUP  # a mask file's or INbreast's source

    generic = registry.get("my_pairs")  # not listed: ids are positions, no groups
    assert generic.example_id({}, 5) == "5" and generic.patient_id({}, 5) == "5"
    assert generic.group({}) == registry.NO_GROUP


def test_the_source_slice_size_is_the_builds_else_the_releases():
    brats = registry.get("brats2017")
    assert brats.slice_size({"source_slice_size": 48}) == 48  # a phantom's build
    assert brats.slice_size({"examples": {}}) == 240  # a build from before it was recorded
    assert brats.slice_size({"source_slice_size": None}) is None  # volumes of several sizes
    assert registry.get("inbreast").slice_size({}) is None
    assert registry.get("synthetic_pairs").slice_size(None) is None  # no metadata at all


def test_an_example_without_an_id_field_names_the_dataset_and_the_field():
    with pytest.raises(ValueError, match="brats2017: an example without the feature "
                                         "'slice_index' \\(it has case_id, patient_id\\)"):
        registry.get("brats2017").example_id({"case_id": b"c", "patient_id": b"p"}, 0)


def test_the_build_command_builds_only_the_buildable_datasets(tmp_path):
    """(Through the command: data_builders.__main__ defines absl flags that would clash
    with those of other test modules in this process.)"""
    result = subprocess.run(
        [sys.executable, "-m", "data_builders", "synthetic_pairs", f"--manual_dir={tmp_path}",
         f"--data_dir={tmp_path}"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "dataset must be one of brats2017, inbreast, got 'synthetic_pairs'" in result.stderr
    assert list(tmp_path.iterdir()) == []
