"""`make bench`: our train steps against the same steps in PyTorch, and what surrounds them.

    .venv/bin/python benchmarks/bench.py --torch=.bench/torch/bin/python
    .venv/bin/python benchmarks/bench.py --torch=/tmp/torch/bin/python --size=64 --rounds=1 \\
        --steps=1 --scaling=false                                    # a quick check
    make bench BENCH_ARGS="--methods=fproi_gan --jax_dtypes=float32,bfloat16"

For each method (--methods: fproi_gan, cycle_gan, pix2pix, dcgan), our jitted train step
(benchmarks/train_step.py with --config, paper widths) and the PyTorch step of the same
networks and update (benchmarks/pytorch_step.py, pytorch_baselines.py, run with --torch)
are timed, each in its own subprocess, alternating ours / torch for --rounds rounds of
--steps timed steps each. The medians pool every round's steps. Each subprocess prints its
usual one-line summary and, with --json, one "BENCH_JSON {...}" line read here.

Also measured (each in its own subprocess of this script, --part=...):
  matmul:   the machine's f32 matmul peak (jitted n x n matmul, best of several, 2 n^3 / t;
            precision HIGHEST, so no TF32 on GPUs), the reference for achieved FLOP/s;
  pipeline: the input pipeline's examples/s (fproi_jax.data.pipeline on a small phantom
            BRATS dataset built into a temporary folder) against the step's images/s;
  eval:     evaluation throughput, every metric of fproi_jax.evaluation.evaluate (PSNR, SSIM,
            MS-SSIM from 176 px, Dice, Hausdorff, HD95 and their boundary forms) on
            --eval_pairs random image/ROI pairs, in jitted batches of config.eval.batch_size;
  tasks:    the downstream tasks' networks at the paper demo's settings (configs/paper_demo.py,
            64 px): the segmenter's train step (Table 6) and the in-domain ResNet-18's train
            step (Table 5), both the sharded step of train/fit.py, and the ResNet-18 feature
            extraction (images/s);
  scaling:  our Fproi-GAN step at global batch 1, 4, 16 on 1 device and on 4 fake CPU
            devices (--scaling=false skips it: slow on CPU).
Then (--demo) the same alternating rounds at the paper demo's scale, configs/paper_demo.py
(64 px, batch 4, half widths; PyTorch with the same widths), and the seeds trained
together (--seeds_methods: --seeds=3 of train_step.py, --seeds_form, against one seed and
against PyTorch's three runs one after another). The last table sets every figure beside
the targets of the speed issue.
Prints markdown tables and writes them to --output (benchmarks/results.md) with the date,
machine, versions and the command.
"""
import datetime
import importlib.metadata
import os
import pathlib
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import bench_json
from absl import app, flags

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's fproi_jax and configs (see base_env)
# Our method name -> (table label, the PyTorch script and its arguments).
METHODS = {
    "fproi_gan": ("Fproi-GAN", ["benchmarks/pytorch_step.py"]),
    "cycle_gan": ("CycleGAN", ["benchmarks/pytorch_baselines.py", "--method=cycle_gan"]),
    "pix2pix": ("Pix2Pix", ["benchmarks/pytorch_baselines.py", "--method=pix2pix"]),
    "dcgan": ("DCGAN", ["benchmarks/pytorch_baselines.py", "--method=dcgan"]),
}
FAKE_DEVICES_FLAG = "--xla_force_host_platform_device_count"
DEMO_CONFIG = "configs/paper_demo.py"
SEEDS = 3
# The speed issue's targets: the demo step's share of the matmul peak and its ratio to
# PyTorch, 3 seeds against 1, the 256 px ratios, and 1,000 evaluated pairs.
TARGETS = {"demo_peak": 0.5, "demo_ratio": 0.7, "seeds_ratio": 1.6, "ratio_256": 1.0,
           "fproi_gan_ratio_256": 0.8, "eval_1000_s": 10.0}

flags.DEFINE_list("methods", list(METHODS), f"Methods to time, of {', '.join(METHODS)}.")
flags.DEFINE_integer("rounds", 2, "Alternating rounds (ours, then PyTorch) per method.")
flags.DEFINE_integer("steps", 3, "Timed steps per round, after the first (compiling) one.")
flags.DEFINE_integer("size", 256, "Image height and width.")
flags.DEFINE_integer("batch", 1, "Global batch size.")
flags.DEFINE_string("config", "configs/brats.py", "Our experiment config (paper widths).")
flags.DEFINE_string("torch", ".bench/torch/bin/python",
                    "Python of a virtual environment with torch; empty: no PyTorch runs.")
