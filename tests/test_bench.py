"""benchmarks/bench.py's harness without timing anything: the JSON line, pooling rounds,
the tables and report, and train_step.py --json on a tiny config."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.fixture(scope="module")
def bench():
    # Loaded once per process: the module defines absl flags.
    if "bench" not in sys.modules:
        sys.path.insert(0, str(REPO / "benchmarks"))  # its sibling modules, as when run
        spec = importlib.util.spec_from_file_location("bench", REPO / "benchmarks" / "bench.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["bench"] = module
    return sys.modules["bench"]


def test_parse_record_takes_the_last_json_line(bench):
    out = ("Fproi-GAN, 64x64, ...: first step (compile) 3.0 s, then median 0.500 s/step\n"
           'BENCH_JSON {"median_s": 0.5, "flops": 1e9}\n'
           'BENCH_JSON {"median_s": 0.25}\n'
           "trailing text\n")
    assert bench.bench_json.parse_record(out) == {"median_s": 0.25}
    with pytest.raises(ValueError, match="BENCH_JSON"):
        bench.bench_json.parse_record("median 0.5 s/step\n")


def test_summarize_pools_the_rounds(bench):
    rounds = [{"times": [1.0, 3.0], "first_s": 10.0, "batch": 1, "peak_rss_bytes": 5,
               "device_peak_bytes": None, "flops": 7.0},
              {"times": [2.0], "first_s": 20.0, "batch": 1, "peak_rss_bytes": 9,
               "device_peak_bytes": None, "flops": 7.0}]
    s = bench.summarize(rounds)
    assert s["median_s"] == 2.0 and s["min_s"] == 1.0 and s["first_s"] == 15.0
    assert s["peak_rss_bytes"] == 9 and s["device_peak_bytes"] is None
    assert s["rounds"] == 2 and s["flops"] == 7.0
    assert bench.peak_memory(s) == 9
    assert bench.peak_memory({"device_peak_bytes": 4, "peak_rss_bytes": 9}) == 4


def test_step_row_and_tables(bench):
    ours = {"median_s": 0.5, "batch": 2, "first_s": 30.0, "flops": 4e9,
            "peak_rss_bytes": 3 * 2 ** 20, "device_peak_bytes": None}
    torch = {"median_s": 0.25, "batch": 2, "peak_rss_bytes": 2 ** 30}
    row = bench.step_row("Fproi-GAN", "float32", ours, torch, peak_flops=16e9)
    assert row == ["Fproi-GAN", "float32", "0.5", "0.25", "2", "4", "8", "30", "3 MiB",
                   "1,024 MiB", "4", "8", "50.0%"]
    alone = bench.step_row("DCGAN", "float32", {**ours, "flops": None}, None, 16e9)
    assert alone[3:5] == ["—", "—"] and alone[-3:] == ["—", "—", "—"]

    table = bench.markdown_table(bench.STEP_HEADERS, [row, alone]).splitlines()
    assert len(table) == 4 and table[1] == "|" + "|".join(["---"] * 13) + "|"
    assert table[2].startswith("| Fproi-GAN | float32 | 0.5 |")

    scaling = bench.scaling_table({(1, 4): {"median_s": 2.0, "first_s": 1.0},
                                   (4, 1): None}).splitlines()
    assert scaling[2] == "| 1 | 4 | 2 | 2 | 1 |"
    assert scaling[3] == "| 4 | 1 | — | — | — |"
    assert bench.fmt(123456.0) == "123,456" and bench.fmt(0.012345) == "0.0123"

    tasks = bench.tasks_section({"size": 64, "segment_batch": 8, "segment_step_s": 0.1,
                                 "segment_first_s": 9.0, "classifier_batch": 16,
                                 "classifier_step_s": 0.5, "classifier_first_s": 30.0,
                                 "features_per_s": 250.0}).splitlines()
    assert tasks[2] == "| segmenter (Table 6) | 8 | 0.1 | 80 | 9 |"
    assert tasks[3] == "| in-domain ResNet-18 (Table 5) | 16 | 0.5 | 32 | 30 |"
    assert tasks[-1].endswith("250 images/s.")


def test_seeds_row_and_the_targets_table(bench):
    bench.FLAGS(["bench", "--size=256", "--batch=1"])
    one = {"median_s": 0.2, "flops": 10e9, "batch": 4}
    demo = {("ours", "float32"): one, ("seeds", "float32"): {"median_s": 0.5},
            ("one_net", "float32"): {"median_s": 0.56}, "torch": {"median_s": 0.25}}
    assert bench.seeds_row("Fproi-GAN", demo) == ["Fproi-GAN", "0.2", "0.5", "2.5", "0.75",
                                                  "0.667", "2.8"]
    measured = {"peak": 100e9, "demo": {"fproi_gan": demo, "dcgan": {
                    ("ours", "float32"): {"median_s": 0.1, "flops": 6e9}, "torch": {
                        "median_s": 0.2}}},
                "main": {"fproi_gan": {("ours", "float32"): {"median_s": 1.7},
                                       "torch": {"median_s": 2.0}},
                         "pix2pix": {("ours", "float32"): {"median_s": 1.0}}},
                "eval": {"size": 256, "pairs_per_s": 140.0}}
    rows = bench.targets_section(measured).splitlines()
    assert rows[2] == "| Fproi-GAN, demo step: share of the matmul peak | >= 50% | 50.0% | yes |"
    assert rows[3] == "| Fproi-GAN, demo step: ours / PyTorch | <= 0.7 | 0.8 | no |"
    assert rows[4] == "| Fproi-GAN, 3 seeds together / 1 seed | <= 1.6 | 2.5 | no |"
    assert rows[5] == "| DCGAN, demo step: share of the matmul peak | >= 50% | 60.0% | yes |"
    assert rows[6] == "| DCGAN, demo step: ours / PyTorch | <= 0.7 | 0.5 | yes |"
    assert rows[7] == "| Fproi-GAN, 256 px batch 1: ours / PyTorch | <= 0.8 | 0.85 | no |"
    assert rows[8] == "| Pix2Pix, 256 px batch 1: ours / PyTorch | <= 1.0 | — | — |"
    assert rows[9] == ("| evaluation, 1,000 pairs at 256 px, every metric | < 10 s | 7.1 s "
                       "| yes |")


def test_report_written_atomically(bench, tmp_path):
    text = bench.report({"Train step": "| a |\n|---|\n| 1 |"},
                        {"cpu": "X", "cores": 2, "memory": "8.0 GiB", "gpu": "none"},
                        bench.versions("2.13.0"), "python benchmarks/bench.py --size=64",
                        "2026-01-01 00:00 UTC")
    assert text.startswith("# Benchmarks (2026-01-01 00:00 UTC)")
    assert "torch 2.13.0" in text and "`python benchmarks/bench.py --size=64`" in text
    assert "## Train step\n\n| a |" in text
    bench.write_report(tmp_path / "results.md", text)
    assert (tmp_path / "results.md").read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["results.md"]


def test_train_step_json_line_has_positive_flops(bench):
    """The smallest DCGAN: the line parses, the human one-line summary is unchanged."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1",
               PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "benchmarks/train_step.py", "--config=configs/demo.py",
         "--config.model.name=dcgan", "--config.data.image_size=32",
         "--config.model.dcgan.generator_features=(4,8)",
         "--config.model.dcgan.discriminator_features=(4,8)",
         "--config.train.batch_size=1", "--steps=1", "--json", "--profile=1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=True).stdout
    record = bench.bench_json.parse_record(out)
    assert record["flops"] > 0 and record["median_s"] > 0 and record["peak_rss_bytes"] > 0
    assert record["method"] == "dcgan" and record["batch"] == 1 and record["devices"] == 1
    assert json.loads(json.dumps(record)) == record
    (summary,) = [line for line in out.splitlines() if line.startswith("DCGAN, ")]
    assert summary.startswith("DCGAN, 32x32, global batch 1, 1 x cpu") and "median" in summary
    profile = record["profile"]
    assert profile["kinds"]["convolution"] > 0
    assert sum(profile["kinds"].values()) == pytest.approx(profile["total_ms"])
    networks = {name.split("/")[0] for name in profile["layers"]}
    assert {"DCGANDiscriminator", "EncoderDecoder"} <= networks
    assert "| kind of XLA instruction | ms/step | share |" in out


