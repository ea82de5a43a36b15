"""Input pipeline: TFDS data source -> grain -> global batches on the device mesh.

The order of examples depends on the seed only, never on the number of hosts or
devices: one seeded shuffle of the whole split (reshuffled every epoch) is cut into
global batches, and each host reads only its own contiguous slice of each global batch.
Augmentation draws from a generator seeded by (seed, position in the stream), so a run
on 1 device, on N devices or on N hosts sees the same global batches, and an iterator
restored from its checkpointed position continues the same sequence.

Evaluation reads a split once, in order, through eval_batches: each batch carries its
examples' ids, patients and group labels (data_builders.registry) with the pixels.

The training split holds only the patients of config.data.train_fraction (patient_subset.py;
1.0, all of them, by default): load_split applies it, so the GAN training, the count of its
steps and every task that reads the training split see the same patients.
"""
import os
from typing import Iterable, Iterator

import grain
import jax
import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from data_builders import registry  # importing it registers the TFDS builders
from fproi_jax.data import patient_subset
from fproi_jax.mesh import DATA_AXIS
from fproi_jax.roi import binarise

BATCH_KEYS = ("image", "roi")


class DatasetNotBuiltError(FileNotFoundError):
    """config.data names a dataset that is not built in config.data.data_dir."""


class ImageSizeError(ValueError):
    """config.data.image_size does not divide the size the dataset stores."""


def _find_built(data: ml_collections.ConfigDict):
    """(whether the dataset is built, its folder relative to data_dir as tfds expects it).

    TFDS keeps a built dataset in <data_dir>/<name>/<config>/<version>/ and writes its
    dataset_info.json last (generation goes to a temporary folder that is renamed). For a
    builder registered with that config, the version is the builder's VERSION (tfds would
    otherwise try to generate it); for anything else (a custom config, the unregistered
    synthetic_pairs) any version folder holding a dataset_info.json will do, as tfds then
    reads the dataset from its files. Only reads the file system: nothing is instantiated.
    """
    root = epath.Path(data.data_dir) / data.name
    config, version = data.builder_config, None
    try:
        cls = tfds.builder_cls(data.name)
    except tfds.core.registered.DatasetNotFoundError:
        cls = None
    if cls is not None:
        registered = {c.name: c for c in (cls.BUILDER_CONFIGS or ())}
        if not config and registered:
            config = cls.DEFAULT_BUILDER_CONFIG_NAME or next(iter(registered))
        if not registered or config in registered:
            version = str(cls.VERSION)
    folder = root / config if config else root
    if version is not None:
        candidates = [folder / version]
    else:
        candidates = list(folder.iterdir()) if folder.is_dir() else []
    built = any((c / "dataset_info.json").is_file() for c in candidates)
    expected = "/".join(filter(None, (data.name, config, version or "<version>")))
    return built, expected


def _not_built_message(data: ml_collections.ConfigDict, expected: str) -> str:
    """What is missing, where, what is there instead, and the command that builds it."""
    data_dir = epath.Path(data.data_dir)
    where = str(data_dir)
    if not data_dir.is_absolute():
        where += f" ({os.path.abspath(data_dir)})"
    others = sorted(str(info.parent.relative_to(data_dir))
                    for pattern in ("*/*/dataset_info.json", "*/*/*/dataset_info.json")
                    for info in data_dir.glob(pattern)) if data_dir.is_dir() else []
    lines = [f"Dataset {data.name!r} (config {data.builder_config or 'default'!r}) is not built "
             f"in data.data_dir={where}: no {expected}/dataset_info.json there."]
    if others:
        lines.append(f"Built there: {', '.join(others)}.")
    dataset = registry.get(data.name)
    if dataset.build_command:
        config = f" --config={data.builder_config}" if data.builder_config else ""
        lines.append("Build it from the raw release (layout: README.md, section Data) with\n"
                     f"  python -m data_builders {data.name} --manual_dir=RAW_DIR "
                     f"--data_dir={data.data_dir}{config}\n"
                     f"(no raw data at hand? `python -m data_builders.phantom "
                     f"{dataset.phantom} --out=RAW_DIR` writes a phantom)")
    else:
        lines.append("Write it there first (synthetic_pairs: launch.py --mode=synthesize writes "
                     "WORKDIR/synthetic/tfds).")
    lines.append("Or set --config.data.data_dir to the folder where it was built.")
    return "\n".join(lines)


