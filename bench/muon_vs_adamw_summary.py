#!/usr/bin/env python3
"""Summarise Muon-vs-AdamW runs: validation loss at the last common step and
the steps each optimizer needs to first reach a target validation loss.
usage: muon_vs_adamw_summary.py DIR [--target L]
DIR holds <opt>_s<seed>.csv files (hydra train's loss.csv) or
muon_vs_adamw_<opt>_s<seed>.csv."""
import csv, glob, os, re, statistics, sys

def load(d):
    runs = {}
    for f in sorted(glob.glob(os.path.join(d, "*.csv"))):
        m = re.search(r"(adamw|muon)_s(\d+)\.csv$", f)
        if not m:
            continue
        val = [(int(r["step"]), float(r["val_loss"])) for r in csv.DictReader(open(f)) if r["val_loss"] != "nan"]
        runs[(m.group(1), int(m.group(2)))] = val
    return runs

def first_step(val, target):
    return next((s for s, l in val if l <= target), None)

def main():
    d = sys.argv[1]
    runs = load(d)
    target = float(sys.argv[sys.argv.index("--target") + 1]) if "--target" in sys.argv else None
    last_common = min(v[-1][0] for v in runs.values())
    print(f"runs: {len(runs)}; last step reached by every run: {last_common}")
    for opt in ("adamw", "muon"):
        ls = [dict(v)[last_common] for (o, _), v in runs.items() if o == opt and last_common in dict(v)]
        fin = [v[-1] for (o, _), v in runs.items() if o == opt]
        if ls:
            print(f"{opt:6s} val@{last_common}: {statistics.mean(ls):.4f} ± {statistics.stdev(ls) if len(ls) > 1 else 0:.4f}"
                  f"   final: " + ", ".join(f"{l:.4f}@{s}" for s, l in fin))
    if target is None:  # the worst Muon loss at the common step: both optimizers reach it
        target = max(dict(v)[last_common] for (o, _), v in runs.items() if o == "muon")
    print(f"target validation loss {target:.4f}:")
    steps = {}
    for opt in ("adamw", "muon"):
        st = [first_step(v, target) for (o, _), v in sorted(runs.items()) if o == opt]
        steps[opt] = st
        print(f"  {opt:6s} steps to target per seed: {st}")
    a = [x for x in steps["adamw"] if x]
    m = [x for x in steps["muon"] if x]
    if a and m:
        print(f"  AdamW / Muon steps ratio: {statistics.mean(a) / statistics.mean(m):.3f}")

if __name__ == "__main__":
    main()