flags.DEFINE_list("jax_dtypes", ["float32"],
                  "Our compute dtypes; other than float32 passes "
                  "--config.train.compute_dtype=DTYPE to train_step.py.")
flags.DEFINE_bool("torch_amp", False, "PyTorch steps under torch.autocast(bfloat16) (CUDA).")
flags.DEFINE_string("device", "cpu", "PyTorch device: cpu or cuda.")
flags.DEFINE_integer("torch_threads", 0,
                     "PyTorch intra-op threads (the scripts' --threads); 0: torch's default.")
flags.DEFINE_bool("scaling", True, "Also the batch-size scaling table (slow on CPU).")
flags.DEFINE_list("scaling_batches", ["1", "4", "16"], "Global batch sizes of the scaling table.")
flags.DEFINE_integer("scaling_devices", 4, "Fake CPU devices of the scaling table's second half.")
flags.DEFINE_bool("pipeline", True, "Also the input pipeline's throughput.")
flags.DEFINE_integer("pipeline_batches", 50, "Batches read to time the input pipeline.")
flags.DEFINE_bool("eval", True, "Also the evaluation metrics' throughput.")
flags.DEFINE_integer("eval_pairs", 1000, "Image/ROI pairs of the evaluation throughput.")
flags.DEFINE_bool("tasks", True, "Also the downstream tasks' train steps and features.")
flags.DEFINE_bool("demo", True, "Also every method at the paper demo's scale (DEMO_CONFIG).")
flags.DEFINE_list("seeds_methods", ["fproi_gan"],
                  "Methods timed with 3 seeds trained together at the demo's scale.")
flags.DEFINE_enum("seeds_form", "unrolled", ["vmap", "unrolled"],
                  "How the seeds are written into one program (train/step.py).")
flags.DEFINE_integer("timeout", 3600, "Seconds allowed to each subprocess.")
flags.DEFINE_string("output", "benchmarks/results.md", "Markdown report ('' : none).")
flags.DEFINE_enum("part", "", ["", "matmul", "eval", "pipeline", "tasks"],
                  "Internal: measure one piece in this process and print its JSON line.")
FLAGS = flags.FLAGS


# --------------------------------------------------------------------------- subprocesses

def base_env(fake_devices: int = 0) -> dict:
    """This environment without a persistent compilation cache (compile times are measured)
    and with `fake_devices` forced CPU devices (0: the platform's own devices). The
    repository comes first on PYTHONPATH, so that a script in benchmarks/ times this
    checkout's code even where the environment's editable install points at another one."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    xla = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(FAKE_DEVICES_FLAG)]
    if fake_devices:
        xla.append(f"{FAKE_DEVICES_FLAG}={fake_devices}")
        env["JAX_PLATFORMS"] = "cpu"
    env["XLA_FLAGS"] = " ".join(xla)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_json(cmd, label: str, env=None) -> dict:
    """Runs one benchmark subprocess in the repository root; prints its summary line as
    progress and returns its JSON record (RuntimeError with its stderr's tail on failure)."""
    print(f"[bench] {label}: {shlex.join(cmd)}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env or base_env(), capture_output=True, text=True,
                          timeout=FLAGS.timeout)
    if proc.returncode:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"{label} failed (exit {proc.returncode}):\n{tail}")
    for line in proc.stdout.splitlines():
        if not line.startswith(bench_json.PREFIX):
            print(f"    {line}", flush=True)
    print(f"    ({time.perf_counter() - start:.0f} s)", flush=True)
    return bench_json.parse_record(proc.stdout)


def jax_step_cmd(method: str, size: int, batch: int, steps: int, dtype: str = "float32",
                 config: str = "", extra=()):
    cmd = [sys.executable, "benchmarks/train_step.py", f"--config={config or FLAGS.config}",
           f"--config.model.name={method}", f"--config.data.image_size={size}",
           f"--config.train.batch_size={batch}", f"--steps={steps}", "--json", *extra]
    if dtype != "float32":
        cmd.append(f"--config.train.compute_dtype={dtype}")
    return cmd


def torch_step_cmd(method: str, size: int, batch: int, steps: int, extra=()):
    cmd = [FLAGS.torch, *METHODS[method][1], f"--size={size}", f"--batch={batch}",
           f"--steps={steps}", f"--device={FLAGS.device}", "--json", *extra]
    if FLAGS.torch_threads:
        cmd.append(f"--threads={FLAGS.torch_threads}")
    return cmd + ["--amp"] if FLAGS.torch_amp else cmd