class Subset:
    """Random access, as a TFDS data source (len, [i], dataset_info), to some examples of a
    split: those at `positions` in the whole split."""

    def __init__(self, source, positions):
        self.source, self.positions = source, np.asarray(positions, np.int64)
        self.dataset_info = source.dataset_info

    def __len__(self):
        return len(self.positions)

    def __getitem__(self, index):
        return self.source[int(self.positions[index])]


def _split_positions(source) -> np.ndarray:
    """Each example's position in its whole split (a Subset's are the chosen ones)."""
    if isinstance(source, Subset):
        return source.positions
    return np.arange(len(source))


def training_fraction(source, data: ml_collections.ConfigDict):
    """The examples of the patients of data.train_fraction (patient_subset.py) of `source`,
    the training split: `source` itself at 1.0, else a Subset."""
    fraction = patient_subset.check_fraction(data.train_fraction, "data.train_fraction")
    if fraction == 1.0:
        return source
    dataset = registry.get(data.name)
    patients = [dataset.patient_id(source[i], i) for i in range(len(source))]
    kept = patient_subset.chosen_patients(patients, fraction, data.seed)
    return Subset(source, [i for i, patient in enumerate(patients) if patient in kept])


def load_split(data: ml_collections.ConfigDict, split: str):
    """Random-access TFDS data source of one split (array_record, no TensorFlow); of the
    training split (data.train_split), only the patients of data.train_fraction.

    Raises DatasetNotBuiltError, with the command that builds it, when the dataset is not
    in data.data_dir. That is checked first, because tfds.data_source would otherwise try
    to build it: a long traceback about <data_dir>/downloads/manual, and empty downloads/
    and <name>/<config>/ folders left behind.
    """
    if not data.data_dir:
        raise DatasetNotBuiltError("data.data_dir is empty: set it to the TFDS data dir that "
                                   "`python -m data_builders` wrote")
    built, expected = _find_built(data)
    if not built:
        raise DatasetNotBuiltError(_not_built_message(data, expected))
    name = f"{data.name}/{data.builder_config}" if data.builder_config else data.name
    source = tfds.data_source(name, data_dir=data.data_dir, split=split)
    _check_image_size(data, source.dataset_info.features["image"].shape[:2])
    if split == data.train_split:
        return training_fraction(source, data)
    return source


def _check_image_size(data: ml_collections.ConfigDict, stored):
    """Stops before any example is read when data.image_size does not divide the stored
    size (examples are only ever downsampled, by area averaging; see resize_example)."""
    height, width = stored
    if height % data.image_size or width % data.image_size:
        sizes = [n for n in range(min(height, width), 0, -1)
                 if height % n == 0 and width % n == 0][:4]
        raise ImageSizeError(
            f"Dataset {data.name!r} in {data.data_dir} stores {height}x{width} images; "
            f"data.image_size={data.image_size} must divide that (examples are only "
            f"downsampled). Pass --config.data.image_size={sizes[0]} (or a divisor of it: "
            f"{', '.join(map(str, sizes[1:]))}, ...).")


def resize_example(image: np.ndarray, roi: np.ndarray, size: int):
    """Downsamples a (H, W, 1) pair by an integer factor to (size, size, 1).

    The image by area averaging; the ROI by area averaging binarised (fproi_jax.roi: above
    0.5), so it stays binary and aligned with the image.
    """
    h, w = image.shape[:2]
    if h == size and w == size:
        return image.astype(np.float32), roi.astype(np.float32)
    if h % size or w % size:
        raise ValueError(f"data.image_size={size} must divide the stored size {h}x{w}")
    fh, fw = h // size, w // size

    def area(a):
        return a.astype(np.float32).reshape(size, fh, size, fw, -1).mean(axis=(1, 3))

    return area(image), binarise(area(roi)).astype(np.float32)


def augment(image: np.ndarray, roi: np.ndarray, rng: np.random.Generator,
            cfg: ml_collections.ConfigDict):
    """Random left-right flip and rotation by a multiple of 90 degrees, identical for both.

    numpy on the host, not dm-pix on the device: each example's draw comes from `rng`,
    seeded by its position in the stream (see _ReadHostSlice), so the batches do not depend
    on the number of devices or hosts and a restored iterator repeats them; flips and
    quarter turns are index shuffles that cost nothing next to the step.
    """
    if cfg.flip and rng.random() < 0.5:
        image, roi = image[:, ::-1], roi[:, ::-1]
    if cfg.rot90:
        k = int(rng.integers(4))
        image, roi = np.rot90(image, k), np.rot90(roi, k)
    return np.ascontiguousarray(image), np.ascontiguousarray(roi)


