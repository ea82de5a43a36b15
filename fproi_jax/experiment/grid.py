"""The whole comparison in one command (launch.py --mode=experiment): train -> evaluate ->
report, over the fractions of the training patients config.experiment.train_fractions x the
methods of config.experiment.methods x the seeds range(config.experiment.seeds).

Layout of WORKDIR:
  <method>/seed_<k>/                 the training run of that method with config.seed = k
                                     (the data order, config.data.seed, is the same for all),
                                     on all training patients (fraction 1.0)
  <method>/seed_<k>/eval/<label>/    its evaluation on the test split (evaluate.evaluate)
  fraction_<f>/<method>/seed_<k>/    the same at another fraction f, e.g. fraction_0.25/: the
                                     run trains on the patients of config.data.train_fraction
                                     = f (data/patient_subset.py: the same for every method
                                     and seed, nested across fractions), and is evaluated too
  report/                            report.md, index.html, summary.json and the figures
  report/<task>/                     each downstream task's files (config.experiment.tasks),
  report/<task>/fraction_<f>/        and at the other fractions for a task that runs at each
                                     (segmentation, Table 6: Task.by_fraction)
The verdict, Tables 1-4 and the tasks that do not run at each fraction (Table 5) are of the
runs at the largest fraction, 1.0 (the paper's protocol) unless the tuple leaves it out.
config.experiment.only names one run by its folder, '<method>/seed_<k>' or
'fraction_<f>/<method>/seed_<k>'.
Every stage resumes: a run whose latest checkpoint is at its final step is not trained again
(an unfinished one continues from its checkpoint), and an evaluation of that final step
with the same eval settings (marked by EVALUATED in its folder) is not repeated. The report
is always rewritten. A run folder holding another run than the command asks for (another
learning rate or width, say) stops the experiment with the differing fields named
(store/config_file.py) instead of being reused.

The report (experiment/tables.py) pools each method's seeds per test example and tests the
reference, Fproi-GAN, against each other method; for a dataset with a `grade` feature
(BRATS: 0 = HGG, 1 = LGG) it has rows for all slices, HGG slices and LGG slices. The figures
(paper Figures 6-7 and 8, and the ROI overlays) show every method side by side on the
examples that seed 0's evaluations stored in samples.npz. A method that draws into an image
(fproi_gan_context) adds its healthy-inpainting table (experiment/inpainting.py).
"""
import pathlib

import jax
import ml_collections
from absl import logging

from data_builders import registry
from fproi_jax import results, statistics, tasks
from fproi_jax.data import patient_subset, pipeline
from fproi_jax.evaluation import evaluate as evaluate_lib
from fproi_jax.evaluation import report
from fproi_jax.experiment import curves, tables
from fproi_jax.experiment import inpainting as inpainting_table
from fproi_jax.methods import REGISTRY, get_method
from fproi_jax.store import config_file, runs
from fproi_jax.train import loop

REFERENCE = "fproi_gan"
REPORT = "report"
EVALUATED = "experiment_evaluated.json"


def fraction_dir(folder, fraction: float) -> pathlib.Path:
    """`folder` itself for fraction 1.0 (all training patients), else folder/fraction_<f>."""
    folder = pathlib.Path(folder)
    return folder if fraction == 1.0 else folder / f"fraction_{fraction:g}"


def run_dir(workdir, method: str, seed: int, fraction: float = 1.0) -> pathlib.Path:
    return fraction_dir(workdir, fraction) / method / f"seed_{seed}"


def at_fraction(config: ml_collections.ConfigDict, fraction: float) -> ml_collections.ConfigDict:
    """config with the training split cut to `fraction` of its patients."""
    config = config.copy_and_resolve_references()
    config.data.train_fraction = fraction
    return config


def run_config(config: ml_collections.ConfigDict, method: str, seed: int,
               directory: pathlib.Path) -> ml_collections.ConfigDict:
    """The config of one run: config with that method, seed and checkpoint to evaluate."""
    config = config.copy_and_resolve_references()
    config.model.name = method
    config.seed = seed
    config.eval.checkpoint = str(directory)
    config.eval.method = ""  # each method's own label: the tables need them distinct
    return config


