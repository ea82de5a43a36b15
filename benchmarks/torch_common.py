"""What the PyTorch benchmark scripts share (pytorch_step.py, pytorch_baselines.py): the
device and AMP options, the timing loop, peak memory and the machine-readable line.

Runs in the torch virtual environment only; nothing in fproi_jax imports it.
"""
import contextlib
import resource
import statistics
import time

import bench_json
import torch


def add_common_args(parser):
    parser.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda")
    parser.add_argument("--amp", action="store_true",
                        help="mixed precision: torch.autocast(bfloat16) on CUDA")
    parser.add_argument("--json", action="store_true",
                        help=f"also print one machine-readable line: {bench_json.PREFIX}{{...}}")


def check_args(args):
    if args.amp and not args.device.startswith("cuda"):
        raise SystemExit("--amp is torch.autocast on CUDA: pass --device=cuda with it")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device={args.device}: torch {torch.__version__} sees no CUDA device")


def autocast(args):
    """The forward passes' context: autocast to bfloat16 with --amp, else nothing."""
    if args.amp:
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def time_steps(step, steps: int, device: str):
    """(first step's seconds, [seconds of each of `steps` further steps]), each step waited for."""
    def timed():
        start = time.perf_counter()
        step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    first = timed()
    return first, [timed() for _ in range(steps)]


def device_name(args) -> str:
    """'cpu' or the CUDA device's name."""
    return torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"


def emit_json(args, first: float, times, parameters: int, **extra):
    """Prints the JSON line (with --json): timings, peak memory and the run's settings."""
    if not args.json:
        return
    cuda = args.device.startswith("cuda")
    record = {
        "framework": "torch", "torch": torch.__version__, "device": device_name(args),
        "threads": torch.get_num_threads(), "amp": args.amp,
        "size": args.size, "batch": args.batch, "steps": len(times), "first_s": first,
        "times": times, "median_s": statistics.median(times), "min_s": min(times),
        "parameters": parameters,
        # ru_maxrss is in KiB on Linux.
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "device_peak_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        **extra,
    }
    bench_json.print_record(record)
