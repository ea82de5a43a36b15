"""The whole comparison in one command (launch.py --mode=experiment): train -> evaluate ->
report, over the methods of config.experiment.methods x the seeds range(config.experiment.seeds).

Layout of WORKDIR:
  <method>/seed_<k>/                 the training run of that method with config.seed = k
                                     (the data order, config.data.seed, is the same for all)
  <method>/seed_<k>/eval/<label>/    its evaluation on the test split (evaluate.evaluate)
  report/                            report.md, index.html, summary.json and the figures
  report/<task>/                     each downstream task's files (config.experiment.tasks)
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
examples that seed 0's evaluations stored in samples.npz.
"""
import pathlib

import jax
import ml_collections
from absl import logging

from data_builders import registry
from fproi_jax import results, statistics, tasks
from fproi_jax.data import pipeline
from fproi_jax.evaluation import evaluate as evaluate_lib
from fproi_jax.evaluation import report
from fproi_jax.experiment import curves, tables
from fproi_jax.methods import REGISTRY, get_method
from fproi_jax.store import config_file, runs
from fproi_jax.train import loop

REFERENCE = "fproi_gan"
REPORT = "report"
EVALUATED = "experiment_evaluated.json"


def run_dir(workdir, method: str, seed: int) -> pathlib.Path:
    return pathlib.Path(workdir) / method / f"seed_{seed}"


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


def write_report(config, workdir, eval_dirs, labels, task_results) -> dict:
    """Writes WORKDIR/report/ from the evaluations eval_dirs {method: [eval dir per seed]}
    and the downstream tasks' results {task name: results.Result}; returns the summary."""
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
    loss_curves = curves.read({labels[m]: [run_dir(workdir, m, s) for s in range(len(dirs))]
                               for m, dirs in eval_dirs.items()})
    levels = curves.levels(loss_curves, {
        labels[m]: tuple(get_method(run_config(config, m, 0, dirs[0])).progress_terms.values())
        for m, dirs in eval_dirs.items()})
    items = [verdict, *report.beside((image, roi), figure_list), *p_values,
             curves.table(levels), curves.figure(out_dir / curves.FIGURE, loss_curves)]
    intro = tables.legend(reference, seeds)
    if seeds == 1:
        intro += " One seed: the spread between training runs is unknown."
    summary = {
        "dataset": dataset,
        "reference": reference,
        "alpha": statistics.ALPHA,
        "seeds": seeds,
        "methods": {labels[m]: m for m in eval_dirs},
        "runs": {labels[m]: [str(d.relative_to(workdir)) for d in dirs]
                 for m, dirs in eval_dirs.items()},
        "verdict": {"title": verdict.title, "header": list(verdict.header),
                    "rows": [list(row) for row in verdict.rows]},
        "groups": pooled,
        "training": levels,
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


def run_tasks(config: ml_collections.ConfigDict, workdir: pathlib.Path, labels: dict) -> dict:
    """{task name: results.Result} of each task of config.experiment.tasks on the seed-0 run
    of every method, each into report/<task name>/; a task the dataset cannot support
    gives a Result with the reason in `skipped`, so that the rest of the report is written."""
    runs = {labels[m]: run_dir(workdir, m, 0) for m in labels}
    done = {}
    for name in config.experiment.tasks:
        try:
            done[name] = tasks.get_task(name).run(config, runs, workdir / REPORT / name)
        except tasks.InsufficientDataError as e:
            logging.warning("Task %s skipped: %s", name, e)
            done[name] = results.Result(skipped=str(e))
    return done


def _cells(config) -> list[tuple[str, int]]:
    """(method, seed) of every run of the grid, or only that of config.experiment.only."""
    cells = [(m, s) for m in _methods(config) for s in range(config.experiment.seeds)]
    only = config.experiment.only
    if not only:
        return cells
    named = {f"{m}/seed_{s}": (m, s) for m, s in cells}
    if only not in named:
        raise config_file.InvalidConfigError(
            f"config.experiment.only={only!r} is not a run of this experiment; choose one of "
            f"{', '.join(named)}")
    return [named[only]]


def run(config: ml_collections.ConfigDict, workdir) -> dict:
    """Trains and evaluates every method x seed of config.experiment into `workdir`, then
    writes workdir/report/; returns the dict written to report/summary.json.

    With config.experiment.only='<method>/seed_<k>' it trains and evaluates that run alone
    and writes no report: the cells of the grid can run as separate jobs at once (each run
    folder has its own lock; they share only the dataset), and a last call without `only`
    finds them finished and writes the report.
    """
    workdir = pathlib.Path(workdir)
    cells = _cells(config)
    train_examples = len(pipeline.load_split(config.data, config.data.train_split))
    final_step = loop.total_steps(config.train, train_examples)
    eval_dirs, labels = {}, {}
    for method, seed in cells:
        directory = run_dir(workdir, method, seed)
        method_config = run_config(config, method, seed, directory)
        labels[method] = get_method(method_config).label
        eval_dirs.setdefault(method, []).append(
            _train_and_evaluate(method_config, directory, final_step, labels[method]))
    if config.experiment.only:
        logging.info("Experiment: %s done; the report comes from a call without "
                     "config.experiment.only", config.experiment.only)
        return {"only": config.experiment.only, "eval_dir": str(eval_dirs[method][0])}
    summary = None
    if jax.process_index() == 0:
        summary = write_report(config, workdir, eval_dirs, labels,
                               run_tasks(config, workdir, labels))
    return summary
