"""Table 6 (beyond the paper): do the synthesized pairs help a tumour segmenter? The task
`segmentation`; `launch.py --mode=segment`.

Protocol, leak-free: the segmenter trains on config.data.train_split, the patients the
synthesis runs were trained on, and is tested on config.data.test_split, which neither the
runs nor the segmenter saw (Table 5 instead tests on the runs' training patients, as the
paper does). Groups, each the segmenter's whole training set:

- "Real only": the real training pairs (x, y);
- "+ classical augmentation": plus one augmented copy of each (data/augment.classical);
- "+ copy-paste": plus one copy of each with another slice's tumour pasted in
  (data/augment.copy_paste, TumorCP style): the baseline that needs no GAN;
- "+ <method> (new masks)": plus (F(y'), y') for y' a seeded elastic deformation of each
  real ROI (pairs.new_rois; moved inside its slice for a method that draws into one);
- "+ <method> (paper's pairs)": plus (F(G(x)), y), the synthesis the paper evaluates;
- "<method> only": the method's pairs of both kinds, no real pair.

Segmenter: models/segmenter.py (MONAI's BasicUNet layout), Dice + BCE loss, Adam at
config.segment.learning_rate for config.segment.steps steps of config.segment.batch_size,
one run per seed in range(config.segment.seeds), through the sharded train step
(train/fit.py). Scores on every test slice: Dice and the surface HD95 (pixels) of the
prediction (sigmoid > 0.5) against the real ROI; a slice predicted empty has HD95 +inf and
is left out of the HD95 mean (counted). Intervals: 95% bootstrap over test patients and
seeds (statistics.bootstrap_difference); a difference's interval excluding 0 is marked.
Then the scores of each run's new pairs (tasks/new_pairs.py: consistency with the
real-only segmenters, realism (KID, a two-sample test) on the first real-only segmenter's
deepest features, memorisation, diversity), a second table.

The low-data regime: the training split holds the patients of config.data.train_fraction
(data/patient_subset.py), so at a fraction f < 1 every group above is built from those
patients' slices, and the runs should be those trained at f (the experiment passes them,
config.experiment.train_fractions). `by_fraction` lays Table 6 at several fractions out as
one result: each fraction's tables, and one figure with the fractions side by side.
"""
import dataclasses
import pathlib
import time

import jax
import jax.numpy as jnp
import matplotlib
import ml_collections
import numpy as np
from absl import logging

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from fproi_jax import atomic, losses, metrics, results, statistics  # noqa: E402
from fproi_jax.data import augment, pipeline  # noqa: E402
from fproi_jax.evaluation import figures  # noqa: E402
from fproi_jax.evaluation.load import map_batches  # noqa: E402
from fproi_jax.methods.base import Method, Synthesis, UpdateGroup  # noqa: E402
from fproi_jax.models.segmenter import Segmenter  # noqa: E402
from fproi_jax.tasks import new_pairs, pairs  # noqa: E402
from fproi_jax.tasks.base import Task  # noqa: E402
from fproi_jax.train.fit import Fitter  # noqa: E402

REAL, CLASSICAL, COPY_PASTE = "Real only", "+ classical augmentation", "+ copy-paste"
FIGURE = results.Figure("Table 6 as a figure: test Dice per training set (95% intervals)",
                        "dice_per_group.png")
BY_FRACTION = results.Figure("Table 6 as a figure at each fraction of the training patients: "
                             "test Dice per training set (95% intervals)",
                             "dice_per_group_by_fraction.png")
SAMPLES = results.Figure(
    "New pairs of the methods that draw several images per mask: the source slice, then "
    "each draw (solid lime: the mask asked for; dashed red: what the first real-only "
    "segmenter finds in the draw)", "new_pair_samples.png")
SAMPLES_SHOWN = 3   # new masks per run in SAMPLES
PROTOCOL = (
    "Protocol: the segmenter trains on {data.name} split '{data.train_split}'{fraction}, the "
    "patients "
    "the synthesis runs ({runs}) were trained on, and is tested on split "
    "'{data.test_split}', which neither saw.")


