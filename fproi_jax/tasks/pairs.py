"""What every downstream task starts from: the real slices of a split, and each trained
run's synthesized images of them, with the patient of each.

- `load_slices`: the real images, ROIs, ids, patients (and groups, where the dataset has
  them) of a whole split, in one pass;
- `check_disjoint`: no patient on both sides of a task's train/test cut;
- `synthesized`: a run's F(G(x)) of every real slice, and its F(y') for new ROIs y'
  (`new_rois`: seeded elastic deformations of the real ROIs, beyond the paper: pairs the
  dataset does not hold; a method that draws into an image draws y' into the slice its
  ROI came from, moved first to a seeded random place inside that slice's tissue off its
  own lesion: `placed_rois`). A synthesized slice belongs to the patient of its source slice.
"""
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from data_builders import registry
from fproi_jax.data import deform, pipeline
from fproi_jax.evaluation.load import map_batches
from fproi_jax.store.runs import load_generators
from fproi_jax.tasks.base import InsufficientDataError


def load_slices(config: ml_collections.ConfigDict, split: str) -> dict:
    """{'image', 'roi', 'example_id', 'patient_id'}, plus 'group' (the dataset's group label
    of each slice, data_builders.registry: brats2017's grade, 0 = HGG, 1 = LGG) where the
    dataset has groups, of a whole split at config.data.image_size, in one pass."""
    source = pipeline.load_split(config.data, split)
    if len(source) == 0:
        raise InsufficientDataError(f"{config.data.name} split '{split}' is empty")
    columns = pipeline.concatenate(pipeline.eval_batches(source, config.data,
                                                         config.eval.batch_size))
    keys = ("image", "roi", "example_id", "patient_id")
    if registry.get(config.data.name).groups:
        keys += ("group",)
    return {key: columns[key] for key in keys}


def check_disjoint(train: dict, test: dict, train_split: str, test_split: str):
    """InsufficientDataError when a patient is in both sets (named by their splits)."""
    shared = set(train["patient_id"]) & set(test["patient_id"])
    if shared:
        raise InsufficientDataError(
            f"splits '{train_split}' and '{test_split}' share patients {sorted(shared)[:5]}: "
            f"the task's test would see its training patients")


def new_rois(rois: np.ndarray, seed: int, alpha: float, sigma: float) -> np.ndarray:
    """One elastic deformation per real ROI (deform.deform_roi), seeded by (seed, index)."""
    keys = jax.random.split(jax.random.key(seed), len(rois))
    deformed = jax.jit(jax.vmap(lambda roi, key: deform.deform_roi(roi, key, alpha, sigma)))
    return np.asarray(deformed(rois, keys))


def placed_rois(rois: np.ndarray, real: dict, seed: int) -> np.ndarray:
    """Each of `rois` moved to a random place inside the tissue of its real slice, off that
    slice's own ROI (deform.place_roi), seeded by (seed, index), so that its tumour is drawn
    somewhere new; one that fits nowhere there (or is empty) stays where it is."""
    placed, stayed = [], 0
    for i, (roi, image, own) in enumerate(zip(rois, real["image"], real["roi"])):
        try:
            placed.append(deform.place_roi(roi, deform.tissue_mask(image), own > 0.5,
                                           np.random.default_rng((seed, i))))
        except ValueError:
            placed.append(np.asarray(roi, np.float32))
            stayed += 1
    if stayed:
        logging.info("%d of %d new ROIs fit nowhere else in their slices: left in place",
                     stayed, len(rois))
    return np.stack(placed)


def synthesized(run: pathlib.Path, config: ml_collections.ConfigDict, real: dict,
                rois: np.ndarray | None = None, seed: int = 0,
                samples: int = 1) -> tuple[str, dict]:
    """(the run's label, {'images': F(G(x)) of each real slice, 'new': F(y) of each of
    `rois` and 'new_rois' those ROIs as drawn (placed_rois, seeded by `seed`, for a method
    that draws into an image; else `rois`), both absent without them}), at the run's
    image size, which must be config's.

    'new' is drawn with the default noise draw (Method.synthesis_inputs) by a method that
    reads noise; for such a method and `samples` > 1, 'new_samples' (N, samples, H, W, 1)
    holds as many draws of each new ROI, noise seeded by (seed, sample, index)."""
    run_config, method, variables = load_generators(run)
    size = run_config.data.image_size
    if size != config.data.image_size:
        raise ValueError(f"{run}: trained at {size} px, the task's data is at "
                         f"{config.data.image_size} px; pass --config.data.image_size={size}")
    batch_size = config.eval.batch_size

    draws = samples if rois is not None and method.reads("roi_synthesis", "z") else 1
    noise_key = jax.random.key(seed)

    @jax.jit
    def synthesize(variables, batch):
        _, x_hat = method.synthesize("image_synthesis", variables, batch)
        out = {"images": x_hat}
        if "new_roi" in batch:
            # A method that draws into an image draws the new ROI into its source slice,
            # the source's own ROI erased too (healthy tissue where the new one is not).
            new = {"roi": batch["new_roi"], "image": batch["image"], "erase": batch["roi"]}
            out["new"] = method.synthesize("roi_synthesis", variables, new)[0]
        if draws > 1:
            shape = batch["image"].shape[1:3]
            out["new_samples"] = jnp.stack([method.synthesize("roi_synthesis", variables, {
                **new, "noise": method.example_noise(jax.random.fold_in(noise_key, k),
                                                     batch["index"], shape)})[0]
                for k in range(draws)], axis=1)
        return out

    inputs = {"image": real["image"], "roi": real["roi"],
              "index": np.arange(len(real["image"]), dtype=np.int32)}
    if rois is not None and method.reads("roi_synthesis", "x"):
        rois = placed_rois(rois, real, seed)
    if rois is not None:
        inputs["new_roi"] = rois
    n = len(real["image"])
    batches = ({k: v[i:i + batch_size] for k, v in inputs.items()}
               for i in range(0, n, batch_size))
    outputs = {}
    step = lambda batch: synthesize(variables, batch)  # noqa: E731
    for _, out in map_batches(step, batches, batch_size, n, f"synthesize {method.label}"):
        for key, value in out.items():
            outputs.setdefault(key, []).append(value)
    made = {key: np.concatenate(value) for key, value in outputs.items()}
    if rois is not None:
        made["new_rois"] = np.asarray(rois, np.float32)
    return method.label, made
