"""Evaluation of a trained run on the test split (paper section 2.3), and comparison of runs.

Per test example (x image, y its real ROI):
- image synthesis x -> G(x~) -> F(G(x~)): PSNR (eq. 3), SSIM (eq. 4) and MS-SSIM of
  F(G(x)) against x, over the whole image and over the tumour region (the metric of
  F(G(x)) * y against x * y, y the REAL ROI);
- ROI synthesis y -> F(y) -> G(F(y)~): Dice (eq. 5), Hausdorff and HD95 (eq. 6, all ROI
  pixels) and their boundary-based versions (metrics.surface_hausdorff) of G(F(y)) against y,
  all four from one distance transform per ROI (metrics.hausdorff_distances).
A method that draws into an image (Fproi-GAN + context) draws y into its own test slice,
with the ROI and its margin erased, one seeded noise draw per slice: its scores measure
how well it redraws the erased region, not an image invented from the mask alone.
Such a method is also scored on healthy inpainting (evaluation/inpainting.py: a seeded
healthy box of side eval.inpainting_box per slice erased and filled; inpainting.md/json).
The metrics are the registry of evaluation/scores.py. MS-SSIM needs images of at least
176 px (5 scales of an 11-px window); at smaller sizes (the 64 px demo) it is not computed
and its cells read "—".

`evaluate` writes into <workdir>/eval/<method>/ (store.runs.eval_dir): per_example.csv,
summary.md/html/json (report.write_report), the FIGURES (comparison_grid.png, Figs 6-7;
grey_histograms.png, Fig 8; roi_grid.png), and samples.npz (the first eval.num_samples
inputs and syntheses, which `compare` and the experiment draw). `compare` writes
comparison.md/html/json and the same figures across methods into <workdir>/comparison/.
"""
import pathlib

import jax
import ml_collections
import numpy as np

from fproi_jax import atomic, results
from fproi_jax.data import pipeline
from fproi_jax.evaluation import figures, inpainting, report, scores
from fproi_jax.evaluation.load import map_batches, with_run_image_size
from fproi_jax.store import runs
from fproi_jax.store.runs import load_generators

SAMPLES = "samples.npz"
SAMPLE_KEYS = ("image", "roi", "F(G(x))", "G(F(y))")


def make_eval_step(method, variables, image_size: int):
    """One jitted function: a batch {'image', 'roi'} -> both syntheses and every score
    (scores.compute) defined at image_size."""

    @jax.jit
    def step(variables, batch):
        x, y = batch["image"], batch["roi"]
        _, f_g_x = method.synthesize("image_synthesis", variables, batch)
        _, g_f_y = method.synthesize("roi_synthesis", variables, batch)
        return {**scores.compute(x, y, f_g_x, g_f_y, image_size),
                "F(G(x))": f_g_x, "G(F(y))": g_f_y}

    return lambda batch: step(variables, {"image": batch["image"], "roi": batch["roi"]})


def evaluate(config: ml_collections.ConfigDict, workdir) -> dict:
    """Evaluates the run at eval.checkpoint (default: workdir) on config.data's test split.

    Returns the summary dict of report.write_report.
    """
    workdir = pathlib.Path(workdir)
    run_config, method, variables = load_generators(config.eval.checkpoint or workdir)
    config = with_run_image_size(config, run_config)
    label = config.eval.method or method.label
    out_dir = runs.eval_dir(workdir, label)
    source = pipeline.load_split(config.data, config.data.test_split)

    step = make_eval_step(method, variables, config.data.image_size)
    batches = pipeline.eval_batches(source, config.data, config.eval.batch_size)
    columns = pipeline.concatenate(
        {**batch, **outputs} for batch, outputs in map_batches(
            step, batches, config.eval.batch_size, len(source), f"evaluate {label}"))
    ids = list(columns["example_id"])

    per_example = {name: columns[name] for name in report.ALL_METRICS if name in columns}
    summary = report.write_report(per_example, ids, out_dir, label,
                                  f"{config.data.name} {config.data.test_split}", FIGURES)
    if method.reads("roi_synthesis", "x"):
        side = max(1, round(config.eval.inpainting_box * config.data.image_size))
        made = inpainting.inpainting_scores(method, variables, columns["image"],
                                            columns["roi"], side, config.eval.noise_seed,
                                            config.eval.batch_size, ids)
        inpainting.write_inpainting(
            out_dir, made, label, f"{config.data.name} {config.data.test_split}", side, ids)
    n = config.eval.num_samples
    with atomic.replacing(out_dir / SAMPLES) as tmp:
        np.savez_compressed(tmp, ids=np.array(ids[:n]),
                            **{key: columns[key][:n] for key in SAMPLE_KEYS})
    draw_figures(out_dir, {label: columns}, n)
    return summary