def demo_widths(method: str) -> list[str]:
    """The PyTorch script's width arguments for `method` at DEMO_CONFIG's settings."""
    from configs import paper_demo

    model = paper_demo.get_config().model
    join = lambda values: ",".join(str(v) for v in values)  # noqa: E731
    if method == "fproi_gan":
        m = model.fproi_gan
        return [f"--rfb={join(m.rfb_features)}", f"--width={m.generator_width}",
                f"--disc={join(m.discriminator_features)}"]
    if method == "dcgan":
        return [f"--width={model.dcgan.generator_features[0]}",
                f"--disc-width={model.dcgan.discriminator_features[0]}"]
    m = model[method]
    args = [f"--width={m.generator_width}", f"--disc-width={m.discriminator_width}"]
    return args + ([f"--blocks={m.residual_blocks}"] if method == "cycle_gan" else [])


def demo_size_and_batch() -> tuple[int, int]:
    from configs import paper_demo

    config = paper_demo.get_config()
    return config.data.image_size, config.train.batch_size


def run_jax_step(method, size, batch, steps, dtype="float32", fake_devices=0, config="",
                 extra=()) -> dict:
    label = f"ours {method} {dtype} {size}px batch {batch}" + (
        f" on {fake_devices} fake CPU devices" if fake_devices else "") + (
        f" ({config})" if config else "") + (f" {' '.join(extra)}" if extra else "")
    return run_json(jax_step_cmd(method, size, batch, steps, dtype, config, extra), label,
                    base_env(fake_devices))


def run_part(part: str, **flag_values) -> dict:
    """One --part of this script in its own process (its memory, and a GPU's, freed after)."""
    cmd = [sys.executable, __file__, f"--part={part}",
           *(f"--{k}={v}" for k, v in flag_values.items())]
    return run_json(cmd, part)


# --------------------------------------------------------------------------- statistics

def summarize(records) -> dict:
    """Pools the rounds of one benchmark: median and min of all their timed steps, the
    median first step, the largest peak memory; the rest from the first record."""
    times = [t for r in records for t in r["times"]]
    summary = dict(records[0])
    summary.update(times=times, median_s=statistics.median(times), min_s=min(times),
                   first_s=statistics.median(r["first_s"] for r in records), rounds=len(records))
    for key in ("peak_rss_bytes", "device_peak_bytes"):
        values = [r[key] for r in records if r.get(key) is not None]
        summary[key] = max(values) if values else None
    return summary


def peak_memory(record) -> int | None:
    """The device's peak bytes where reported (GPU), else the process's peak RSS."""
    if not record:
        return None
    return record.get("device_peak_bytes") or record.get("peak_rss_bytes")


def timed_rounds(method: str, dtypes, size: int, batch: int, steps: int, rounds: int,
                 with_torch: bool, config: str = "", torch_args=(), seeds: int = 1) -> dict:
    """{('ours', dtype): summary, 'torch': summary}: ours, then torch, `rounds` times; with
    seeds > 1 also ('seeds', dtype): ours with that many seeds trained together, and
    ('one_net', dtype): one seed on a batch `seeds` times larger, the same examples through
    one network: the cost that no way of stacking the seeds' networks can beat by much."""
    records = {}
    together = ["--seeds", str(seeds), f"--seeds_form={FLAGS.seeds_form}"]
    for r in range(rounds):
        print(f"[bench] {METHODS[method][0]}, round {r + 1}/{rounds}", flush=True)
        for dtype in dtypes:
            records.setdefault(("ours", dtype), []).append(
                run_jax_step(method, size, batch, steps, dtype, config=config))
            if seeds > 1:
                records.setdefault(("seeds", dtype), []).append(
                    run_jax_step(method, size, batch, steps, dtype, config=config,
                                 extra=together))
                records.setdefault(("one_net", dtype), []).append(
                    run_jax_step(method, size, batch * seeds, steps, dtype, config=config))
        if with_torch:
            records.setdefault("torch", []).append(
                run_json(torch_step_cmd(method, size, batch, steps, torch_args),
                         f"PyTorch {method}"))
    return {key: summarize(value) for key, value in records.items()}


# --------------------------------------------------------------------------- in-process parts