@pytest.fixture(scope="module")
def xla_profile(bench):
    import xla_profile  # benchmarks/ is on sys.path once `bench` is loaded
    return xla_profile


def test_profile_layer_names_network_modules_and_direction(xla_profile):
    backward = ("jit(per_device_step)/transpose(jvp(Generator))/UpBlock_1/"
                "SubpixelConvTranspose_0/cond/branch_0_fun/cond/branch_0_fun/transpose(jvp())/"
                "conv_general_dilated")
    assert xla_profile.layer(backward) == "Generator/UpBlock_1/SubpixelConvTranspose_0 (backward)"
    forward = "jit(per_device_step)/jvp(Discriminator)/Conv_3/conv_general_dilated"
    assert xla_profile.layer(forward) == "Discriminator/Conv_3 (forward)"
    assert xla_profile.layer("jit(per_device_step)/jvp(Generator)/concatenate") == (
        "Generator (forward)")
    stacked = "jit(step)/vmap(transpose(jvp(Generator)))/Conv_0/conv_general_dilated"
    assert xla_profile.layer(stacked) == "Generator/Conv_0 (backward)"  # --seeds
    assert xla_profile.layer("jit(per_device_step)/adam/mul") == ""


def test_profile_category_prefers_the_primitive_then_the_name(xla_profile):
    conv = "jit(step)/jvp(Generator)/ConvBlock_0/Conv_0/conv_general_dilated"
    assert xla_profile.category("ynn_fusion.270", conv) == "convolution"
    assert xla_profile.category("ynn_fusion", "jit(step)/jvp(M)/Dense_0/dot_general") == "matmul"
    assert xla_profile.category("convolution-window-dilated.4") == "convolution"
    assert xla_profile.category("all-reduce.1") == "collectives"
    assert xla_profile.category("transpose_copy_fusion.3", "jit(step)/x/add_any") == (
        "layout copies and transposes")
    assert xla_profile.category("reverse_pad_fusion.2") == "padding, slicing, concatenation"
    assert xla_profile.category("multiply_add_fusion") == xla_profile.OTHER


