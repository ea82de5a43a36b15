"""Synthetic paired data: ROI synthesis (paper Fig. 2c ii) y -> F(y) -> G(F(y)~), exported.

For every input ROI y (the test split's ROIs, or the masks of eval.mask_dir) the synthetic
pair is the new image F(y) and the ROI re-synthesized from it, G(concat(F(y), RFB(F(y)*y)))
binarised at 0.5: the paper's "paired images" (the ROI that the generators agree belongs to
the new image, not the one it was asked for).

A method that draws into an image (Method.reads('roi_synthesis', 'x'): fproi_gan_context)
draws each y into a context, and its pair is (the new image, y as asked for). Contexts,
eval.context:
  "test" (or ""): the test split's slices: a test ROI into its own slice (nothing else
      erased); mask files into the test slices cycled in order, each mask moved to a
      seeded random place inside that slice's tissue off its lesion (data/deform.place_roi),
      the lesion erased too (m), and the pair takes the slice's patient, ids and affine;
  "healthy": the tumour-free slices of the test patients (the split <test_split>_healthy,
      of the builders' config paper_healthy: brats2017's healthy_slices, inbreast's
      healthy_crops), every ROI (test ROI or mask file)
      into them as mask files into test slices;
  a folder of PNG (8 or 16 bit) or NIfTI (one 2-D slice) images, any size: brought to the
      image size as the masks are and max-normalised as the builders' slices; the ROIs
      (test ROIs or mask files) cycled over them in file order, each moved inside the
      image's tissue; identity affine.
A mask that fits in no place of its context is a ValueError naming the mask. With
eval.samples_per_mask = K, each y gives K pairs (sample 0..K-1, ids <id>/<k> when K > 1),
the noise z of pair p (= input index * K + k) seeded by (eval.noise_seed, p): the same
config gives the same images. <workdir>/synthetic/ holds:

  manifest.txt           every file written here: synthesize replaces this folder only
                         while it holds no other file (else it stops, naming one)
  pairs.csv              id, source_id, patient_id, grade, case_id, slice_index (of the
                         source example: -1 or "" where unknown, e.g. for mask files),
                         context_id (the image drawn into; "" for methods that draw none),
                         sample (0..K-1), dice of G(F(y)) against y, file names
  png/<name>_image.png   F(y), 16-bit grey (round(value * 65535))
  png/<name>_roi.png     G(F(y)) (y for a method that draws into an image), 8-bit, 0 or 255
  nifti/<name>_{image,roi}.nii.gz   the same as (H, W, 1) volumes (float32, uint8)
  tfds/synthetic_pairs/  a TFDS dataset (array_record, split 'train'; its builder and
                         features: data_builders/synthetic_pairs.py)

Read the dataset with tfds.data_source('synthetic_pairs', data_dir=<workdir>/synthetic/tfds,
split='train'), or train on it with --config.data.name=synthetic_pairs
--config.data.builder_config= --config.data.data_dir=<workdir>/synthetic/tfds.

NIfTI affines: for brats2017 test examples, the source volume's affine moved to the slice,
so each voxel lands on the world point of the source voxel it was made from (viewable over
the source volume in ITK-SNAP); see `slice_affine` (the source volumes' in-plane size is the
dataset's: data_builders.registry, Dataset.slice_size). INbreast examples, mask files and a
build whose volumes share no square in-plane size get the identity affine (no scanner
geometry is known).

Everything is written into a temporary folder renamed into place at the end, so there is
never a half-written synthetic/. Output names are the input ids (mask file names without
their suffix): two inputs with the same name (a.png, a.nii.gz) are a ValueError naming both,
before anything is written.
"""
import csv
import os
import pathlib
import shutil

import jax
import ml_collections
import nibabel as nib
import numpy as np
from absl import logging
from PIL import Image

from data_builders import registry
from data_builders.common import fit_to_size, max_normalise
from data_builders.synthetic_pairs import PAIR_KEYS, SOURCE_KEYS, UNKNOWN_SOURCE, SyntheticPairs
from fproi_jax import metrics
from fproi_jax.data import deform, pipeline
from fproi_jax.evaluation.load import map_batches, with_run_image_size
from fproi_jax.store.runs import load_generators
from fproi_jax.roi import binarise

