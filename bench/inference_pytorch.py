"""PyTorch's own CPU inference of M1, M2-32 and M3 (Debian's python3-torch 1.13), batch 1, for the
runtime's speed comparison (docs/runtime.md): eager, and the best variant the issue names
(TorchScript by tracing, frozen, optimize_for_inference), each fp32 and channels-last or not.

The architectures are written out independently of the C++ code (M1 from train_step_pytorch.py;
the U-Net here: double 3x3 conv+BN+ReLU per level, 4 max-pools, ConvTranspose2d(2, 2) up,
cat(up, skip), 1x1 head; the efficient U-Net: separable convs, bottleneck blocks, linear
attention at H/32, depthwise transposed-conv up + 1x1), with the same parameter counts as
`leanseg info` prints.
Usage: OPENBLAS_NUM_THREADS=1 python3 bench/inference_pytorch.py [--runs 30] [--threads 2] [--size 256] [--model NAME]
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


def sep(i, o):  # depthwise 3x3 + BN + ReLU, pointwise + BN + ReLU
    return nn.Sequential(cbr(i, i, 3, g=i), cbr(i, o, 1))


class Bottleneck(nn.Module):  # 1x1 reduce by r, separable 3x3, 1x1 expand, + identity, ReLU
    def __init__(s, c, r):
        super().__init__(); m = c // r
        s.body = nn.Sequential(cbr(c, m, 1), sep(m, m), cbr(m, c, 1, act=None))
    def forward(s, x): return torch.relu(s.body(x) + x)


class LinearAttention(nn.Module):  # x + to_out(softmax_d(Q) applied to softmax_N(K) V^T), per head
    def __init__(s, c, heads):
        super().__init__(); s.h, s.d = heads, c // heads
        s.q, s.k, s.v = (nn.Conv2d(c, c, 1, bias=False) for _ in range(3)); s.out = nn.Conv2d(c, c, 1)
    def forward(s, x):
        b, c, hh, ww = x.shape[0], x.shape[1], x.shape[2], x.shape[3]; n = hh * ww  # FX-traceable
        q = s.q(x).view(b, s.h, s.d, n).softmax(2); k = s.k(x).view(b, s.h, s.d, n).softmax(3)
        v = s.v(x).view(b, s.h, s.d, n)
        out = torch.matmul(torch.matmul(k, v.transpose(2, 3)).transpose(2, 3), q)
        return x + s.out(out.reshape(b, c, hh, ww))


class EfficientUNet(nn.Module):  # M3: channels 32..384 + 512 bottleneck, r = 4, 4 attention heads
    def __init__(s, ch=(32, 64, 128, 256, 384, 512), r=4, heads=4):
        super().__init__()
        level = lambda i, o: nn.Sequential(sep(i, o), Bottleneck(o, r))
        s.enc = nn.ModuleList([nn.Sequential(cbr(1, ch[0], 3), Bottleneck(ch[0], r))] +
                              [level(ch[i - 1], ch[i]) for i in range(1, 5)])
        s.bottom = level(ch[4], ch[5]); s.attn = LinearAttention(ch[5], heads)
        ins = [ch[i + 1] for i in range(5)]  # decoder i reads the level below it
        s.up = nn.ModuleList([nn.Sequential(nn.ConvTranspose2d(ins[i], ins[i], 2, 2, groups=ins[i]),
                                            nn.Conv2d(ins[i], ch[i], 1)) for i in range(5)])
        s.dec = nn.ModuleList([level(2 * ch[i], ch[i]) for i in range(5)])
        s.head = nn.Conv2d(ch[0], 1, 1)

    def forward(s, x):
        skips = []
        for i, e in enumerate(s.enc):
            x = e(x if i == 0 else nn.functional.max_pool2d(x, 2)); skips.append(x)
        x = s.attn(s.bottom(nn.functional.max_pool2d(x, 2)))
        for i in range(4, -1, -1):
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
    models = [("mobilenet-aspp-se-unet", M1()), ("unet-32", UNet(32)), ("efficient-unet", EfficientUNet())]
    only = args.get("--model")
    for name, model in models:
        if only and name != only: continue
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
