#!/usr/bin/env python3
"""Training throughput side by side: sula (tch) against the same architectures in
PyTorch eager, same libtorch (the project virtualenv's torch 2.13.0), same batch, same
thread count, same optimiser.

Usage: python bench/models_reference.py --sula target/release/sula [--size 64 --batch 32 --rounds 5]

With --rounds N the two sides take turns N times and the table holds the medians: on a
shared VM the speed drifts over a minute by more than the difference being measured, so
sula-then-PyTorch once can say either.
"""
import argparse
import json
import statistics
import subprocess
import time

import torch
from torch import nn
import torch.nn.functional as F

CLASSES = 5


class Vae(nn.Module):
    """Mirror of src/model/vae.rs (width 32, latent 32, mean + speckle spread + logits)."""

    def __init__(self, size, width=32, latent=32, components=10):
        super().__init__()
        w = width
        self.side = size // 8
        self.enc = nn.ModuleList([
            nn.Conv2d(1 + CLASSES, w, 4, 2, 1), nn.Conv2d(w, 2 * w, 4, 2, 1), nn.Conv2d(2 * w, 4 * w, 4, 2, 1)])
        flat = 4 * w * self.side * self.side
        self.to_stats = nn.Linear(flat, 2 * latent)
        self.from_latent = nn.Linear(latent, flat)
        self.dec = nn.ModuleList([
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1), nn.ConvTranspose2d(2 * w, w, 4, 2, 1),
            nn.ConvTranspose2d(w, w, 4, 2, 1), nn.Conv2d(w, w, 3, padding=1)])
        self.head = nn.Conv2d(w, 1 + CLASSES, 3, padding=1)
        self.spread_head = nn.Conv2d(w, 1, 3, padding=1)
        self.w = w

    def forward(self, image, labels):
        x = torch.cat([image, F.one_hot(labels, CLASSES).permute(0, 3, 1, 2).float()], 1)
        for conv in self.enc:
            x = F.leaky_relu(conv(x))
        mu, logvar = self.to_stats(x.flatten(1)).chunk(2, 1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        h = F.leaky_relu(self.from_latent(z)).view(-1, 4 * self.w, self.side, self.side)
        for layer in self.dec:
            h = F.leaky_relu(layer(h))
        out = self.head(h)
        log_spread = self.spread_head(h.detach()).clamp(-7.0, 0.0)
        return torch.sigmoid(out[:, :1]), log_spread, out[:, 1:], mu, logvar


def vae_loss(out, image, labels):
    mean, log_spread, logits, mu, logvar = out
    n = image.shape[0]
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum()
    speckle = 0.5 * ((image - mean.detach()).pow(2) * torch.exp(-2 * log_spread) + 2 * log_spread).sum()
    return (2.0 * (mean - image).abs().sum() + speckle
            + F.cross_entropy(logits, labels, reduction="sum") + kl) / n


def double_conv(c_in, c_out):
    def norm(c):
        return nn.GroupNorm(max(c // 8, 1), c)
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), norm(c_out), nn.ReLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), norm(c_out), nn.ReLU())


def levels_for(size):
    levels = 0
    while size % (1 << (levels + 1)) == 0 and size >> (levels + 1) >= 4:
        levels += 1
    return max(levels, 1)


class Regressor(nn.Module):
    """Mirror of src/model/regressor.rs: U-Net down to about 4x4, GroupNorm, width 16."""

    def __init__(self, size, w=16):
        super().__init__()
        levels = levels_for(size)
        channels = [w << min(level, 3) for level in range(levels + 1)]
        self.encoders = nn.ModuleList()
        c_in = 1
        for level in range(levels):
            self.encoders.append(double_conv(c_in, channels[level]))
            c_in = channels[level]
        self.bottom = double_conv(c_in, channels[levels])
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        below = channels[levels]
        for level in reversed(range(levels)):
            self.ups.append(nn.ConvTranspose2d(below, channels[level], 2, 2))
            self.decoders.append(double_conv(2 * channels[level], channels[level]))
            below = channels[level]
        self.head = nn.Conv2d(below, 1, 1)
        self.tissue_head = nn.Conv2d(below, CLASSES, 1)

    def forward(self, x):
        skips = []
        for encoder in self.encoders:
            e = encoder(x)
            skips.append(e)
            x = F.max_pool2d(e, 2)
        x = self.bottom(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = decoder(torch.cat([up(x), skip], 1))
        return self.head(x), self.tissue_head(x)


def synchronize():
    """CUDA kernels run asynchronously: wait for them before reading the clock."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def rate(step, steps, batch):
    for _ in range(3):
        step()
    synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize()
    return steps * batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sula", default="target/release/sula")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the two sides this many times")
    parser.add_argument("--regressor-width", type=int, default=None,
                        help="F's width (default: sula's default, 16)")
    args = parser.parse_args()
    command = [args.sula, "bench", "models", "--json", "--size", str(args.size), "--batch", str(args.batch),
               "--steps", str(args.steps)]
    if args.regressor_width is not None:
        command += ["--regressor-width", str(args.regressor_width)]

    def run_sula():
        out = subprocess.run(command, check=True, capture_output=True, text=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    ours = run_sula()
    torch.set_num_threads(ours["threads"])
    torch.manual_seed(1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    image = torch.rand(args.batch, 1, args.size, args.size, device=device)
    labels = torch.randint(0, CLASSES, (args.batch, args.size, args.size), device=device)
    target = torch.randn(args.batch, 1, args.size, args.size, device=device)
    vae = Vae(args.size).to(device)
    opt = torch.optim.Adam(vae.parameters(), 1e-3)

    def vae_step():
        opt.zero_grad()
        vae_loss(vae(image, labels), image, labels).backward()
        opt.step()

    regressor = Regressor(args.size, args.regressor_width or 16).to(device)
    opt_f = torch.optim.Adam(regressor.parameters(), 1e-3)

    def regressor_step():
        opt_f.zero_grad()
        stress, tissue = regressor(image)
        (F.mse_loss(stress, target) + F.cross_entropy(tissue, labels)).backward()
        opt_f.step()

    rows = {"VAE": [], "regressor": []}
    for turn in range(max(1, args.rounds)):
        if turn > 0:
            ours = run_sula()
        rows["VAE"].append((ours["vae_samples_per_s"], rate(vae_step, args.steps, args.batch)))
        rows["regressor"].append((ours["regressor_samples_per_s"], rate(regressor_step, args.steps, args.batch)))
    print(f"training throughput at {args.size}x{args.size}, batch {args.batch}, {ours['device']} / {device}, "
          f"{ours['threads']} threads (samples/s{', median of %d alternating rounds' % args.rounds if args.rounds > 1 else ''})")
    print(f"{'model':<10} {'sula':>9} {'PyTorch':>9} {'sula/PyTorch':>13}   per round")
    for name, pairs in rows.items():
        mine = statistics.median(p[0] for p in pairs)
        theirs = statistics.median(p[1] for p in pairs)
        ratios = [p[0] / p[1] for p in pairs]
        each = " ".join(f"{r:.2f}" for r in ratios) if len(pairs) > 1 else ""
        print(f"{name:<10} {mine:>9.1f} {theirs:>9.1f} {statistics.median(ratios):>13.2f}   {each}")


if __name__ == "__main__":
    main()