def best_time(fn, repeats: int) -> float:
    """Best wall time of `repeats` calls of fn() (which waits for its own results)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure_matmul_peak(repeats: int = 5) -> dict:
    import jax
    import jax.numpy as jnp

    n = 2048 if jax.default_backend() == "cpu" else 8192
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    matmul = jax.jit(lambda x, y: jnp.matmul(x, y, precision=jax.lax.Precision.HIGHEST))
    matmul(a, a).block_until_ready()
    seconds = best_time(lambda: matmul(a, a).block_until_ready(), repeats)
    device = jax.devices()[0]
    return {"n": n, "seconds": seconds, "flops_per_s": 2 * n ** 3 / seconds,
            "platform": device.platform, "device": device.device_kind}


class _PairsOnly:
    """Stands in for a method in evaluate.make_eval_step: its 'syntheses' are the batch's
    other random examples (reversed order), so only the metrics are timed."""

    def synthesize(self, name, variables, batch):
        source = batch["image"] if name == "image_synthesis" else batch["roi"]
        return None, source[::-1]


def random_pairs(rng, n: int, size: int):
    """n random images in [0, 1) and n disc-shaped ROIs of random centre and radius."""
    import numpy as np

    images = rng.random((n, size, size, 1), dtype=np.float32)
    yy, xx = np.mgrid[:size, :size]
    centres = rng.uniform(0.25, 0.75, (n, 2)) * size
    radii = rng.uniform(0.05, 0.2, n) * size
    rois = ((yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2
            <= radii[:, None, None] ** 2)
    return images, rois[..., None].astype(np.float32)


def measure_eval(size: int, pairs: int) -> dict:
    import jax
    import numpy as np

    from configs import base
    from fproi_jax.evaluation import evaluate, scores

    batch_size = base.get_config().eval.batch_size
    step = evaluate.make_eval_step(_PairsOnly(), {}, size)
    images, rois = random_pairs(np.random.default_rng(0), 4 * batch_size, size)
    batches = [{"image": images[i:i + batch_size], "roi": rois[i:i + batch_size]}
               for i in range(0, len(images), batch_size)]
    start = time.perf_counter()
    jax.block_until_ready(step(batches[0]))
    compile_s = time.perf_counter() - start
    n_batches = -(-pairs // batch_size)   # the last one padded, as evaluate pads it

    def all_batches():
        for i in range(n_batches):
            jax.block_until_ready(step(batches[i % len(batches)]))

    seconds = best_time(all_batches, 1)
    return {"pairs": pairs, "batch": batch_size, "size": size, "seconds": seconds,
            "pairs_per_s": pairs / seconds, "compile_s": compile_s,
            "ms_ssim": size >= scores.MS_SSIM_MIN_SIZE}


def build_phantom_dataset(root: pathlib.Path, size: int, cases: int = 6, depth: int = 40):
    """A small phantom BRATS dataset (the tests' recipe, in-plane size * 15/16, padded to
    `size` like BRATS's 240 -> 256); returns its config.data."""
    from configs import base
    from data_builders import phantom
    from data_builders.brats2017 import Brats2017, Brats2017Config
    import tensorflow_datasets as tfds

    shape = (size * 15 // 16, size * 15 // 16, depth)
    phantom.write_brats(root / "raw", cases=cases, shape=shape, seed=0)
    name = f"bench{size}"
    config = Brats2017Config(name=name, image_size=size,
                             hgg_slices=phantom.scale_slices((90, 100), depth),
                             lgg_slices=phantom.scale_slices((90, 95, 100, 105), depth))
    Brats2017(data_dir=str(root / "tfds"), config=config).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(root / "raw")))
    data = base.get_config().data
    data.update(builder_config=name, data_dir=str(root / "tfds"), image_size=size)
    return data


def measure_pipeline(size: int, batch: int, batches: int) -> dict:
    from fproi_jax.data import pipeline

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        data = build_phantom_dataset(pathlib.Path(tmp), size)
        build_s = time.perf_counter() - start
        source = pipeline.load_split(data, data.train_split)
        stream = iter(pipeline.train_dataset(source, data, batch))
        next(stream)
        seconds = best_time(lambda: [next(stream) for _ in range(batches)], 1)
        return {"examples": batches * batch, "batch": batch, "size": size,
                "dataset_examples": len(source), "build_s": build_s, "seconds": seconds,
                "examples_per_s": batches * batch / seconds}


def _time_fit(fitter, arrays, steps: int) -> tuple[float, float]:
    """(seconds of a first 1-step fit, which compiles; s/step): the difference between a
    fit of 1 + `steps` steps and one of 1 step (both compiled), over `steps`, so that the
    fresh state each fit creates is not counted."""
    import jax

    def fit(n):
        start = time.perf_counter()
        jax.block_until_ready(fitter.fit(arrays, n, seed=0))
        return time.perf_counter() - start

    first = fit(1)
    return first, (fit(1 + steps) - fit(1)) / steps


