#!/usr/bin/env python3
"""Where a TSTR gap lies: `sula tstr --per-frame` files split by what the phantom's
metadata says each test frame holds (guide wire, calcium, lipid, calcium's depth).

usage: tstr_by_frame.py DATASET FRAMES.csv [FRAMES.csv ...]

For each split (frames with and without a guide wire, with and without calcium, with
and without lipid; superficial, deep or no calcium) it prints each training set's mean MSE, the ratio to the real
frames' F on the same frames, and the share of the whole gap (mean over all frames of
MSE(training set) − MSE(real)) that the split's frames carry. Several files (seeds) are
pooled frame by frame: a frame's difference is averaged over the files first. The 95 %
interval is over test frames only (the F's are fixed), so it says how sure the split is
for these F's, not for another training run.
"""

import csv
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

T95 = 1.96


def frame_properties(dataset):
    props = {}
    for path in sorted((Path(dataset) / "meta").glob("*.json")):
        meta = json.loads(path.read_text())
        geometry = meta.get("geometry", {})
        calcium = geometry.get("calcium")
        props[meta["id"]] = {
            "guide wire": geometry.get("guidewire") is not None,
            "calcium": calcium is not None,
            "lipid": geometry.get("lipid") is not None,
            "calcium depth": calcium["depth"] if calcium else "none",
        }
    return props


def groups():
    """(label, predicate) pairs, one list per split."""
    splits = [
        [(f"{'with' if present else 'without'} {prop}", lambda p, prop=prop, present=present: p[prop] == present)
         for present in [True, False]]
        for prop in ["guide wire", "calcium", "lipid"]
    ]
    splits.append([
        (f"{depth} calcium" if depth != "none" else "no calcium", lambda p, depth=depth: p["calcium depth"] == depth)
        for depth in ["superficial", "deep", "none"]
    ])
    return splits


def read_frames(paths):
    """mse[training_set][frame_id] averaged over the files."""
    sums = defaultdict(lambda: defaultdict(list))
    for path in paths:
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                sums[row["training_set"]][row["frame_id"]].append(float(row["mse"]))
    return {
        name: {frame: sum(v) / len(v) for frame, v in frames.items()}
        for name, frames in sums.items()
    }


def mean_and_interval(values):
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, T95 * sd / math.sqrt(n)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    props = frame_properties(sys.argv[1])
    mse = read_frames(sys.argv[2:])
    real_name = next((n for n in mse if "random real" in n), None)
    if real_name is None:
        sys.exit("no row of random real frames in the files")
    real = mse[real_name]
    frames = [f for f in real if f in props]
    if len(frames) < len(real):
        sys.exit(f"{len(real) - len(frames)} frames have no metadata in {sys.argv[1]}")
    print(f"{len(frames)} test frames, {len(sys.argv) - 2} file(s); real: {real_name}")
    for name, own in mse.items():
        if name == real_name:
            continue
        total_gap = sum(own[f] - real[f] for f in frames) / len(frames)
        print(f"\n{name}: ratio {sum(own[f] for f in frames) / sum(real[f] for f in frames):.3f}, "
              f"gap {total_gap:.1f} kPa² per frame")
        print(f"  {'split':<20} {'frames':>6} {'real MSE':>9} {'its MSE':>9} {'ratio':>6} "
              f"{'gap per frame (95 %)':>24} {'share of gap':>12}")
        for split in groups():
            for label, holds in split:
                part = [f for f in frames if holds(props[f])]
                if not part:
                    continue
                diffs = [own[f] - real[f] for f in part]
                gap, half = mean_and_interval(diffs)
                real_mse = sum(real[f] for f in part) / len(part)
                own_mse = sum(own[f] for f in part) / len(part)
                share = sum(diffs) / len(frames) / total_gap if total_gap else float("nan")
                print(f"  {label:<20} {len(part):>6} {real_mse:>9.1f} {own_mse:>9.1f} "
                      f"{own_mse / real_mse:>6.2f} {gap:>10.1f} ({gap - half:>6.1f} to {gap + half:>6.1f}) "
                      f"{100 * share:>11.0f} %")


if __name__ == "__main__":
    main()