def default_config() -> ml_collections.ConfigDict:
    """config.segment."""
    return ml_collections.ConfigDict({
        "runs": "",              # --mode=segment: "Fproi-GAN=RUN_DIR,CycleGAN=RUN_DIR"
        "seeds": 3,              # segmenter runs per group
        "steps": 1000,
        "batch_size": 8,
        "learning_rate": 1e-3,
        "features": (32, 32, 64, 128, 256, 32),  # MONAI BasicUNet's default widths
        "seed": 0,               # of the augmentations, copy-paste and new masks
        # Draws per new mask of a method that reads noise (fproi_gan_context): the New pairs
        # table's diversity and the samples figure; Table 6 uses the default draw.
        "samples_per_mask": 3,
        "deform_alpha": 34.0,    # elastic deformation of new masks and of the classical
        "deform_sigma": 4.0,     # augmentation (pixels; Simard et al. 2003)
    })


class SegmenterMethod(Method):
    """The segmenter as a one-network method, so that it trains through make_train_step."""

    networks = ("S",)
    label = "Segmenter"

    def __init__(self, features):
        self.module = Segmenter(tuple(features))

    def init(self, rng, image_shape):
        variables = self.module.init(rng, jnp.zeros((1, *image_shape, 1)))
        return {"S": variables["params"]}, {}

    def _objective(self, own, params, batch_stats, batch, earlier, rng):
        loss = losses.dice_bce_loss(self.module.apply({"params": own["S"]}, batch["image"]),
                                    batch["roi"])
        return loss, ({"dice_bce": loss}, {}, batch_stats)

    def predict(self, variables, x):
        return (jax.nn.sigmoid(self.module.apply({"params": variables["params"]["S"]}, x)),)

    @property
    def update_groups(self):
        return (UpdateGroup("segmenter", ("S",), self._objective),)

    @property
    def syntheses(self):
        return (Synthesis("segment", "x", ("S(x)",), self.predict),)


def _groups(config, real: dict, runs: dict) -> tuple[dict, dict]:
    """({group name: {'image', 'roi'}} of the module docstring, {run label: its new pairs
    {'image', 'roi'}})."""
    settings = config.segment
    base = {"image": real["image"], "roi": real["roi"]}
    plus = lambda images, rois: {"image": np.concatenate([real["image"], images]),  # noqa: E731
                                 "roi": np.concatenate([real["roi"], rois])}
    groups = {REAL: base}
    groups[CLASSICAL] = plus(*augment.classical(real["image"], real["roi"], settings.seed,
                                                settings.deform_alpha, settings.deform_sigma))
    groups[COPY_PASTE] = plus(*augment.copy_paste(real["image"], real["roi"], settings.seed,
                                                  ids=real["example_id"])[:2])
    new_masks = pairs.new_rois(real["roi"], settings.seed, settings.deform_alpha,
                               settings.deform_sigma)
    new = {}
    for path in runs.values():
        label, made = pairs.synthesized(path, config, real, new_masks, settings.seed,
                                        settings.samples_per_mask)
        new[label] = {"image": made["new"], "roi": made["new_rois"]}
        if "new_samples" in made:
            new[label]["samples"] = made["new_samples"]
        groups[f"+ {label} (new masks)"] = plus(made["new"], made["new_rois"])
        groups[f"+ {label} (paper's pairs)"] = plus(made["images"], real["roi"])
        groups[f"{label} only"] = {"image": np.concatenate([made["new"], made["images"]]),
                                   "roi": np.concatenate([made["new_rois"], real["roi"]])}
    return groups, new


def make_scorer(method: SegmenterMethod):
    """One jitted function: (variables, batch) -> the Dice and surface HD95 of the
    prediction (sigmoid > 0.5) against the batch's ROI; compiled once for every segmenter."""
    @jax.jit
    def score(variables, batch):
        (probability,) = method.predict(variables, batch["image"])
        return {"dice": metrics.dice(probability, batch["roi"]),
                "hd95": metrics.hausdorff_distances(probability, batch["roi"])[
                    "surface_hausdorff95"]}
    return score