GRID, HISTOGRAMS, ROI_GRID = (
    results.Figure("Figures 6-7: real and synthesized images F(G(x)), whole and tumour region",
                   "comparison_grid.png"),
    results.Figure("Figure 8: grey-level histograms of real and synthesized images",
                   "grey_histograms.png"),
    results.Figure("ROI synthesis G(F(y)): real ROI (solid lime) and synthesized ROI (dashed "
                   "red)", "roi_grid.png"),
)
FIGURES = {"image": (GRID, HISTOGRAMS), "roi": (ROI_GRID,)}  # beside the tables they show


def draw_figures(out_dir, samples: dict, n: int) -> dict:
    """FIGURES into out_dir from {label: samples (SAMPLE_KEYS)} on the same examples, the
    methods side by side; returns FIGURES."""
    out_dir = pathlib.Path(out_dir)
    reference = next(iter(samples.values()))
    images, rois = reference["image"][:n], reference["roi"][:n]
    synthesized = {label: s["F(G(x))"][:n] for label, s in samples.items()}
    figures.comparison_grid(out_dir / GRID.path, images, rois, synthesized, n)
    figures.grey_histograms(out_dir / HISTOGRAMS.path, images, synthesized)
    figures.roi_grid(out_dir / ROI_GRID.path, rois,
                     {label: s["G(F(y))"][:n] for label, s in samples.items()}, images, n)
    return FIGURES


def read_samples(eval_dirs: dict, n: int) -> tuple[int, dict]:
    """(n, {label: samples.npz contents}) of evaluated runs {label: eval dir}, n cut to what
    every run stored; a ValueError naming the file when runs stored other examples, or
    images of another size, than the first (checked before anything is drawn)."""
    samples = {}
    for label, path in eval_dirs.items():
        with np.load(pathlib.Path(path) / SAMPLES) as stored:
            samples[label] = {key: stored[key] for key in stored.files}
    (first, reference), *_ = samples.items()
    n = min(n, *(len(s["ids"]) for s in samples.values()))
    for label, stored in samples.items():
        if list(stored["ids"][:n]) != list(reference["ids"][:n]):
            raise ValueError(f"{eval_dirs[label] / SAMPLES}: examples differ from those of "
                             f"{eval_dirs[first] / SAMPLES}")
        if stored["image"].shape[1:] != reference["image"].shape[1:]:
            raise ValueError(
                f"{eval_dirs[label]} holds {stored['image'].shape[1]} px images and "
                f"{eval_dirs[first]} {reference['image'].shape[1]} px: runs are compared at "
                f"one image size")
    return n, samples


def parse_runs(text: str, field: str = "eval.compare_runs", minimum: int = 2,
               what: str = "EVAL_DIR") -> dict:
    """'A=dir_a,B=dir_b' (the value of config `field`) -> {'A': Path(dir_a), 'B':
    Path(dir_b)}, in order; at least `minimum` entries."""
    runs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        method, sep, path = item.partition("=")
        if not sep or not method.strip() or not path.strip():
            raise ValueError(f"{field}: expected METHOD={what}, got {item!r}")
        if method.strip() in runs:
            raise ValueError(f"{field}: method {method.strip()!r} given twice")
        runs[method.strip()] = pathlib.Path(path.strip())
    if len(runs) < minimum:
        raise ValueError(f"{field} needs at least {'two' if minimum == 2 else minimum} "
                         f"METHOD={what} entries, got {text!r}")
    return runs


def compare(config: ml_collections.ConfigDict, workdir) -> dict:
    """Compares the evaluated runs of eval.compare_runs ('Fproi-GAN=DIR,CycleGAN=DIR', the
    first one the reference of the paired t-tests) into <workdir>/comparison/.

    Returns the dict of report.compare_runs. The figures show the eval.num_samples examples
    stored by each run's evaluation (the same test examples).
    """
    runs = parse_runs(config.eval.compare_runs)
    out_dir = pathlib.Path(workdir) / "comparison"
    n, samples = read_samples(runs, config.eval.num_samples)
    comparison = report.compare_runs(runs, next(iter(runs)), out_dir, FIGURES)
    draw_figures(out_dir, samples, n)
    return comparison
