"""The Fproi-GAN train step re-written in PyTorch (CPU), to time against benchmarks/train_step.py.

For benchmarking only: nothing imports this file and torch is not a project dependency.
Install torch in a separate virtual environment and run it from there:

    python3 -m venv /tmp/torch && /tmp/torch/bin/pip install torch==2.13.0 numpy
    /tmp/torch/bin/python benchmarks/pytorch_step.py --steps=5                 # = configs/brats.py
    /tmp/torch/bin/python benchmarks/pytorch_step.py --size=64 --batch=4 \\
        --rfb=16,32,32,16 --width=16 --disc=32,64,128,256                      # = configs/demo.py

The same networks, objective and update as fproi_jax (models/, losses.py, train/step.py):
  RFB:  reflect-pad 3, 7x7 conv + IN + ReLU; reflect-pad 1, 3x3 s2 conv + IN + ReLU;
        3x3 conv (zero pad 1) + IN + ReLU; 3x3 s2 transposed conv + IN + ReLU
  G, F: the U-Net generator (c7s1-w, two reflect-padded 3x3 s2 downs, two transposed-conv
        ups with concatenated skips, reflect-pad 3 + 7x7 conv with bias, sigmoid);
        G sees concat(x, RFB(x * y)), F sees its image alone
  Dx, Dy: four 4x4 s2 (pad 1) convs + LeakyReLU 0.2, flatten, linear to one logit
  four Adam optimizers (G with the RFB, F, Dx, Dy); one step = generator objective
  (non-saturating adversarial terms + cycle_weight * two L1 cycle terms) backward with the
  discriminators frozen, G/F steps, then the discriminator objective on the detached fakes
  of the same forward pass, Dx/Dy steps.
Convolutions before an instance norm have no bias; the others have one, as in flax.
Differences that do not change the arithmetic's cost materially: the image pool is not
implemented (pool_size 0; ours queries a 50-entry pool by default, a few array copies per
step), the transposed conv is torch's ConvTranspose2d(k=3, s=2, padding=1, output_padding=1)
where ours computes a transposed conv as a sub-pixel convolution, layout is NCHW, and
initialisation is torch's default. The transposed convs are aligned as ours
(layers.transpose_padding); with our weights ported (conv kernels HWIO -> OIHW; transposed
kernels (k,k,I,O) -> (I,O,k,k) flipped) the networks compute ours (benchmarks/parity.py
proves whole train steps against a PyTorch twin).
Reports the first step and the median wall time per step after it, as train_step.py does;
--json adds a machine-readable line (benchmarks/bench.py), --device=cuda and --amp
(torch.autocast to bfloat16) run it on a GPU.
"""
import argparse
import statistics

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

import torch_common


def instance_norm(channels):
    return nn.InstanceNorm2d(channels, eps=1e-5, affine=False, track_running_stats=False)


def conv_block(c_in, c_out, kernel_size, stride=1, reflect=0):
    """[reflect-pad] -> conv (no bias) -> instance norm -> ReLU (layers.ConvBlock)."""
    layers = []
    if reflect:
        layers.append(nn.ReflectionPad2d(reflect))
        padding = 0
    else:
        padding = kernel_size // 2
    layers += [nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
               instance_norm(c_out), nn.ReLU()]
    return nn.Sequential(*layers)


def up_block(c_in, c_out):
    """3x3 stride-2 transposed conv (no bias, 2x the input) -> IN -> ReLU (layers.UpBlock)."""
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1, bias=False),
        instance_norm(c_out), nn.ReLU())


class RegionalFeatureBlock(nn.Module):
    def __init__(self, features=(32, 64, 64, 32)):
        super().__init__()
        f1, f2, f3, f4 = features
        self.net = nn.Sequential(
            conv_block(1, f1, 7, reflect=3),
            conv_block(f1, f2, 3, stride=2, reflect=1),
            conv_block(f2, f3, 3),
            up_block(f3, f4))

    def forward(self, regional_image):
        return self.net(regional_image)


class Generator(nn.Module):
    def __init__(self, in_channels, width=32, out_channels=1):
        super().__init__()
        w = width
        self.e1 = conv_block(in_channels, w, 7, reflect=3)
        self.e2 = conv_block(w, 2 * w, 3, stride=2, reflect=1)
        self.e3 = conv_block(2 * w, 4 * w, 3, stride=2, reflect=1)
        self.u2 = up_block(4 * w, 2 * w)
        self.u1 = up_block(4 * w, w)       # input: concat(up(e3), e2) = 2w + 2w
        self.out = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(2 * w, out_channels, 7))

    def forward(self, x):
        e1 = self.e1(x)
        e2 = self.e2(e1)
        e3 = self.e3(e2)
        d2 = torch.cat([self.u2(e3), e2], dim=1)
        d1 = torch.cat([self.u1(d2), e1], dim=1)
        return torch.sigmoid(self.out(d1))