def measure_tasks(steps: int) -> dict:
    import numpy as np

    from configs import paper_demo
    from fproi_jax.classify import features, resnet18
    from fproi_jax.tasks.segmentation import SegmenterMethod
    from fproi_jax.train.fit import Fitter

    config = paper_demo.get_config()
    size, segment = config.data.image_size, config.segment
    images, rois = random_pairs(np.random.default_rng(0), 64, size)
    record = {"size": size, "segment_batch": segment.batch_size, "classifier_batch": 16}
    fitter = Fitter(SegmenterMethod(segment.features), segment.learning_rate, size,
                    segment.batch_size)
    record["segment_first_s"], record["segment_step_s"] = _time_fit(
        fitter, {"image": images, "roi": rois}, steps)
    fitter = Fitter(features.GradeClassifierMethod(flip=True), 1e-3, size, 16)
    hgg = (np.arange(len(images)) % 2).astype(np.float32)
    record["classifier_first_s"], record["classifier_step_s"] = _time_fit(
        fitter, {"image": images, "hgg": hgg}, steps)
    source = features.FeatureSource("random", resnet18.init_variables(0), "random")
    features.extract_features(source, images, progress=False)   # compiles
    start = time.perf_counter()
    features.extract_features(source, images, progress=False)
    record["features_per_s"] = len(images) / (time.perf_counter() - start)
    return record


def run_in_process_part(part: str):
    if part == "matmul":
        record = measure_matmul_peak()
    elif part == "eval":
        record = measure_eval(FLAGS.size, FLAGS.eval_pairs)
    elif part == "tasks":
        record = measure_tasks(FLAGS.steps)
    else:
        record = measure_pipeline(FLAGS.size, FLAGS.batch, FLAGS.pipeline_batches)
    print(f"{part}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                  for k, v in record.items()))
    bench_json.print_record(record)


# --------------------------------------------------------------------------- tables

def fmt(value, digits: int = 3) -> str:
    """A number with `digits` significant digits; '—' for None."""
    if value is None:
        return "—"
    return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:,.0f}"


def fmt_bytes(value) -> str:
    return "—" if value is None else f"{value / 2 ** 20:,.0f} MiB"


def markdown_table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


STEP_HEADERS = ("method", "ours dtype", "ours median s/step", "PyTorch median s/step",
                "ours / PyTorch", "images/s ours", "images/s PyTorch",
                "first step s (ours: compiles)", "peak mem ours", "peak mem PyTorch",
                "GFLOP/step (XLA)", "achieved GFLOP/s", "of f32 matmul peak")


def step_row(label: str, dtype: str, ours: dict, torch: dict | None, peak_flops) -> list:
    ours_s, torch_s = ours["median_s"], torch["median_s"] if torch else None
    flops = ours.get("flops")
    achieved = flops / ours_s if flops else None
    return [label, dtype, fmt(ours_s), fmt(torch_s),
            fmt(ours_s / torch_s) if torch_s else "—",
            fmt(ours["batch"] / ours_s), fmt(torch["batch"] / torch_s) if torch_s else "—",
            fmt(ours["first_s"]), fmt_bytes(peak_memory(ours)), fmt_bytes(peak_memory(torch)),
            fmt(flops / 1e9 if flops else None), fmt(achieved / 1e9 if achieved else None),
            f"{achieved / peak_flops:.1%}" if achieved and peak_flops else "—"]


SEEDS_HEADERS = ("method", "1 seed s/step", f"{SEEDS} seeds together s/step",
                 f"{SEEDS} seeds / 1 seed", f"PyTorch, {SEEDS} runs one after another s/step",
                 f"ours {SEEDS} seeds / PyTorch {SEEDS} runs",
                 f"1 seed at {SEEDS}x the batch / 1 seed")
SEEDS_NOTE = (f"Ours: train_step.py --seeds={SEEDS}, the stacked states of {SEEDS} seeds "
              "updated on the same batch by one program (train/step.py, seeds_form), "
              f"against the same step with one seed; PyTorch: {SEEDS} times its one-seed "
              "median, as three runs one after another (eager PyTorch has no such program). "
              f"Last column: one seed's step on a batch {SEEDS} times larger against its step "
              "on the batch, the same examples and work through one network: the seeds' "
              "networks stacked in any form do at least this work, so this ratio bounds how "
              f"little {SEEDS} seeds together can cost on this machine.")


def seeds_row(label: str, results: dict) -> list:
    one, together = results[("ours", "float32")]["median_s"], results[("seeds", "float32")][
        "median_s"]
    torch_s = results["torch"]["median_s"] * SEEDS if "torch" in results else None
    one_net = results[("one_net", "float32")]["median_s"]
    return [label, fmt(one), fmt(together), fmt(together / one), fmt(torch_s),
            fmt(together / torch_s) if torch_s else "—", fmt(one_net / one)]


def _ratio(results: dict) -> float | None:
    torch = results.get("torch")
    return results[("ours", "float32")]["median_s"] / torch["median_s"] if torch else None


