"""grain pipeline: batches, seeded order, identical augmentation, resume, mesh sharding."""
import itertools
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from conftest import REPO
from fproi_jax import metrics
from fproi_jax.data import pipeline
from fproi_jax.mesh import data_mesh


def _take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_train_batches_shapes_values_and_binary_roi(tiny_brats):
    source = pipeline.load_split(tiny_brats, "train")
    batch = next(iter(pipeline.train_dataset(source, tiny_brats, 4)))
    assert batch["image"].shape == batch["roi"].shape == (4, 32, 32, 1)
    assert batch["image"].dtype == batch["roi"].dtype == np.float32
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert set(np.unique(batch["roi"])) <= {0.0, 1.0}


def test_order_is_seeded_covers_each_epoch_and_reshuffles(tiny_brats):
    source = pipeline.load_split(tiny_brats, "train")
    n = len(source)
    data = tiny_brats.copy_and_resolve_references()
    data.augment.flip = False

    def indices(seed, batches):
        data.seed = seed
        it = iter(pipeline.train_dataset(source, data, 1))
        return [int(b["index"][0]) for b in _take(it, batches)]

    first = indices(0, 2 * n)
    assert first == indices(0, 2 * n)
    assert sorted(first[:n]) == sorted(first[n:]) == list(range(n))
    assert first[:n] != first[n:]
    assert first != indices(1, 2 * n)


def test_augmentation_flips_image_and_roi_together(tiny_brats):
    source = pipeline.load_split(tiny_brats, "train")
    data = tiny_brats.copy_and_resolve_references()
    data.augment.flip, data.augment.rot90 = True, True
    batches = _take(iter(pipeline.train_dataset(source, data, 2)), 6)
    transformed = 0
    for batch in batches:
        for image, roi, index in zip(batch["image"], batch["roi"], batch["index"]):
            example = source[int(index)]
            plain_image, plain_roi = pipeline.resize_example(example["image"], example["roi"], 32)
            # Find the flip/rotation that maps the stored image to the served one...
            matches = [(f, k) for f, k in itertools.product((False, True), range(4))
                       if np.array_equal(np.rot90(plain_image[:, ::-1] if f else plain_image, k),
                                         image)]
            assert matches
            # ...and check that the ROI underwent the same one.
            f, k = matches[0]
            np.testing.assert_array_equal(np.rot90(plain_roi[:, ::-1] if f else plain_roi, k), roi)
            transformed += (f, k) != (False, 0)
    assert transformed > 0