class Discriminator(nn.Module):
    def __init__(self, image_size, features=(64, 128, 256, 512), negative_slope=0.2):
        super().__init__()
        layers, c_in = [], 1
        for f in features:
            layers += [nn.Conv2d(c_in, f, 4, stride=2, padding=1), nn.LeakyReLU(negative_slope)]
            c_in = f
        self.convs = nn.Sequential(*layers)
        side = image_size // 2 ** len(features)
        self.dense = nn.Linear(c_in * side * side, 1)

    def forward(self, x):
        # Flatten in NHWC order like ours (same count, same cost; keeps the layouts comparable).
        h = self.convs(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        return self.dense(h)[:, 0]


class GWithRFB(nn.Module):
    """G: X -> Y on x~ = concat(x, RFB(x * y)); the RFB shares G's optimizer."""

    def __init__(self, rfb_features, width):
        super().__init__()
        self.rfb = RegionalFeatureBlock(rfb_features)
        self.net = Generator(1 + rfb_features[-1], width)

    def forward(self, x, y):
        return self.net(torch.cat([x, self.rfb(x * y)], dim=1))


def count(module):
    return sum(p.numel() for p in module.parameters())


def bce_logits(logits, target):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def set_requires_grad(modules, flag):
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(flag)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256, help="image height and width")
    parser.add_argument("--batch", type=int, default=1, help="batch size")
    parser.add_argument("--steps", type=int, default=5, help="timed steps after the first")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--rfb", default="32,64,64,32", help="RFB widths")
    parser.add_argument("--width", type=int, default=32, help="generator width")
    parser.add_argument("--disc", default="64,128,256,512", help="discriminator widths")
    parser.add_argument("--cycle-weight", type=float, default=10.0)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--b1", type=float, default=0.9)
    parser.add_argument("--b2", type=float, default=0.999)
    parser.add_argument("--channels-last", action="store_true",
                        help="NHWC memory format for models and inputs")
    torch_common.add_common_args(parser)
    args = parser.parse_args()
    torch_common.check_args(args)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    rfb = tuple(int(v) for v in args.rfb.split(","))
    disc = tuple(int(v) for v in args.disc.split(","))
    g = GWithRFB(rfb, args.width)
    f = Generator(1, args.width)
    dx = Discriminator(args.size, disc)
    dy = Discriminator(args.size, disc)
    nets = {"G (with RFB)": g, "F": f, "Dx": dx, "Dy": dy}
    for m in nets.values():
        m.to(args.device)
    print("parameters: " + ", ".join(f"{k} {count(m):,}" for k, m in nets.items())
          + f" (RFB {count(g.rfb):,}, G net {count(g.net):,}); "
          f"total {sum(count(m) for m in nets.values()):,}")
    opt = {k: torch.optim.Adam(m.parameters(), lr=args.lr, betas=(args.b1, args.b2), eps=1e-8)
           for k, m in nets.items()}

    rng = np.random.default_rng(0)
    image = rng.random((args.batch, 1, args.size, args.size), dtype=np.float32)
    x = torch.from_numpy(image).to(args.device)
    y = torch.from_numpy((image > 0.8).astype(np.float32)).to(args.device)
    if args.channels_last:
        for m in nets.values():
            m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        y = y.contiguous(memory_format=torch.channels_last)

    def step():
        # Generators: both synthesis paths, adversarial + cycle terms; D weights frozen.
        set_requires_grad((dx, dy), False)
        opt["G (with RFB)"].zero_grad(set_to_none=True)
        opt["F"].zero_grad(set_to_none=True)
        with torch_common.autocast(args):
            g_x = g(x, y)              # G(x~)
            f_g_x = f(g_x)             # F(G(x~))
            f_y = f(y)                 # F(y)
            g_f_y = g(f_y, y)          # G(concat(F(y), RFB(F(y) * y)))
            gen_loss = (bce_logits(dy(g_x), 1.0) + bce_logits(dx(f_y), 1.0)
                        + args.cycle_weight * ((f_g_x - x).abs().mean()
                                               + (g_f_y - y).abs().mean()))
        gen_loss.backward()
        opt["G (with RFB)"].step()
        opt["F"].step()
        # Discriminators on the detached fakes of the same pass (pool_size 0).
        set_requires_grad((dx, dy), True)
        opt["Dx"].zero_grad(set_to_none=True)
        opt["Dy"].zero_grad(set_to_none=True)
        fake_x, fake_y = f_y.detach(), g_x.detach()
        with torch_common.autocast(args):
            d_loss = (0.5 * (bce_logits(dx(x), 1.0) + bce_logits(dx(fake_x), 0.0))
                      + 0.5 * (bce_logits(dy(y), 1.0) + bce_logits(dy(fake_y), 0.0)))
        d_loss.backward()
        opt["Dx"].step()
        opt["Dy"].step()
        return gen_loss.item(), d_loss.item()

    first_s, times = torch_common.time_steps(step, args.steps, args.device)
    layout = "NHWC" if args.channels_last else "NCHW"
    amp = ", autocast bfloat16" if args.amp else ""
    device = torch_common.device_name(args)
    print(f"{args.size}x{args.size}, global batch {args.batch}, 1 x {device} "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads, {layout}{amp}): first "
          f"step {first_s:.1f} s, then median {statistics.median(times):.3f} s/step "
          f"(min {min(times):.3f}, {args.steps} steps)")
    torch_common.emit_json(args, first_s, times, sum(count(m) for m in nets.values()),
                           method="fproi_gan", layout=layout)


if __name__ == "__main__":
    main()
