"""Healthy inpainting, scored where the truth is known: the protocol of the BraTS challenge
"local synthesis of healthy brain tissue" (BraTS-Inpainting 2023), for a method that draws
into an image (Method.reads('roi_synthesis', 'x'): fproi_gan_context).

In each slice a box of `side` px is erased at a seeded random place (seeded by (seed,
index)) inside the tissue (data/deform.tissue_mask), off the slice's tumour and at least
RADIUS px from the border, a place every one of whose pixels is healthy; the method is
asked for healthy tissue there (an empty ROI y, m = the box, and the noise of the slice's
index: Method.synthesis_inputs) and its fill is compared with the real slice inside the
box:

    MSE  = mean over the box of (fill - truth)^2
    PSNR = 10 log10(1 / MSE)            (data range 1, as metrics.psnr; +inf for MSE 0)
    SSIM = metrics.ssim of the box grown by RADIUS px on each side, both images: its valid
           region is the box, so this is the mean of the SSIM map over the box's pixels.

The erased region is the box dilated by the method's margin; only the box is scored (the
challenge scores its mask). A slice whose tumour leaves no room for the box is left out of
the scores and named in `without_room` (the table says how many); no slice with room is a
ValueError.

The yardstick (FLAT_FILL): the box filled with the mean of the tissue in the ring of
RADIUS px around it, the fill that knows the surroundings' brightness and nothing else. A
method that cannot beat it has learnt no texture or anatomy. `write_inpainting` lays both
out as one table, mean ± sample std over the slices (statistics.sample_summary, as the
evaluation's tables), beside the evaluation's summary: <eval dir>/inpainting.md,
inpainting.html and inpainting.json, which also keeps every slice's scores for the
experiment's report.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from fproi_jax import metrics, results
from fproi_jax.data import deform
from fproi_jax.evaluation.load import map_batches
from fproi_jax.evaluation.report import summary_cell
from fproi_jax.methods.fproi_gan_context import dilate
from fproi_jax.metrics.ssim import WINDOW
from fproi_jax.statistics import sample_summary

RADIUS = WINDOW // 2  # SSIM's window reaches this far around each box pixel
SCORES = {"mse": "MSE", "psnr": "PSNR", "ssim": "SSIM"}
FLAT_FILL, FLAT_FILL_LABEL = "flat_fill", "Flat fill (mean of the ring)"


def healthy_boxes(images: np.ndarray, rois: np.ndarray, side: int, seed: int,
                  ids=None) -> tuple[np.ndarray, list]:
    """((N, H, W, 1) float32 boxes of `side` px, one per slice (all 0 where none fits), the
    indices of the slices without room for one); see the module docstring."""
    square = np.ones((side, side, 1), np.float32)
    boxes, without_room = np.zeros(images.shape, np.float32), []
    for i, (image, roi) in enumerate(zip(images, rois)):
        tissue = deform.tissue_mask(image).copy()
        tissue[:RADIUS], tissue[-RADIUS:], tissue[:, :RADIUS], tissue[:, -RADIUS:] = (
            False, False, False, False)
        padded = np.zeros(image.shape, np.float32)
        padded[:side, :side] = square
        name = f"the healthy box of slice {ids[i] if ids is not None else i}"
        try:
            boxes[i] = deform.place_roi(padded, tissue, roi > 0.5,
                                        np.random.default_rng((seed, i)), what=name)
        except deform.NoRoomError:
            without_room.append(i)
    if len(without_room) == len(images):
        raise ValueError(f"no slice has room for a healthy {side}x{side} px box off its "
                         f"tumour (of {len(images)}); choose a smaller eval.inpainting_box")
    return boxes, without_room


def flat_fill(images, boxes):
    """`images` with each box filled by the mean of the tissue (deform.tissue_mask) in the
    ring of RADIUS px around it (the whole ring where it holds no tissue)."""
    grown = dilate(boxes, RADIUS)
    ring = (grown - boxes) * jnp.where(images > deform.TISSUE_THRESHOLD, 1.0, 0.0)
    ring = jnp.where(ring.sum((1, 2, 3), keepdims=True) > 0, ring, grown - boxes)
    mean = (images * ring).sum((1, 2, 3), keepdims=True) / ring.sum((1, 2, 3), keepdims=True)
    return images * (1 - boxes) + mean * boxes


def _grown_crops(images, boxes, side: int):
    """(N, side + 2 RADIUS, side + 2 RADIUS, 1) crops of `images` around each box."""
    def one(image, box):
        rows, cols = box[..., 0].any(axis=1), box[..., 0].any(axis=0)
        top, left = jnp.argmax(rows) - RADIUS, jnp.argmax(cols) - RADIUS
        size = side + 2 * RADIUS
        return jax.lax.dynamic_slice(image, (top, left, 0), (size, size, 1))
    return jax.vmap(one)(images, boxes)


@functools.partial(jax.jit, static_argnames="side")
def box_scores(filled, truth, boxes, side: int) -> dict:
    """{'mse', 'psnr', 'ssim'} per example of `filled` against `truth` inside each box of
    `side` px ((N, H, W, 1) each; boxes {0, 1}, at least RADIUS px from the border)."""
    squared = ((filled - truth) ** 2 * boxes).sum((1, 2, 3)) / boxes.sum((1, 2, 3))
    return {"mse": squared, "psnr": 10 * jnp.log10(1.0 / squared),
            "ssim": metrics.ssim(_grown_crops(filled, boxes, side),
                                 _grown_crops(truth, boxes, side))}


def inpainting_scores(method, variables, images: np.ndarray, rois: np.ndarray, side: int,
                      seed: int, batch_size: int, ids=None) -> dict:
    """Of the real (N, H, W, 1) `images` (with their tumours `rois`) that have room for a
    box: {'mse', 'psnr', 'ssim'} (n,) of the method's healthy fill, FLAT_FILL's scores
    under the same keys, the 'boxes' (n, H, W, 1), the 'scored' indices (n,) into images
    and the indices 'without_room'."""
    if not method.reads("roi_synthesis", "x"):
        raise ValueError(f"{method.label} draws into no image: it has no healthy inpainting")
    boxes, without_room = healthy_boxes(images, rois, side, seed, ids)
    scored = np.setdiff1d(np.arange(len(images)), without_room)
    images, boxes = images[scored], boxes[scored]

    @jax.jit
    def step(variables, batch):
        filled, _ = method.synthesize("roi_synthesis", variables, {
            "roi": jnp.zeros_like(batch["image"]), "image": batch["image"],
            "erase": batch["box"], "index": batch["index"]})
        flat = flat_fill(batch["image"], batch["box"])
        return {**box_scores(filled, batch["image"], batch["box"], side),
                **{f"{FLAT_FILL}/{key}": value for key, value in
                   box_scores(flat, batch["image"], batch["box"], side).items()}}

    n = len(images)
    batches = ({"image": images[i:i + batch_size], "box": boxes[i:i + batch_size],
                "index": scored[i:i + batch_size]} for i in range(0, n, batch_size))
    out = {}
    for _, scores in map_batches(lambda batch: step(variables, batch), batches, batch_size, n,
                                 f"inpaint {method.label}"):
        for key, value in scores.items():
            out.setdefault(key, []).append(value)
    out = {key: np.concatenate(value) for key, value in out.items()}
    return {**{key: out[key] for key in SCORES},
            FLAT_FILL: {key: out[f"{FLAT_FILL}/{key}"] for key in SCORES},
            "boxes": boxes, "scored": scored, "without_room": without_room}


def write_inpainting(out_dir, scores: dict, label: str, dataset: str, side: int,
                     ids) -> dict:
    """The table of `inpainting_scores` into out_dir (see the module docstring); `ids` the
    example ids of the images it was given. Returns its summary {"method", "dataset",
    "box", "n_examples", "without_room" (ids), "metrics" and "flat_fill": {score: stats},
    "per_example": {"ids", score: values, "flat_fill": {score: values}}}."""
    ids = [str(i) for i in ids]
    flat = scores[FLAT_FILL]
    summary = {"method": label, "dataset": dataset, "box": side,
               "n_examples": int(len(scores["mse"])),
               "without_room": [ids[i] for i in scores["without_room"]],
               "metrics": {key: sample_summary(scores[key]) for key in SCORES},
               FLAT_FILL: {key: sample_summary(flat[key]) for key in SCORES},
               "per_example": {"ids": [ids[i] for i in scores["scored"]],
                               **{key: scores[key].tolist() for key in SCORES},
                               FLAT_FILL: {key: flat[key].tolist() for key in SCORES}}}
    table = results.Table("Healthy inpainting (inside the erased box)",
                          ["Method", *SCORES.values()],
                          [[name, *(summary_cell(stats[key]) for key in SCORES)]
                           for name, stats in ((label, summary["metrics"]),
                                               (FLAT_FILL_LABEL, summary[FLAT_FILL]))])
    left_out = summary["without_room"]
    results.write_page(
        out_dir, f"{label}: healthy inpainting on {dataset}",
        f"{summary['n_examples']} slices, one seeded {side}x{side} px box of healthy tissue "
        "erased in each and filled by the method; scored inside the box against the real "
        "slice (PSNR in dB; † a perfect fill's +inf PSNR left out). Mean ± standard "
        f"deviation (ddof=1). {FLAT_FILL_LABEL}: the box filled with the mean tissue "
        "brightness of the ring around it, the yardstick a learnt fill must beat."
        + (f" {len(left_out)} slice(s) had no room for the box off their tumour and are "
           f"not scored: {', '.join(left_out)}." if left_out else ""),
        [table], summary, stem="inpainting", json_name="inpainting.json")
    return summary