def test_resize_keeps_roi_binary_and_aligned():
    image = np.zeros((8, 8, 1), np.float32)
    roi = np.zeros((8, 8, 1), np.uint8)
    image[2:6, 2:6], roi[2:6, 2:6] = 1.0, 1
    small_image, small_roi = pipeline.resize_example(image, roi, 4)
    np.testing.assert_array_equal(small_roi[..., 0], [[0, 0, 0, 0], [0, 1, 1, 0],
                                                      [0, 1, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(small_image[..., 0], small_roi[..., 0])
    with pytest.raises(ValueError, match="image_size=3 must divide"):
        pipeline.resize_example(image, roi, 3)


def test_resize_puts_half_covered_pixels_where_the_metrics_do():
    """A 2x2 block half inside the ROI averages to exactly 0.5: background, as Dice sees it."""
    roi = np.zeros((4, 4, 1), np.uint8)
    roi[0, :2] = roi[2:, 2:] = 1          # top-left block half covered, bottom-right full
    _, small = pipeline.resize_example(np.zeros((4, 4, 1), np.float32), roi, 2)
    np.testing.assert_array_equal(small[..., 0], [[0, 0], [0, 1]])
    assert float(metrics.dice(small[None], np.full((1, 2, 2, 1), 0.5, np.float32))[0]) == 0.0


def test_iterator_resumes_the_same_sequence(tiny_brats):
    source = pipeline.load_split(tiny_brats, "train")
    iterator = iter(pipeline.train_dataset(source, tiny_brats, 2))
    _take(iterator, 5)
    saved = iterator.get_state()
    expected = _take(iterator, 7)
    resumed = iter(pipeline.train_dataset(source, tiny_brats, 2))
    resumed.set_state(saved)
    for want, got in zip(expected, _take(resumed, 7)):
        for key in want:
            np.testing.assert_array_equal(want[key], got[key])


def test_global_batch_is_sharded_over_four_devices(tiny_brats):
    assert jax.device_count() == 4
    mesh = data_mesh()
    source = pipeline.load_split(tiny_brats, "train")
    local = next(iter(pipeline.train_dataset(source, tiny_brats, 8)))
    batch = pipeline.to_global_batch(local, mesh)
    assert set(batch) == {"image", "roi", "index"}
    for key, array in batch.items():
        assert array.shape == ((8,) if key == "index" else (8, 32, 32, 1))
        assert array.sharding.is_equivalent_to(NamedSharding(mesh, P("data")), 4)
        shards = sorted(array.addressable_shards, key=lambda s: s.index[0].start)
        assert [s.data.shape[0] for s in shards] == [2, 2, 2, 2]
        np.testing.assert_array_equal(np.concatenate([np.asarray(s.data) for s in shards]),
                                      local[key])


def test_eval_batches_cover_the_split_in_order_with_the_facts_of_each_example(tiny_brats):
    source = pipeline.load_split(tiny_brats, "train")
    batches = list(pipeline.eval_batches(source, tiny_brats, 3))
    np.testing.assert_array_equal(np.concatenate([b["index"] for b in batches]),
                                  np.arange(len(source)))
    assert all(len(b["image"]) <= 3 for b in batches)
    assert all(len(value) == len(b["image"]) for b in batches for value in b.values())
    split = pipeline.concatenate(batches)
    examples = [source[i] for i in range(len(source))]
    assert list(split["example_id"]) == [f"{e['case_id'].decode()}/{e['slice_index']}"
                                         for e in examples]
    assert list(split["patient_id"]) == [e["patient_id"].decode() for e in examples]
    assert list(split["group"]) == [int(e["grade"]) for e in examples]
    assert set(split["group"]) == {0, 1}  # both grades in this split
    # the other stored features, text as str
    assert list(split["case_id"]) == [e["case_id"].decode() for e in examples]
    np.testing.assert_array_equal(split["slice_index"], [e["slice_index"] for e in examples])
    np.testing.assert_array_equal(split["affine"], [e["affine"] for e in examples])


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("name, config, folder, command, phantom", [
    ("brats2017", "paper", "brats2017/paper/1.1.0",
     "python -m data_builders brats2017 --manual_dir=RAW_DIR --data_dir={} --config=paper",
     "brats"),
    ("inbreast", "", "inbreast/paper/1.0.0",  # the builder's default config
     "python -m data_builders inbreast --manual_dir=RAW_DIR --data_dir={}\n", "inbreast"),
])
def test_a_dataset_not_built_stops_with_the_build_command_and_creates_nothing(
        tmp_path, name, config, folder, command, phantom):
    (tmp_path / "tfds").mkdir()
    before = _tree(tmp_path)
    data = ml_collections.ConfigDict({"name": name, "builder_config": config,
                                      "data_dir": str(tmp_path / "tfds")})
    with pytest.raises(pipeline.DatasetNotBuiltError) as error:
        pipeline.load_split(data, "train")
    message = str(error.value)
    assert f"Dataset {name!r}" in message and f"data_dir={tmp_path / 'tfds'}" in message
    assert f"no {folder}/dataset_info.json" in message
    assert command.format(tmp_path / "tfds") in message
    assert f"`python -m data_builders.phantom {phantom} --out=RAW_DIR` writes a phantom" in message
    assert len(message.splitlines()) <= 6
    assert _tree(tmp_path) == before  # no downloads/ or <name>/<config>/ left behind


def test_a_dataset_not_built_names_what_is_built_there(tiny_brats):
    data = tiny_brats.copy_and_resolve_references()
    data.builder_config = "all_tumour_slices"
    with pytest.raises(pipeline.DatasetNotBuiltError, match="Built there: brats2017/tiny32/1.1.0"):
        pipeline.load_split(data, "train")


def test_launch_prints_the_missing_dataset_in_a_few_lines(tmp_path):
    result = subprocess.run(
        [sys.executable, "launch.py", "--config=configs/brats.py", f"--workdir={tmp_path / 'run'}",
         f"--config.data.data_dir={tmp_path / 'tfds'}", "--config.train.batch_size=4"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("FATAL Dataset 'brats2017' (config 'paper') is not built")
    assert "python -m data_builders brats2017" in result.stderr
    assert list(tmp_path.iterdir()) == []
