#!/usr/bin/env python3
"""The dependency rule of README.md's Layout section, checked (ctest Layout.*).

Folders of src/ are layers, bottom to top:

    util → io → runtime → data → models → compress → eval → train → {infer, cli}

A file may include headers of its own layer and of layers below it, never above; infer and cli
are peers that do not include each other. A public header (include/leanseg/*.h) belongs to the
layer listed in PUBLIC_HEADER_LAYER and obeys the same rule. The LibTorch-free layers include
neither LibTorch nor (below data) OpenCV. With --no-link-deps LIB..., the given binaries must
not link LibTorch or OpenCV (readelf -d NEEDED entries).

Prints every violation as `file:line: reason` and exits 1 when there is one; a header or folder
the rule does not know is a violation too (add it to the tables below).
"""
import argparse
import pathlib
import re
import subprocess
import sys

LAYERS = ["util", "io", "runtime", "data", "models", "compress", "eval", "train", "infer", "cli"]
# Same rank: neither may include the other.
RANK = {name: i for i, name in enumerate(LAYERS)}
RANK["cli"] = RANK["infer"]

PUBLIC_HEADER_LAYER = {
    # util: the standard library (and libc) only
    "error.h": "util", "fs.h": "util", "limits.h": "util", "memory.h": "util", "plot.h": "util",
    "process.h": "util", "progress.h": "util", "stats.h": "util",
    # io: file formats (safetensors, graph IR, .lsr runtime files, preprocessing, ONNX writer)
    "safetensors.h": "io", "graph.h": "io", "graph_qdq.h": "io", "runtime_file.h": "io",
    "preprocessing.h": "io", "onnx_export.h": "io",
    # runtime: the LibTorch-free engine (oneDNN)
    "runtime.h": "runtime", "runtime_c.h": "runtime",
    # data: images, masks, datasets, prediction geometry (OpenCV)
    "data.h": "data", "prediction.h": "data", "mask_geometry.h": "data",
    # models: LibTorch networks, their graphs and tensor files
    "model.h": "models", "model_stage_impl.h": "models", "ops.h": "models", "graph_export.h": "models",
    "tensor_io.h": "models",
    # compress: pruning, quantization, compact storage, model files
    "compress.h": "compress", "model_file.h": "compress", "quantized_libtorch.h": "compress",
    # eval: metrics, LibTorch inference, evaluation, model info, the bench table
    "metrics.h": "eval", "bench_report.h": "eval", "evaluate.h": "eval", "inference.h": "eval",
    "info.h": "eval",
    # train: the training loop, fine-tuning, LibTorch's thread settings
    "train.h": "train", "finetune.h": "train", "threads.h": "train",
}

TORCH = re.compile(r"^(torch|ATen|c10)/")
OPENCV = re.compile(r"^opencv2/")
# External includes each layer must not use.
FORBIDDEN_EXTERNAL = {
    "util": [TORCH, OPENCV], "io": [TORCH, OPENCV], "runtime": [TORCH, OPENCV],
    "data": [TORCH], "infer": [TORCH],
}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
SOURCE_SUFFIXES = {".h", ".hpp", ".cpp", ".c"}


def layer_of_include(path):
    """The layer an include names, or None for third-party and standard headers."""
    if path.startswith("leanseg/"):
        return PUBLIC_HEADER_LAYER.get(path[len("leanseg/"):], "?")
    first = path.split("/", 1)[0]
    if "/" in path and first in RANK:
        return first
    return None


def check_file(file, layer, rel, errors):
    for lineno, line in enumerate(file.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        m = INCLUDE.match(line)
        if not m:
            continue
        bracket, path = m.groups()
        where = f"{rel}:{lineno}"
        if bracket == '"' and "/" not in path and (file.parent / path).exists():
            continue  # a header of the same folder
        for pattern in FORBIDDEN_EXTERNAL.get(layer, []):
            if pattern.match(path):
                errors.append(f"{where}: layer '{layer}' must not include <{path}> (README.md, Layout)")
        target = layer_of_include(path)
        if target is None:
            continue
        if target == "?":
            errors.append(f"{where}: {path} is in no layer: add it to PUBLIC_HEADER_LAYER in {pathlib.Path(__file__).name}")
        elif target != layer and RANK[target] >= RANK[layer]:
            errors.append(f"{where}: layer '{layer}' includes {path} of layer '{target}', which is not below it "
                          f"(order: {' → '.join(LAYERS[:-2])} → {{infer, cli}})")


def check_sources(root):
    errors = []
    for folder in sorted((root / "src").iterdir()):
        if not folder.is_dir():
            continue
        if folder.name not in RANK:
            errors.append(f"src/{folder.name}: a folder in no layer: add it to LAYERS (README.md, Layout)")
            continue
        for file in sorted(folder.rglob("*")):
            if file.suffix in SOURCE_SUFFIXES:
                check_file(file, folder.name, file.relative_to(root), errors)
    for header in sorted((root / "include" / "leanseg").glob("*.h")):
        rel = header.relative_to(root)
        layer = PUBLIC_HEADER_LAYER.get(header.name)
        if layer is None:
            errors.append(f"{rel}: a public header in no layer: add it to PUBLIC_HEADER_LAYER")
            continue
        check_file(header, layer, rel, errors)
    return errors


def check_link_deps(binaries):
    errors = []
    forbidden = re.compile(r"lib(torch|c10|opencv_)")
    for binary in binaries:
        out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True)
        if out.returncode != 0:
            errors.append(f"{binary}: readelf -d failed: {out.stderr.strip()}")
            continue
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out.stdout)
        if not needed:
            errors.append(f"{binary}: readelf -d lists no NEEDED libraries (not a dynamic ELF file?)")
        for lib in needed:
            if forbidden.match(lib):
                errors.append(f"{binary}: links {lib}; it must link neither LibTorch nor OpenCV")
    return errors


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(pathlib.Path(__file__).resolve().parents[2]))
    parser.add_argument("--no-link-deps", nargs="*", default=[], metavar="BINARY",
                        help="binaries that must link neither LibTorch nor OpenCV")
    args = parser.parse_args()
    errors = check_sources(pathlib.Path(args.root)) + check_link_deps(args.no_link_deps)
    for e in errors:
        print(e)
    if errors:
        print(f"{len(errors)} dependency-rule violation(s)", file=sys.stderr)
        return 1
    print("dependency rule holds: " + " → ".join(LAYERS[:-2]) + " → {infer, cli}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