def _scores(scorer, variables, test: dict, batch_size: int, keys=("image", "roi")) -> dict:
    """scorer's outputs ({'dice', 'hd95'} of make_scorer) of a segmenter on every test
    slice; the scorer reads test's `keys`."""
    step = lambda batch: scorer(variables, batch)  # noqa: E731
    n = len(test["image"])
    batches = ({key: test[key][i:i + batch_size] for key in keys}
               for i in range(0, n, batch_size))
    return pipeline.concatenate(out for _, out in map_batches(step, batches, batch_size, n,
                                                              "segment"))


def _new_pairs(scorer, featurizer, real_only, real, test, new, test_dice, batch_size):
    """new_pairs.table's rows: real test images (the reference), then each run's new pairs;
    the likely-copy threshold; the length of the realism features (featurizer, the deepest
    feature map of the first real-only segmenter)."""
    threshold = new_pairs.copy_threshold(real["image"], test["image"])
    extractor = real_only[0]["params"]["S"]

    def features(images):
        return _scores(featurizer, extractor, {"image": images}, batch_size,
                       ("image",))["features"]

    test_features = features(test["image"])

    def realism(images, units):
        ours = features(images)
        return {"kid": new_pairs.kid(ours, test_features, units, test["patient_id"]),
                "realism_auc": new_pairs.two_sample_auc(ours, test_features, units,
                                                        test["patient_id"])}

    rows = {"Real test images (reference)": {
        "n": int(len(test["image"])),
        "consistency": statistics.bootstrap_mean(test_dice, test["patient_id"]),
        **realism(real["image"], real["patient_id"]),
        **new_pairs.memorisation(test["image"], real["image"], threshold),
        "diversity": new_pairs.diversity(test["image"][:, None])}}
    for label, made in new.items():
        dice = np.stack([_scores(scorer, variables, made, batch_size)["dice"]
                         for variables in real_only])
        rows[f"{label} (new masks)"] = {
            "n": int(len(made["image"])),
            "consistency": statistics.bootstrap_mean(dice, real["patient_id"]),
            **realism(made["image"], real["patient_id"]),
            **new_pairs.memorisation(made["image"], real["image"], threshold),
            "diversity": new_pairs.diversity(made.get("samples", made["image"][:, None]))}
    return rows, threshold, test_features.shape[1]


def _interval(d) -> str:
    if d["mean"] is None:
        return "n/a"
    return f"{d['mean']:.3f} ({d['low']:.3f}, {d['high']:.3f})"


def _difference(d) -> str:
    if d["mean"] is None:
        return "n/a"
    text = f"{d['mean']:+.3f} ({d['low']:+.3f}, {d['high']:+.3f})"
    return text + (" better" if d["excludes_0"] and d["mean"] > 0 else
                   " worse" if d["excludes_0"] else "")


def _table(summary) -> results.Table:
    rows = [[name, str(g["n_train"]), _interval(g["dice"]),
             _interval(g["hd95"]) + (f" ({g['hd95']['n_dropped']} empty)"
                                     if g["hd95"]["n_dropped"] else ""),
             _difference(g["vs_real"]) if name != REAL else "(reference)",
             _difference(g["vs_copy_paste"]) if name != COPY_PASTE else "(reference)"]
            for name, g in summary["groups"].items()]
    s, t = summary["settings"], summary["test"]
    notes = [f"Test set: {t['n']} slices of {t['n_patients']} patients. Mean over "
             f"{s['seeds']} segmenter seed(s) and the test slices, with 95% intervals "
             f"resampling test patients and seeds; 'better'/'worse' where a difference's "
             f"interval excludes 0. HD95: surface distance in pixels; slices predicted empty "
             f"are left out of its mean and counted.",
             f"Segmenter: BasicUNet layout, features {tuple(s['features'])}, instance norm, "
             f"Dice + BCE, Adam {s['learning_rate']:g}, {s['steps']} steps of batch "
             f"{s['batch_size']}.",
             summary["protocol"]]
    return results.Table("Table 6: tumour segmentation trained with and without synthesized "
                         "pairs", ["Training set", "n train", "Dice (95% CI)",
                                   "HD95 surface (95% CI)", f"Δ Dice vs {REAL}",
                                   f"Δ Dice vs {COPY_PASTE.lstrip('+ ')}"], rows, notes)


