#!/usr/bin/env python3
"""Summarises the segment logs of bench/stream_10m.sh / stream_10m_chain.sh:
   python3 bench/stream_10m_summary.py DIR...
One row per segment (start, tokens, seconds, tokens/s, state, peak RSS), then
the totals: tokens streamed, final position, overall tokens/s, the distinct
state sizes and the peak-RSS range."""
import glob, os, re, sys

pat = re.compile(r"done: (\d+) tokens \((\d+) forwards\) in ([\d.]+) s, ([\d.]+K?) tokens/s; "
                 r"state ([\d.]+ \w+) \(peak ([\d.]+ \w+)\); position (\d+); peak RSS ([\d.]+) MiB")
rows = []
for d in sys.argv[1:]:
    for f in glob.glob(os.path.join(d, "segment_*.log")):
        text = open(f, errors="replace").read().replace("\r", "\n")
        m = None
        for m in pat.finditer(text):
            pass
        if m:
            start = int(re.search(r"segment_(\d+)\.log", f).group(1))
            rows.append((start, int(m.group(1)), float(m.group(3)), m.group(5), m.group(6), int(m.group(7)),
                         float(m.group(8)), d))
rows = sorted({r[0]: r for r in sorted(rows, reverse=True)}.values())  # one row per start
print(f"{'start':>10} {'tokens':>9} {'seconds':>9} {'tok/s':>7} {'state':>10} {'position':>10} {'peak RSS MiB':>12}  dir")
for r in rows:
    print(f"{r[0]:>10} {r[1]:>9} {r[2]:>9.1f} {r[1] / r[2]:>7.0f} {r[3]:>10} {r[5]:>10} {r[6]:>12.2f}  {r[7]}")
if rows:
    pos = 0
    for r in rows:  # the chain must be contiguous
        if r[0] != pos:
            print(f"gap: segment at {r[0]} but the chain reached {pos}")
        pos = r[5]
    tok = sum(r[1] for r in rows)
    sec = sum(r[2] for r in rows)
    print(f"total: {tok} tokens in {sec:.0f} s ({tok / sec:.0f} tok/s over all machines), position {pos}; "
          f"state sizes {sorted(set(r[3] for r in rows))} (peaks {sorted(set(r[4] for r in rows))}); "
          f"peak RSS {min(r[6] for r in rows):.2f}-{max(r[6] for r in rows):.2f} MiB")