def test_profile_reads_op_names_from_a_compiled_program(xla_profile):
    import jax
    import jax.numpy as jnp
    conv = jax.jit(lambda x, k: jax.lax.conv_general_dilated(
        x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + 1)
    x, k = jnp.ones((1, 8, 8, 2)), jnp.ones((3, 3, 2, 3))
    metadata = xla_profile.instruction_metadata(conv.lower(x, k).compile().as_text())
    convs = [(shape, grouped) for shape, op_name, grouped in metadata.values()
             if op_name.endswith("/conv_general_dilated")]
    assert convs and all(shape.startswith("f32[1,8,8,3]") and not grouped
                         for shape, grouped in convs)


def test_profile_tells_grouped_convolutions_from_vmapped_kernels(xla_profile):
    """vmap over input and kernel makes one convolution with a group per entry (the seeds
    of train_step.py --seeds), which XLA:CPU runs inside a fusion; over the input alone, a
    plain one with a larger batch."""
    import jax
    import jax.numpy as jnp
    conv = lambda x, k: jax.nn.relu(jax.lax.conv_general_dilated(  # noqa: E731
        x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + 1)
    x, k = jnp.ones((3, 4, 16, 16, 8)), jnp.ones((3, 3, 3, 8, 8))
    for in_axes, grouped in (((0, 0), True), ((0, None), False)):
        text = jax.jit(jax.vmap(conv, in_axes)).lower(x, k if grouped else k[0]).compile()
        kinds = {xla_profile.category(name, op_name, is_grouped)
                 for name, (_, op_name, is_grouped)
                 in xla_profile.instruction_metadata(text.as_text()).items()
                 if op_name.endswith("conv_general_dilated")
                 and not name.startswith("bitcast")}  # the instructions that compute
        assert kinds == {xla_profile.GROUPED if grouped else "convolution"}, in_axes