def _methods(config):
    methods = tuple(config.experiment.methods)
    unknown = [m for m in methods if m not in REGISTRY]
    if unknown or not methods:
        raise config_file.InvalidConfigError(
            f"config.experiment.methods={methods}: unknown {unknown}; choose from "
            f"{', '.join(REGISTRY)}")
    if len(set(methods)) != len(methods):
        raise config_file.InvalidConfigError(
            f"config.experiment.methods={methods} names a method twice")
    unknown_tasks = [t for t in config.experiment.tasks if t not in tasks.TASKS]
    if unknown_tasks:
        raise config_file.InvalidConfigError(
            f"config.experiment.tasks={tuple(config.experiment.tasks)}: unknown "
            f"{unknown_tasks}; choose from {', '.join(tasks.TASKS)}")
    if config.experiment.seeds < 1:
        raise config_file.InvalidConfigError(
            f"config.experiment.seeds={config.experiment.seeds} must be >= 1")
    return methods


def _fractions(config) -> tuple[float, ...]:
    """config.experiment.train_fractions, checked: each in (0, 1], none twice, and
    config.data.train_fraction left at 1.0 (the experiment sets it for each run)."""
    given = tuple(config.experiment.train_fractions)
    field = f"config.experiment.train_fractions={given}"
    if config.data.train_fraction != 1.0:
        raise config_file.InvalidConfigError(
            f"config.data.train_fraction={config.data.train_fraction}: the experiment sets "
            f"it for each run from config.experiment.train_fractions; set those instead")
    try:
        fractions = tuple(patient_subset.check_fraction(f, field) for f in given)
    except patient_subset.FractionError as e:
        raise config_file.InvalidConfigError(str(e)) from None
    if not fractions or len({fraction_dir("", f) for f in fractions}) != len(fractions):
        raise config_file.InvalidConfigError(f"{field} must name at least one fraction, "
                                             f"none twice")
    return fractions


def _final_step(config) -> int:
    """The last step of the runs at config.data.train_fraction (train.num_epochs counts
    passes over that fraction's examples)."""
    train_examples = len(pipeline.load_split(config.data, config.data.train_split))
    try:
        return loop.total_steps(config.train, train_examples)
    except ValueError as e:
        raise config_file.InvalidConfigError(
            f"config.experiment.train_fractions: at fraction {config.data.train_fraction:g} "
            f"of the training patients, {e}") from None


def _train_and_evaluate(config, directory, final_step, label):
    """Trains the run in `directory` to final_step and evaluates it, each unless done."""
    method, seed = config.model.name, config.seed
    config_file.check(config, directory, strict=True)
    step = runs.latest_step(directory)
    if step is not None and step >= final_step:
        logging.info("Experiment: %s seed %d already trained (step %d), skipping training",
                     method, seed, step)
    else:
        logging.info("Experiment: training %s seed %d into %s", method, seed, directory)
        loop.train(config, directory)
    eval_dir = runs.eval_dir(directory, label)
    marker = eval_dir / EVALUATED
    done = {"step": final_step, "eval": config_file.as_json(config)["eval"]}
    if runs.is_done(marker, done, (report.PER_EXAMPLE, evaluate_lib.SAMPLES)):
        logging.info("Experiment: %s seed %d already evaluated, skipping evaluation",
                     method, seed)
    else:
        logging.info("Experiment: evaluating %s seed %d", method, seed)
        evaluate_lib.evaluate(config, directory)
        if jax.process_index() == 0:
            runs.mark_done(marker, done)
    return eval_dir


def test_examples(config) -> tuple[dict, dict]:
    """({group name: example ids}, {example id: patient}) of the test split: the groups are
    all slices and one per group of the dataset (data_builders.registry: brats2017's
    grades); the patient is the example's `patient_id` (each example its own patient for a
    dataset without one)."""
    data = config.data
    columns = pipeline.concatenate(pipeline.eval_batches(
        pipeline.load_split(data, data.test_split), data, config.eval.batch_size))
    ids = [str(i) for i in columns["example_id"]]
    groups = {report.ALL_GROUP: set(ids)}
    for label, name in enumerate(registry.get(data.name).groups):
        groups[name] = {i for i, group in zip(ids, columns["group"]) if group == label}
    return groups, {i: str(patient) for i, patient in zip(ids, columns["patient_id"])}


