"""Healthy inpainting, scored where the truth is known: the protocol of the BraTS challenge
"local synthesis of healthy brain tissue" (BraTS-Inpainting 2023), for a method that draws
into an image (Method.reads('roi_synthesis', 'x'): fproi_gan_context).

In each slice a box of `side` px is erased at a seeded random place (seeded by (seed,
index)) inside the tissue (data/deform.tissue_mask), off the slice's tumour and at least
RADIUS px from the border, a place every one of whose pixels is healthy; the method is
asked for healthy tissue there (an empty ROI y, m = the box: roi_synthesis(y, x, m, z = 0))
and its fill is compared with the real slice inside the box:

    MSE  = mean over the box of (fill - truth)^2
    PSNR = 10 log10(1 / MSE)            (data range 1, as metrics.psnr; +inf for MSE 0)
    SSIM = metrics.ssim of the box grown by RADIUS px on each side, both images: its valid
           region is the box, so this is the mean of the SSIM map over the box's pixels.

The erased region is the box dilated by the method's margin; only the box is scored (the
challenge scores its mask). A slice with no such place is a ValueError naming it.
`write_inpainting` lays the scores out as one table, mean ± sample std over the slices
(statistics.sample_summary, as the evaluation's tables), beside the evaluation's summary:
<eval dir>/inpainting.md, inpainting.html, inpainting.json.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from fproi_jax import metrics, results
from fproi_jax.data import deform
from fproi_jax.evaluation.load import map_batches
from fproi_jax.evaluation.report import summary_cell
from fproi_jax.metrics.ssim import WINDOW
from fproi_jax.statistics import sample_summary

RADIUS = WINDOW // 2  # SSIM's window reaches this far around each box pixel
SCORES = {"mse": "MSE", "psnr": "PSNR", "ssim": "SSIM"}


def healthy_boxes(images: np.ndarray, rois: np.ndarray, side: int, seed: int,
                  ids=None) -> np.ndarray:
    """(N, H, W, 1) float32 boxes of `side` px, one per slice (see the module docstring)."""
    square = np.ones((side, side, 1), np.float32)
    boxes = []
    for i, (image, roi) in enumerate(zip(images, rois)):
        tissue = deform.tissue_mask(image).copy()
        tissue[:RADIUS], tissue[-RADIUS:], tissue[:, :RADIUS], tissue[:, -RADIUS:] = (
            False, False, False, False)
        padded = np.zeros(image.shape, np.float32)
        padded[:side, :side] = square
        name = f"the healthy box of slice {ids[i] if ids is not None else i}"
        boxes.append(deform.place_roi(padded, tissue, roi > 0.5,
                                      np.random.default_rng((seed, i)), what=name))
    return np.stack(boxes)


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
    """{'mse', 'psnr', 'ssim'} (N,) of the method's healthy fill of a box in each of the real
    (N, H, W, 1) `images` (with their tumours `rois`), and the 'boxes'."""
    if not method.reads("roi_synthesis", "x"):
        raise ValueError(f"{method.label} draws into no image: it has no healthy inpainting")
    boxes = healthy_boxes(images, rois, side, seed, ids)

    @jax.jit
    def step(variables, batch):
        filled, _ = method.synthesize("roi_synthesis", variables, {
            "roi": jnp.zeros_like(batch["image"]), "image": batch["image"],
            "erase": batch["box"]})
        return box_scores(filled, batch["image"], batch["box"], side)

    n = len(images)
    batches = ({"image": images[i:i + batch_size], "box": boxes[i:i + batch_size]}
               for i in range(0, n, batch_size))
    scores = {}
    for _, out in map_batches(lambda batch: step(variables, batch), batches, batch_size, n,
                              f"inpaint {method.label}"):
        for key, value in out.items():
            scores.setdefault(key, []).append(value)
    return {**{key: np.concatenate(value) for key, value in scores.items()}, "boxes": boxes}


def write_inpainting(out_dir, scores: dict, label: str, dataset: str, side: int) -> dict:
    """The table of `inpainting_scores` into out_dir (see the module docstring); returns
    its summary {"method", "dataset", "box", "n_examples", "metrics": {score: stats}}."""
    summary = {"method": label, "dataset": dataset, "box": side,
               "n_examples": int(len(scores["mse"])),
               "metrics": {key: sample_summary(scores[key]) for key in SCORES}}
    table = results.Table("Healthy inpainting (inside the erased box)",
                          ["Method", *SCORES.values()],
                          [[label, *(summary_cell(summary["metrics"][key]) for key in SCORES)]])
    results.write_page(
        out_dir, f"{label}: healthy inpainting on {dataset}",
        f"{summary['n_examples']} slices, one seeded {side}x{side} px box of healthy tissue "
        "erased in each and filled by the method; scored inside the box against the real "
        "slice (PSNR in dB; † a perfect fill's +inf PSNR left out). Mean ± standard "
        "deviation (ddof=1).", [table], summary, stem="inpainting", json_name="inpainting.json")
    return summary
