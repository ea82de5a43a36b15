"""The five methods' train steps written again in PyTorch, replayed from our records and
compared, with float64 as the referee (`make parity`).

Runs in the torch environment (torch is never a project dependency):

    .venv/bin/python benchmarks/parity.py --out=/tmp/parity
    .bench/torch/bin/python benchmarks/pytorch_twin.py /tmp/parity [--plant=adam_b1]

For each `<method>.npz` written by benchmarks/parity.py, the twin builds the method's
networks from torch operations (conv2d, conv_transpose2d, instance_norm, batch_norm,
binary_cross_entropy_with_logits, torch.optim.Adam), starts from our initial parameters
(kept in our layouts and converted in the forward pass: HWIO kernels to OIHW, transposed
kernels flipped to (I, O, k, k)), and takes the same ten steps on the same batches, once
in float32 and once in float64. Written from the papers' and our docstrings' description
of each network and objective, not from our code.

The verdict, per parameter and statistic leaf after steps 1 and 10 and per loss term of
every step, in two gates against the float64 twin (torch64), the referee:
- float64: our step run in float64 (benchmarks/parity.py's x64 record) must equal torch64
  to float64 noise: within 1e-8 of the leaf's magnitude, or 10 times the distance of the
  farthest of three float64 replays from parameters changed by one float64 rounding
  error. Without float32 noise the two implementations must agree: this is the gate that
  proves the same arithmetic. (Early GAN steps can be very sensitive: CycleGAN's F sees
  G's near-constant output through instance norms, and a 1e-7 change of G(x) moves F's
  first gradients by 8%. So even float64's summation orders, XLA's and torch's, drift
  apart to ~3e-9 of a leaf after ten CycleGAN steps; 1e-16 in the other methods.)
- float32: our float32 step must be as close to torch64 as float32 allows here: within 10
  times the farthest of the twin's float32 replays (one from our parameters, three from
  parameters changed by one float32 rounding error), or within 1e-2 of the leaf's change
  over the steps, or 1e-6 of its magnitude. XLA's float32 sums carry more rounding than
  torch's (a whole map's sum, such as an output bias's gradient: ~1e-5 of relative error
  against ~1e-7), which grows over ten steps to ~3e-3 of the change of some leaves of
  Fproi-GAN. The gate bounds our float32 error by what float32 itself allows on this step;
  it cannot see a defect smaller than that: flax's one-pass variance, planted back, passes
  it (CycleGAN's early steps are that sensitive), and is guarded by its own unit test
  (tests/test_models.py, test_normalisations_compute_the_variance_in_two_passes).
A wrong layer, weight, input or optimizer setting fails the float64 gate by orders of
magnitude (see --plant).

PyTorch's BatchNorm keeps the unbiased batch variance in its running average, flax the
biased one (the normalisation itself is the same): the twin normalises with torch's
batch_norm and keeps the running averages as flax does, so the statistics can be compared.

--plant breaks one thing in the twin on purpose, to show the check catches it:
rfb_input (the RFB sees x instead of x * y), cycle_weight (lambda 10% larger),
adam_b1 (0.8 instead of 0.9). `make parity` runs each and requires a failure.
"""
import argparse
import json
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F

PLANTS = ("rfb_input", "cycle_weight", "adam_b1")
NETWORKS = ("G", "F", "Dx", "Dy")
JITTERS = 3  # replays from initial parameters changed by one rounding error