def write_report(config, workdir, eval_dirs, labels, task_results,
                 fractions: tuple[float, ...]) -> dict:
    """Writes WORKDIR/report/ from the evaluations eval_dirs {method: [eval dir per seed]}
    (of the runs at config.data.train_fraction), the downstream tasks' results {task name:
    results.Result} and the training fractions they ran at; returns the summary."""
    workdir = pathlib.Path(workdir)
    out_dir = workdir / REPORT
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = labels[REFERENCE] if REFERENCE in labels else labels[next(iter(labels))]
    runs = {labels[m]: [report.read_per_example(d) for d in dirs] for m, dirs in eval_dirs.items()}
    groups, patients = test_examples(config)
    ids, aligned, masks = report.align(runs, groups)
    pooled = tables.pool(aligned, masks, reference)
    verdict = tables.verdict(aligned, [patients[i] for i in ids], reference)
    seeds = config.experiment.seeds
    dataset = f"{config.data.name} {config.data.test_split}"
    n, samples = evaluate_lib.read_samples(
        {labels[m]: dirs[0] for m, dirs in eval_dirs.items()}, config.eval.num_samples)
    figure_list = evaluate_lib.draw_figures(out_dir, samples, n)
    image, roi, *p_values = tables.tables(pooled, reference)
    loss_curves = curves.read({
        labels[m]: [run_dir(workdir, m, s, config.data.train_fraction) for s in range(len(dirs))]
        for m, dirs in eval_dirs.items()})
    methods = {labels[m]: get_method(run_config(config, m, 0, dirs[0]))
               for m, dirs in eval_dirs.items()}
    levels = curves.levels(loss_curves, {label: tuple(method.progress_terms.values())
                                         for label, method in methods.items()})
    items = [verdict, *report.beside((image, roi), figure_list), *p_values]
    inpainted = inpainting_table.read({labels[m]: dirs for m, dirs in eval_dirs.items()})
    inpainting_summary = {}
    if inpainted:
        inpainting_item, inpainting_summary = inpainting_table.table(inpainted, patients)
        items.append(inpainting_item)
    items += [curves.table(levels), curves.figure(out_dir / curves.FIGURE, loss_curves)]
    intro = tables.legend(reference, seeds)
    drawing_into = [label for label, method in methods.items()
                    if method.reads("roi_synthesis", "x")]
    if drawing_into:
        intro += (f" {', '.join(drawing_into)} draws into the real test slice with the ROI "
                  f"and a margin erased: its image scores (and the ROI path through its F) "
                  f"measure how well it redraws that region, not an image invented from the "
                  f"mask alone as the other methods must, so its columns are not comparable "
                  f"with theirs; its healthy inpainting and Table 6's new pairs judge it.")
    if seeds == 1:
        intro += " One seed: the spread between training runs is unknown."
    if fractions != (1.0,):
        main = config.data.train_fraction
        at = ("1, all of them (the paper's protocol)" if main == 1.0 else
              f"{main:g}, the largest given (the paper's protocol uses all of them)")
        intro += (f" Training fractions {', '.join(f'{f:g}' for f in fractions)} of the "
                  f"training patients: the tasks that train on them (Table 6) are given at "
                  f"each fraction; the verdict, Tables 1-4 and Table 5 are of the runs at "
                  f"fraction {at}.")
    summary = {
        "dataset": dataset,
        "reference": reference,
        "alpha": statistics.ALPHA,
        "seeds": seeds,
        "train_fractions": list(fractions),
        "methods": {labels[m]: m for m in eval_dirs},
        "runs": {labels[m]: [str(d.relative_to(workdir)) for d in dirs]
                 for m, dirs in eval_dirs.items()},
        "verdict": {"title": verdict.title, "header": list(verdict.header),
                    "rows": [list(row) for row in verdict.rows]},
        "groups": pooled,
        "training": levels,
        "inpainting": inpainting_summary,
        "tasks": {},
    }
    for name, result in task_results.items():
        if result.skipped is not None:
            intro += f" Task {name} skipped: {result.skipped}"
            summary["tasks"][name] = {"skipped": result.skipped}
            continue
        items += [*result.tables,
                  *(results.Figure(f.title, f"{name}/{f.path}") for f in result.figures)]
        summary["tasks"][name] = result.summary
    summary["figures"] = [{"title": f.title, "path": f.path} for f in items
                          if isinstance(f, results.Figure)]
    title = f"Comparison on {dataset}: {len(eval_dirs)} methods x {seeds} seed(s)"
    results.write_page(out_dir, title, intro, items, summary)
    return summary


