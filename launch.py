"""Entry point: python launch.py --config=configs/brats.py --workdir=runs/brats [--mode=...].

Modes:
  train       train the method of config.model.name (fproi_gan, fproi_gan_no_rfb, cycle_gan,
              pix2pix, dcgan), resuming from the latest checkpoint in --workdir
  summary     print the parameter table of the method's four networks
  export      write an inference export (the generators and the config) of the latest checkpoint
  evaluate    metrics, tables and figures of a run (--config.eval.checkpoint, default
              --workdir) on the test split, into WORKDIR/eval/<method>/
  compare     paired t-tests and figures across evaluated runs (--config.eval.compare_runs=
              'Fproi-GAN=DIR,CycleGAN=DIR'), into WORKDIR/comparison/
  classify    paper Table 5: an HGG/LGG classifier on real slices alone and with each run's
              synthesized slices (--config.classify.runs='Fproi-GAN=RUN_DIR,...'), into
              WORKDIR/classify/
  segment     Table 6: a tumour segmenter trained on real pairs alone, with classical
              augmentation, copy-paste and each run's pairs (--config.segment.runs=
              'Fproi-GAN=RUN_DIR,...'), tested on held-out patients, into WORKDIR/segment/
  experiment  the whole comparison: train and evaluate every method of config.experiment.methods
              for config.experiment.seeds seeds into WORKDIR/<method>/seed_<k>/ (and at
              each other fraction f of config.experiment.train_fractions into
              WORKDIR/fraction_<f>/<method>/seed_<k>/; finished stages are skipped), then
              tables and figures into WORKDIR/report/index.html
  synthesize  synthetic image/ROI pairs from the test ROIs or --config.eval.mask_dir (drawn
              into --config.eval.context by a method that draws into an image), as
              PNG, NIfTI and a TFDS dataset, into WORKDIR/synthetic/
Any config field can be overridden, e.g. --config.train.batch_size=8.
"""
import logging as std_logging
import pathlib
import re
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from fproi_jax.data import patient_subset, pipeline
from fproi_jax import results, tasks
from fproi_jax.evaluation import evaluate, synthesize
from fproi_jax.experiment import grid
from fproi_jax.methods import get_method
from fproi_jax.models.summary import parameter_table
from fproi_jax.store import config_file, export, runs
from fproi_jax.store.checkpoints import CheckpointError, UnwritableError
from fproi_jax.store.lock import WorkdirLockedError
from fproi_jax.train import loop

TASK_MODES = {"classify": "classification", "segment": "segmentation"}  # --mode -> task
MODES = ("train", "summary", "export", "evaluate", "compare", "experiment", "synthesize",
         *TASK_MODES)

config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and outputs.")
flags.DEFINE_enum("mode", "train", MODES, "What to do.")
flags.DEFINE_bool("distributed", False,
                  "Call jax.distributed.initialize() (multi-host runs). On clusters it finds "
                  "its peers itself; elsewhere give the three flags below.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
flags.DEFINE_integer("num_processes", None, "Number of processes.")
flags.DEFINE_integer("process_id", None, "This process's index.")
flags.DEFINE_integer("distributed_timeout_s", 600,
                     "With --distributed: how long a process waits for the others to start.")
flags.mark_flags_as_required(["config"])

FLAGS = flags.FLAGS


def _initialize_distributed():
    kwargs = {k: getattr(FLAGS, k) for k in ("coordinator_address", "num_processes", "process_id")
              if getattr(FLAGS, k) is not None}
    # Collectives between CPU processes (tests, CPU clusters); GPUs and TPUs ignore it.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # Orbax's barriers through the coordination service, which waits up to a timeout,
    # instead of a device all-reduce, which Gloo aborts (DEADLINE_EXCEEDED) when one
    # process lags behind, e.g. while it compiles on a loaded machine.
    FLAGS.experimental_orbax_use_distributed_barrier = True
    jax.distributed.initialize(**kwargs, initialization_timeout=FLAGS.distributed_timeout_s)


class _OnlyOwnInfo(std_logging.Filter):
    """Keeps INFO lines of this project; libraries (Orbax logs every save) only warn."""

    def filter(self, record):
        return record.levelno >= std_logging.WARNING or "site-packages" not in record.pathname


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    logging.get_absl_handler().addFilter(_OnlyOwnInfo())
    if FLAGS.distributed:
        _initialize_distributed()
    config = FLAGS.config
    if FLAGS.mode == "summary":
        method = get_method(config)
        params, _ = jax.eval_shape(lambda: method.init(jax.random.PRNGKey(0),
                                                       (config.data.image_size,) * 2))
        print(f"{method.label} at {config.data.image_size} x {config.data.image_size}")
        print(parameter_table(params))
        return
    if FLAGS.workdir is None:
        raise app.UsageError(f"--workdir is required for --mode={FLAGS.mode}")
    workdir = pathlib.Path(FLAGS.workdir)
    if FLAGS.mode == "train":
        loop.train(config, workdir)
    elif FLAGS.mode == "export":
        step = export.export_run(workdir)
        logging.info("Exported the generators of step %d to %s", step, workdir / "export")
    elif FLAGS.mode == "evaluate":
        summary = evaluate.evaluate(config, workdir)
        print((runs.eval_dir(workdir, summary["method"]) / "summary.md").read_text())
    elif FLAGS.mode == "compare":
        evaluate.compare(config, workdir)
        print((workdir / "comparison" / "comparison.md").read_text())
    elif FLAGS.mode == "experiment":
        if grid.run(config, workdir) is not None and not config.experiment.only:
            print(f"Experiment report: {(workdir / grid.REPORT / 'index.html').absolute()}")
    elif FLAGS.mode == "synthesize":
        print(f"Synthetic pairs: {synthesize.synthesize(config, workdir)}")
    elif FLAGS.mode in TASK_MODES:
        task = tasks.get_task(TASK_MODES[FLAGS.mode])
        run_dirs = evaluate.parse_runs(config[task.config_key].runs, f"{task.config_key}.runs",
                                       1, "RUN_DIR")
        out_dir = workdir / task.config_key
        result = task.run(config, run_dirs, out_dir)
        results.write_page(out_dir, f"Task {task.name}", "", [*result.tables, *result.figures],
                           result.summary)
        print("\n".join(table.markdown() for table in result.tables))
        print(f"Task report: {(out_dir / 'index.html').absolute()}")


def _main_with_clear_errors(argv):
    """main, with a user's mistake or a failure of the run's folder reported in a few lines
    instead of a traceback."""
    try:
        main(argv)
    except (pipeline.DatasetNotBuiltError, pipeline.ImageSizeError, patient_subset.FractionError,
            config_file.InvalidConfigError, WorkdirLockedError, CheckpointError,
            UnwritableError, loop.NonFiniteLossError, tasks.InsufficientDataError) as e:
        sys.exit(f"FATAL {e}")


def parse_flags(argv):
    """absl flag parsing, with a clear message for an override of a field the config lacks."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        sys.exit(f"FATAL Flags parsing error: {e}")
    except (AttributeError, KeyError) as e:
        field = re.search(r"\w+", str(e)).group()
        hint = re.search(r'Did you mean "(\w+)"', str(e).replace("\\", ""))
        given = [a for a in argv if a.startswith("--config.") and f".{field}" in a.split("=")[0]]
        sys.exit(f"FATAL Unknown config field {field!r} in {' '.join(given)}: the config file "
                 f"defines no such field." + (f" Did you mean {hint.group(1)!r}?" if hint else ""))


if __name__ == "__main__":
    app.run(_main_with_clear_errors, flags_parser=parse_flags)
