#!/usr/bin/python3
"""One run, every peer: the engine (fp32, bf16, int8; batch 1 and 8) against ONNX Runtime (fp32)
and PyTorch 1.13 (fp32 eager / TorchScript-frozen, FX int8 on onednn) on the zoo models,
alternating in one run, with the ratios the README quotes. Run it with Debian's python3
(python3-torch and python3-numpy) after scripts/build.sh:

  /usr/bin/python3 bench/peers.py [--models M1,M2,M3,M4] [--rounds 5] [--runs 10] [--threads 2]
                                  [--size 256] [--load idle|busy] [--out bench-out/peers] [--no-pytorch] [--no-ort]

Each implementation lives in its own long-running worker process (bench/peers_workers.py,
bench/peers_ort_worker.js) that loads its models once; the driver asks them in turn for --runs
timed runs of one variant (after 2 warm-ups), rotating the order every round, so slow drifts of
the machine hit every column alike. Medians over all rounds' runs; the spread is the range of
the per-round medians. --load busy runs one `while :; do :; done` at nice 0 beside the whole run
(the "one busy process" column). The engine's worker runs on the OpenMP runtime `leanseg-infer` defaults
to (LLVM's libomp, 20 ms blocktime; --engine-openmp libgomp-passive for libgomp passive); bf16 is left out on CPUs without
AVX-512 (oneDNN has no bf16 kernels there). Weights are random (timing only; int8 calibrated on noise).
Writes OUT/peers.json and OUT/peers.md.
"""
import argparse, json, os, statistics, subprocess, sys, time

ZOO = {"M1": "mobilenet-aspp-se-unet", "M2": "unet-32", "M3": "efficient-unet", "M4": "mobilenet-aspp-se-unet-lite"}
ENGINE = [("fp32", 1), ("bf16", 1), ("int8", 1), ("fp32", 8), ("bf16", 8), ("int8", 8)]
PYTORCH = ["eager-cl", "ts", "ts-cl", "int8-cl", "int8-ts-cl"]


def cpu_has_bf16_kernels():
    """oneDNN's bf16 kernels need AVX-512 (avx512_core); without it the engine refuses bf16."""
    flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
    return all(f in flags for f in ("avx512f", "avx512bw", "avx512vl", "avx512dq"))


LIBOMP = os.environ.get("LIBOMP", "/usr/lib/llvm-14/lib/libomp.so.5")  # as bench/spin_sweep.sh


def engine_openmp_env(choice):
    """The OpenMP runtime and waiting of the engine's worker. "leanseg-infer" (the default) is what
    `leanseg-infer` runs on by default: LLVM's libomp preloaded with KMP_BLOCKTIME 20 ms
    (src/util/openmp_wait_policy.c), libgomp passive when libomp is not installed;
    "libgomp-passive" is what a host process gets that sets OMP_WAIT_POLICY=passive itself."""
    if choice == "leanseg-infer" and os.path.exists(LIBOMP):
        return {"LD_PRELOAD": LIBOMP, "KMP_BLOCKTIME": os.environ.get("KMP_BLOCKTIME", "20")}
    return {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "passive")}