MASK_SUFFIXES = (".png", ".nii.gz", ".nii")
MANIFEST = "manifest.txt"


def slice_affine(source_affine, slice_index: int, stored_size: int, image_size: int,
                 source_size: int) -> np.ndarray:
    """Voxel-to-world affine of an (image_size, image_size, 1) synthesized slice.

    The brats2017 builder turns the source slice vol[:, :, k] (source_size^2, 240 for
    BRATS) into stored_size^2 (256) by centred zero padding ((256 - 240) / 2 = 8 px, so
    stored voxel (i, j) is source voxel (i - 8, j - 8)), or, for a source larger than
    stored_size, by resizing it; the pipeline then area-averages by stored_size /
    image_size. Pixel centres map linearly, source = c * i + c / 2 - 1/2 - pad with
    c = canvas / image_size (voxels grow by c) and canvas = max(stored, source) the padded
    square; so the new affine is source_affine @ that voxel map (slice axis fixed at k).
    """
    canvas = max(stored_size, source_size)
    pad = (canvas - source_size) // 2
    scale = canvas / image_size
    offset = scale / 2 - 0.5 - pad
    voxels = np.array([[scale, 0, 0, offset],
                       [0, scale, 0, offset],
                       [0, 0, 1, slice_index],
                       [0, 0, 0, 1]], np.float64)
    return np.asarray(source_affine, np.float64) @ voxels


def _read_slice(path: pathlib.Path, what: str) -> np.ndarray:
    """The 2-D grey-level array of a PNG or NIfTI file; ValueError naming it if it cannot
    be read or is not 2-D (a NIfTI of shape (H, W, 1) is 2-D)."""
    try:
        if path.name.lower().endswith(".png"):
            with Image.open(path) as image:
                array = np.asarray(image)
        else:
            array = np.asanyarray(nib.load(path).dataobj)
    except Exception as e:  # PIL and nibabel raise many types for a broken file
        raise ValueError(f"{path}: cannot read the {what} ({type(e).__name__}: {e})") from e
    array = np.squeeze(array)
    if array.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D grey-level {what}, got shape {array.shape}")
    return array


def read_mask(path: pathlib.Path, image_size: int) -> np.ndarray:
    """A PNG or NIfTI mask (foreground > 0, any size) as an (image_size, image_size, 1)
    float32 ROI: centred zero padding when it fits, else padded square + nearest resize
    (as the dataset builders do). ValueError naming the file if it cannot be used."""
    mask = _read_slice(path, "mask")
    _, roi = fit_to_size(np.zeros(mask.shape, np.float32), mask > 0, image_size)
    return roi[..., None].astype(np.float32)


def read_context(path: pathlib.Path, image_size: int) -> np.ndarray:
    """A PNG or NIfTI image (any size) as an (image_size, image_size, 1) float32 context in
    [0, 1]: brought to size as read_mask (bilinear where resized), then max-normalised, as
    the builders normalise their slices. ValueError naming the file if it cannot be used."""
    array = _read_slice(path, "context image").astype(np.float32)
    if not np.isfinite(array).all() or array.max(initial=0) <= 0:
        raise ValueError(f"{path}: the context image needs finite intensities, some positive")
    image, _ = fit_to_size(array, np.zeros(array.shape, np.uint8), image_size)
    return max_normalise(image)[..., None]


def image_files(folder: pathlib.Path, field: str, what: str) -> list:
    """The PNG/NIfTI files of `folder` (the config field `field` names), sorted; hidden files
    are ignored, any other is an error saying it is not a `what` file."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{field}={str(folder)!r} is not a folder")
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    for path in files:
        if not path.is_file() or not path.name.lower().endswith(MASK_SUFFIXES):
            raise ValueError(f"{path}: not a {what} file (expected {', '.join(MASK_SUFFIXES)})")
    if not files:
        raise ValueError(f"{field}={str(folder)!r} holds no {what} files")
    return files


def _mask_name(path: pathlib.Path) -> str:
    return next(path.name[: -len(s)] for s in MASK_SUFFIXES if path.name.lower().endswith(s))


def _output_name(record: dict) -> str:
    """The stem of a record's output files (png/<name>_image.png, ...)."""
    return record["id"].replace("/", "_")


