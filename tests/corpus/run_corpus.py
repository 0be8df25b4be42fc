#!/usr/bin/python3
"""Runs the malformed-input corpus (make_corpus.py) through the real executables.

    run_corpus.py --leanseg BUILD/leanseg --infer BUILD/leanseg-infer --work DIR [--only SUBSTRING] [-v]

Every case must end by exiting (never by a signal), with the exit code it lists, and print each
expected substring (the error text and the file it names) on stdout or stderr; files listed as
absent must not exist afterwards. Exit status: 0 when every case passes, 1 otherwise.
"""
import argparse
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leanseg", required=True)
    ap.add_argument("--infer", required=True)
    ap.add_argument("--work", required=True, help="folder for the generated corpus and outputs (emptied)")
    ap.add_argument("--only", help="run only cases whose name contains this")
    ap.add_argument("--timeout", type=float, default=120, help="seconds per case")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="cases run at once (default 2: CI's cores)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every case's output")
    a = ap.parse_args()
    start = time.time()
    subprocess.run([sys.executable, os.path.join(HERE, "make_corpus.py"), "--leanseg", a.leanseg, "--out", a.work], check=True)
    cases = json.load(open(os.path.join(a.work, "cases.json")))
    fill = {"{leanseg}": os.path.abspath(a.leanseg), "{infer}": os.path.abspath(a.infer), "{dir}": os.path.abspath(a.work)}

    def expand(s):
        for k, v in fill.items():
            s = s.replace(k, v)
        return s

    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    todo = [c for c in cases if not a.only or a.only in c["name"]]

    def run_case(case):
        cmd = [expand(x) for x in case["cmd"]]
        t0 = time.time()
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=a.timeout)
            out, code = r.stdout.decode(errors="replace"), r.returncode
        except subprocess.TimeoutExpired as e:
            out, code = (e.stdout or b"").decode(errors="replace"), None
        problems = []
        if code is None:
            problems.append(f"timed out after {a.timeout:.0f} s")
        elif code < 0:
            problems.append(f"killed by signal {signal.Signals(-code).name}")
        elif code != case["code"]:
            problems.append(f"exit code {code}, expected {case['code']}")
        for s in case["expect"]:
            if expand(s) not in out:
                problems.append(f"output lacks {expand(s)!r}")
        for p in case["absent"]:
            if os.path.exists(expand(p)):
                problems.append(f"{expand(p)} was written")
        lines = [f"{'FAIL' if problems else 'ok':4} {case['name']:50} exit {code} ({time.time() - t0:.1f} s)"]
        if problems or a.verbose:
            lines += ["     - " + p for p in problems]
            lines.append("     $ " + " ".join(cmd))
            lines.append("     | " + "\n     | ".join(out.strip().splitlines()[-8:]))
        return case["name"], problems, "\n".join(lines)

    failed = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        for name, problems, text in pool.map(run_case, todo):
            print(text, flush=True)
            if problems:
                failed.append(name)
    run = len(todo)
    print(f"corpus: {run - len(failed)} of {run} cases passed in {time.time() - start:.0f} s")
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
