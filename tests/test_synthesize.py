"""--mode=synthesize: PNG, NIfTI (with the source geometry) and TFDS outputs, and mask files.

The generators are an export of freshly initialised parameters: synthesis only needs G and F,
and what is checked is where every value goes, not how good it is.
"""
import csv
import pathlib
import re
import subprocess
import sys

import jax
import nibabel as nib
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from conftest import REPO, TINY_SHAPE, fresh_export, tiny_config
from data_builders import registry
from fproi_jax.data import deform, pipeline
from fproi_jax.evaluation import synthesize as synth
from fproi_jax.store.runs import load_generators
from fproi_jax.methods import get_method
from fproi_jax.methods.fproi_gan_context import dilate
from fproi_jax.store import export as export_lib


@pytest.fixture(scope="module")
def export(tiny_brats, tmp_path_factory):
    config = tiny_config(tiny_brats)
    method = get_method(config)
    variables = method.export_variables(*method.init(jax.random.PRNGKey(0), (32, 32)))
    directory = tmp_path_factory.mktemp("synth_export") / "export"
    export_lib.export_inference(directory, variables, config, step=0)
    return directory


@pytest.fixture(scope="module")
def synthetic(export, tiny_brats, tmp_path_factory):
    """Synthesized pairs of the test ROIs, through the CLI."""
    workdir = tmp_path_factory.mktemp("synth_run")
    result = subprocess.run(
        [sys.executable, "launch.py", "--config=configs/base.py", f"--workdir={workdir}",
         "--mode=synthesize", f"--config.eval.checkpoint={export}",
         f"--config.data.builder_config={tiny_brats.builder_config}",
         f"--config.data.data_dir={tiny_brats.data_dir}", "--config.data.image_size=32"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.name for p in workdir.iterdir()] == ["synthetic"]  # no temporary folder left
    return workdir / "synthetic"


def _rows(out):
    with open(out / "pairs.csv", newline="") as f:
        return list(csv.DictReader(f))


def _config(tiny_brats, export, **eval_fields):
    config = tiny_config(tiny_brats)
    config.eval.checkpoint = str(export)
    config.eval.update(eval_fields)
    return config


def test_png_bit_depths_and_values(synthetic, export, tiny_brats):
    source = pipeline.load_split(tiny_brats, "test")
    rows = _rows(synthetic)
    assert len(rows) == len(source)
    _, model, params = load_generators(export)
    batch = next(pipeline.eval_batches(source, tiny_brats, len(source)))
    f_y, g_f_y = (np.asarray(a) for a in model.roi_synthesis(params, batch["roi"]))
    for k, row in enumerate(rows):
        with Image.open(synthetic / row["image_png"]) as image:
            assert image.mode == "I;16" and image.size == (32, 32)
            pixels = np.asarray(image)
        np.testing.assert_allclose(pixels, np.round(f_y[k, ..., 0] * 65535), atol=2)
        with Image.open(synthetic / row["roi_png"]) as roi:
            assert roi.mode == "L"
            roi = np.asarray(roi)
        assert set(np.unique(roi)) <= {0, 255}
        clear = np.abs(g_f_y[k, ..., 0] - 0.5) > 1e-4  # away from the 0.5 threshold
        np.testing.assert_array_equal(roi[clear], 255 * (g_f_y[k, ..., 0][clear] > 0.5))


def test_nifti_voxels_land_on_the_source_world_points(synthetic, tiny_brats):
    """The input ROI's centroid, through the synthetic slice's affine, is the world centroid
    of the source seg slice (48x48 phantom resized to 32x32: 1.5 mm voxels)."""
    source = pipeline.load_split(tiny_brats, "test")
    assert source.dataset_info.metadata["source_slice_size"] == TINY_SHAPE[0]  # not BRATS' 240
    raw = pathlib.Path(tiny_brats.data_dir).parent / "raw"
    batch = next(pipeline.eval_batches(source, tiny_brats, len(source)))
    for k, row in enumerate(_rows(synthetic)):
        example = source[k]
        case = example["case_id"].decode()
        seg = nib.load(next(raw.glob(f"*/{case}/{case}_seg.nii.gz")))
        slice_index = int(example["slice_index"])
        expected = seg.affine @ [*np.argwhere(seg.get_fdata()[:, :, slice_index] > 0)
                                 .mean(axis=0), slice_index, 1]
        image = nib.load(synthetic / row["image_nii"])
        assert image.shape == (32, 32, 1) and image.get_data_dtype() == np.float32
        centroid = np.argwhere(batch["roi"][k, ..., 0] > 0).mean(axis=0)
        np.testing.assert_allclose(image.affine @ [*centroid, 0, 1], expected, atol=1.0)
        np.testing.assert_allclose(np.linalg.norm(image.affine[:3, :2], axis=0), 1.5, rtol=1e-6)
        roi = nib.load(synthetic / row["roi_nii"])
        assert roi.get_data_dtype() == np.uint8
        np.testing.assert_array_equal(roi.affine, image.affine)


def test_slice_affine_undoes_the_brats_padding():
    """BRATS: 240 -> 256 by 8 px of padding; voxel (i, j) is source voxel (i - 8, j - 8)."""
    source = np.array([[-1.0, 0, 0, 120], [0, -1, 0, 119], [0, 0, 1, -77], [0, 0, 0, 1]])
    affine = synth.slice_affine(source, 90, stored_size=256, image_size=256, source_size=240)
    for i, j in ((8, 8), (0, 255), (100, 37)):
        np.testing.assert_allclose(affine @ [i, j, 0, 1], source @ [i - 8, j - 8, 90, 1])
    # At 64 px each voxel averages 4x4 stored voxels: centre 1.5 stored, 4 mm wide.
    affine = synth.slice_affine(source, 90, stored_size=256, image_size=64, source_size=240)
    np.testing.assert_allclose(affine @ [0, 0, 0, 1], source @ [1.5 - 8, 1.5 - 8, 90, 1])
    np.testing.assert_allclose(np.linalg.norm(affine[:3, :3], axis=0), [4, 4, 1])


def test_tfds_dataset_is_readable_and_mixable(synthetic, tiny_brats):
    data_dir = synthetic / "tfds"
    dataset = tfds.data_source("synthetic_pairs", data_dir=str(data_dir), split="train")
    rows = _rows(synthetic)
    assert len(dataset) == len(rows)
    by_source = {dataset[i]["source_id"].decode(): dataset[i] for i in range(len(dataset))}
    test_split = pipeline.load_split(tiny_brats, "test")
    dataset = registry.get(tiny_brats.name)
    sources = {dataset.example_id(test_split[i], i): test_split[i] for i in range(len(test_split))}
    assert set(by_source) == {r["source_id"] for r in rows}
    for row in rows:
        example = by_source[row["source_id"]]
        assert set(example) == {"image", "roi", "patient_id", "source_id", "grade", "case_id",
                                "slice_index", "context_id", "sample"}
        assert (example["context_id"], int(example["sample"])) == (b"", 0)  # draws into none
        assert (row["context_id"], row["sample"]) == ("", "0")
        assert example["image"].dtype == np.float32 and example["roi"].dtype == np.uint8
        assert example["patient_id"].decode() == row["patient_id"]
        # The source example's grade and ids travel with the synthesized pair.
        source = sources[row["source_id"].split("/", 1)[1]]
        assert int(example["grade"]) == int(row["grade"]) == int(source["grade"])
        assert example["case_id"].decode() == row["case_id"] == source["case_id"].decode()
        assert int(example["slice_index"]) == int(source["slice_index"])
        nifti = nib.load(synthetic / row["image_nii"]).get_fdata(dtype=np.float32)
        np.testing.assert_array_equal(example["image"], nifti)
    # A training config can point its data at it.
    data = tiny_brats.copy_and_resolve_references()
    data.name, data.builder_config, data.data_dir = "synthetic_pairs", "", str(data_dir)
    batch = next(pipeline.eval_batches(pipeline.load_split(data, "train"), data, 2))
    assert batch["image"].shape == batch["roi"].shape == (2, 32, 32, 1)


def test_the_readme_command_trains_on_the_synthesized_pairs(synthetic, tmp_path):
    """README's flags for training on synthesized pairs, as written there, plus tiny sizes."""
    readme = (REPO / "README.md").read_text()
    flags = re.search(r"Train on it with `([^`]*)`", readme).group(1).split()
    flags = [f.replace("runs/brats/synthetic/tfds", str(synthetic / "tfds")) for f in flags]
    assert "--config.data.image_size=N" in flags
    command = [sys.executable, "launch.py", "--config=configs/brats.py",
               f"--workdir={tmp_path / 'run'}", "--mode=train"]
    tiny = ["--config.train.num_steps=2", "--config.train.sample_every=2",
            "--config.train.batch_size=4", "--config.train.num_samples=2",
            "--config.model.fproi_gan.generator_width=4",
            "--config.model.fproi_gan.rfb_features=(4,8,8,4)",
            "--config.model.fproi_gan.discriminator_features=(4,8,8,8)"]

    def launch(data_flags):
        return subprocess.run(command + data_flags + tiny, cwd=REPO, capture_output=True,
                              text=True, timeout=300)

    # configs/brats.py's 256 px do not divide the synthesized 32 px: stopped, told what to pass.
    result = launch([f for f in flags if not f.startswith("--config.data.image_size=")])
    assert result.returncode != 0
    assert "FATAL" in result.stderr and "--config.data.image_size=32" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()

    result = launch([f.replace("=N", "=32") for f in flags])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "has no split 'test'" in result.stderr
    run = tmp_path / "run"
    assert (run / "samples" / "step_0000002.png").is_file()
    assert (run / "checkpoints" / "2").is_dir()


def _write_masks(mask_dir):
    mask_dir.mkdir()
    small = np.zeros((20, 20), np.uint8)
    small[5:11, 5:11] = 255
    Image.fromarray(small).save(mask_dir / "small.png")
    big = np.zeros((64, 48), np.uint16)
    big[10:30, 20:40] = 1000
    Image.fromarray(big).save(mask_dir / "big.png")
    volume = np.zeros((32, 32, 1), np.uint8)
    volume[4:9, 20:30] = 1
    nib.save(nib.Nifti1Image(volume, np.diag([2.0, 2, 2, 1])), mask_dir / "mri.nii.gz")


def test_read_mask_pads_or_resizes_with_nearest(tmp_path):
    _write_masks(tmp_path / "masks")
    small = synth.read_mask(tmp_path / "masks" / "small.png", 32)
    assert small.shape == (32, 32, 1) and small.dtype == np.float32
    expected = np.zeros((32, 32), np.float32)
    expected[11:17, 11:17] = 1  # 20 -> 32: 6 px of padding on each side
    np.testing.assert_array_equal(small[..., 0], expected)
    big = synth.read_mask(tmp_path / "masks" / "big.png", 32)  # 64x48 -> 64x64 -> 32x32
    np.testing.assert_array_equal(np.unique(big), [0, 1])
    assert big.sum() == 10 * 10


def test_synthesize_from_mask_files(export, tiny_brats, tmp_path):
    _write_masks(tmp_path / "masks")
    out = synth.synthesize(_config(tiny_brats, export, mask_dir=str(tmp_path / "masks")),
                           tmp_path / "run")
    rows = _rows(out)
    assert [r["id"] for r in rows] == ["big", "mri", "small"]
    assert [r["source_id"] for r in rows] == ["big.png", "mri.nii.gz", "small.png"]
    for row in rows:
        np.testing.assert_array_equal(nib.load(out / row["image_nii"]).affine, np.eye(4))
        assert (row["grade"], row["case_id"], row["slice_index"]) == ("-1", "", "-1")
    assert len(tfds.data_source("synthetic_pairs", data_dir=str(out / "tfds"),
                                split="train")) == 3


@pytest.mark.parametrize("name, content, message", [
    ("broken.png", b"not a png", "broken.png: cannot read the mask"),
    ("colour.png", "rgb", "colour.png: expected a 2-D grey-level mask"),
    ("notes.txt", b"hello", "notes.txt: not a mask file"),
])
def test_a_bad_mask_file_is_named(export, tiny_brats, tmp_path, name, content, message):
    _write_masks(tmp_path / "masks")
    if content == "rgb":
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "masks" / name)
    else:
        (tmp_path / "masks" / name).write_bytes(content)
    with pytest.raises(ValueError, match=message):
        synth.synthesize(_config(tiny_brats, export, mask_dir=str(tmp_path / "masks")),
                         tmp_path / "run")