def run_tasks(config: ml_collections.ConfigDict, workdir: pathlib.Path, labels: dict,
              fractions: tuple[float, ...]) -> dict:
    """{task name: results.Result} of each task of config.experiment.tasks on the seed-0 run
    of every method into report/<task>/: at the largest of `fractions`, or, for a task with
    Task.by_fraction and fractions other than (1.0,), at each fraction (into fraction_dir)
    laid out as one Result. A task the data cannot support gives a Result with the reason
    in `skipped`, so that the rest of the report is written."""
    def at(task, fraction, out_dir):
        runs = {labels[m]: run_dir(workdir, m, 0, fraction) for m in labels}
        return _run_task(task, at_fraction(config, fraction), runs, out_dir)

    done = {}
    for name in config.experiment.tasks:
        task, out_dir = tasks.get_task(name), workdir / REPORT / name
        if task.by_fraction is None or fractions == (1.0,):
            done[name] = at(task, max(fractions), out_dir)
        else:
            done[name] = task.by_fraction(out_dir, {f: at(task, f, fraction_dir(out_dir, f))
                                                    for f in fractions})
    return done


def _run_task(task, config, runs, out_dir) -> results.Result:
    try:
        return task.run(config, runs, out_dir)
    except tasks.InsufficientDataError as e:
        logging.warning("Task %s skipped at fraction %g of the training patients: %s",
                        task.name, config.data.train_fraction, e)
        return results.Result(skipped=str(e))


def _cells(config) -> list[tuple[float, str, int]]:
    """(fraction, method, seed) of every run of the grid, or only that of
    config.experiment.only (the run's folder relative to WORKDIR)."""
    methods = _methods(config)
    cells = [(f, m, s) for f in _fractions(config) for m in methods
             for s in range(config.experiment.seeds)]
    only = config.experiment.only
    if not only:
        return cells
    named = {run_dir("", m, s, f).as_posix(): (f, m, s) for f, m, s in cells}
    if only not in named:
        raise config_file.InvalidConfigError(
            f"config.experiment.only={only!r} is not a run of this experiment; choose one of "
            f"{', '.join(named)}")
    return [named[only]]


def run(config: ml_collections.ConfigDict, workdir) -> dict:
    """Trains and evaluates every fraction x method x seed of config.experiment into
    `workdir`, then writes workdir/report/; returns the dict written to report/summary.json.

    With config.experiment.only='<method>/seed_<k>' (or 'fraction_<f>/<method>/seed_<k>')
    it trains and evaluates that run alone and writes no report: the cells of the grid can
    run as separate jobs at once (each run folder has its own lock; they share only the
    dataset), and a last call without `only` finds them finished and writes the report.
    """
    workdir = pathlib.Path(workdir)
    cells = _cells(config)
    eval_dirs, labels = {}, {}
    for fraction in dict.fromkeys(f for f, _, _ in cells):
        fraction_config = at_fraction(config, fraction)
        final_step = _final_step(fraction_config)
        for method, seed in [(m, s) for f, m, s in cells if f == fraction]:
            directory = run_dir(workdir, method, seed, fraction)
            method_config = run_config(fraction_config, method, seed, directory)
            labels[method] = get_method(method_config).label
            eval_dirs.setdefault(fraction, {}).setdefault(method, []).append(
                _train_and_evaluate(method_config, directory, final_step, labels[method]))
    if config.experiment.only:
        logging.info("Experiment: %s done; the report comes from a call without "
                     "config.experiment.only", config.experiment.only)
        return {"only": config.experiment.only,
                "eval_dir": str(eval_dirs[fraction][method][0])}
    summary = None
    if jax.process_index() == 0:
        fractions = tuple(eval_dirs)
        main = max(fractions)
        summary = write_report(at_fraction(config, main), workdir, eval_dirs[main], labels,
                               run_tasks(config, workdir, labels, fractions), fractions)
    return summary