def _share_of_peak(results: dict, peak: float) -> float | None:
    ours = results[("ours", "float32")]
    return ours["flops"] / ours["median_s"] / peak if ours.get("flops") and peak else None


def targets_section(measured: dict) -> str:
    """Each target of the speed issue (TARGETS) with what this run measured, and whether it
    is met ('—' where this run did not measure it)."""
    def row(what, target, value, met, text=None):
        shown = text if text is not None else fmt(value)
        return [what, target, shown, "—" if value is None else ("yes" if met else "no")]

    rows, peak = [], measured["peak"]
    for method, results in measured.get("demo", {}).items():
        label = METHODS[method][0]
        share, ratio = _share_of_peak(results, peak), _ratio(results)
        rows.append(row(f"{label}, demo step: share of the matmul peak",
                        f">= {TARGETS['demo_peak']:.0%}", share,
                        share is not None and share >= TARGETS["demo_peak"],
                        f"{share:.1%}" if share is not None else "—"))
        rows.append(row(f"{label}, demo step: ours / PyTorch", f"<= {TARGETS['demo_ratio']}",
                        ratio, ratio is not None and ratio <= TARGETS["demo_ratio"]))
        if ("seeds", "float32") in results:
            factor = (results[("seeds", "float32")]["median_s"]
                      / results[("ours", "float32")]["median_s"])
            rows.append(row(f"{label}, {SEEDS} seeds together / 1 seed",
                            f"<= {TARGETS['seeds_ratio']}", factor,
                            factor <= TARGETS["seeds_ratio"]))
    for method, results in measured["main"].items():
        if ("ours", "float32") not in results:
            continue
        target = TARGETS["fproi_gan_ratio_256" if method == "fproi_gan" else "ratio_256"]
        ratio = _ratio(results)
        rows.append(row(f"{METHODS[method][0]}, {FLAGS.size} px batch {FLAGS.batch}: "
                        f"ours / PyTorch", f"<= {target}", ratio,
                        ratio is not None and ratio <= target))
    ev = measured.get("eval")
    if ev:
        seconds = 1000 / ev["pairs_per_s"]
        rows.append(row(f"evaluation, 1,000 pairs at {ev['size']} px, every metric",
                        f"< {TARGETS['eval_1000_s']:g} s", seconds,
                        seconds < TARGETS["eval_1000_s"], f"{seconds:.1f} s"))
    return (markdown_table(("figure", "target", "measured", "met"), rows)
            + "\n\nThe targets of the speed issue (TARGETS in benchmarks/bench.py). The "
              "256 px targets are meant at batch 1 and 4: this table holds the batch of "
              "this run (--batch). make paper-demo's wall time (target 45 min from a fresh "
              "clone) is measured by running it, not here.")


def scaling_table(results) -> str:
    """results: {(devices, batch): summary or None (not run: batch not divisible)}."""
    rows = []
    for (devices, batch), r in sorted(results.items()):
        rows.append([devices, batch, fmt(r["median_s"]) if r else "—",
                     fmt(batch / r["median_s"]) if r else "—", fmt(r["first_s"]) if r else "—"])
    return markdown_table(("devices", "global batch", "median s/step", "images/s",
                           "first step s (compiles)"), rows)


# --------------------------------------------------------------------------- the report

def machine_info(records) -> dict:
    cpu = "unknown"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    gpus = sorted({r["device"] for r in records if r.get("platform") == "gpu"
                   or r.get("framework") == "torch" and r.get("device") != "cpu"})
    if not gpus and shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True)
        gpus = sorted(set(out.stdout.split("\n")) - {""})
    return {"cpu": cpu, "cores": os.cpu_count(),
            "memory": f"{memory / 2 ** 30:.1f} GiB" if memory else "unknown",
            "gpu": ", ".join(gpus) or "none"}


