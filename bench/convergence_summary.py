#!/usr/bin/env python3
"""Validation curves of bench/convergence.sh: the CPU runs' seed-to-seed band
(min..max over seeds at each evaluation) and each GPU run against it.
usage: convergence_summary.py OUTDIR"""
import csv
import glob
import os
import sys


def curve(path):
    out = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            v = row.get("val_loss", "nan")
            if v not in ("", "nan"):
                out[int(row["step"])] = float(v)
    return out


def main(d):
    runs = {}
    for p in sorted(glob.glob(os.path.join(d, "*_s*", "loss.csv"))):
        runs[os.path.basename(os.path.dirname(p))] = curve(p)
    cpu = [c for n, c in runs.items() if n.startswith("cpu_")]
    gpu = {n: c for n, c in runs.items() if n.startswith("cuda_")}
    if len(cpu) < 2 or not gpu:
        sys.exit("need >= 2 cpu_s* runs and >= 1 cuda_s* run in %s" % d)
    steps = sorted(set.intersection(*[set(c) for c in cpu + list(gpu.values())]))
    print("step   cpu min   cpu max  " + "  ".join("%9s" % n for n in gpu) + "   inside")
    inside = total = 0
    for s in steps:
        lo, hi = min(c[s] for c in cpu), max(c[s] for c in cpu)
        flags = []
        for n, c in gpu.items():
            ok = lo <= c[s] <= hi
            inside += ok
            total += 1
            flags.append("%9.4f%s" % (c[s], "" if ok else "*"))
        print("%4d  %8.4f  %8.4f  %s" % (s, lo, hi, "  ".join(flags)))
    print("GPU evaluations inside the CPU band: %d of %d (* = outside)" % (inside, total))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