def _check_unique_names(records: list, source: str):
    """ValueError naming both inputs if two records would write the same output files."""
    first = {}
    for record in records:
        other = first.setdefault(_output_name(record), record)
        if other is not record:
            raise ValueError(
                f"{source}: {other['source_id']} and {record['source_id']} would both be "
                f"written as {_output_name(record)!r} (png/{_output_name(record)}_image.png, "
                "...); rename one")


def _foreign_file(folder: pathlib.Path):
    """A file in ``folder`` that synthesize did not write (not in its manifest), or None.

    No manifest: every file is foreign. ``folder`` itself if it is not a folder."""
    if not folder.is_dir():
        return folder
    manifest = folder / MANIFEST
    ours = {MANIFEST, *manifest.read_text().splitlines()[1:]} if manifest.is_file() else set()
    for path in sorted(folder.rglob("*")):
        if (path.is_symlink() or not path.is_dir()) and \
                path.relative_to(folder).as_posix() not in ours:
            return path
    return None


def _check_replaceable(folder: pathlib.Path):
    """FileExistsError naming ``folder`` and a file in it that synthesize did not write."""
    if folder.exists() or folder.is_symlink():
        foreign = _foreign_file(folder)
        if foreign is not None:
            raise FileExistsError(
                f"{folder}: not replaced, it holds {foreign}, which --mode=synthesize did not "
                "write (move it, or the folder, away)")


RECORD_KEYS = ("id", "source_id", "patient_id", *SOURCE_KEYS, *PAIR_KEYS, "affine")
# A record's fields that come from the slice it is drawn into, when that is a test slice.
CONTEXT_KEYS = ("patient_id", *SOURCE_KEYS, "affine")


def _split(config: ml_collections.ConfigDict, split: str) -> dict:
    """A split in memory: its slices 'image' and ROIs 'roi' with the fields of their
    records (RECORD_KEYS but context_id and sample)."""
    data, size = config.data, config.data.image_size
    source = pipeline.load_split(data, split)
    source_size = registry.get(data.name).slice_size(source.dataset_info.metadata)
    stored_size = source.dataset_info.features["image"].shape[0]
    batch = pipeline.concatenate(pipeline.eval_batches(source, data, config.eval.batch_size))
    n = len(batch["roi"])
    affine = np.tile(np.eye(4), (n, 1, 1))
    if "affine" in batch and source_size is not None:
        affine = np.stack([slice_affine(a, int(k), stored_size, size, source_size)
                           for a, k in zip(batch["affine"], batch["slice_index"])])
    return {"image": batch["image"], "roi": batch["roi"], "id": batch["example_id"],
            "source_id": np.array([f"{data.name}/{i}" for i in batch["example_id"]]),
            "patient_id": batch["patient_id"], "grade": batch["group"],
            **{key: batch.get(key, np.full(n, UNKNOWN_SOURCE[key]))
               for key in ("case_id", "slice_index")},
            "affine": affine}


def _splits(config: ml_collections.ConfigDict) -> list:
    """The names of the splits of config.data's build."""
    return sorted(pipeline.load_split(config.data, config.data.test_split).dataset_info.splits)


def _inputs(config: ml_collections.ConfigDict) -> tuple[dict, str]:
    """(columns, where they come from): the input ROIs 'roi' with the fields of their
    records, from eval.mask_dir (with each file's 'path') or else the test split (with
    each ROI's slice 'image')."""
    if not config.eval.mask_dir:
        split = config.data.test_split
        return _split(config, split), f"{config.data.name} {split}"
    files = image_files(pathlib.Path(config.eval.mask_dir), "eval.mask_dir", "mask")
    names = np.array([_mask_name(p) for p in files])
    columns = {"roi": np.stack([read_mask(path, config.data.image_size) for path in files]),
               "id": names, "source_id": np.array([p.name for p in files]),
               "patient_id": names,
               **{key: np.full(len(files), value) for key, value in UNKNOWN_SOURCE.items()},
               "affine": np.tile(np.eye(4), (len(files), 1, 1)),
               "path": np.array([str(p) for p in files])}
    return columns, f"eval.mask_dir={config.eval.mask_dir!r}"


