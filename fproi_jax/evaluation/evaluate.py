"""Evaluation of a trained run on the test split (paper section 2.3), and comparison of runs.

Per test example (x image, y its real ROI):
- image synthesis x -> G(x~) -> F(G(x~)): PSNR (eq. 3), SSIM (eq. 4) and MS-SSIM of
  F(G(x)) against x, over the whole image and over the tumour region (the metric of
  F(G(x)) * y against x * y, y the REAL ROI);
- ROI synthesis y -> F(y) -> G(F(y)~): Dice (eq. 5), Hausdorff and HD95 (eq. 6, all ROI
  pixels) and their boundary-based versions (metrics.surface_hausdorff) of G(F(y)) against y,
  all four from one distance transform per ROI (metrics.hausdorff_distances).
MS-SSIM needs images of at least 176 px (5 scales of an 11-px window); at smaller sizes
(the 64 px demo) it is not computed and its cells read "—".

`evaluate` writes into <workdir>/eval/<method>/ (output_dir): per_example.csv, summary.md/json
(report.write_report), comparison_grid.png (Figs 6-7), grey_histograms.png (Fig 8),
roi_grid.png, and samples.npz (the first eval.num_samples inputs and syntheses, which
`compare` draws). `compare` writes comparison.md/json and the same figures across methods
into <workdir>/comparison/.
"""
import pathlib

import jax
import ml_collections
import numpy as np

from fproi_jax import metrics
from fproi_jax.data import pipeline
from fproi_jax.evaluation import figures, report
from fproi_jax.evaluation.load import load_generators, map_batches, with_run_image_size

MS_SSIM_MIN_SIZE = 11 * 2 ** 4
SAMPLES = "samples.npz"
SAMPLE_KEYS = ("image", "roi", "F(G(x))", "G(F(y))")


def _image_metrics(synthesized, real, with_ms_ssim):
    functions = {"psnr": metrics.psnr, "ssim": metrics.ssim}
    if with_ms_ssim:
        functions["ms_ssim"] = metrics.ms_ssim
    return {name: fn(synthesized, real) for name, fn in functions.items()}


def output_dir(workdir, label: str) -> pathlib.Path:
    """<workdir>/eval/<label>, a "/" of the label ("Fproi-GAN w/o RFB") written as "_"."""
    return pathlib.Path(workdir) / "eval" / label.replace("/", "_")


def make_eval_step(method, variables, image_size: int):
    """One jitted function: a batch {'image', 'roi'} -> both syntheses and every metric."""
    with_ms_ssim = image_size >= MS_SSIM_MIN_SIZE

    @jax.jit
    def step(variables, batch):
        x, y = batch["image"], batch["roi"]
        _, f_g_x = method.image_synthesis(variables, x, y)
        _, g_f_y = method.roi_synthesis(variables, y)
        regions = {"whole": (f_g_x, x), "tumour": (metrics.tumour_region(f_g_x, y),
                                                   metrics.tumour_region(x, y))}
        out = {f"{region}_{name}": value
               for region, pair in regions.items()
               for name, value in _image_metrics(*pair, with_ms_ssim).items()}
        out.update(dice=metrics.dice(g_f_y, y),
                   **metrics.hausdorff_distances(g_f_y, y, percentile=95))
        return {**out, "F(G(x))": f_g_x, "G(F(y))": g_f_y}

    return lambda batch: step(variables, {"image": batch["image"], "roi": batch["roi"]})


def evaluate(config: ml_collections.ConfigDict, workdir) -> dict:
    """Evaluates the run at eval.checkpoint (default: workdir) on config.data's test split.

    Returns the summary dict of report.write_report; prints summary.md.
    """
    workdir = pathlib.Path(workdir)
    run_config, method, variables = load_generators(config.eval.checkpoint or workdir)
    config = with_run_image_size(config, run_config)
    label = config.eval.method or method.label
    out_dir = output_dir(workdir, label)
    source = pipeline.load_split(config.data, config.data.test_split)

    step = make_eval_step(method, variables, config.data.image_size)
    batches = pipeline.eval_batches(source, config.data, config.eval.batch_size)
    columns = pipeline.concatenate(
        {**batch, **outputs} for batch, outputs in map_batches(
            step, batches, config.eval.batch_size, len(source), f"evaluate {label}"))
    ids = list(columns["example_id"])

    per_example = {name: columns[name] for name in report.ALL_METRICS if name in columns}
    summary = report.write_report(per_example, ids, out_dir, label,
                                  f"{config.data.name} {config.data.test_split}")
    n = config.eval.num_samples
    np.savez_compressed(out_dir / SAMPLES, ids=np.array(ids[:n]),
                        **{key: columns[key][:n] for key in SAMPLE_KEYS})
    _figures(out_dir, columns["image"], columns["roi"], {label: columns["F(G(x))"]},
             {label: columns["G(F(y))"]}, n)
    print((out_dir / "summary.md").read_text())
    return summary


def _figures(out_dir, images, rois, synthesized_images, synthesized_rois, n):
    figures.comparison_grid(out_dir / "comparison_grid.png", images, rois, synthesized_images, n)
    figures.grey_histograms(out_dir / "grey_histograms.png", images, synthesized_images)
    figures.roi_grid(out_dir / "roi_grid.png", rois, synthesized_rois, images, n)


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

    Returns the dict of report.compare_runs; prints comparison.md. The figures show the
    eval.num_samples examples stored by each run's evaluation (the same test examples).
    """
    runs = parse_runs(config.eval.compare_runs)
    first = next(iter(runs))
    out_dir = pathlib.Path(workdir) / "comparison"
    samples = {}
    for method, path in runs.items():
        with np.load(path / SAMPLES) as stored:
            samples[method] = {key: stored[key] for key in stored.files}
    reference = samples[first]
    n = min(config.eval.num_samples, *(len(s["ids"]) for s in samples.values()))
    for method, stored in samples.items():  # checked before anything is written
        if list(stored["ids"][:n]) != list(reference["ids"][:n]):
            raise ValueError(f"{runs[method] / SAMPLES}: examples differ from those of "
                             f"{runs[first] / SAMPLES}")
        if stored["image"].shape[1:] != reference["image"].shape[1:]:
            raise ValueError(
                f"{runs[method]} holds {stored['image'].shape[1]} px images and "
                f"{runs[first]} {reference['image'].shape[1]} px: runs are compared at one "
                f"image size")
    comparison = report.compare_runs(runs, first, out_dir)
    _figures(out_dir, reference["image"][:n], reference["roi"][:n],
             {m: s["F(G(x))"][:n] for m, s in samples.items()},
             {m: s["G(F(y))"][:n] for m, s in samples.items()}, n)
    print((out_dir / "comparison.md").read_text())
    return comparison