def test_a_failed_write_keeps_the_previous_output(export, tiny_brats, tmp_path, monkeypatch):
    _write_masks(tmp_path / "masks")
    config = _config(tiny_brats, export, mask_dir=str(tmp_path / "masks"))
    out = synth.synthesize(config, tmp_path / "run")
    before = (out / "pairs.csv").read_text()

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(synth, "_write_png", fail)
    with pytest.raises(OSError, match="disk full"):
        synth.synthesize(config, tmp_path / "run")
    assert (out / "pairs.csv").read_text() == before
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["synthetic"]


def test_mask_files_sharing_a_stem_are_an_error_before_anything_is_written(
        export, tiny_brats, tmp_path):
    """small.png and small.nii.gz would both write png/small_image.png, nifti/small_*."""
    _write_masks(tmp_path / "masks")
    volume = np.zeros((20, 20, 1), np.uint8)
    volume[2:6, 2:6] = 1
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "masks" / "small.nii.gz")
    config = _config(tiny_brats, export, mask_dir=str(tmp_path / "masks"))
    with pytest.raises(ValueError, match=r"small\.nii\.gz and small\.png .*'small'"):
        synth.synthesize(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_resynthesizing_replaces_only_a_folder_that_synthesize_wrote(export, tiny_brats,
                                                                     tmp_path):
    _write_masks(tmp_path / "masks")
    config = _config(tiny_brats, export, mask_dir=str(tmp_path / "masks"))
    out = synth.synthesize(config, tmp_path / "run")
    assert synth.synthesize(config, tmp_path / "run") == out  # its own output: replaced
    before = (out / "pairs.csv").read_text()
    (out / "png" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=re.escape(f"{out}: not replaced, it holds "
                                                        f"{out / 'png' / 'notes.txt'}")):
        synth.synthesize(config, tmp_path / "run")
    assert (out / "png" / "notes.txt").read_text() == "mine"
    assert (out / "pairs.csv").read_text() == before
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["synthetic"]
    # A synthetic/ that synthesize never wrote (no manifest) is not replaced either.
    (tmp_path / "other" / "synthetic").mkdir(parents=True)
    (tmp_path / "other" / "synthetic" / "pairs.csv").write_text("my own table")
    with pytest.raises(FileExistsError, match=re.escape(
            str(tmp_path / "other" / "synthetic" / "pairs.csv"))):
        synth.synthesize(config, tmp_path / "other")
    assert (tmp_path / "other" / "synthetic" / "pairs.csv").read_text() == "my own table"


# A method that draws into an image (fproi_gan_context): contexts, samples, placement.

CONTEXT = "fproi_gan_context"


@pytest.fixture(scope="module")
def context_export(tiny_brats, tmp_path_factory):
    return fresh_export(tiny_config(tiny_brats, CONTEXT),
                        tmp_path_factory.mktemp("context_export") / "export")


def _context_config(tiny_brats, export, **eval_fields):
    config = tiny_config(tiny_brats, CONTEXT)
    config.eval.checkpoint = str(export)
    config.eval.update(eval_fields)
    return config


def _nifti(out, row, kind="image"):
    return nib.load(out / row[f"{kind}_nii"]).get_fdata(dtype=np.float32)


def _erased(roi, lesion, margin=1):
    """Where F redraws: dilate(max(y, m)) (margin 1 px at 32 px)."""
    both = np.maximum(roi, lesion)[None].astype(np.float32)
    return np.asarray(dilate(both, margin))[0] == 1


def test_test_rois_are_drawn_into_their_own_slices_k_times(context_export, tiny_brats,
                                                            tmp_path):
    config = _context_config(tiny_brats, context_export, samples_per_mask=2)
    out = synth.synthesize(config, tmp_path / "a")
    rows = _rows(out)
    test = next(pipeline.eval_batches(pipeline.load_split(tiny_brats, "test"), tiny_brats, 64))
    n = len(test["roi"])
    assert len(rows) == 2 * n
    assert [r["sample"] for r in rows] == ["0", "1"] * n
    assert [r["id"] for r in rows[:2]] == [f"{test['example_id'][0]}/{k}" for k in (0, 1)]
    assert list(rows[0])[6:9] == ["context_id", "sample", "dice_to_input"]
    for i in range(n):
        a, b = rows[2 * i], rows[2 * i + 1]
        assert a["context_id"] == a["source_id"] == f"brats2017/{test['example_id'][i]}"
        x, y = test["image"][i], test["roi"][i]
        erased = _erased(y, np.zeros_like(y))
        first, second = _nifti(out, a), _nifti(out, b)
        np.testing.assert_array_equal(first[~erased], x[~erased])  # the context, exactly
        assert np.abs(first - second)[erased].mean() > 1e-3  # two samples, two images
        np.testing.assert_array_equal(_nifti(out, a, "roi"), y)  # the mask asked for
        with Image.open(out / a["image_png"]) as png:
            np.testing.assert_allclose(np.asarray(png), np.round(first[..., 0] * 65535), atol=1)
    dataset = tfds.data_source("synthetic_pairs", data_dir=str(out / "tfds"), split="train")
    assert {(e["context_id"].decode(), int(e["sample"])) for e in dataset} == {
        (r["context_id"], int(r["sample"])) for r in rows}
    # The same config gives the same images.
    again = synth.synthesize(config, tmp_path / "b")
    for row in rows:
        np.testing.assert_array_equal(_nifti(again, row), _nifti(out, row))


def test_mask_files_are_moved_into_the_tissue_of_test_slices_off_their_lesions(
        context_export, tiny_brats, tmp_path):
    mask_dir = tmp_path / "masks"
    mask_dir.mkdir()
    for name, side in (("a", 3), ("b", 2), ("c", 4)):
        mask = np.zeros((32, 32), np.uint8)
        mask[:side, :side] = 255  # in the corner: background, never tissue
        Image.fromarray(mask).save(mask_dir / f"{name}.png")
    out = synth.synthesize(_context_config(tiny_brats, context_export,
                                           mask_dir=str(mask_dir)), tmp_path / "run")
    test = next(pipeline.eval_batches(pipeline.load_split(tiny_brats, "test"), tiny_brats, 64))
    rows = _rows(out)
    assert [r["source_id"] for r in rows] == ["a.png", "b.png", "c.png"]
    for i, (row, side) in enumerate(zip(rows, (3, 2, 4))):
        j = i % len(test["roi"])  # the test slices, cycled in order
        assert row["context_id"] == f"brats2017/{test['example_id'][j]}"
        assert row["patient_id"] == test["patient_id"][j]  # the pair is of that patient
        assert row["case_id"] == test["case_id"][j]
        x, lesion = test["image"][j], test["roi"][j]
        roi = _nifti(out, row, "roi")
        assert roi.sum() == side * side
        assert deform.tissue_mask(x)[roi == 1].all() and not lesion[roi == 1].any()
        erased, image = _erased(roi, lesion), _nifti(out, row)
        np.testing.assert_array_equal(image[~erased], x[~erased])
        assert np.abs(image - x)[erased].min() > 0  # redrawn, the slice's own lesion too


def test_rois_are_drawn_into_the_images_of_a_context_folder(context_export, tiny_brats,
                                                             tmp_path):
    folder = tmp_path / "contexts"
    folder.mkdir()
    image = np.zeros((32, 32), np.uint16)
    image[4:28, 6:26] = np.arange(24 * 20, dtype=np.uint16).reshape(24, 20) * 100 + 1000
    Image.fromarray(image).save(folder / "one.png")
    nib.save(nib.Nifti1Image(image.T.astype(np.float32)[..., None] * 3.0, np.eye(4)),
             folder / "two.nii.gz")
    contexts = [synth.read_context(folder / name, 32) for name in ("one.png", "two.nii.gz")]
    np.testing.assert_allclose(contexts[0][..., 0], image / image.max(), rtol=1e-6)
    assert contexts[1].max() == 1.0
    out = synth.synthesize(_context_config(tiny_brats, context_export, context=str(folder)),
                           tmp_path / "run")
    for i, row in enumerate(_rows(out)):
        assert row["context_id"] == ("one.png", "two.nii.gz")[i % 2]
        x, roi = contexts[i % 2], _nifti(out, row, "roi")
        assert roi.sum() > 0 and deform.tissue_mask(x)[roi == 1].all()
        erased = _erased(roi, np.zeros_like(roi))
        np.testing.assert_array_equal(_nifti(out, row)[~erased], x[~erased])
        np.testing.assert_array_equal(nib.load(out / row["image_nii"]).affine, np.eye(4))


def test_test_rois_are_drawn_into_the_healthy_slices_of_the_test_patients(
        context_export, tiny_brats, tmp_path):
    out = synth.synthesize(_context_config(tiny_brats, context_export, context="healthy"),
                           tmp_path / "run")
    healthy = next(pipeline.eval_batches(pipeline.load_split(tiny_brats, "test_healthy"),
                                         tiny_brats, 64))
    test = next(pipeline.eval_batches(pipeline.load_split(tiny_brats, "test"), tiny_brats, 64))
    rows = _rows(out)
    assert len(rows) == len(test["roi"]) and not healthy["roi"].any()
    for i, row in enumerate(rows):
        j = i % len(healthy["roi"])
        assert row["source_id"] == f"brats2017/{test['example_id'][i]}"
        assert row["context_id"] == f"brats2017/{healthy['example_id'][j]}"
        assert row["patient_id"] == healthy["patient_id"][j]
        assert row["slice_index"] == str(healthy["slice_index"][j])
        x, roi = healthy["image"][j], _nifti(out, row, "roi")
        assert roi.sum() == test["roi"][i].sum() and deform.tissue_mask(x)[roi == 1].all()
        erased = _erased(roi, np.zeros_like(roi))
        np.testing.assert_array_equal(_nifti(out, row)[~erased], x[~erased])
    # A build without the healthy split: told which split is missing and how to write it.
    config = _context_config(tiny_brats, context_export, context="healthy")
    config.data.test_split = "test_healthy"
    with pytest.raises(ValueError, match=r"reads the split 'test_healthy_healthy', which "
                                         r"brats2017 in .* lacks \(it has test, test_healthy"):
        synth.synthesize(config, tmp_path / "other")


def test_a_mask_that_fits_nowhere_is_named(context_export, tiny_brats, tmp_path):
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.full((32, 32), 255, np.uint8)).save(tmp_path / "masks" / "huge.png")
    config = _context_config(tiny_brats, context_export, mask_dir=str(tmp_path / "masks"))
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "masks" / "huge.png"))
                       + r", drawn into brats2017/.* fits nowhere inside the tissue"):
        synth.synthesize(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("field, value, message", [
    ("context", "test", "eval.context='test': Fproi-GAN draws into no image"),
    ("samples_per_mask", 3, "eval.samples_per_mask=3: Fproi-GAN draws no noise"),
])
def test_context_fields_of_a_method_that_draws_none_are_refused(export, tiny_brats, tmp_path,
                                                                field, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        synth.synthesize(_config(tiny_brats, export, **{field: value}), tmp_path / "run")


def test_the_tasks_draw_several_images_per_new_mask_of_a_noisy_method(
        context_export, export, tiny_brats, tmp_path):
    """pairs.synthesized with samples=3: three seeded draws of each new ROI, each the source
    slice outside the erased region; a method without noise draws none. Then the New pairs
    diversity of those draws and the figure of them."""
    from fproi_jax.evaluation import figures
    from fproi_jax.tasks import new_pairs, pairs, segmentation

    config = _context_config(tiny_brats, context_export)
    real = pairs.load_slices(config, "train")
    rois = pairs.new_rois(real["roi"], 0, 34.0, 4.0)
    _, made = pairs.synthesized(context_export, config, real, rois, seed=0, samples=3)
    draws = made["new_samples"]
    assert draws.shape == (len(rois), 3, *real["image"].shape[1:])
    for i in range(len(rois)):
        erased = _erased(made["new_rois"][i], real["roi"][i])
        for k in range(3):
            np.testing.assert_array_equal(draws[i, k][~erased], real["image"][i][~erased])
        assert np.abs(draws[i, 0] - draws[i, 1])[erased].mean() > 1e-3
    again = pairs.synthesized(context_export, config, real, rois, seed=0, samples=3)[1]
    np.testing.assert_array_equal(again["new_samples"], draws)
    assert "new_samples" not in pairs.synthesized(export, config, real, rois, samples=3)[1]

    similarity = new_pairs.diversity(draws)["similarity"]
    assert 0 < similarity < 1
    rows = [(f"mask {i}", real["image"][i], made["new_rois"][i], draws[i], draws[i] > 0.5)
            for i in range(2)]
    figure = figures.samples_grid(tmp_path / "samples.png", rows)
    assert len(figure.axes) == 2 * 4 and (tmp_path / "samples.png").stat().st_size > 1000
    # as Table 6 draws it: a segmenter's finding in each draw
    segmenter = segmentation.SegmenterMethod(config.segment.features)
    params, _ = segmenter.init(jax.random.PRNGKey(0), real["image"].shape[1:3])
    figure = segmentation._samples_figure(
        tmp_path / "task.png", real["image"], {"Context": {"roi": made["new_rois"],
                                                           "samples": draws}},
        segmenter, {"params": params})
    assert len(figure.axes) == segmentation.SAMPLES_SHOWN * 4
