#!/usr/bin/env python3
"""Five-seed TSTR readings of several VAEs, alone and paired seed by seed.

    scripts/tstr_paired.py DIR NAME... [--pair A:B ...]

reads DIR/tstr_NAME_sSEED.json (`sula tstr --json`, seeds 1-5; a seed missing for any
name is left out for all, and said) and prints, per VAE, the mean ratio (synthetic / real frames' MSE) of its reconstructions and prior draws with a
95 % t-interval, then for each A:B the per-seed differences A - B and their mean with its
interval. Pairing by seed removes what the seeds share: the real frames drawn, F's
initialisation and batch order. The docs/journal/models.md rules read their targets this way.
"""
import argparse
import json
import os
import statistics

SEEDS = range(1, 6)
# Two-sided 95 % quantiles of Student's t by degrees of freedom.
T_95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776}


def ratios(path):
    rows = {r["name"]: r["assessment"]["metrics"]["mse"] for r in json.load(open(path))["rows"]}
    real = rows["320 random real frames"]
    recon = next(v for k, v in rows.items() if k.startswith("reconstructions"))
    prior = next(v for k, v in rows.items() if k.startswith("draws"))
    return {"real": real, "recon": recon / real, "prior": prior / real}


def interval(xs):
    mean = statistics.mean(xs)
    half = T_95[len(xs) - 1] * statistics.stdev(xs) / len(xs) ** 0.5
    return f"{mean:+.3f} (95 % {mean - half:+.3f} to {mean + half:+.3f}; sd {statistics.stdev(xs):.3f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("names", nargs="+")
    parser.add_argument("--pair", action="append", default=[], metavar="A:B")
    args = parser.parse_args()
    path = lambda name, seed: f"{args.dir}/tstr_{name}_s{seed}.json"
    seeds = [s for s in SEEDS if all(os.path.exists(path(n, s)) for n in args.names)]
    if len(seeds) < 2:
        raise SystemExit(f"fewer than two seeds with every name's table in {args.dir}")
    if len(seeds) < len(SEEDS):
        print(f"seeds with every name's table: {seeds}")
    runs = {n: [ratios(path(n, s)) for s in seeds] for n in args.names}
    print("seed  " + "  ".join(f"{n}: real kPa² / recon / prior" for n in args.names))
    for i, seed in enumerate(seeds):
        cells = (f"{r[i]['real']:.1f} / {r[i]['recon']:.3f} / {r[i]['prior']:.3f}" for r in runs.values())
        print(f"{seed}     " + "  ".join(cells))
    for name, rs in runs.items():
        for kind in ("recon", "prior"):
            print(f"{name} {kind}: mean {interval([r[kind] for r in rs])}")
    for pair in args.pair:
        a, b = pair.split(":")
        for kind in ("recon", "prior"):
            diffs = [x[kind] - y[kind] for x, y in zip(runs[a], runs[b])]
            print(f"{a} - {b} {kind}: " + " ".join(f"{d:+.3f}" for d in diffs) + f" | mean {interval(diffs)}")


if __name__ == "__main__":
    main()
