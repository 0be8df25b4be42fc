"""Workers for bench/peers.py: each loads its models once, then times them on request, so the
driver can alternate implementations in one run without paying start-up per measurement.

  python3 peers_workers.py engine  --threads 2 KEY=FILE.lsr:PRECISION:BATCH ...   (leanseg's Python module)
  python3 peers_workers.py pytorch --threads 2 --size 256 KEY=MODEL:VARIANT ...    (Debian's python3-torch)

PyTorch variants: eager, ts (TorchScript traced, frozen, optimize_for_inference), each with a
"-cl" suffix for channels-last; int8 (FX post-training quantization, qconfig and engine
`onednn`, calibrated on noise), int8-ts (the same, traced and frozen).
Protocol: one line "KEY RUNS" in, one JSON line {key, ms: [...]} out (after 2 warm-up runs,
milliseconds per image: a batch's time divided by its size); "quit" ends. The first line out is
{ready: [...]} once everything is loaded.
"""
import json, os, sys, time


def parse(argv):
    opts, entries = {"--threads": "2", "--size": "256"}, {}
    i = 0
    while i < len(argv):
        if argv[i].startswith("--"):
            opts[argv[i]] = argv[i + 1]; i += 2
        else:
            key, spec = argv[i].split("=", 1); entries[key] = spec; i += 1
    return int(opts["--threads"]), int(opts["--size"]), entries


def serve(runners):
    print(json.dumps({"ready": sorted(runners)}), flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "quit":
            break
        key, runs = parts[0], int(parts[1])
        run, batch = runners[key]
        for _ in range(2): run()
        ms = []
        for _ in range(runs):
            t0 = time.perf_counter(); run(); ms.append((time.perf_counter() - t0) * 1e3 / batch)
        print(json.dumps({"key": key, "ms": ms}), flush=True)


def engine_runners(threads, size, entries):
    import numpy as np
    sys.path.insert(0, os.environ.get("LEANSEG_PYTHON", "build/python"))
    import leanseg
    rng = np.random.default_rng(0)
    runners = {}
    for key, spec in entries.items():
        path, precision, batch = spec.rsplit(":", 2)
        e = leanseg.Engine(path, precision=precision, threads=threads)
        c, h, w = e.input_shape
        x = rng.uniform(-1, 1, (int(batch), c, h, w)).astype(np.float32)
        runners[key] = ((lambda e=e, x=x: e.run(x)), int(batch))
    return runners


def pytorch_model(name):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from train_step_pytorch import M1
    from inference_pytorch import UNet, EfficientUNet
    make = {"mobilenet-aspp-se-unet": lambda: M1(), "mobilenet-aspp-se-unet-lite": lambda: M1(lite=True),
            "unet-32": lambda: UNet(32), "unet": lambda: UNet(64), "efficient-unet": lambda: EfficientUNet()}
    if name not in make:
        raise SystemExit(f"no PyTorch version of '{name}' (have {', '.join(make)})")
    return make[name]().eval()


def pytorch_runners(threads, size, entries):
    import torch
    torch.set_num_threads(threads); torch.manual_seed(0)
    torch.backends.quantized.engine = "onednn"
    runners = {}
    for key, spec in entries.items():
        name, variant = spec.split(":")
        cl = variant.endswith("-cl")
        base = variant[:-3] if cl else variant
        model = pytorch_model(name)
        x = torch.randn(1, 1, size, size)
        if cl:
            model = model.to(memory_format=torch.channels_last); x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(False), torch.no_grad():
            if base in ("int8", "int8-ts"):
                from torch.ao.quantization import get_default_qconfig_mapping
                from torch.ao.quantization.quantize_fx import prepare_fx, convert_fx
                import torch.ao.quantization as tq
                # PyTorch 1.13 has no per-channel transposed convs: those get per-tensor weights.
                qmap = get_default_qconfig_mapping("onednn").set_object_type(torch.nn.ConvTranspose2d, tq.default_qconfig)
                prepared = prepare_fx(model, qmap, example_inputs=(x,))
                for _ in range(4): prepared(torch.randn_like(x))
                model = convert_fx(prepared)
                if base == "int8-ts":
                    model = torch.jit.freeze(torch.jit.trace(model, x))
            elif base == "ts":
                model = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, x)))
            elif base != "eager":
                raise SystemExit(f"unknown PyTorch variant '{variant}'")

        def run(model=model, x=x):
            with torch.inference_mode():
                model(x)
        runners[key] = (run, 1)
    return runners


def main():
    kind = sys.argv[1]
    threads, size, entries = parse(sys.argv[2:])
    make = {"engine": engine_runners, "pytorch": pytorch_runners}[kind]
    serve(make(threads, size, entries))


if __name__ == "__main__":
    main()
