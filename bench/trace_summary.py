"""Self time per operator from a chrome trace (bench_train_step --profile, train_step_pytorch.py --profile).

Usage: python3 bench/trace_summary.py TRACE.json [TRACE2.json ...] [--top N]
Self time = an event's duration minus that of the events nested inside it on the same thread,
so nested ATen calls (conv2d > convolution > mkldnn_convolution) are not counted twice. With two
traces, prints them side by side (ms) so two implementations of one step can be compared op by op.
"""
import json, sys, collections


def self_times(path):
    data = json.load(open(path))
    events = data["traceEvents"] if isinstance(data, dict) else data
    by_thread = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and "dur" in e:
            by_thread[e.get("tid")].append((float(e["ts"]), float(e["dur"]), e["name"]))
    total = collections.Counter()
    for evs in by_thread.values():
        evs.sort(key=lambda t: (t[0], -t[1]))
        stack = []  # [end, name, child_time]
        def close(until):
            while stack and stack[-1][0] <= until:
                end, name, child, dur = stack.pop()
                total[name] += dur - child
                if stack: stack[-1][2] += dur
        for ts, dur, name in evs:
            close(ts)
            stack.append([ts + dur, name, 0.0, dur])
        close(float("inf"))
    return {k: v / 1e3 for k, v in total.items()}  # us -> ms


def main():
    args = sys.argv[1:]; top = 25
    if "--top" in args:
        i = args.index("--top"); top = int(args[i + 1]); del args[i:i + 2]
    tables = [self_times(p) for p in args]
    names = sorted(set().union(*tables), key=lambda n: -max(t.get(n, 0) for t in tables))[:top]
    print("%-50s" % "op (self ms)" + "".join("%14s" % p.split("/")[-1][:13] for p in args))
    for n in names:
        print("%-50s" % n[:50] + "".join("%14.1f" % t.get(n, 0) for t in tables))
    print("%-50s" % "total" + "".join("%14.1f" % sum(t.values()) for t in tables))


if __name__ == "__main__":
    main()
