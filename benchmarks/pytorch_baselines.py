"""The CycleGAN and pix2pix train steps as the canonical PyTorch implementation sets them up,
and our conditional DCGAN's, to time against benchmarks/train_step.py
--config.model.name=cycle_gan | pix2pix | dcgan.

For benchmarking only: nothing imports this file and torch is not a project dependency.
Run it from a separate virtual environment (see benchmarks/pytorch_step.py):

    /tmp/torch/bin/python benchmarks/pytorch_baselines.py --method=cycle_gan --steps=3
    /tmp/torch/bin/python benchmarks/pytorch_baselines.py --method=pix2pix --steps=3
    /tmp/torch/bin/python benchmarks/pytorch_baselines.py --method=dcgan --steps=3

Networks for one-channel images, written from the reference's layer lists (the parameter
counts printed equal fproi_jax's, tests/test_methods.py):
  cycle_gan: ResNet generator (reflect-pad 3, 7x7 conv 64, IN, ReLU; two 3x3 s2 convs; 9
    residual blocks; two 3x3 s2 transposed convs; reflect-pad 3, 7x7 conv, tanh), 70x70
    PatchGAN with instance norm; LSGAN, cycle 10, identity 0.5; G/F step, then Dx/Dy step
    (no image pool: a few array copies per step).
  pix2pix: unet_256 (BatchNorm, dropout 0.5 in three decoder levels), 70x70 PatchGAN with
    BatchNorm on the 2-channel pair; both directions (image -> ROI and ROI -> image), each
    vanilla GAN + 100 L1; generators' step, then discriminators' step.
  dcgan: written from fproi_jax/models/dcgan.py and methods/dcgan.py: G and F encoder-decoders
    without skips (4x4 s2 convs 64-128-256-512, BatchNorm but on the first, LeakyReLU 0.2;
    4x4 s2 transposed convs 256-128-64 without bias + BatchNorm + ReLU; a 4x4 s2
    transposed conv with bias to one channel, sigmoid), Dx and Dy the same down path,
    flattened, a linear layer to one logit; log (BCE) GAN loss, cycle 10, no identity term,
    no pool; G/F step, then Dx/Dy step on the detached fakes of the same pass.
Widths: the paper's by default; --width, --disc-width and --blocks set others (bench.py's
demo rows pass configs/paper_demo.py's). Adam(2e-4, b1 0.5; dcgan: b1 0.9, the Adam
defaults of configs/brats.py; rates and loss weights do not change the cost). Reports the
first step and the median wall time per step after it; --json, --device=cuda and --amp as
in pytorch_step.py.
"""
import argparse
import statistics

import torch
from torch import nn
import torch.nn.functional as F

import torch_common


