"""The experiment's healthy-inpainting table: for each method that draws into an image
(fproi_gan_context), its seeds' healthy fills (evaluation/inpainting.py) against the flat
fill, the yardstick a learnt fill must beat.

Per method and score: the mean over seeds and slices with a 95% interval that resamples
seeds and test patients, and the method's difference to the flat fill with the same kind
of interval (statistics.bootstrap_mean, bootstrap_difference; the flat fill is one "seed",
the same in every run). Every seed scores the same seeded boxes, so the slices match by id;
a slice one seed did not score is left out of all of them.
"""
import json

import numpy as np

from fproi_jax import results, statistics
from fproi_jax.evaluation import inpainting

HIGHER_IS_BETTER = {"mse": False, "psnr": True, "ssim": True}


def read(eval_dirs) -> dict:
    """{method: [inpainting.json summary per seed]} of the methods whose evaluations have
    one (eval_dirs: {method label: [eval dir per seed]})."""
    found = {}
    for method, dirs in eval_dirs.items():
        paths = [d / "inpainting.json" for d in dirs]
        if all(p.exists() for p in paths):
            found[method] = [json.loads(p.read_text()) for p in paths]
    return found


def _interval(stat) -> str:
    if stat["mean"] is None:
        return "n/a"
    return f"{stat['mean']:.3f} ({stat['low']:.3f}, {stat['high']:.3f})"


def _difference(stat, higher: bool) -> str:
    if stat["mean"] is None:
        return "n/a"
    text = f"{stat['mean']:+.3f} ({stat['low']:+.3f}, {stat['high']:+.3f})"
    if stat["excludes_0"]:
        text += " better" if (stat["mean"] > 0) == higher else " worse"
    return text


def _column(per_example: dict, ids: list, key: str, flat: bool = False) -> np.ndarray:
    """The method's (the flat fill's) `key` scores of an inpainting.json's per_example at
    the slices `ids`, in that order."""
    where = {i: k for k, i in enumerate(per_example["ids"])}
    values = per_example[inpainting.FLAT_FILL][key] if flat else per_example[key]
    return np.array([values[where[i]] for i in ids])


def table(found: dict, patients: dict) -> tuple[results.Table, dict]:
    """The table of `read`'s summaries (patients: {example id: patient}) and its summary
    {method: {"n_examples", "n_patients", "without_room", score: {"method", "flat_fill",
    "difference"}}}."""
    rows, summary = [], {}
    for method, seeds in found.items():
        common = set.intersection(*(set(s["per_example"]["ids"]) for s in seeds))
        ids = [i for i in seeds[0]["per_example"]["ids"] if i in common]
        units = [patients[i] for i in ids]
        summary[method] = {"n_examples": len(ids), "n_patients": len(set(units)),
                           "without_room": sorted(set().union(*(s["without_room"]
                                                                for s in seeds)))}
        cells = {"method": [], "flat_fill": [], "difference": []}
        for key in inpainting.SCORES:
            ours = np.stack([_column(s["per_example"], ids, key) for s in seeds])
            flat = _column(seeds[0]["per_example"], ids, key, flat=True)[None]
            stats = {"method": statistics.bootstrap_mean(ours, units),
                     "flat_fill": statistics.bootstrap_mean(flat, units),
                     "difference": statistics.bootstrap_difference(flat, ours, units)}
            summary[method][key] = stats
            cells["method"].append(_interval(stats["method"]))
            cells["flat_fill"].append(_interval(stats["flat_fill"]))
            cells["difference"].append(_difference(stats["difference"],
                                                   HIGHER_IS_BETTER[key]))
        rows += [[method, *cells["method"]],
                 [inpainting.FLAT_FILL_LABEL, *cells["flat_fill"]],
                 [f"{method} − flat fill", *cells["difference"]]]
    side = next(iter(found.values()))[0]["box"]
    n_patients = max(s["n_patients"] for s in summary.values())
    notes = [f"One seeded {side}x{side} px box of healthy tissue erased per test slice and "
             f"filled (the BraTS local-inpainting protocol); scored inside the box against "
             f"the real slice, PSNR in dB. Mean (95% interval resampling seeds and "
             f"{n_patients} test patients); 'better' or 'worse' where the difference's "
             f"interval excludes 0. The flat fill is the box filled with the mean tissue "
             f"brightness of the ring around it."]
    left_out = sorted(set().union(*(s["without_room"] for s in summary.values())))
    if left_out:
        notes.append(f"{len(left_out)} slice(s) had no room for the box off their tumour "
                     f"and are not scored: {', '.join(left_out)}.")
    return (results.Table("Healthy inpainting", ["", *inpainting.SCORES.values()], rows,
                          notes), summary)