class _ReadHostSlice:
    """Reads, resizes and augments this host's slice of one global batch of positions."""

    def __init__(self, source, data: ml_collections.ConfigDict, host_slice: slice):
        self.source, self.data, self.host_slice = source, data, host_slice

    def __call__(self, batch):
        positions, indices = batch
        images, rois = [], []
        for position, index in zip(positions[self.host_slice], indices[self.host_slice]):
            example = self.source[int(index)]
            image, roi = resize_example(example["image"], example["roi"], self.data.image_size)
            rng = np.random.default_rng((self.data.seed, int(position)))
            image, roi = augment(image, roi, rng, self.data.augment)
            images.append(image)
            rois.append(roi)
        return {"image": np.stack(images), "roi": np.stack(rois),
                "index": np.asarray(indices[self.host_slice], np.int64)}


def host_slice(global_batch_size: int) -> slice:
    """This host's contiguous share of a global batch."""
    count, index = jax.process_count(), jax.process_index()
    if global_batch_size % count:
        raise ValueError(f"batch size {global_batch_size} is not divisible by {count} hosts")
    local = global_batch_size // count
    return slice(index * local, (index + 1) * local)


def train_dataset(source, data: ml_collections.ConfigDict, global_batch_size: int):
    """Endless, seeded, per-epoch reshuffled stream of this host's batches (a grain IterDataset)."""
    order = grain.MapDataset.range(len(source)).seed(data.seed).shuffle().repeat(None)
    batches = order.map_with_index(lambda position, index: (position, index)).batch(
        global_batch_size, drop_remainder=True,
        batch_fn=lambda items: tuple(np.asarray(column) for column in zip(*items)))
    return batches.map(_ReadHostSlice(source, data,
                                      host_slice(global_batch_size))).to_iter_dataset()


def eval_batches(source, data: ml_collections.ConfigDict, batch_size: int) -> Iterator[dict]:
    """The whole split in order, in batches of at most `batch_size` (single host), each with
    everything known of its examples, so that one pass over a split serves any reader.

    A batch holds numpy arrays with one row per example: 'image' and 'roi' (resized as in
    training, not augmented), 'index' (position in the whole split), the dataset's facts
    (data_builders.registry) 'example_id' and 'patient_id' (str) and 'group' (int, the
    label of the dataset's groups, registry.NO_GROUP for none), and every other stored
    feature under its own name (text as str), e.g. brats2017's 'case_id', 'slice_index'
    and 'affine'.
    """
    dataset = registry.get(data.name)
    in_split = _split_positions(source)
    for start in range(0, len(source), batch_size):
        examples = [source[i] for i in range(start, min(start + batch_size, len(source)))]
        positions = [int(p) for p in in_split[start:start + len(examples)]]
        pairs = [resize_example(e["image"], e["roi"], data.image_size) for e in examples]
        stored = {key: np.asarray([_plain(e[key]) for e in examples])
                  for key in examples[0] if key not in BATCH_KEYS}
        yield {**stored,
               "image": np.stack([image for image, _ in pairs]),
               "roi": np.stack([roi for _, roi in pairs]),
               "index": np.asarray(positions, np.int64),
               "example_id": np.asarray([dataset.example_id(e, p)
                                         for e, p in zip(examples, positions)]),
               "patient_id": np.asarray([dataset.patient_id(e, p)
                                         for e, p in zip(examples, positions)]),
               "group": np.asarray([dataset.group(e) for e in examples], np.int64)}


def _plain(value):
    """A stored feature's value with text as str (tfds returns bytes)."""
    return value.decode() if isinstance(value, bytes) else value


def concatenate(batches: Iterable[dict]) -> dict:
    """The batches' arrays joined along the example axis, one per key: a whole split
    (of eval_batches) in memory."""
    columns = {}
    for batch in batches:
        for key, value in batch.items():
            columns.setdefault(key, []).append(value)
    return {key: np.concatenate(value) for key, value in columns.items()}


def to_global_batch(local_batch: dict, mesh: Mesh) -> dict:
    """Assembles the hosts' slices into global arrays sharded over the 'data' axis: the
    image and ROI, and each example's index in the split where the batch has it (int32;
    the seed of per-example draws, methods/base.py)."""
    sharding = NamedSharding(mesh, P(DATA_AXIS))
    arrays = {key: local_batch[key] for key in BATCH_KEYS}
    if "index" in local_batch:
        arrays["index"] = np.asarray(local_batch["index"], np.int32)
    return {key: jax.make_array_from_process_local_data(sharding, value)
            for key, value in arrays.items()}