def versions(torch_version: str | None) -> dict:
    out = {"python": platform.python_version()}
    for name in ("jax", "jaxlib", "flax"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["torch"] = torch_version or "not run"
    return out


def report(sections: dict, machine: dict, versions_: dict, command: str, date: str) -> str:
    """The markdown of results.md: header, then each titled section."""
    head = [f"# Benchmarks ({date})", "",
            f"- machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory']} "
            f"memory; GPU: {machine['gpu']}",
            "- versions: " + ", ".join(f"{k} {v}" for k, v in versions_.items()),
            f"- command: `{command}`", ""]
    body = []
    for title, text in sections.items():
        body += [f"## {title}", "", text, ""]
    return "\n".join(head + body)


def write_report(path, text: str):
    """Writes atomically: a temporary file beside `path`, then os.replace."""
    from fproi_jax import atomic
    atomic.write_text(path, text)


# --------------------------------------------------------------------------- main

def main(argv):
    del argv
    if FLAGS.part:
        run_in_process_part(FLAGS.part)
        return
    unknown = set(FLAGS.methods) - set(METHODS)
    if unknown:
        raise app.UsageError(f"--methods: {', '.join(sorted(unknown))} not of {', '.join(METHODS)}")
    from fproi_jax.methods.base import COMPUTE_DTYPES

    unknown = set(FLAGS.jax_dtypes) - set(COMPUTE_DTYPES)
    if unknown:
        raise app.UsageError(f"--jax_dtypes: {', '.join(sorted(unknown))} not of "
                             f"{', '.join(COMPUTE_DTYPES)}")
    with_torch = bool(FLAGS.torch)
    if with_torch and not pathlib.Path(FLAGS.torch).exists():
        raise app.UsageError(f"--torch={FLAGS.torch} does not exist (make bench creates it; "
                             "--torch= runs ours alone)")
    command = shlex.join([os.path.relpath(sys.executable, REPO) if sys.executable.startswith(
        str(REPO)) else sys.executable, *sys.argv])
    matmul = run_part("matmul")
    peak = matmul["flops_per_s"]
    print(f"[bench] f32 matmul peak: {peak / 1e9:.1f} GFLOP/s ({matmul['n']}^2, "
          f"{matmul['platform']})", flush=True)

    rows, records, main_results = [], [], {}
    for method in FLAGS.methods:
        results = timed_rounds(method, FLAGS.jax_dtypes, FLAGS.size, FLAGS.batch, FLAGS.steps,
                               FLAGS.rounds, with_torch)
        main_results[method] = results
        records += results.values()
        for dtype in FLAGS.jax_dtypes:
            rows.append(step_row(METHODS[method][0], dtype, results[("ours", dtype)],
                                 results.get("torch"), peak))
    sections = {
        f"Train step, {FLAGS.size}x{FLAGS.size}, global batch {FLAGS.batch}":
            markdown_table(STEP_HEADERS, rows) + "\n\n" + step_notes(matmul, records),
    }
    measured = {"peak": peak, "main": main_results}
    if FLAGS.demo:
        size, batch = demo_size_and_batch()
        demo_rows, seeds_rows, demo = [], [], {}
        for method in FLAGS.methods:
            seeds = SEEDS if method in FLAGS.seeds_methods else 1
            results = timed_rounds(method, ["float32"], size, batch, FLAGS.steps, FLAGS.rounds,
                                   with_torch, DEMO_CONFIG, demo_widths(method), seeds)
            demo[method] = results
            demo_rows.append(step_row(METHODS[method][0], "float32", results[("ours", "float32")],
                                      results.get("torch"), peak))
            if seeds > 1:
                seeds_rows.append(seeds_row(METHODS[method][0], results))
        measured["demo"] = demo
        sections[f"Train step at the paper demo's scale ({DEMO_CONFIG}: {size}x{size}, global "
                 f"batch {batch}, half widths)"] = (
            markdown_table(STEP_HEADERS, demo_rows) + "\n\nAs above; PyTorch with the same "
            "widths (benchmarks/pytorch_*.py --width ...).")
        if seeds_rows:
            sections[f"{SEEDS} seeds trained together ({FLAGS.seeds_form}), demo scale"] = (
                markdown_table(SEEDS_HEADERS, seeds_rows) + "\n\n" + SEEDS_NOTE)
    ours = [r for r in records if r.get("framework") == "jax"]
    consumer = next((r for r in ours if r["method"] == "fproi_gan"), ours[0] if ours else None)
    if FLAGS.pipeline:
        pipe = run_part("pipeline", size=FLAGS.size, batch=FLAGS.batch,
                        pipeline_batches=FLAGS.pipeline_batches)
        sections["Input pipeline"] = pipeline_section(pipe, consumer)
    if FLAGS.eval:
        ev = run_part("eval", size=FLAGS.size, eval_pairs=FLAGS.eval_pairs)
        sections["Evaluation metrics"] = eval_section(ev)
        measured["eval"] = ev
    if FLAGS.tasks:
        sections["Downstream tasks' networks"] = tasks_section(run_part("tasks", steps=FLAGS.steps))
    if FLAGS.scaling:
        sections["Batch-size scaling (ours, Fproi-GAN, float32)"] = scaling_section(
            run_scaling(FLAGS.size, [int(b) for b in FLAGS.scaling_batches],
                        FLAGS.scaling_devices, FLAGS.steps))
    sections["Against the targets of the speed issue"] = targets_section(measured)
    torch_version = next((r["torch"] for r in records if r.get("framework") == "torch"), None)
    text = report(sections, machine_info(records), versions(torch_version), command,
                  datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    print("\n" + text)
    if FLAGS.output:
        write_report(REPO / FLAGS.output, text)
        print(f"[bench] wrote {FLAGS.output}")


def step_notes(matmul: dict, records) -> str:
    threads = sorted({r["threads"] for r in records if r.get("framework") == "torch"})
    return (f"Medians pool every timed step of {FLAGS.rounds} round(s) of {FLAGS.steps} "
            f"(ours and PyTorch alternating, each run a fresh process; the compile column is "
            f"the median first step, which compiles). Peak memory: the device's peak bytes "
            f"in use on GPU, else the process's peak RSS. FLOPs: XLA's cost analysis of our "
            f"compiled step (the program of one device); achieved = FLOPs / our median; the "
            f"peak is a jitted {matmul['n']}x{matmul['n']} f32 matmul (precision HIGHEST), "
            f"best of 5: {matmul['flops_per_s'] / 1e9:.1f} GFLOP/s on "
            f"{matmul['platform']} ({matmul['device']}). PyTorch: device {FLAGS.device}, "
            + (f"{'/'.join(map(str, threads))} intra-op thread(s), " if threads else "")
            + ("autocast bfloat16." if FLAGS.torch_amp else "float32."))


def pipeline_section(pipe: dict, ours: dict | None) -> str:
    """The pipeline's examples/s against the images/s that our step `ours` consumes."""
    consumption = ours["batch"] / ours["median_s"] if ours else None
    step = f"step images/s (ours, {ours['label']})" if ours else "step images/s (ours)"
    rows = [[pipe["size"], pipe["batch"], pipe["examples"], fmt(pipe["examples_per_s"]),
             fmt(consumption), fmt(pipe["examples_per_s"] / consumption) if consumption
             else "—"]]
    return (markdown_table(("size", "global batch", "examples read", "pipeline examples/s",
                            step, "pipeline / step"), rows)
            + f"\n\nA phantom BRATS dataset of {pipe['dataset_examples']} training slices "
            f"(6 small phantom cases, built in {pipe['build_s']:.0f} s into a temporary "
            f"folder), read through pipeline.train_dataset (shuffle, resize, augment).")


def eval_section(ev: dict) -> str:
    rows = [[ev["size"], ev["pairs"], ev["batch"], fmt(ev["seconds"]), fmt(ev["pairs_per_s"]),
             fmt(ev["compile_s"])]]
    return (markdown_table(("size", "pairs", "batch", "seconds", "pairs/s", "compile s"), rows)
            + "\n\nEvery metric of evaluate.make_eval_step: PSNR, SSIM"
            + (", MS-SSIM" if ev["ms_ssim"] else " (MS-SSIM not computed under 176 px)")
            + " over the whole image and the tumour region, Dice, Hausdorff, HD95 and their "
              "boundary forms, on random images and disc ROIs (jitted once, then timed).")


def tasks_section(tasks: dict) -> str:
    rows = [["segmenter (Table 6)", tasks["segment_batch"], fmt(tasks["segment_step_s"]),
             fmt(tasks["segment_batch"] / tasks["segment_step_s"]),
             fmt(tasks["segment_first_s"])],
            ["in-domain ResNet-18 (Table 5)", tasks["classifier_batch"],
             fmt(tasks["classifier_step_s"]),
             fmt(tasks["classifier_batch"] / tasks["classifier_step_s"]),
             fmt(tasks["classifier_first_s"])]]
    return (markdown_table(("network", "global batch", "median s/step", "images/s",
                            "first step s (compiles)"), rows)
            + f"\n\nAt {tasks['size']}x{tasks['size']} with the paper demo's settings, "
              f"each the sharded train step of train/fit.py on this process's devices. "
              f"ResNet-18 feature extraction (Table 5, batches of 32): "
              f"{fmt(tasks['features_per_s'])} images/s.")


def run_scaling(size: int, batches, fake_devices: int, steps: int) -> dict:
    results = {}
    for devices in (1, fake_devices):
        for batch in batches:
            if batch % devices:
                results[(devices, batch)] = None
                continue
            results[(devices, batch)] = run_jax_step(
                "fproi_gan", size, batch, steps, fake_devices=fake_devices if devices > 1 else 0)
    return results


def scaling_section(results: dict) -> str:
    return (scaling_table(results) + "\n\nOne round each. The multi-device rows run on "
            "fake CPU devices (XLA_FLAGS=" + FAKE_DEVICES_FLAG + "=N) of this machine's "
            "cores: they test the data-parallel program, not a speed-up; '—': the batch "
            "does not split over the devices.")


if __name__ == "__main__":
    app.run(main)
