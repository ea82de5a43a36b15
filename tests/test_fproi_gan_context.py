"""Fproi-GAN + context: the erased region, the noise, healthy inpainting, the sharded step
and the exported programs with their context inputs (32x32 discs, tiny networks)."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import fresh_export, tiny_config, train_and_resume
from test_methods import _config, _run, disc_batch
from fproi_jax.evaluation import evaluate, inpainting, report
from fproi_jax.methods import get_method
from fproi_jax.methods.base import DEFAULT_NOISE_SEED
from fproi_jax.methods.fproi_gan_context import crop_at_roi, dilate
from fproi_jax.store import export as export_lib, programs
from fproi_jax.store.runs import load_generators
from fproi_jax.tasks import pairs

NAME = "fproi_gan_context"


@pytest.fixture(scope="module")
def fresh():
    """(method, variables) of a freshly initialised tiny model at 32 px."""
    method = get_method(_config(NAME))
    params, batch_stats = jax.jit(method.init, static_argnums=1)(jax.random.key(0), (32, 32))
    return method, {"params": params, "batch_stats": batch_stats}


def test_four_devices_give_the_same_update_as_one():
    one, one_metrics = _run(_config(NAME), jax.devices()[:1], 2)
    four, four_metrics = _run(_config(NAME), jax.devices()[:4], 2)
    assert set(one.params) == set(one.opt_state) == {"G", "F", "Dx", "Dy", "Dl"}
    # The local discriminator's pool holds 16 px crops (local_crop 1/2 of 32 px).
    assert one.pools["local_images"].shape == (3, 16, 16, 1)
    assert one.pools["images"].shape == (3, 32, 32, 1)
    for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(four.params)):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)
    for key in one_metrics[0]:
        np.testing.assert_allclose(one_metrics[0][key], four_metrics[0][key], rtol=1e-5,
                                   err_msg=key)
    assert {"dl", "reconstruction", "diversity", "f_local_adversarial"} <= set(one_metrics[0])
    assert all(np.isfinite(v) for m in one_metrics for v in m.values())


def test_the_context_is_the_image_with_exactly_the_dilated_roi_erased(fresh):
    method, variables = fresh
    assert method.margin == 1  # 1/32 of 32 px
    roi = np.zeros((1, 32, 32, 1), np.float32)
    roi[0, 10, 20] = roi[0, 11, 21] = 1
    grown = np.asarray(dilate(roi, 2))
    want = np.zeros_like(roi)
    want[0, 8:13, 18:23] = want[0, 9:14, 19:24] = 1  # a 5x5 square around each pixel
    np.testing.assert_array_equal(grown, want)

    batch = disc_batch()
    x, y = batch["image"], batch["roi"]
    erased = np.asarray(dilate(y, method.margin))
    f_y, _ = jax.jit(method.roi_synthesis)(variables, y, x, np.zeros_like(y), np.zeros_like(y))
    f_y = np.asarray(f_y)
    np.testing.assert_array_equal(f_y[erased == 0], x[erased == 0])  # the context, exactly
    assert np.abs(f_y - x)[erased == 1].min() > 0  # redrawn in every erased pixel
    # A further region m is erased too, with the same margin.
    m = np.zeros_like(y)
    m[:, 2:6, 2:6] = 1
    f_ym, _ = jax.jit(method.roi_synthesis)(variables, y, x, m, np.zeros_like(y))
    both = np.asarray(dilate(np.maximum(y, m), method.margin))
    np.testing.assert_array_equal(np.asarray(f_ym)[both == 0], x[both == 0])
    assert np.abs(np.asarray(f_ym) - x)[both == 1].min() > 0


def test_samples_differ_across_noise_seeds_and_repeat_for_the_same_seed(fresh):
    method, variables = fresh
    batch = disc_batch()
    x, y = batch["image"], batch["roi"]
    index = jnp.arange(len(x))
    noise = [method.example_noise(jax.random.key(seed), index, (32, 32)) for seed in (1, 2, 1)]
    synthesis = jax.jit(method.roi_synthesis)
    a, b, c = (np.asarray(synthesis(variables, y, x, np.zeros_like(y), z)[0]) for z in noise)
    np.testing.assert_array_equal(a, c)
    erased = np.asarray(dilate(y, method.margin)) == 1
    assert np.abs(a - b)[erased].mean() > 1e-3
    np.testing.assert_array_equal(a[~erased], b[~erased])  # noise changes the fill only
    # One field per example, not one shared by the batch.
    assert float(jnp.abs(noise[0][0] - noise[0][1]).mean()) > 0.5


def test_an_empty_roi_over_an_erased_region_asks_for_healthy_tissue(fresh):
    """F's ROI channel is empty over the erased region, as in training's healthy boxes."""
    method, variables = fresh
    seen = {}

    class Recording:
        def __init__(self, nets):
            self.nets = nets

        def __call__(self, path, *inputs):
            if path == "F":
                seen["F"] = inputs[0]
            return self.nets(path, *inputs)

    x = disc_batch()["image"]
    empty, region = np.zeros_like(x), np.zeros_like(x)
    region[:, 4:12, 14:22] = 1
    nets = Recording(method._eval_networks(variables))
    out = method.draw(nets, empty, x, method.erased_region(empty, region), np.zeros_like(x))
    f_input = np.asarray(seen["F"])
    assert f_input.shape[-1] == 4 and not f_input[..., 0].any()  # no tumour asked for
    erased = f_input[..., 2]
    np.testing.assert_array_equal(erased, np.asarray(dilate(region, method.margin))[..., 0])
    np.testing.assert_array_equal(f_input[..., 1], x[..., 0] * (1 - erased))
    np.testing.assert_array_equal(np.asarray(out)[..., 0][erased == 0], x[..., 0][erased == 0])
    got, _ = method.roi_synthesis(variables, empty, x, region, np.zeros_like(x))
    np.testing.assert_allclose(got, out, atol=1e-6)

    # Training erases, beside each dilated ROI, a healthy box of side 1/4 of the image,
    # inside the tissue: here the left 12 columns and a 10x10 island (4 places) at the right.
    tissue = np.zeros((3, 32, 32, 1), np.float32)
    tissue[:, :, :12] = 0.5
    tissue[2] = 0
    tissue[2, 20:30, 20:30] = 0.5
    seen = set()
    for seed in range(40):
        boxes = np.asarray(method.healthy_boxes(jax.random.key(seed), jnp.arange(3), tissue))
        assert [int(b.sum()) for b in boxes] == [64] * 3
        for box, image in zip(boxes, tissue):
            assert (image[box == 1] > 0.02).all()
        seen.add(boxes[0].tobytes())
        rows, cols = np.nonzero(boxes[2][..., 0])
        assert 20 <= rows.min() <= 22 and 20 <= cols.min() <= 22
    assert len(seen) > 10  # a random place among the 25 x 5 that fit
    # A slice with no place all tissue: one of the places with the most.
    sparse = np.zeros((1, 32, 32, 1), np.float32)
    sparse[0, 10:16, 3:9] = 0.5
    box = np.asarray(method.healthy_boxes(jax.random.key(0), jnp.arange(1), sparse))[0]
    assert (sparse[0][box == 1] > 0.02).sum() == 36 and box.sum() == 64


def test_the_local_crop_is_centred_on_the_roi_inside_the_image():
    images = np.arange(32 * 32, dtype=np.float32).reshape(1, 32, 32, 1).repeat(3, 0)
    rois = np.zeros_like(images)
    rois[0, 10:14, 20:24] = 1   # centre (11, 21): rows 3..18, cols 13..28
    rois[1, 0:2, 30:32] = 1     # at the corner: shifted inside
    crops = np.asarray(crop_at_roi(images, rois, 16))  # rois[2] empty: the image centre
    np.testing.assert_array_equal(crops[0], images[0, 3:19, 13:29])
    np.testing.assert_array_equal(crops[1], images[0, 0:16, 16:32])
    np.testing.assert_array_equal(crops[2], images[0, 8:24, 8:24])


def test_the_exported_programs_take_the_context_inputs(fresh, tmp_path):
    method, variables = fresh
    programs.write_programs(tmp_path, method, variables, 32)
    batch = disc_batch()
    x, y = batch["image"], batch["roi"]
    m = np.zeros_like(y)
    m[:, :8, :8] = 1
    z = np.asarray(method.example_noise(jax.random.key(5), jnp.arange(len(x)), (32, 32)))
    roi_program = jax.export.deserialize((tmp_path / "roi_synthesis.jaxexport").read_bytes())
    for got, want in zip(roi_program.call(y, x, m, z), method.roi_synthesis(variables, y, x, m, z)):
        np.testing.assert_allclose(got, want, atol=1e-5)
    image_program = jax.export.deserialize((tmp_path / "image_synthesis.jaxexport").read_bytes())
    for got, want in zip(image_program.call(x, y, z), method.image_synthesis(variables, x, y, z)):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_local_crop_the_discriminator_cannot_take_is_refused():
    config = _config(NAME)
    config.model.fproi_gan_context.local_crop = 1 / 4  # 8 px; 4 stride-2 blocks need 16
    with pytest.raises(ValueError, match="local_crop=0.25 gives a 8 px crop of 32 px"):
        get_method(config)


def test_it_trains_resumes_and_exports_through_the_loop(tiny_brats, tmp_path):
    """The training loop on the tiny phantom (4 fake devices): a run resumed from its step-2
    checkpoint ends where an uninterrupted one does, and its export loads with the method."""
    config = tiny_config(tiny_brats, NAME)
    a, straight = train_and_resume(config, tmp_path)
    assert sorted((straight / "samples").iterdir())  # the sample grids were drawn
    method = get_method(config)
    export_lib.export_inference(straight / "export",
                                method.export_variables(a.params, a.batch_stats), config, 4)
    _, loaded, variables = load_generators(straight / "export")
    assert loaded.label == "Fproi-GAN + context" and set(variables["params"]) == {"G", "F"}
    assert (straight / "export" / "roi_synthesis.jaxexport").is_file()


def test_new_rois_are_placed_inside_the_tissue_off_the_slices_lesion():
    image = np.zeros((2, 16, 16, 1), np.float32)
    image[:, 2:14, 2:14] = 0.5                      # the tissue: a 12x12 square
    own = np.zeros_like(image)
    own[:, 2:8, 2:14] = 1                           # each slice's lesion: its top half
    rois = np.zeros_like(image)
    rois[0, 3:6, 3:6] = 1                           # 3x3, on the lesion: moved to the free half
    rois[1, 0:10, 0:10] = 1                         # 10x10: fits nowhere off the lesion
    real = {"image": image, "roi": own}
    placed = pairs.placed_rois(rois, real, seed=0)
    assert placed[0].sum() == 9 and placed[0][image[0] == 0].sum() == 0
    assert placed[0][own[0] == 1].sum() == 0
    np.testing.assert_array_equal(placed[1], rois[1])  # left where it was
    np.testing.assert_array_equal(placed, pairs.placed_rois(rois, real, seed=0))  # seeded
    others = {pairs.placed_rois(rois, real, seed)[0].tobytes() for seed in range(8)}
    assert len(others) > 1  # a random place, not always the same


def test_the_tasks_draw_new_rois_in_new_places_of_their_source_slices(tiny_brats, tmp_path):
    config = tiny_config(tiny_brats, NAME)
    run = fresh_export(config, tmp_path / "export")
    real = pairs.load_slices(config, "test")
    rois = pairs.new_rois(real["roi"], seed=0, alpha=6.0, sigma=2.0)
    _, made = pairs.synthesized(run, config, real, rois, seed=0)
    placed = made["new_rois"]
    method = get_method(config)
    moved = 0
    for image, own, roi, asked, new in zip(real["image"], real["roi"], placed, rois,
                                           made["new"]):
        erased = np.asarray(method.erased_region(roi[None], own[None]))[0] == 1
        np.testing.assert_array_equal(new[~erased], image[~erased])  # drawn where placed
        assert roi.sum() == asked.sum()
        if not np.array_equal(roi, asked):
            moved += 1
            assert (image[roi == 1] > 0.02).all() and not own[roi == 1].any()
    assert moved >= len(rois) // 2


def test_the_inpainting_scores_of_a_box_perfect_and_off_by_a_tenth():
    truth = np.random.default_rng(0).uniform(0.2, 0.8, (2, 32, 32, 1)).astype(np.float32)
    boxes = np.zeros_like(truth)
    boxes[:, 10:18, 12:20] = 1
    perfect = truth.copy()
    perfect[:, :3] = 0  # outside the box grown by SSIM's radius: not scored
    scores = {k: np.asarray(v) for k, v in inpainting.box_scores(perfect, truth, boxes,
                                                                 8).items()}
    np.testing.assert_array_equal(scores["mse"], 0)
    assert np.isinf(scores["psnr"]).all()
    np.testing.assert_allclose(scores["ssim"], 1, atol=1e-6)
    off = truth + 0.1 * boxes
    scores = {k: np.asarray(v) for k, v in inpainting.box_scores(off, truth, boxes, 8).items()}
    np.testing.assert_allclose(scores["mse"], 0.01, rtol=1e-4)
    np.testing.assert_allclose(scores["psnr"], 20.0, rtol=1e-4)
    assert (scores["ssim"] < 0.99).all()


def test_healthy_boxes_lie_in_the_tissue_off_the_tumour_and_away_from_the_border():
    images = np.zeros((3, 32, 32, 1), np.float32)
    images[:, 2:30, 2:20] = 0.5  # tissue on the left, background on the right
    yy, xx = np.mgrid[:32, :32]
    rois = np.repeat(((yy - 10) ** 2 + (xx - 10) ** 2 <= 16)[None, ..., None], 3, 0)
    boxes, without_room = inpainting.healthy_boxes(images, rois.astype(np.float32), 8, seed=0)
    assert without_room == [] and len({box.tobytes() for box in boxes}) > 1  # random places
    for image, roi, box in zip(images, rois, boxes):
        inside = box[..., 0] == 1
        assert inside.sum() == 64 and not roi[..., 0][inside].any()
        assert (image[..., 0][inside] > 0.02).all()
        rows, cols = np.nonzero(inside)
        assert rows.min() >= 5 and cols.min() >= 5 and rows.max() <= 26
    np.testing.assert_array_equal(boxes, inpainting.healthy_boxes(images, rois, 8, seed=0)[0])
    # A tumour that fills the tissue leaves no room: that slice is named, the rest kept.
    crowded = rois.copy()
    crowded[1, :, :20] = True
    boxes, without_room = inpainting.healthy_boxes(images, crowded, 8, seed=0)
    assert without_room == [1] and not boxes[1].any() and boxes[0].sum() == 64
    with pytest.raises(ValueError, match=r"no slice has room for a healthy 20x20 px box"):
        inpainting.healthy_boxes(images[:1], rois[:1], 20, seed=0, ids=["b"])


def test_flat_fill_puts_the_rings_mean_tissue_in_the_box():
    images = np.zeros((1, 32, 32, 1), np.float32)
    images[0, :, :16] = 0.2
    images[0, :, 16:] = 0.6
    images[0, :, 22:] = 0.0  # background in the ring's right edge: not averaged
    boxes = np.zeros_like(images)
    boxes[0, 10:18, 12:20] = 1
    filled = np.asarray(inpainting.flat_fill(jnp.asarray(images), jnp.asarray(boxes)))
    np.testing.assert_array_equal(filled[boxes == 0], images[boxes == 0])
    # The ring is rows 5..22 x cols 7..24 minus the box; its tissue ends at col 21.
    ring = np.zeros((32, 32), bool)
    ring[5:23, 7:22] = True
    ring[10:18, 12:20] = False
    want = images[0, ..., 0][ring].mean()
    assert 0.2 < want < 0.4  # more of the darker side: the background is not averaged
    np.testing.assert_allclose(filled[boxes == 1], want, rtol=1e-5)


def test_inpainting_scores_the_methods_healthy_fill(fresh):
    method, variables = fresh
    batch = disc_batch()
    scores = inpainting.inpainting_scores(method, variables, batch["image"], batch["roi"],
                                          side=6, seed=0, batch_size=3)
    boxes = scores["boxes"]
    assert scores["without_room"] == [] and list(scores["scored"]) == [0, 1, 2, 3]
    # The default noise: one seeded draw per slice index, not zeros (base.synthesis_inputs).
    noise = method.example_noise(jax.random.key(DEFAULT_NOISE_SEED), jnp.arange(4), (32, 32))
    filled, _ = method.roi_synthesis(variables, np.zeros_like(boxes), batch["image"], boxes,
                                     noise)
    want = inpainting.box_scores(filled, batch["image"], boxes, 6)
    at_zero, _ = method.roi_synthesis(variables, np.zeros_like(boxes), batch["image"], boxes,
                                      np.zeros_like(boxes))
    assert not np.allclose(inpainting.box_scores(at_zero, batch["image"], boxes, 6)["mse"],
                           scores["mse"], rtol=1e-3)
    flat = inpainting.box_scores(inpainting.flat_fill(batch["image"], boxes),
                                 batch["image"], boxes, 6)
    for key in ("mse", "psnr", "ssim"):
        assert scores[key].shape == (4,) and np.isfinite(scores[key]).all()
        np.testing.assert_allclose(scores[key], want[key], rtol=1e-5)
        np.testing.assert_allclose(scores["flat_fill"][key], flat[key], rtol=1e-5)
    assert (scores["mse"] > 0).all()  # a fresh network does not know the tissue
    with pytest.raises(ValueError, match="Fproi-GAN draws into no image"):
        paired = get_method(_config("fproi_gan"))
        inpainting.inpainting_scores(paired, {}, batch["image"], batch["roi"], 6, 0, 4)


def test_evaluate_writes_the_healthy_inpainting_table(tiny_brats, tmp_path):
    config = tiny_config(tiny_brats, NAME)
    config.eval.checkpoint = str(fresh_export(config, tmp_path / "export"))
    evaluate.evaluate(config, tmp_path / "run")
    out = tmp_path / "run" / "eval" / "Fproi-GAN + context"
    summary = json.loads((out / "inpainting.json").read_text())
    n = json.loads((out / "summary.json").read_text())["n_examples"]
    assert summary["n_examples"] == n and summary["box"] == 8  # 1/4 of 32 px
    for key in ("mse", "psnr", "ssim"):
        assert summary["metrics"][key]["n"] == n and np.isfinite(summary["metrics"][key]["mean"])
    assert summary["metrics"]["mse"]["mean"] > 0 and summary["without_room"] == []
    assert summary["per_example"]["ids"] == report.read_per_example(out)[0]
    np.testing.assert_allclose(np.mean(summary["per_example"]["mse"]),
                               summary["metrics"]["mse"]["mean"], rtol=1e-6)
    assert len(summary["per_example"]["flat_fill"]["ssim"]) == n
    text = (out / "inpainting.md").read_text()
    assert "| Method | MSE | PSNR | SSIM |" in text and "| Flat fill (mean of the ring) |" in text