def resnet_generator(ngf=64, blocks=9):
    def block(c):
        return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c),
                             nn.ReLU(True), nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3),
                             nn.InstanceNorm2d(c))

    class Residual(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.body = block(c)

        def forward(self, x):
            return x + self.body(x)

    layers = [nn.ReflectionPad2d(3), nn.Conv2d(1, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
    for m in (1, 2):
        layers += [nn.Conv2d(ngf * m, ngf * m * 2, 3, 2, 1), nn.InstanceNorm2d(ngf * m * 2),
                   nn.ReLU(True)]
    layers += [Residual(ngf * 4) for _ in range(blocks)]
    for m in (4, 2):
        layers += [nn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, 2, 1, output_padding=1),
                   nn.InstanceNorm2d(ngf * m // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 1, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def patch_gan(in_channels, norm, ndf=64, n_layers=3):
    bias = norm is nn.InstanceNorm2d
    layers = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    for n in range(1, n_layers + 1):
        stride = 2 if n < n_layers else 1
        c_in, c_out = ndf * min(2 ** (n - 1), 8), ndf * min(2 ** n, 8)
        layers += [nn.Conv2d(c_in, c_out, 4, stride, 1, bias=bias), norm(c_out),
                   nn.LeakyReLU(0.2, True)]
    layers += [nn.Conv2d(ndf * min(2 ** n_layers, 8), 1, 4, 1, 1)]
    return nn.Sequential(*layers)


class Unet(nn.Module):
    """unet_256: the levels from the outermost to the innermost, each (inner, outer)."""

    def __init__(self, levels=8, ngf=64):
        super().__init__()
        inner = [ngf, 2 * ngf, 4 * ngf] + [8 * ngf] * (levels - 3)
        outer = [1, ngf, 2 * ngf, 4 * ngf] + [8 * ngf] * (levels - 4)
        self.levels = levels
        self.down = nn.ModuleList()
        self.up = nn.ModuleList()
        for i in range(levels):
            c_in = 1 if i == 0 else inner[i - 1]
            down = [] if i == 0 else [nn.LeakyReLU(0.2, True)]
            down.append(nn.Conv2d(c_in, inner[i], 4, 2, 1, bias=False))
            if 0 < i < levels - 1:
                down.append(nn.BatchNorm2d(inner[i]))
            self.down.append(nn.Sequential(*down))
            c_up = inner[i] if i == levels - 1 else 2 * inner[i]
            up = [nn.ReLU(True), nn.ConvTranspose2d(c_up, outer[i], 4, 2, 1, bias=i == 0)]
            up += [nn.Tanh()] if i == 0 else [nn.BatchNorm2d(outer[i])]
            if 4 <= i <= levels - 2:
                up.append(nn.Dropout(0.5))
            self.up.append(nn.Sequential(*up))

    def forward(self, x):
        skips = []
        for down in self.down:
            skips.append(x)
            x = down(x)
        for i in reversed(range(self.levels)):
            x = self.up[i](x)
            if i > 0:
                x = torch.cat([skips[i], x], 1)
        return x


def dcgan_down(c_in, features):
    """4x4 s2 convs (bias on the first only), BatchNorm but on the first, LeakyReLU 0.2."""
    layers = []
    for i, f in enumerate(features):
        layers.append(nn.Conv2d(c_in, f, 4, 2, 1, bias=i == 0))
        if i > 0:
            layers.append(nn.BatchNorm2d(f))
        layers.append(nn.LeakyReLU(0.2, True))
        c_in = f
    return layers


def dcgan_encoder_decoder(features=(64, 128, 256, 512)):
    layers, c_in = dcgan_down(1, features), features[-1]
    for f in reversed(features[:-1]):
        layers += [nn.ConvTranspose2d(c_in, f, 4, 2, 1, bias=False), nn.BatchNorm2d(f),
                   nn.ReLU(True)]
        c_in = f
    layers += [nn.ConvTranspose2d(c_in, 1, 4, 2, 1), nn.Sigmoid()]
    return nn.Sequential(*layers)


def dcgan_discriminator(image_size, features=(64, 128, 256, 512)):
    side = image_size // 2 ** len(features)

    class Flatten(nn.Module):  # in NHWC order like ours (same count, same cost)
        def forward(self, h):
            return h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)

    return nn.Sequential(*dcgan_down(1, features), Flatten(),
                         nn.Linear(features[-1] * side * side, 1))


def count(module):
    return sum(p.numel() for p in module.parameters())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", choices=("cycle_gan", "pix2pix", "dcgan"), required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default")
    parser.add_argument("--width", type=int, default=64,
                        help="generators' first width (ngf; DCGAN: its first of x1, x2, x4, x8)")
    parser.add_argument("--disc-width", type=int, default=64,
                        help="discriminators' first width (ndf; DCGAN likewise)")
    parser.add_argument("--blocks", type=int, default=9, help="CycleGAN's residual blocks")
    torch_common.add_common_args(parser)
    args = parser.parse_args()
    torch_common.check_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ngf, ndf = args.width, args.disc_width
    if args.method == "cycle_gan":
        nets = {"G": resnet_generator(ngf, args.blocks), "F": resnet_generator(ngf, args.blocks),
                "Dx": patch_gan(1, nn.InstanceNorm2d, ndf),
                "Dy": patch_gan(1, nn.InstanceNorm2d, ndf)}
    elif args.method == "pix2pix":
        levels = args.size.bit_length() - 1
        nets = {"G": Unet(levels, ngf), "F": Unet(levels, ngf),
                "Dx": patch_gan(2, nn.BatchNorm2d, ndf), "Dy": patch_gan(2, nn.BatchNorm2d, ndf)}
    else:
        gen, disc = (tuple(w * m for m in (1, 2, 4, 8)) for w in (ngf, ndf))
        nets = {"G": dcgan_encoder_decoder(gen), "F": dcgan_encoder_decoder(gen),
                "Dx": dcgan_discriminator(args.size, disc),
                "Dy": dcgan_discriminator(args.size, disc)}
    print("parameters: " + ", ".join(f"{k} {count(m):,}" for k, m in nets.items()))
    for m in nets.values():
        m.to(args.device)
    b1 = 0.9 if args.method == "dcgan" else 0.5
    gen = torch.optim.Adam([*nets["G"].parameters(), *nets["F"].parameters()], 2e-4,
                           betas=(b1, 0.999))
    disc = torch.optim.Adam([*nets["Dx"].parameters(), *nets["Dy"].parameters()], 2e-4,
                            betas=(b1, 0.999))
    x = torch.rand(args.batch, 1, args.size, args.size, device=args.device)
    y = (x > 0.8).float()

    def gan(logits, real, lsgan):
        target = torch.ones_like(logits) if real else torch.zeros_like(logits)
        if lsgan:
            return F.mse_loss(logits, target)
        return F.binary_cross_entropy_with_logits(logits, target)

    def step():
        for d in ("Dx", "Dy"):
            nets[d].requires_grad_(False)
        gen.zero_grad()
        with torch_common.autocast(args):
            if args.method == "cycle_gan":
                g_x, f_y = nets["G"](x), nets["F"](y)
                loss = (gan(nets["Dy"](g_x), True, True) + gan(nets["Dx"](f_y), True, True)
                        + 10 * ((nets["F"](g_x) - x).abs().mean()
                                + (nets["G"](f_y) - y).abs().mean())
                        + 5 * ((nets["G"](y) - y).abs().mean() + (nets["F"](x) - x).abs().mean()))
                pairs = {"Dy": (y, g_x), "Dx": (x, f_y)}
            elif args.method == "dcgan":
                g_x, f_y = nets["G"](x), nets["F"](y)
                loss = (gan(nets["Dy"](g_x), True, False) + gan(nets["Dx"](f_y), True, False)
                        + 10 * ((nets["F"](g_x) - x).abs().mean()
                                + (nets["G"](f_y) - y).abs().mean()))
                pairs = {"Dy": (y, g_x), "Dx": (x, f_y)}
            else:
                g_x, f_y = nets["G"](x), nets["F"](y)
                loss = (gan(nets["Dy"](torch.cat([x, g_x], 1)), True, False)
                        + gan(nets["Dx"](torch.cat([y, f_y], 1)), True, False)
                        + 100 * ((g_x - y).abs().mean() + (f_y - x).abs().mean()))
                pairs = {"Dy": (torch.cat([x, y], 1), torch.cat([x, g_x], 1)),
                         "Dx": (torch.cat([y, x], 1), torch.cat([y, f_y], 1))}
        loss.backward()
        gen.step()
        for d in ("Dx", "Dy"):
            nets[d].requires_grad_(True)
        disc.zero_grad()
        lsgan = args.method == "cycle_gan"
        with torch_common.autocast(args):
            d_loss = sum(0.5 * (gan(nets[d](real), True, lsgan)
                                + gan(nets[d](fake.detach()), False, lsgan))
                         for d, (real, fake) in pairs.items())
        d_loss.backward()
        disc.step()

    first, times = torch_common.time_steps(step, args.steps, args.device)
    amp_note = ", autocast bfloat16" if args.amp else ""
    print(f"{args.method}, {args.size}x{args.size}, global batch {args.batch}, 1 x "
          f"{torch_common.device_name(args)} (torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads{amp_note}): first step {first:.1f} s, "
          f"then median {statistics.median(times):.3f} s/step (min {min(times):.3f}, "
          f"{args.steps} steps)")
    torch_common.emit_json(args, first, times, sum(count(m) for m in nets.values()),
                           method=args.method)


if __name__ == "__main__":
    main()
