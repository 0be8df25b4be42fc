#!/usr/bin/env python3
"""Summarises bench/under_load.sh's CSVs: per load, implementation and precision, the median
over rounds of each round's median and p90, and "× idle" = the median over rounds of the ratio
to the mean of the same round's idle medians (so drift between rounds does not pass for an
effect of a load). With several CSVs (bench/spin_sweep.sh), one table with a setting column.
   usage: bench/under_load_summary.py CSV [CSV...] [--labels A,B,...]"""
import csv
import statistics as st
import sys


def summarise(path):
    rows = list(csv.DictReader(open(path)))
    key = lambda r: (r["impl"], r["precision"])
    idle = {}
    for r in rows:
        if r["load"] == "idle":
            idle.setdefault((r["round"],) + key(r), []).append(float(r["median_ms"]))
    cells = {}
    for r in rows:
        m = float(r["median_ms"])
        p90 = float(r["p90_ms"]) if r["p90_ms"] else float("nan")
        cells.setdefault((r["load"],) + key(r), []).append((m, p90, m / st.mean(idle[(r["round"],) + key(r)])))
    return len({r["round"] for r in rows}), cells


def main(argv):
    labels = None
    if "--labels" in argv:
        i = argv.index("--labels")
        labels, argv = argv[i + 1].split(","), argv[:i] + argv[i + 2:]
    print("| setting | load | impl | precision | median ms | p90 ms | × idle (per round) | p90/median |" if labels else
          "| load | impl | precision | median ms | p90 ms | × idle (per round) | p90/median |")
    print("|---" * (8 if labels else 7) + "|")
    for n, path in enumerate(argv):
        rounds, cells = summarise(path)
        for (load, impl, prec), v in cells.items():
            m = st.median(x[0] for x in v)
            p90 = st.median(x[1] for x in v)
            ratio = st.median(x[2] for x in v)
            per_round = ", ".join(f"{x[2]:.2f}" for x in v)
            lead = f"| {labels[n]} " if labels else ""
            print(f"{lead}| {load} | {impl} | {prec} | {m:.1f} | {p90:.1f} | {ratio:.2f} ({per_round}) | {p90 / m:.2f} |")
        print(f"\n({path}: {rounds} round(s))\n" if not labels else "", end="")


if __name__ == "__main__":
    main(sys.argv[1:])
