"""PyTorch's own CPU inference of M1 and M2-32 (Debian's python3-torch 1.13), batch 1, for the
runtime's speed comparison (docs/runtime.md): eager, and the best variant the issue names
(TorchScript by tracing, frozen, optimize_for_inference), each fp32 and channels-last or not.

The architectures are written out independently of the C++ code (M1 from train_step_pytorch.py;
the U-Net here: double 3x3 conv+BN+ReLU per level, 4 max-pools, ConvTranspose2d(2, 2) up,
cat(up, skip), 1x1 head), with the same parameter counts as `leanseg info` prints.
Usage: OPENBLAS_NUM_THREADS=1 python3 bench/inference_pytorch.py [--runs 30] [--threads 2] [--size 256]
Prints one JSON line per model and variant: median/min/max ms over --runs after 3 warm-ups.
"""
import json, sys, time
import torch
import torch.nn as nn

from train_step_pytorch import M1, cbr


class UNet(nn.Module):
    def __init__(s, w=32):
        super().__init__()
        dc = lambda i, o: nn.Sequential(cbr(i, o, 3), cbr(o, o, 3))
        s.enc = nn.ModuleList([dc(1 if i == 0 else w << (i - 1), w << i) for i in range(4)])
        s.bottom = dc(w << 3, w << 4)
        s.up = nn.ModuleList([nn.ConvTranspose2d(w << (i + 1), w << i, 2, 2) for i in range(4)])
        s.dec = nn.ModuleList([dc(w << (i + 1), w << i) for i in range(4)])
        s.head = nn.Conv2d(w, 1, 1)

    def forward(s, x):
        skips = []
        for e in s.enc:
            x = e(x); skips.append(x); x = nn.functional.max_pool2d(x, 2)
        x = s.bottom(x)
        for i in range(3, -1, -1):
            x = s.dec[i](torch.cat([s.up[i](x), skips[i]], 1))
        return s.head(x)


def timed(fn, x, runs):
    with torch.inference_mode():
        for _ in range(3): fn(x)
        ms = []
        for _ in range(runs):
            t0 = time.perf_counter(); fn(x); ms.append((time.perf_counter() - t0) * 1e3)
    ms.sort()
    return ms[len(ms) // 2], ms[0], ms[-1]


def main():
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    runs, threads, size = int(args.get("--runs", 30)), int(args.get("--threads", 2)), int(args.get("--size", 256))
    torch.set_num_threads(threads); torch.manual_seed(0)
    for name, model in [("mobilenet-aspp-se-unet", M1()), ("unet-32", UNet(32))]:
        model.eval()
        params = sum(p.numel() for p in model.parameters())
        for cl in (False, True):
            m = model.to(memory_format=torch.channels_last) if cl else model
            x = torch.randn(1, 1, size, size)
            if cl: x = x.contiguous(memory_format=torch.channels_last)
            with torch.no_grad():
                frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(m.eval(), x)))
            for variant, fn in [("eager", m), ("torchscript-frozen-optimized", frozen)]:
                med, lo, hi = timed(fn, x, runs)
                print(json.dumps({"model": name, "params": params, "variant": variant, "channels_last": cl,
                                  "threads": threads, "size": size, "runs": runs, "median_ms": round(med, 1),
                                  "min_ms": round(lo, 1), "max_ms": round(hi, 1)}), flush=True)


if __name__ == "__main__":
    main()