def _figure(path, summaries: dict):
    """Test Dice per training set, saved to `path` and returned: one bar per summary of
    `summaries` ({name: Table 6 summary}, e.g. one per training fraction) side by side,
    each with its real-only Dice dashed."""
    names = list(dict.fromkeys(n for summary in summaries.values() for n in summary["groups"]))
    several = len(summaries) > 1
    fig = Figure(figsize=(6.4, 0.35 * len(names) * (1 + 0.5 * several) + 1.2), dpi=110)
    ax = fig.subplots()
    y = np.arange(len(names))[::-1]
    height = 0.8 / len(summaries)
    for k, (name, summary) in enumerate(summaries.items()):
        dice = [summary["groups"].get(n, {}).get("dice", {"mean": None}) for n in names]
        means = np.array([d["mean"] if d["mean"] is not None else np.nan for d in dice])
        errors = np.array([[m - d["low"], d["high"] - m] if d["mean"] is not None else [0, 0]
                           for m, d in zip(means, dice)]).T
        colour = f"C{k}" if several else "#7a9cc6"
        offset = ((len(summaries) - 1) / 2 - k) * height  # the first summary on top
        ax.barh(y + offset, means, height=height, xerr=errors, color=colour, capsize=3,
                label=name if several else None)
        ax.axvline(summary["groups"][REAL]["dice"]["mean"] or 0, ls="--", lw=0.8,
                   color=colour if several else "#444",
                   label=f"{REAL}, {name}" if several else REAL)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("test Dice (mean over seeds and slices)")
    fig.tight_layout()
    atomic.save_figure(fig, path)
    return fig


def run(config: ml_collections.ConfigDict, runs: dict, out_dir) -> results.Result:
    """Table 6 of the runs ({label: run dir or export}) into `out_dir` (scores.npz,
    dice_per_group.png)."""
    start = time.time()
    settings = config.segment
    real = pairs.load_slices(config, config.data.train_split)
    test = pairs.load_slices(config, config.data.test_split)
    pairs.check_disjoint(real, test, config.data.train_split, config.data.test_split)
    groups, new = _groups(config, real, runs)
    method = SegmenterMethod(settings.features)
    fitter = Fitter(method, settings.learning_rate, config.data.image_size, settings.batch_size)
    scorer = make_scorer(method)
    scores, real_only = {}, []
    for name, arrays in groups.items():
        per_seed = []
        logging.info("Table 6: training %d segmenter(s) on %s (%d pairs)", settings.seeds,
                     name, len(arrays["image"]))
        for seed in range(settings.seeds):
            state, _ = fitter.fit(arrays, settings.steps, seed)
            variables = {"params": jax.device_get(state.params)}
            per_seed.append(_scores(scorer, variables, test, config.eval.batch_size))
            if name == REAL:
                real_only.append(variables)
        scores[name] = {key: np.stack([s[key] for s in per_seed]) for key in ("dice", "hd95")}
    units = test["patient_id"]
    summary_groups = {}
    for name, score in scores.items():
        summary_groups[name] = {
            "n_train": int(len(groups[name]["image"])),
            "dice": statistics.bootstrap_mean(score["dice"], units),
            "hd95": statistics.bootstrap_mean(score["hd95"], units),
            "vs_real": statistics.bootstrap_difference(scores[REAL]["dice"], score["dice"],
                                                       units),
            "vs_copy_paste": statistics.bootstrap_difference(scores[COPY_PASTE]["dice"],
                                                             score["dice"], units),
            "seed_dice": [float(np.mean(row)) for row in score["dice"]],
        }
    new_rows, threshold, n_features = _new_pairs(
        scorer, new_pairs.make_featurizer(method.module), real_only, real, test, new,
        scores[REAL]["dice"], config.eval.batch_size)
    fraction = float(config.data.train_fraction)
    train = {"n": int(len(real["image"])), "n_patients": int(len(set(real["patient_id"]))),
             "fraction": fraction}
    summary = {
        "new_pairs": {"rows": new_rows, "copy_threshold": threshold, "n_features": n_features},
        "protocol": PROTOCOL.format(
            data=config.data, runs=", ".join(f"{label}={path}" for label, path in runs.items()),
            fraction="" if fraction == 1.0 else
            f" (fraction {fraction:g} of its patients, {train['n_patients']} patients)"),
        "settings": settings.to_dict(),
        "train": train,
        "test": {"n": int(len(test["image"])), "n_patients": int(len(set(units)))},
        "groups": summary_groups,
        "timing_s": round(time.time() - start, 1),
    }
    out_dir = pathlib.Path(out_dir)
    with atomic.replacing(out_dir / "scores.npz") as tmp:
        np.savez(tmp, example_id=test["example_id"], patient_id=units,
                 groups=np.array(list(scores)),
                 dice=np.stack([s["dice"] for s in scores.values()]),
                 hd95=np.stack([s["hd95"] for s in scores.values()]))
    _figure(out_dir / FIGURE.path, {"": summary})
    shown = [FIGURE]
    drawn = {label: made for label, made in new.items() if "samples" in made}
    if drawn:
        _samples_figure(out_dir / SAMPLES.path, real["image"], drawn, method, real_only[0])
        shown.append(SAMPLES)
    return results.Result([_table(summary), new_pairs.table(new_rows, threshold, n_features)],
                          shown, summary)


