#!/usr/bin/env python3
"""Writes preprocessing.hc_outline_offset_px into a copy of a leanseg model file trained before
2026-12-07, so that its HC is measured on the annotated line's middle as a newer file's is.

    python3 scripts/set_hc_outline_offset.py OLD.safetensors OUT.safetensors OFFSET_PX [THRESHOLD]

OFFSET_PX is what a run on the same split records (any `leanseg train --seed S` on HC18 prints it
in its final report and writes it to its model file: 0.8065483272947355 px for split seed 42).
THRESHOLD, when given, also replaces the file's mask threshold (the ablation of a threshold
derived from the loss weighting, docs/results.md). The tensors are copied byte for byte; only
the JSON header changes."""
import json
import struct
import sys


def main(src, dst, offset, threshold=None):
    data = open(src, "rb").read()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    meta = json.loads(header["__metadata__"]["leanseg"])
    meta["preprocessing"]["hc_outline_offset_px"] = offset
    if threshold is not None:
        meta["preprocessing"]["threshold"] = threshold
    header["__metadata__"]["leanseg"] = json.dumps(meta, separators=(",", ":"))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header to 8 bytes
    with open(dst, "wb") as out:
        out.write(struct.pack("<Q", len(text)) + text + data[8 + size:])


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) == 5 else None)