def sh(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def export(model, size, out):
    lsr, onnx, qdq = f"{out}/{model}-{size}.lsr", f"{out}/{model}-{size}.onnx", f"{out}/{model}-{size}-qdq.onnx"
    if not os.path.exists(lsr):
        sh(["build/leanseg", "export", "--model", model, "--format", "runtime", "--input-size", str(size),
            "--calibrate", "random", "--out", lsr])
    if not os.path.exists(onnx):
        sh(["build/leanseg", "export", "--model", model, "--format", "onnx", "--input-size", str(size), "--out", onnx])
    if not os.path.exists(qdq):  # QuantizeLinear/DequantizeLinear around every conv: ORT's int8 kernels
        sh(["build/leanseg", "export", "--model", model, "--format", "onnx", "--int8", "--calibrate", "random",
            "--input-size", str(size), "--out", qdq])
    return lsr, onnx, qdq


class Worker:
    def __init__(self, name, cmd, env=None):
        self.name = name
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        line = self.p.stdout.readline()
        if not line:
            raise SystemExit(f"{name} worker did not start: {' '.join(cmd)}")
        self.keys = json.loads(line)["ready"]

    def time(self, key, runs):
        self.p.stdin.write(f"{key} {runs}\n"); self.p.stdin.flush()
        reply = json.loads(self.p.stdout.readline())
        if "error" in reply:
            raise SystemExit(f"{self.name}: {key}: {reply['error']}")
        return reply["ms"]

    def close(self):
        try:
            self.p.stdin.write("quit\n"); self.p.stdin.flush()
        except BrokenPipeError:
            pass
        self.p.wait(timeout=30)


def start_workers(a, models):
    workers, entries = [], {"engine": [], "ort": [], "pytorch": []}
    for short in models:
        lsr, onnx, qdq = export(ZOO[short], a.size, a.out)
        entries["engine"] += [f"{short}/engine-{p}-b{b}={lsr}:{p}:{b}" for p, b in ENGINE
                              if p != "bf16" or cpu_has_bf16_kernels()]
        entries["ort"] += [f"{short}/ort-fp32-b1={onnx}", f"{short}/ort-int8-b1={qdq}"]
        entries["pytorch"] += [f"{short}/pytorch-{v}-b1={ZOO[short]}:{v}" for v in PYTORCH]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    workers.append(Worker("engine", [sys.executable, "bench/peers_workers.py", "engine", "--threads", str(a.threads),
                                     *entries["engine"]],
                          dict(env, LEANSEG_RUNTIME_LIBRARY=os.path.abspath("build/libleanseg_runtime.so.0"),
                               **engine_openmp_env(a.engine_openmp))))
    if not a.no_ort:
        if not os.environ.get("ORT_DIR"):
            raise SystemExit("set ORT_DIR to an ONNX Runtime install (ORT_DIR=DIR bash ../shared/bench/setup_ort.sh), or pass --no-ort")
        workers.append(Worker("ort", ["node", "bench/peers_ort_worker.js", "--threads", str(a.threads),
                                      "--size", str(a.size), *entries["ort"]], env))
    if not a.no_pytorch:
        workers.append(Worker("pytorch", ["/usr/bin/python3", "bench/peers_workers.py", "pytorch", "--threads",
                                          str(a.threads), "--size", str(a.size), *entries["pytorch"]],
                              dict(env, OPENBLAS_NUM_THREADS="1")))
    return workers


def measure(a, workers):
    plan = [(w, k) for w in workers for k in w.keys]
    times = {k: [] for _, k in plan}
    round_medians = {k: [] for _, k in plan}
    for r in range(a.rounds):
        shift = (r * len(plan)) // a.rounds
        for w, k in plan[shift:] + plan[:shift]:
            runs = max(3, a.runs // 4) if k.endswith("-b8") else a.runs
            ms = w.time(k, runs)
            times[k] += ms; round_medians[k].append(statistics.median(ms))
            time.sleep(0.05)  # let the last worker's threads stop spinning before the next starts
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr, flush=True)
    return {k: {"median_ms": statistics.median(v), "round_min_ms": min(round_medians[k]),
                "round_max_ms": max(round_medians[k]), "runs": len(v)} for k, v in times.items()}


def table(results, models, load):
    def get(m, k):
        return results.get(f"{m}/{k}", {}).get("median_ms")

    def best(m, int8):
        c = [(v["median_ms"], k.split("/", 1)[1]) for k, v in results.items()
             if k.startswith(m + "/pytorch-") and (("-int8" in k) == int8)]
        return min(c) if c else (None, None)

    def fmt(x):
        return "—" if x is None else f"{x:.1f}"

    def ratio(a_, b_):
        return "—" if a_ is None or b_ is None else f"{b_ / a_:.2f}×"

    lines = [f"Load: {load}. Medians in ms per image (batch 1 unless b8; b8 = batch time / 8).", "",
             "| model | ORT fp32 | ORT int8 (QDQ) | PyTorch best fp32 | PyTorch int8 | engine fp32 | bf16 | int8 | fp32 b8 | bf16 b8 | int8 b8 |"
             " fp32 vs ORT | bf16 vs ORT | int8 vs ORT | int8 vs ORT int8 | int8 vs PyTorch int8 | fp32 vs PyTorch fp32 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in models:
        ort, ortq = get(m, "ort-fp32-b1"), get(m, "ort-int8-b1")
        pt, pt_name = best(m, False)
        pq, pq_name = best(m, True)
        e = {f"{p}-b{b}": get(m, f"engine-{p}-b{b}") for p, b in ENGINE}
        lines.append(f"| {m} `{ZOO[m]}` | {fmt(ort)} | {fmt(ortq)} | {fmt(pt)} ({pt_name}) | {fmt(pq)} ({pq_name}) | "
                     + " | ".join(fmt(e[f"{p}-b{b}"]) for p, b in ENGINE)
                     + f" | {ratio(e['fp32-b1'], ort)} | {ratio(e['bf16-b1'], ort)} | {ratio(e['int8-b1'], ort)} | {ratio(e['int8-b1'], ortq)} | "
                     f"{ratio(e['int8-b1'], pq)} | {ratio(e['fp32-b1'], pt)} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="M1,M2,M3,M4")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engine-openmp", choices=["leanseg-infer", "libgomp-passive"], default="leanseg-infer",
                    help="the engine worker's OpenMP runtime: leanseg-infer's default (libomp, 20 ms) or libgomp passive")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--load", choices=["idle", "busy"], default="idle")
    ap.add_argument("--out", default="bench-out/peers")
    ap.add_argument("--no-pytorch", action="store_true")
    ap.add_argument("--no-ort", action="store_true")
    a = ap.parse_args()
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    os.makedirs(a.out, exist_ok=True)
    models = a.models.split(",")
    for m in models:
        if m not in ZOO:
            raise SystemExit(f"unknown model {m} (M1..M4)")
    workers = start_workers(a, models)
    busy = subprocess.Popen(["sh", "-c", "while :; do :; done"]) if a.load == "busy" else None
    try:
        time.sleep(1)
        results = measure(a, workers)
    finally:
        if busy:
            busy.kill()
        for w in workers:
            w.close()
    md = table(results, models, a.load)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    head = (f"bench/peers.py --rounds {a.rounds} --runs {a.runs} --threads {a.threads} --size {a.size} --load {a.load} --engine-openmp {a.engine_openmp}; "
            f"{time.strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} CPUs ({cpu}), "
            f"git {subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()}")
    out = head + "\n\n" + md + "\n"
    print(out)
    with open(f"{a.out}/peers-{a.load}.md.tmp", "w") as f:
        f.write(out)
    os.replace(f"{a.out}/peers-{a.load}.md.tmp", f"{a.out}/peers-{a.load}.md")
    with open(f"{a.out}/peers-{a.load}.json.tmp", "w") as f:
        json.dump({"header": head, "results": results}, f, indent=1)
    os.replace(f"{a.out}/peers-{a.load}.json.tmp", f"{a.out}/peers-{a.load}.json")


if __name__ == "__main__":
    main()