def _samples_figure(path, sources, drawn: dict, method: SegmenterMethod, variables,
                    masks: int = SAMPLES_SHOWN):
    """SAMPLES for the runs that drew several images per new mask ({label: new pairs with
    'samples'}): the first `masks` new masks of each, the first real-only segmenter's
    finding outlined in every draw."""
    predict = jax.jit(lambda x: method.predict(variables, x)[0])
    rows = []
    for label, made in drawn.items():
        for i in range(min(masks, len(made["roi"]))):
            found = np.asarray(predict(made["samples"][i]))
            rows.append((f"{label}: mask {i}", sources[i], made["roi"][i], made["samples"][i],
                         found))
    return figures.samples_grid(path, rows)


def by_fraction(out_dir, done: dict) -> results.Result:
    """Table 6 at several fractions of the training patients ({fraction: the Result of run
    at it}) as one Result: each fraction's tables titled with it, one figure of Dice with
    the fractions side by side (BY_FRACTION), and the summary {"fractions": {"0.25": that
    fraction's summary, or {"skipped": why}}}."""
    tables, shown, fractions = [], {}, {}
    for fraction, result in done.items():
        key = f"{fraction:g}"
        if result.skipped is not None:
            fractions[key] = {"skipped": result.skipped}
            continue
        fractions[key] = result.summary
        at = (f"at fraction {key} of the training patients "
              f"({result.summary['train']['n_patients']} patients)")
        tables += [dataclasses.replace(table, title=f"{table.title}, {at}")
                   for table in result.tables]
        shown[f"fraction {key}"] = result.summary
    skipped = [f"fraction {key}: {f['skipped']}" for key, f in fractions.items() if "skipped" in f]
    if not shown:
        return results.Result(skipped="; ".join(skipped))
    if skipped:
        last = tables[-1]
        tables[-1] = dataclasses.replace(last, notes=(*last.notes, "Not run at " + "; ".join(
            skipped)))
    _figure(pathlib.Path(out_dir) / BY_FRACTION.path, shown)
    return results.Result(tables, [BY_FRACTION], {"fractions": fractions})


TASK = Task("segmentation", "segment", default_config, run, by_fraction)