def _contexts(config: ml_collections.ConfigDict, inputs: dict) -> dict:
    """The inputs drawn into their contexts (the module docstring): 'image' the context,
    'erase' its lesion (m), 'roi' moved into its tissue, 'context_id', and, for test slices,
    the slice's patient, ids and affine (CONTEXT_KEYS)."""
    n, context = len(inputs["roi"]), config.eval.context or "test"
    if context == "test" and "image" in inputs:  # test ROIs, each into its own slice
        return {**inputs, "erase": np.zeros_like(inputs["roi"]),
                "context_id": inputs["source_id"]}
    if context in ("test", "healthy"):
        split = config.data.test_split + ("_healthy" if context == "healthy" else "")
        splits = _splits(config)
        if split not in splits:
            raise ValueError(f"eval.context={context!r} reads the split {split!r}, which "
                             f"{config.data.name} in {config.data.data_dir} lacks (it has "
                             f"{', '.join(splits)}; the builders write it with "
                             "--config=paper_healthy)")
        contexts = _split(config, split)
        lesions = contexts["roi"]
    else:
        files = image_files(pathlib.Path(config.eval.context), "eval.context", "context image")
        size = config.data.image_size
        contexts = {"image": np.stack([read_context(path, size) for path in files]),
                    "source_id": np.array([p.name for p in files])}
        lesions = np.zeros_like(contexts["image"])
    which = np.arange(n) % len(contexts["image"])
    placed = []
    for i, j in enumerate(which):
        mask = inputs["path"][i] if "path" in inputs else inputs["source_id"][i]
        placed.append(deform.place_roi(
            inputs["roi"][i], deform.tissue_mask(contexts["image"][j]), lesions[j] > 0.5,
            np.random.default_rng((config.eval.noise_seed, i)),
            what=f"{mask}, drawn into {contexts['source_id'][j]},"))
    out = {**inputs, "roi": np.stack(placed), "image": contexts["image"][which],
           "erase": lesions[which], "context_id": contexts["source_id"][which]}
    if "id" in contexts:  # test slices: the pair is of the slice's patient, on its volume
        out.update({key: contexts[key][which] for key in CONTEXT_KEYS})
    else:
        out["affine"] = np.tile(np.eye(4), (n, 1, 1))
    return out


def _samples(columns: dict, k: int) -> dict:
    """Each row `k` times, as 'sample' 0..k-1 (ids <id>/<sample> when k > 1), with 'index'
    the pair's position: what seeds its noise."""
    n = len(columns["roi"])
    out = {key: np.repeat(value, k, axis=0) for key, value in columns.items()}
    out["sample"] = np.tile(np.arange(k), n)
    out["index"] = np.arange(n * k)
    if k > 1:
        out["id"] = np.array([f"{i}/{s}" for i, s in zip(out["id"], out["sample"])])
    return out


def _write_png(path, image: np.ndarray, bits: int):
    if bits == 16:
        array = np.round(np.clip(image, 0, 1) * 65535).astype(np.uint16)
    else:
        array = binarise(image).astype(np.uint8) * 255
    Image.fromarray(array[..., 0]).save(path)


def _write(out: pathlib.Path, records: list, config, description: str):
    """Writes pairs.csv, png/, nifti/ and tfds/ of the records (with image and roi) to out."""
    for folder in ("png", "nifti"):
        (out / folder).mkdir(parents=True)
    rows = []
    for record in records:
        name = _output_name(record)
        files = {f"{kind}_{fmt}": f"{fmt if fmt == 'png' else 'nifti'}/{name}_{kind}.{ext}"
                 for kind in ("image", "roi") for fmt, ext in (("png", "png"),
                                                                ("nii", "nii.gz"))}
        _write_png(out / files["image_png"], record["image"], 16)
        _write_png(out / files["roi_png"], record["roi"], 8)
        for kind, dtype in (("image", np.float32), ("roi", np.uint8)):
            volume = nib.Nifti1Image(record[kind].astype(dtype), record["affine"])
            nib.save(volume, out / files[f"{kind}_nii"])
        rows.append({"id": record["id"], "source_id": record["source_id"],
                     "patient_id": record["patient_id"],
                     **{key: record[key] for key in SOURCE_KEYS},
                     **{key: record[key] for key in PAIR_KEYS},
                     "dice_to_input": record["dice"], **files})
    with open(out / "pairs.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    pairs = [{"image": r["image"], "roi": r["roi"], "patient_id": r["patient_id"],
              "source_id": r["source_id"],
              **{key: r[key] for key in SOURCE_KEYS + PAIR_KEYS}}
             for r in records]
    SyntheticPairs(pairs=pairs, image_size=config.data.image_size, description=description,
                   data_dir=str(out / "tfds")).download_and_prepare()
    shutil.rmtree(out / "tfds" / "downloads", ignore_errors=True)  # empty: nothing downloaded
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir())
    (out / MANIFEST).write_text("# the files --mode=synthesize wrote here; it replaces this "
                                "folder only while it holds no other file\n"
                                + "".join(f"{name}\n" for name in written))