class Twin:
    """One method's networks and objectives on a {flax path: tensor} parameter dict."""

    def __init__(self, config: dict, params: dict, stats: dict, plant: str | None):
        self.config, self.plant = config, plant
        self.name = config["model"]["name"]
        self.params, self.stats = params, stats

    # -- layers -------------------------------------------------------------------------
    def conv(self, path, x, stride=1, padding=0):
        kernel = self.params[f"{path}/kernel"].permute(3, 2, 0, 1).contiguous()  # HWIO -> OIHW
        return F.conv2d(x, kernel, self.params.get(f"{path}/bias"), stride, padding)

    def conv_transpose(self, path, x, stride=2):
        """ConvTranspose2d(k, s, padding=(k-1)//2, output_padding=s + 2p - k): 2x the input."""
        kernel = self.params[f"{path}/kernel"]
        k = kernel.shape[0]
        p = (k - 1) // 2
        weight = kernel.flip(0, 1).permute(2, 3, 0, 1).contiguous()  # (k,k,I,O) -> (I,O,k,k)
        return F.conv_transpose2d(x, weight, self.params.get(f"{path}/bias"), stride, p,
                                  output_padding=stride + 2 * p - k)

    def dense(self, path, x):
        flat = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # NHWC order, as ours
        return flat @ self.params[f"{path}/kernel"] + self.params[f"{path}/bias"]

    def batch_norm(self, path, x):
        """Training-mode BatchNorm (eps 1e-5) by torch; running averages with momentum 0.1 of
        the biased batch variance (flax's; torch's own would keep the unbiased one)."""
        mean, var = self.stats[f"{path}/mean"], self.stats[f"{path}/var"]
        out = F.batch_norm(x, None, None, self.params[f"{path}/scale"],
                           self.params[f"{path}/bias"], training=True, eps=1e-5)
        with torch.no_grad():
            self.stats[f"{path}/mean"] = 0.9 * mean + 0.1 * x.mean(dim=(0, 2, 3))
            self.stats[f"{path}/var"] = 0.9 * var + 0.1 * x.var(dim=(0, 2, 3), unbiased=False)
        return out

    @staticmethod
    def reflect(x, pad):
        return F.pad(x, (pad,) * 4, mode="reflect")

    @staticmethod
    def instance_norm(x):
        return F.instance_norm(x, eps=1e-5)

    # -- Fproi-GAN's networks (Figures 3-5) ----------------------------------------------
    def conv_block(self, path, x, k, stride=1, reflect=0):
        if reflect:
            x = self.reflect(x, reflect)
        x = self.conv(f"{path}/Conv_0", x, stride, 0 if reflect else k // 2)
        return F.relu(self.instance_norm(x))

    def up_block(self, path, x):
        return F.relu(self.instance_norm(self.conv_transpose(f"{path}/SubpixelConvTranspose_0", x)))

    def resize_up_block(self, path, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return F.relu(self.instance_norm(self.conv(f"{path}/Conv_0", x, 1, 1)))

    def upsample(self, path, index, x, setting):
        """Upsampling block `index` under `path`: 'transposed' or 'resize' as `setting` says."""
        if self.config["model"]["fproi_gan"][setting] == "resize":
            return self.resize_up_block(f"{path}/ResizeUpBlock_{index}", x)
        return self.up_block(f"{path}/UpBlock_{index}", x)

    def rfb(self, path, r):
        x = self.conv_block(f"{path}/ConvBlock_0", r, 7, reflect=3)
        x = self.conv_block(f"{path}/ConvBlock_1", x, 3, 2, reflect=1)
        x = self.conv_block(f"{path}/ConvBlock_2", x, 3)
        return self.upsample(path, 0, x, "rfb_upsample")

    def unet(self, path, x):
        e1 = self.conv_block(f"{path}/ConvBlock_0", x, 7, reflect=3)
        e2 = self.conv_block(f"{path}/ConvBlock_1", e1, 3, 2, reflect=1)
        e3 = self.conv_block(f"{path}/ConvBlock_2", e2, 3, 2, reflect=1)
        d2 = torch.cat([self.upsample(path, 0, e3, "generator_upsample"), e2], 1)
        d1 = torch.cat([self.upsample(path, 1, d2, "generator_upsample"), e1], 1)
        return torch.sigmoid(self.conv(f"{path}/SpaceToDepthConv_0", self.reflect(d1, 3)))

    def fproi_discriminator(self, path, x):
        layers = len(self.config["model"]["fproi_gan"]["discriminator_features"])
        for i in range(layers):
            x = F.leaky_relu(self.conv(f"{path}/Conv_{i}", x, 2, 1), 0.2)
        return self.dense(f"{path}/Dense_0", x)[:, 0]

    # -- CycleGAN's networks (ResNet generator, PatchGAN) --------------------------------
    def resnet(self, path, x):
        blocks = self.config["model"]["cycle_gan"]["residual_blocks"]
        h = F.relu(self.instance_norm(self.conv(f"{path}/Conv_0", self.reflect(x, 3))))
        for i in (1, 2):
            h = F.relu(self.instance_norm(self.conv(f"{path}/Conv_{i}", h, 2, 1)))
        for b in range(blocks):
            p = f"{path}/ResnetBlock_{b}"
            r = F.relu(self.instance_norm(self.conv(f"{p}/Conv_0", self.reflect(h, 1))))
            h = h + self.instance_norm(self.conv(f"{p}/Conv_1", self.reflect(r, 1)))
        for i in (0, 1):
            h = F.relu(self.instance_norm(
                self.conv_transpose(f"{path}/SubpixelConvTranspose_{i}", h)))
        return torch.sigmoid(self.conv(f"{path}/SpaceToDepthConv_0", self.reflect(h, 3)))

    def patch_gan(self, path, x, layers, batch_norm):
        h = F.leaky_relu(self.conv(f"{path}/Conv_0", x, 2, 1), 0.2)
        for n in range(1, layers + 1):
            h = self.conv(f"{path}/Conv_{n}", h, 2 if n < layers else 1, 1)
            h = self.batch_norm(f"{path}/BatchNorm_{n - 1}", h) if batch_norm \
                else self.instance_norm(h)
            h = F.leaky_relu(h, 0.2)
        return self.conv(f"{path}/Conv_{layers + 1}", h, 1, 1)[:, 0]

    # -- Pix2Pix's U-Net (unet_256 scaled to the image) ----------------------------------
    def pix2pix_unet(self, path, x):
        levels = int(np.log2(self.config["data"]["image_size"]))
        skips, h, norm = [], x, 0
        for i in range(levels):
            skips.append(h)
            if i > 0:
                h = F.leaky_relu(h, 0.2)
            h = self.conv(f"{path}/Conv_{i}", h, 2, 1)
            if 0 < i < levels - 1:
                h, norm = self.batch_norm(f"{path}/BatchNorm_{norm}", h), norm + 1
        for j, i in enumerate(reversed(range(1, levels))):
            h = self.conv_transpose(f"{path}/SubpixelConvTranspose_{j}", F.relu(h))
            h, norm = self.batch_norm(f"{path}/BatchNorm_{norm}", h), norm + 1
            h = torch.cat([skips[i], h], 1)  # dropout 0 in the records
        out = self.conv_transpose(f"{path}/SubpixelConvTranspose_{levels - 1}", F.relu(h))
        return torch.sigmoid(out)

    # -- DCGAN's encoder-decoder and discriminator ---------------------------------------
    def dcgan_down(self, path, x, features):
        for i in range(len(features)):
            x = self.conv(f"{path}/Conv_{i}", x, 2, 1)
            if i > 0:
                x = self.batch_norm(f"{path}/BatchNorm_{i - 1}", x)
            x = F.leaky_relu(x, 0.2)
        return x

    def dcgan_generator(self, path, x):
        features = self.config["model"]["dcgan"]["generator_features"]
        h = self.dcgan_down(path, x, features)
        norm = len(features) - 1
        for j in range(len(features) - 1):
            h = self.conv_transpose(f"{path}/SubpixelConvTranspose_{j}", h)
            h, norm = F.relu(self.batch_norm(f"{path}/BatchNorm_{norm}", h)), norm + 1
        return torch.sigmoid(self.conv_transpose(
            f"{path}/SubpixelConvTranspose_{len(features) - 1}", h))

    def dcgan_discriminator(self, path, x):
        features = self.config["model"]["dcgan"]["discriminator_features"]
        return self.dense(f"{path}/Dense_0", self.dcgan_down(path, x, features))[:, 0]

    # -- the methods --------------------------------------------------------------------
    def net(self, network, x):
        name, model = self.name, self.config["model"]
        if name.startswith("fproi_gan"):
            return (self.fproi_discriminator(network, x) if network in ("Dx", "Dy")
                    else self.unet("G/net" if network == "G" else "F", x))
        if name == "cycle_gan":
            layers = model["cycle_gan"]["discriminator_layers"]
            return (self.patch_gan(network, x, layers, False) if network in ("Dx", "Dy")
                    else self.resnet(network, x))
        if name == "pix2pix":
            layers = model["pix2pix"]["discriminator_layers"]
            return (self.patch_gan(network, x, layers, True) if network in ("Dx", "Dy")
                    else self.pix2pix_unet(network, x))
        return (self.dcgan_discriminator(network, x) if network in ("Dx", "Dy")
                else self.dcgan_generator(network, x))

    def to_roi(self, x, y):
        """G; Fproi-GAN's G sees concat(x, RFB(x * y))."""
        if self.name == "fproi_gan":
            regional = x if self.plant == "rfb_input" else x * y
            x = torch.cat([x, self.rfb("G/rfb", regional)], 1)
        return self.net("G", x)

    def settings(self):
        model = self.config["model"]
        if self.name.startswith("fproi_gan"):
            return "log", model["fproi_gan"]["cycle_weight"], 0.0
        if self.name == "cycle_gan":
            s = model["cycle_gan"]
            return s["gan_mode"], s["cycle_weight"], s["identity_weight"]
        if self.name == "pix2pix":
            return "log", model["pix2pix"]["l1_weight"], 0.0
        return "log", model["dcgan"]["cycle_weight"], 0.0

    @staticmethod
    def gan(logits, real: bool, mode: str):
        if mode == "lsgan":
            return ((logits - 1.0) ** 2).mean() if real else (logits ** 2).mean()
        target = torch.ones_like(logits) if real else torch.zeros_like(logits)
        return F.binary_cross_entropy_with_logits(logits, target)

    def generator_objective(self, x, y):
        mode, weight, identity = self.settings()
        if self.plant == "cycle_weight":
            weight = 1.1 * weight
        l1 = lambda a, b: (a - b).abs().mean()  # noqa: E731
        if self.name == "pix2pix":
            g_x, f_y = self.net("G", x), self.net("F", y)
            terms = {"g_adversarial": self.gan(self.net("Dy", torch.cat([x, g_x], 1)), True, mode),
                     "f_adversarial": self.gan(self.net("Dx", torch.cat([y, f_y], 1)), True, mode),
                     "l1_roi": l1(g_x, y), "l1_image": l1(f_y, x)}
            total = (terms["g_adversarial"] + terms["f_adversarial"]
                     + weight * (terms["l1_roi"] + terms["l1_image"]))
            return total, terms, f_y, g_x
        g_x = self.to_roi(x, y)
        f_g_x = self.net("F", g_x)
        f_y = self.net("F", y)
        g_f_y = self.to_roi(f_y, y)
        terms = {"f_adversarial": self.gan(self.net("Dx", f_y), True, mode),
                 "g_adversarial": self.gan(self.net("Dy", g_x), True, mode),
                 "cycle_image": l1(f_g_x, x), "cycle_roi": l1(g_f_y, y)}
        total = (terms["g_adversarial"] + terms["f_adversarial"]
                 + weight * (terms["cycle_image"] + terms["cycle_roi"]))
        if identity:
            terms["identity_roi"] = l1(self.to_roi(y, y), y)
            terms["identity_image"] = l1(self.net("F", x), x)
            total = total + weight * identity * (terms["identity_roi"] + terms["identity_image"])
        return total, terms, f_y, g_x

    def discriminator_objective(self, x, y, fake_x, fake_y):
        mode = self.settings()[0]
        if self.name == "pix2pix":
            real_x, fake_x = torch.cat([y, x], 1), torch.cat([y, fake_x], 1)
            real_y, fake_y = torch.cat([x, y], 1), torch.cat([x, fake_y], 1)
        else:
            real_x, real_y = x, y
        dx = 0.5 * (self.gan(self.net("Dx", real_x), True, mode)
                    + self.gan(self.net("Dx", fake_x), False, mode))
        dy = 0.5 * (self.gan(self.net("Dy", real_y), True, mode)
                    + self.gan(self.net("Dy", fake_y), False, mode))
        return dx + dy, {"dx": dx, "dy": dy}


def learning_rate(train: dict, step: int, total: int) -> float:
    """The rate of update `step` (0-based) of `total`: constant, or (linear_decay) constant
    for the first half and linearly to 0 over the second, as fproi_jax/train/state.py."""
    if train["lr_schedule"] == "constant":
        return train["learning_rate"]
    half = total // 2
    if step < half:
        return train["learning_rate"]
    return train["learning_rate"] * (1 - (step - half) / max(total - half, 1))


def replay(record: dict, dtype, plant: str | None, jitter: int | None = None):
    """The ten steps in torch at `dtype`: ({step: {key: array}} for steps 1 and 10,
    [{term: value}] per step). `jitter` seeds a random change of every initial parameter by
    one rounding error of `dtype` (a factor 1 +- 2^-24 in float32, 1 +- 2^-53 in float64)."""
    config = json.loads(str(record["config"]))
    train = config["train"]
    as_tensor = lambda a: torch.tensor(np.asarray(a), dtype=dtype)  # noqa: E731
    initial = {k[len("params0/"):]: np.asarray(v, np.float64) for k, v in record.items()
               if k.startswith("params0/")}
    if jitter is not None:
        rng = np.random.default_rng(jitter)
        ulp = 2.0 ** (-24 if dtype == torch.float32 else -53)
        initial = {k: v * (1 + ulp * rng.choice([-1.0, 1.0], v.shape))
                   for k, v in initial.items()}
    params = {k: as_tensor(v).requires_grad_() for k, v in initial.items()}
    stats = {k[len("stats0/"):]: as_tensor(v) for k, v in record.items()
             if k.startswith("stats0/")}
    twin = Twin(config, params, stats, plant)
    b1 = 0.8 if plant == "adam_b1" else train["adam_b1"]
    optimizers = {n: torch.optim.Adam([p for k, p in params.items() if k.split("/")[0] == n],
                                      lr=train["learning_rate"], betas=(b1, train["adam_b2"]),
                                      eps=train["adam_eps"]) for n in NETWORKS}
    snapshots, history = {}, []
    images, rois = as_tensor(record["image"]), as_tensor(record["roi"])
    for step in range(images.shape[0]):
        x, y = images[step].permute(0, 3, 1, 2), rois[step].permute(0, 3, 1, 2)
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
            for group in opt.param_groups:
                group["lr"] = learning_rate(train, step, images.shape[0])
        # Both objectives are differentiated from the same parameters: the generators'
        # first (discriminators held fixed), then the discriminators' on its detached fakes.
        gen_total, gen_terms, fake_x, fake_y = twin.generator_objective(x, y)
        gen_grads = torch.autograd.grad(
            gen_total, [p for k, p in params.items() if k.split("/")[0] in ("G", "F")],
            allow_unused=True)
        disc_total, disc_terms = twin.discriminator_objective(x, y, fake_x.detach(),
                                                              fake_y.detach())
        disc_grads = torch.autograd.grad(
            disc_total, [p for k, p in params.items() if k.split("/")[0] in ("Dx", "Dy")])
        gen_keys = [k for k in params if k.split("/")[0] in ("G", "F")]
        disc_keys = [k for k in params if k.split("/")[0] in ("Dx", "Dy")]
        for k, g in zip(gen_keys + disc_keys, list(gen_grads) + list(disc_grads)):
            params[k].grad = torch.zeros_like(params[k]) if g is None else g
        for opt in optimizers.values():
            opt.step()
        terms = {**gen_terms, **disc_terms, "generator_total": gen_total,
                 "discriminator_total": disc_total}
        history.append({k: float(v.detach()) for k, v in terms.items()})
        if step + 1 in (1, images.shape[0]):
            snapshots[step + 1] = {
                **{f"params/{k}": v.detach().numpy().astype(np.float64)
                   for k, v in params.items()},
                **{f"stats/{k}": v.numpy().astype(np.float64) for k, v in twin.stats.items()}}
    return snapshots, history


def compare(record: dict, torch32: list, torch64: list) -> list[tuple[str, float, float, bool]]:
    """(what, error, allowed, passed) for every leaf and loss term, in both gates (module
    docstring); `torch32` and `torch64` hold the replays, the unjittered one first."""
    rows = []
    s64, h64 = torch64[0]

    def check(what, ours, ours64, t32s, t64s, start):
        t64 = t64s[0]
        scale = float(np.max(np.abs(t64)))
        noise64 = max((float(np.max(np.abs(t - t64))) for t in t64s[1:]), default=0.0)
        e64 = float(np.max(np.abs(ours64 - t64)))
        allowed64 = max(10 * noise64, 1e-8 * scale, 1e-15)
        rows.append((f"float64 {what}", e64, allowed64, e64 <= allowed64))
        e_ours = float(np.max(np.abs(ours - t64)))
        e_torch = max(float(np.max(np.abs(t32 - t64))) for t32 in t32s)
        change = scale if start is None else float(np.max(np.abs(t64 - start)))
        allowed = max(10 * e_torch, 1e-2 * change, 1e-6 * scale)
        rows.append((f"float32 {what}", e_ours, allowed, e_ours <= allowed))

    for step in s64:
        for key in s64[step]:
            kind, path = key.split("/", 1)
            start = record.get(f"{kind}0/{path}")
            check(f"step {step} {key}", record[f"{kind}{step}/{path}"],
                  record[f"x64/{kind}{step}/{path}"], [s[step][key] for s, _ in torch32],
                  [s[step][key] for s, _ in torch64],
                  None if start is None else start.astype(np.float64))
    names = json.loads(str(record["metric_names"]))
    for step, (mine, mine64) in enumerate(zip(record["metrics"], record["x64/metrics"]),
                                          start=1):
        for name, value, value64 in zip(names, mine, mine64):
            check(f"step {step} loss {name}", value, value64,
                  [h[step - 1][name] for _, h in torch32],
                  [h[step - 1][name] for _, h in torch64], None)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("records", type=pathlib.Path, help="folder of benchmarks/parity.py")
    parser.add_argument("--plant", choices=PLANTS, help="break one thing in the twin")
    parser.add_argument("--methods", default="", help="comma-separated (default: all records)")
    parser.add_argument("--show", type=int, default=8, help="failures listed per record")
    parser.add_argument("--train_only", action="store_true",
                        help="train in float32 and write <record>.torch.npz (side_by_side.py)")
    args = parser.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    files = sorted(f for f in args.records.glob("*.npz") if not f.name.endswith(".torch.npz"))
    if args.methods:
        files = [args.records / f"{m}.npz" for m in args.methods.split(",")]
    if not files:
        sys.exit(f"no records in {args.records}: run benchmarks/parity.py --out={args.records}")
    if args.train_only:
        for path in files:
            snapshots, history = replay(dict(np.load(path)), torch.float32, args.plant)
            final = snapshots[max(snapshots)]
            np.savez(path.with_suffix(".torch.npz"), **final)
            print(f"trained {len(history)} steps of {path.stem} in torch: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in sorted(history[-1].items()))
                  + f" -> {path.with_suffix('.torch.npz')}")
        return
    failed = []
    for path in files:
        record = dict(np.load(path))
        name = path.stem
        torch32, torch64 = ([replay(record, dtype, args.plant)] + [
            replay(record, dtype, args.plant, jitter=seed) for seed in range(JITTERS)]
            for dtype in (torch.float32, torch.float64))
        rows = compare(record, torch32, torch64)
        bad = [r for r in rows if not r[3]]
        for gate in ("float64", "float32"):
            mine = [r for r in rows if r[0].startswith(gate)]
            worst = max(mine, key=lambda r: r[1] / r[2])
            print(f"{name:17s} {gate}: {sum(r[3] for r in mine):4d}/{len(mine)} within "
                  f"tolerance; nearest its limit: {worst[0][len(gate) + 1:]} {worst[1]:.2e} "
                  f"(allowed {worst[2]:.2e})", flush=True)
        for what, error, allowed, _ in bad[:args.show]:
            print(f"    FAIL {what}: |ours - torch64| {error:.3e} > allowed {allowed:.3e}")
        if bad:
            failed.append(name)
    plant = f" (planted: {args.plant})" if args.plant else ""
    if failed:
        sys.exit(f"parity FAILED for {', '.join(failed)}{plant}")
    print(f"parity: every method matches its PyTorch twin{plant}")


if __name__ == "__main__":
    main()
