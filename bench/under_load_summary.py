#!/usr/bin/env python3
"""Summarises bench/under_load.sh's CSVs: per load, implementation and precision, the median
over rounds of each round's median and p90, and "× idle" = the median over rounds of the ratio
to the mean of the same round's idle medians (so drift between rounds does not pass for an
effect of a load). With several CSVs (bench/spin_sweep.sh), one table with a setting column.
"waited" is the median share of the engine's thread time spent waiting for a core and "fewer" the
number of its runs on fewer threads than asked in each round (adapting to contention), where
the CSV has them.
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
        waited = float(r["waited_share"]) if r.get("waited_share") else float("nan")
        fewer = int(r["fewer_threads_runs"]) if r.get("fewer_threads_runs") else -1
        cells.setdefault((r["load"],) + key(r), []).append(
            (m, p90, m / st.mean(idle[(r["round"],) + key(r)]), waited, fewer))
    return len({r["round"] for r in rows}), cells


def main(argv):
    labels = None
    if "--labels" in argv:
        i = argv.index("--labels")
        labels, argv = argv[i + 1].split(","), argv[:i] + argv[i + 2:]
    print("| setting | load | impl | precision | median ms | p90 ms | × idle (per round) | p90/median | waited | fewer |"
          if labels else "| load | impl | precision | median ms | p90 ms | × idle (per round) | p90/median | waited | fewer |")
    print("|---" * (10 if labels else 9) + "|")
    for n, path in enumerate(argv):
        rounds, cells = summarise(path)
        for (load, impl, prec), v in cells.items():
            m = st.median(x[0] for x in v)
            p90 = st.median(x[1] for x in v)
            ratio = st.median(x[2] for x in v)
            per_round = ", ".join(f"{x[2]:.2f}" for x in v)
            lead = f"| {labels[n]} " if labels else ""
            waited = st.median(x[3] for x in v)
            fewer = [x[4] for x in v if x[4] >= 0]
            waited_text = "" if waited != waited else f"{100 * waited:.0f} %"
            fewer_text = ", ".join(str(f) for f in fewer)  # runs on fewer threads, per round
            print(f"{lead}| {load} | {impl} | {prec} | {m:.1f} | {p90:.1f} | {ratio:.2f} ({per_round}) | {p90 / m:.2f} "
                  f"| {waited_text} | {fewer_text} |")
        print(f"\n({path}: {rounds} round(s))\n" if not labels else "", end="")


if __name__ == "__main__":
    main(sys.argv[1:])