def synthesize(config: ml_collections.ConfigDict, workdir) -> pathlib.Path:
    """Synthesizes eval.samples_per_mask pairs from every input ROI (drawn into its
    context by a method that draws into an image) with the run at eval.checkpoint (default:
    workdir); writes <workdir>/synthetic/ and returns its path. An older synthetic/ is
    replaced only if synthesize wrote all of it (its manifest.txt lists every file), else
    FileExistsError naming a file it did not write."""
    workdir = pathlib.Path(workdir)
    final = workdir / "synthetic"
    _check_replaceable(final)
    checkpoint = pathlib.Path(config.eval.checkpoint or workdir)
    run_config, method, variables = load_generators(checkpoint)
    config = with_run_image_size(config, run_config)
    columns, inputs = _inputs(config)
    draws, noisy = (method.reads("roi_synthesis", name) for name in ("x", "z"))
    for field, value, needs in (("context", config.eval.context, draws),
                                ("samples_per_mask", config.eval.samples_per_mask != 1, noisy)):
        if value and not needs:
            raise ValueError(f"eval.{field}={config.eval[field]!r}: {method.label} draws "
                             f"{'into no image' if field == 'context' else 'no noise'}")
    if config.eval.samples_per_mask < 1:
        raise ValueError(f"eval.samples_per_mask={config.eval.samples_per_mask}: must be >= 1")
    if draws:
        columns = _contexts(config, columns)
    else:
        columns["context_id"] = np.full(len(columns["roi"]), "")
    columns = _samples(columns, config.eval.samples_per_mask)
    noise_key = jax.random.key(config.eval.noise_seed)

    @jax.jit
    def step(variables, batch):
        y = batch["roi"]
        given = {"roi": y}
        if draws:
            given.update(image=batch["image"], erase=batch["erase"])
        if noisy:
            given["noise"] = method.example_noise(noise_key, batch["index"], y.shape[1:3])
        f_y, g_f_y = method.synthesize("roi_synthesis", variables, given)
        roi = y if draws else g_f_y  # the mask asked for, or the one F(y) is paired with
        return {"image": f_y, "roi": binarise(roi).astype(np.uint8),
                "dice": metrics.dice(g_f_y, y)}

    arrays = ["roi", "index"] + (["image", "erase"] if draws else [])
    total, batch_size = len(columns["roi"]), config.eval.batch_size
    batches = ({key: value[i:i + batch_size] for key, value in columns.items()}
               for i in range(0, total, batch_size))
    records = []
    for batch, outputs in map_batches(
            lambda batch: step(variables, {key: batch[key] for key in arrays}), batches,
            batch_size, total, "synthesize"):
        records += [{**{key: batch[key][k] for key in RECORD_KEYS},
                     **{key: value[k] for key, value in outputs.items()}}
                    for k in range(len(batch["roi"]))]
    _check_unique_names(records, inputs)

    tmp = workdir / f".synthetic.tmp-{os.getpid()}"
    old = workdir / f".synthetic.old-{os.getpid()}"
    source = config.eval.mask_dir or f"{config.data.name} {config.data.test_split} ROIs"
    try:
        _write(tmp, records, config, f"F(y), G(F(y)) of {checkpoint} from {source}")
        _check_replaceable(final)  # again: files may have been added while synthesizing
        if final.exists():
            final.rename(old)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    logging.info("Wrote %d synthetic pairs to %s", len(records), final)
    return final
