"""The same training step in PyTorch (Debian's python3-torch), for bench/train_step_vs_pytorch.sh.

The architectures are written out here independently of the C++ code (M1/M4: torchvision-style
MobileNetV2 features, ASPP, SE-residual decoder; M2 `unet-32`; M3 `efficient-unet`) with the same
parameter counts, so the comparison is like for like. --model NAME picks one (default M1).
Prints one JSON line like bench_train_step.
"""
import json, resource, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F


def cbr(i, o, k, s=1, g=1, d=1, act=nn.ReLU):
    layers = [nn.Conv2d(i, o, k, s, (k - 1) // 2 * d, dilation=d, groups=g, bias=False), nn.BatchNorm2d(o)]
    if act: layers.append(act(inplace=True))
    return nn.Sequential(*layers)


class IR(nn.Module):
    def __init__(s, i, o, st, t):
        super().__init__(); h = i * t; s.res = st == 1 and i == o
        L = ([cbr(i, h, 1, act=nn.ReLU6)] if t != 1 else []) + [cbr(h, h, 3, st, h, act=nn.ReLU6), nn.Conv2d(h, o, 1, bias=False), nn.BatchNorm2d(o)]
        s.conv = nn.Sequential(*L)
    def forward(s, x): return x + s.conv(x) if s.res else s.conv(x)


def features(cin):
    f, c = [cbr(cin, 32, 3, 2, act=nn.ReLU6)], 32
    for t, co, n, st in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for k in range(n): f.append(IR(c, co, st if k == 0 else 1, t)); c = co
    f.append(cbr(320, 1280, 1, act=nn.ReLU6))
    return nn.Sequential(*f)


class SE(nn.Module):
    def __init__(s, c):
        super().__init__(); h = max(1, c // 16); s.fc1 = nn.Linear(c, h); s.fc2 = nn.Linear(h, c)
    def forward(s, x): return x * torch.sigmoid(s.fc2(F.relu(s.fc1(x.mean((2, 3))))))[:, :, None, None]


def sep_cbr(i, o, d=1):  # depthwise 3x3 (dilation d) + BN + ReLU, pointwise + BN + ReLU (M4's separable convs)
    return nn.Sequential(cbr(i, i, 3, g=i, d=d), cbr(i, o, 1))


class RBSE(nn.Module):
    def __init__(s, i, o, separable=False):
        super().__init__()
        s.body = nn.Sequential(sep_cbr(i, o), sep_cbr(o, o)) if separable else nn.Sequential(cbr(i, o, 3), cbr(o, o, 3))
        s.se = SE(o); s.proj = nn.Conv2d(i, o, 1) if i != o else None
    def forward(s, x): return s.se(s.body(x)) + (s.proj(x) if s.proj is not None else x)


class ASPP(nn.Module):
    def __init__(s, branch=128, out=512, groups=32, separable=False):
        super().__init__()
        atrous = (lambda r: sep_cbr(1280, branch, r)) if separable else (lambda r: cbr(1280, branch, 3, d=r))
        s.b = nn.ModuleList([cbr(1280, branch, 1)] + [atrous(r) for r in (6, 12, 18)])
        s.pc = nn.Conv2d(1280, branch, 1, bias=False); s.gn = nn.GroupNorm(groups, branch)
        s.proj = cbr(5 * branch, out, 1); s.drop = nn.Dropout(0.5)
    def forward(s, x):
        o = [b(x) for b in s.b] + [F.relu(s.gn(s.pc(x.mean((2, 3), keepdim=True)))).expand(-1, -1, x.shape[2], x.shape[3])]
        return s.drop(s.proj(torch.cat(o, 1)))


def up2(i, o, separable=False):  # leanseg's Upsample: transposed conv k2 s2 (separable: depthwise, then 1x1)
    return nn.Sequential(nn.ConvTranspose2d(i, i, 2, 2, groups=i), nn.Conv2d(i, o, 1)) if separable else nn.ConvTranspose2d(i, o, 2, 2)


class Dec(nn.Module):
    def __init__(s, i, sk, o, separable=False):
        super().__init__()
        s.up = up2(i, o, separable)
        s.se = SE(sk); s.block = RBSE(o + sk, o, separable)
    def forward(s, x, skip): return s.block(torch.cat([s.up(x), s.se(skip)], 1))


class M1(nn.Module):  # lite=True: M4 `mobilenet-aspp-se-unet-lite` (separable ASPP and decoder, ASPP 64 -> 256)
    def __init__(s, lite=False):
        super().__init__(); s.enc0 = cbr(1, 32, 3); s.f = features(1)
        # The encoder's five stages, registered (shared with s.f) so that FX quantization can trace them.
        s.stages = nn.ModuleList([s.f[a:b] for a, b in [(0, 2), (2, 4), (4, 7), (7, 14), (14, 19)]])
        s.aspp = ASPP(64, 256, 16, True) if lite else ASPP()
        ins = [256 if lite else 512, 256, 128, 64, 32]
        s.dec = nn.ModuleList([Dec(i, sk, o, lite) for i, sk, o in zip(ins, [96, 32, 24, 16, 32], [256, 128, 64, 32, 32])])
        s.head = nn.Conv2d(32, 1, 1)
        for p in s.f.parameters(): p.requires_grad = False
    def train(s, mode=True):
        super().train(mode); s.f.eval(); return s
    def forward(s, x):
        e0 = s.enc0(x); e = [x]
        for stage in s.stages: e.append(stage(e[-1]))
        y = s.aspp(e[5])
        for d, sk in zip(s.dec, [e[4], e[3], e[2], e[1], e0]): y = d(y, sk)
        return s.head(y)


class UNet(nn.Module):  # M2 `unet-32`: double conv+BN+ReLU per level, 4 max-pools, transposed-conv up, concat skip
    def __init__(s, w=32):
        super().__init__()
        dc = lambda i, o: nn.Sequential(cbr(i, o, 3), cbr(o, o, 3))
        s.enc = nn.ModuleList([dc(1 if i == 0 else w << (i - 1), w << i) for i in range(4)]); s.bottom = dc(w << 3, w << 4)
        s.up = nn.ModuleList([up2(w << (i + 1), w << i) for i in range(4)])
        s.dec = nn.ModuleList([dc(w << (i + 1), w << i) for i in range(4)]); s.head = nn.Conv2d(w, 1, 1)
    def forward(s, x):
        sk = []
        for i, e in enumerate(s.enc): x = e(x if i == 0 else F.max_pool2d(x, 2)); sk.append(x)
        x = s.bottom(F.max_pool2d(x, 2))
        for i in range(3, -1, -1): x = s.dec[i](torch.cat([s.up[i](x), sk[i]], 1))
        return s.head(x)


class Bottleneck(nn.Module):  # 1x1 reduce by r, separable 3x3, 1x1 expand (no act), + identity, ReLU
    def __init__(s, c, r):
        super().__init__(); m = c // r; s.body = nn.Sequential(cbr(c, m, 1), sep_cbr(m, m), cbr(m, c, 1, act=None))
    def forward(s, x): return F.relu(s.body(x) + x)


class LinearAttention(nn.Module):  # softmax(Q) over each head's features, softmax(K) over positions, + residual
    def __init__(s, c, heads=4):
        super().__init__(); s.h = heads; s.d = c // heads
        s.q, s.k, s.v = (nn.Conv2d(c, c, 1, bias=False) for _ in range(3)); s.out = nn.Conv2d(c, c, 1)
    def forward(s, x):
        b, _, hh, ww = x.shape; v = lambda t: t.view(b, s.h, s.d, hh * ww)
        q, k = v(s.q(x)).softmax(2), v(s.k(x)).softmax(3)
        ctx = k @ v(s.v(x)).transpose(2, 3)  # [B, heads, dk, dv]
        return x + s.out((ctx.transpose(2, 3) @ q).reshape(b, -1, hh, ww))


class EfficientUNet(nn.Module):  # M3 `efficient-unet`: separable conv + bottleneck block per level, attention at H/32
    def __init__(s, ch=(32, 64, 128, 256, 384, 512), r=4, heads=4):
        super().__init__()
        level = lambda i, o: nn.Sequential(sep_cbr(i, o), Bottleneck(o, r))
        s.enc = nn.ModuleList([nn.Sequential(cbr(1, ch[0], 3), Bottleneck(ch[0], r))] + [level(ch[i - 1], ch[i]) for i in range(1, 5)])
        s.bottom = level(ch[4], ch[5]); s.attn = LinearAttention(ch[5], heads)
        s.up = nn.ModuleList([up2(ch[i + 1], ch[i], True) for i in range(5)])  # decoder i reads ch[i+1] (the bottleneck for i=4)
        s.dec = nn.ModuleList([level(2 * ch[i], ch[i]) for i in range(5)]); s.head = nn.Conv2d(ch[0], 1, 1)
    def forward(s, x):
        sk = []
        for i, e in enumerate(s.enc): x = e(x if i == 0 else F.max_pool2d(x, 2)); sk.append(x)
        x = s.attn(s.bottom(F.max_pool2d(x, 2)))
        for i in range(4, -1, -1): x = s.dec[i](torch.cat([s.up[i](x), sk[i]], 1))
        return s.head(x)


MODELS = {"mobilenet-aspp-se-unet": M1, "mobilenet-aspp-se-unet-lite": lambda: M1(lite=True),
          "unet-32": UNet, "efficient-unet": EfficientUNet}


def loss_fn(logits, t):
    p = torch.sigmoid(logits); inter = (p * t).sum()
    dice = 1 - (2 * inter + 1e-6) / (p.sum() + t.sum() + 1e-6)
    return 0.8 * dice + 0.2 * F.binary_cross_entropy_with_logits(logits, t, pos_weight=torch.tensor([200.0]))


def main():
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    batch, size, reps = int(args.get("--batch", 16)), int(args.get("--size", 256)), int(args.get("--reps", 10))
    threads = int(args.get("--threads", 2)); cl = args.get("--channels-last", "0") == "1"
    name = args.get("--model", "mobilenet-aspp-se-unet")
    if name not in MODELS: sys.exit(f"unknown --model {name} (known: {', '.join(MODELS)})")
    torch.set_num_threads(threads); torch.manual_seed(0)
    m = MODELS[name](); m.train()
    n_params = sum(p.numel() for p in m.parameters())
    # Only M1/M4 freeze parameters (their MobileNetV2 encoder); the others train everything.
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=3e-4, weight_decay=1e-4)
    x = torch.randn(batch, 1, size, size); y = (torch.rand(batch, 1, size, size) > 0.7).float()
    if cl: m = m.to(memory_format=torch.channels_last); x = x.contiguous(memory_format=torch.channels_last)
    ms = []
    for r in range(reps + 2):
        t0 = time.perf_counter(); opt.zero_grad(); loss = loss_fn(m(x), y); loss.backward(); opt.step()
        if r >= 2: ms.append((time.perf_counter() - t0) * 1e3)
        if r == 1: before = resource.getrusage(resource.RUSAGE_SELF)
    after = resource.getrusage(resource.RUSAGE_SELF)
    ms.sort()
    if "--profile" in args:  # chrome trace of one extra step, as bench_train_step --profile
        with torch.autograd.profiler.profile() as prof:
            opt.zero_grad(); loss_fn(m(x), y).backward(); opt.step()
        prof.export_chrome_trace(args["--profile"])
    print(json.dumps({"impl": "pytorch", "model": name, "torch": torch.__version__, "params": n_params, "batch": batch, "size": size,
                      "threads": threads, "channels_last": cl, "reps": reps, "median_ms": round(ms[len(ms) // 2], 1),
                      "min_ms": round(ms[0], 1), "max_ms": round(ms[-1], 1),
                      "minor_faults_per_step": round((after.ru_minflt - before.ru_minflt) / reps),
                      "system_s_per_step": round((after.ru_stime - before.ru_stime) / reps, 3),
                      "user_s_per_step": round((after.ru_utime - before.ru_utime) / reps, 3),
                      "peak_rss_mb": round(after.ru_maxrss / 1e3)}))


if __name__ == "__main__":
    main()
