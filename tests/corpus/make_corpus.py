#!/usr/bin/python3
"""Generates the malformed-input corpus of issue 17 (no binary file is committed: every input is
written here, from numpy and the standard library, or derived from a tiny model that `leanseg
train` writes first).

    make_corpus.py --leanseg BUILD/leanseg --out DIR      # DIR/cases.json + every input file
    make_corpus.py --seeds DIR                            # seed inputs for the fuzzers (fuzz/)

cases.json lists, per case: the command (argv; "{leanseg}", "{infer}" and "{dir}" are filled in
by run_corpus.py), the exit code it must end with, substrings its output must contain (the
error text, and the file it names), and files that must not exist afterwards (nothing written
before validation). Exit codes (both commands, src/util/cli_conventions.h): 0 success, 1 a
leanseg error (or --skip-errors with failures), 2 a usage error (unknown option, bad or
out-of-range option value, options that do not go together).
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np

# --- file writers ------------------------------------------------------------------------------


def png_bytes(a, bit_depth=8, width=None, height=None):
    """Grey PNG (8 or 16 bit) of a 2-D array; width/height override the IHDR (0x0 images)."""
    a = np.asarray(a)
    h, w = a.shape
    if bit_depth == 16:
        rows = [b"\0" + a[y].astype(">u2").tobytes() for y in range(h)]
    else:
        rows = [b"\0" + a[y].astype(np.uint8).tobytes() for y in range(h)]

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w if width is None else width, h if height is None else height, bit_depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")


def tiff_bytes(pages):
    """Little-endian baseline TIFF, one grey strip per page; uint8, uint16 or float32 pages."""
    out = bytearray(b"II*\0\0\0\0\0")
    ifd_offsets = []
    for p in pages:
        p = np.ascontiguousarray(p)
        data_offset = len(out)
        out += p.tobytes()
        if len(out) % 2:
            out += b"\0"
        bits = p.dtype.itemsize * 8
        fmt = 3 if p.dtype.kind == "f" else 1
        h, w = p.shape
        tags = [(256, 4, w), (257, 4, h), (258, 3, bits), (259, 3, 1), (262, 3, 1), (273, 4, data_offset),
                (277, 3, 1), (278, 4, h), (279, 4, p.nbytes), (339, 3, fmt)]
        ifd_offsets.append(len(out))
        out += struct.pack("<H", len(tags))
        for tag, typ, val in tags:
            out += struct.pack("<HHI", tag, typ, 1) + (struct.pack("<HH", val, 0) if typ == 3 else struct.pack("<I", val))
        out += b"\0\0\0\0"  # next IFD, patched below
    struct.pack_into("<I", out, 4, ifd_offsets[0])
    for a, b in zip(ifd_offsets, ifd_offsets[1:]):
        n = struct.unpack_from("<H", out, a)[0]
        struct.pack_into("<I", out, a + 2 + 12 * n, b)
    return bytes(out)


def disc(h, w, r, cy=None, cx=None):
    yy, xx = np.mgrid[:h, :w]
    cy = h // 2 if cy is None else cy
    cx = w // 2 if cx is None else cx
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r * r


def st_bytes(tensors, metadata=None, header_override=None):
    """safetensors: tensors = [(name, dtype, shape, bytes)]; header_override edits the header dict."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if header_override:
        header_override(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def st_read(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]


def st_write_raw(header, data):
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def fnv1a64(b):
    h = 0xCBF29CE484222325
    for c in b:
        h = ((h ^ c) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def canonical(j):
    """nlohmann::json's dump(): sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(j, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --- a tiny .lsr, written here (the format of src/io/runtime_file.cpp) ------------------------

def conv_attrs(kernel=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=1):
    return [{"kind": "ints", "name": "kernel_shape", "value": list(kernel)},
            {"kind": "ints", "name": "strides", "value": list(strides)},
            {"kind": "ints", "name": "pads", "value": list(pads)},
            {"kind": "ints", "name": "dilations", "value": list(dilations)},
            {"kind": "int", "name": "group", "value": group}]


def tiny_lsr_parts(size=32):
    """image [1,1,S,S] -> Conv 3x3 (2 ch) -> Relu -> Concat(axis 1, with the image) -> Conv 1x1 -> logits."""
    rng = np.random.default_rng(7)
    w1 = rng.normal(0, 0.5, (2, 1, 3, 3)).astype(np.float32)
    b1 = np.array([0.1, -0.1], np.float32)
    w2 = rng.normal(0, 0.5, (1, 3, 1, 1)).astype(np.float32)
    b2 = np.array([0.0], np.float32)
    value = lambda name, c: {"dim_names": ["", "", "", ""], "name": name, "shape": [1, c, size, size]}
    graph = {"name": "corpus-tiny", "inputs": [value("image", 1)], "outputs": [value("logits", 1)], "nodes": [
        {"name": "c1", "op": "Conv", "inputs": ["image", "c1.weight", "c1.bias"], "outputs": ["c1"], "attributes": conv_attrs()},
        {"name": "r1", "op": "Relu", "inputs": ["c1"], "outputs": ["r1"], "attributes": []},
        {"name": "cat", "op": "Concat", "inputs": ["r1", "image"], "outputs": ["cat"],
         "attributes": [{"kind": "int", "name": "axis", "value": 1}]},
        {"name": "head", "op": "Conv", "inputs": ["cat", "head.weight", "head.bias"], "outputs": ["logits"],
         "attributes": conv_attrs((1, 1), pads=(0, 0, 0, 0))}]}
    meta = {"format": "leanseg-runtime", "version": 1, "graph": graph,
            "preprocessing": {"channels": ["gray"], "input_height": size, "input_width": size, "intensity": "max",
                              "max_value": 255.0, "mean": 0.5, "mode": "resize", "std": 0.5, "threshold": 0.5},
            "config": {"arch": "corpus-tiny", "in_channels": 1, "options": {}}, "size_divisor": 32,
            "activation_absmax": {}}
    tensors = [("c1.weight", "F32", w1.shape, w1.tobytes()), ("c1.bias", "F32", b1.shape, b1.tobytes()),
               ("head.weight", "F32", w2.shape, w2.tobytes()), ("head.bias", "F32", b2.shape, b2.tobytes())]
    return meta, tensors


def lsr_bytes(meta, tensors, checksums=True, edit_after_checksum=None):
    meta = json.loads(json.dumps(meta))
    if checksums:
        meta["checksums"] = {"algorithm": "fnv1a-64", "metadata": fnv1a64(canonical(meta)),
                             "tensors": {n: fnv1a64(raw) for n, _, _, raw in tensors}}
    if edit_after_checksum:
        edit_after_checksum(meta)
    return st_bytes(tensors, {"leanseg.runtime": json.dumps(meta, separators=(",", ":"))})


def packed_tiny(zero_point=8, bits=4):
    """tiny_lsr_parts with c1.weight stored as 4-bit codes (q_codes, q_scale, q_zero_point)."""
    meta, tensors = tiny_lsr_parts()
    codes = np.arange(18, dtype=np.uint8) % 16
    packed = bytes((int(codes[i]) | (int(codes[i + 1]) << 4)) for i in range(0, 18, 2))
    scale = np.array([0.05, 0.05], np.float32)
    zp = np.array([zero_point, 8], np.uint8)
    meta["version"] = 2
    meta["packed_weights"] = {"c1.weight": {"bits": bits, "shape": [2, 1, 3, 3]}}
    tensors = [("c1.weight.q_codes", "U8", [len(packed)], packed), ("c1.weight.q_scale", "F32", [2], scale.tobytes()),
               ("c1.weight.q_zero_point", "U8", [2], zp.tobytes())] + tensors[1:]
    return meta, tensors


# --- the corpus -------------------------------------------------------------------------------

class Corpus:
    def __init__(self, out):
        self.out = out
        self.cases = []

    def path(self, rel):
        p = os.path.join(self.out, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def write(self, rel, data):
        p = self.path(rel)
        with open(p, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        return "{dir}/" + rel

    def case(self, name, cmd, code, expect, absent=()):
        self.cases.append({"name": name, "cmd": cmd, "code": code, "expect": list(expect), "absent": list(absent)})


def write_folder_dataset(c, rel, n=4, size=40, mask_fn=None):
    for i in range(n):
        m = disc(size, size, 8 + 2 * i)
        c.write(f"{rel}/images/im{i}.png", png_bytes(np.where(m, 200, 40)))
        mask = m * 255 if mask_fn is None else mask_fn(i, m)
        c.write(f"{rel}/masks/im{i}.png", png_bytes(mask))


def ellipse_outline(h, w, gap=0):
    t = np.linspace(0, 2 * np.pi, 2000, endpoint=False)
    a = np.zeros((h, w), np.uint8)
    cy, cx, ry, rx = h / 2, w / 2, h * 0.3, w * 0.35
    for ang in t:
        if gap and ang < gap / max(rx, ry):
            continue
        a[int(round(cy + ry * np.sin(ang))), int(round(cx + rx * np.cos(ang)))] = 255
    return a


def write_hc18(c, rel, csv, gap=0):
    h, w = 48, 64
    for stem in ("001_HC", "002_HC"):
        c.write(f"{rel}/training_set/{stem}.png", png_bytes(np.where(disc(h, w, 14), 190, 50)))
        c.write(f"{rel}/training_set/{stem}_Annotation.png", png_bytes(ellipse_outline(h, w, gap if stem == "002_HC" else 0)))
    c.write(f"{rel}/training_set_pixel_size_and_HC.csv", csv)


def train_base_model(leanseg, out):
    """A tiny trained model file (efficient-unet at 32x32, one epoch on 4 discs; ~3 s)."""
    ds = os.path.join(out, "base", "data")
    c = Corpus(out)
    write_folder_dataset(c, "base/data")
    run = os.path.join(out, "base", "run")
    shutil.rmtree(run, ignore_errors=True)
    r = subprocess.run([leanseg, "--threads", "2", "train", "--preset", "demo", "--model", "efficient-unet", "--data", ds,
                        "--out", run, "--epochs", "1", "--input-size", "32", "--batch-size", "4", "--no-progress"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.exit("make_corpus: training the base model failed:\n" + r.stdout)
    return os.path.join(run, "best.safetensors")


def model_variant(c, rel, base, edit_meta=None, edit_tensors=None):
    """The base model file with its leanseg metadata (a dict) and/or tensor bytes edited."""
    header, data = st_read(base)
    meta = json.loads(header["__metadata__"]["leanseg"])
    if edit_meta:
        r = edit_meta(meta)
        if r is not None:
            meta = r
    header["__metadata__"]["leanseg"] = meta if isinstance(meta, str) else json.dumps(meta)
    data = bytearray(data)
    if edit_tensors:
        edit_tensors(header, data)
    return c.write(rel, st_write_raw(header, bytes(data)))


def set_option(key, value, arch=None):
    def edit(meta):
        if arch:
            meta["config"]["arch"] = arch
            meta["config"]["options"] = {}
        meta["config"]["options"][key] = value
    return edit


def poke_float(name, value):
    def edit(header, data):
        begin = header[name]["data_offsets"][0]
        struct.pack_into("<f", data, begin + 4, value)
    return edit


def build(c, leanseg):
    L, I = "{leanseg}", "{infer}"
    base = train_base_model(leanseg, c.out)
    base_rel = "{dir}/" + os.path.relpath(base, c.out)
    img = c.write("images/good.png", png_bytes(np.where(disc(40, 40, 10), 200, 40)))
    lsr_meta, lsr_tensors = tiny_lsr_parts()
    tiny = c.write("lsr/tiny.lsr", lsr_bytes(lsr_meta, lsr_tensors))
    bench = ["--bench", "--runs", "1", "--warmup", "0", "--threads", "1"]

    # Controls: what the malformed cases are derived from works.
    c.case("control_tiny_lsr_segments", [I, tiny, img, "-o", "{dir}/out/control_lsr", "--threads", "1"], 0, ["good"])
    c.case("control_base_model_info", [L, "info", "--model", base_rel, "--input-size", "32"], 0, ["enc0"])

    # --- safetensors containers ---------------------------------------------------------------
    f32 = np.arange(4, dtype=np.float32).tobytes()
    st = lambda name, data: c.write(f"st/{name}.lsr", data)
    good = st_bytes([("w", "F32", [4], f32)], {"a": "b"})
    n = len(good) - 8 - 16
    cases = {
        "st_empty_file": (b"", ["0 bytes", "shorter than"]),
        "st_five_bytes": (b"\x01\x02\x03\x04\x05", ["shorter than"]),
        "st_header_length_2_63": (struct.pack("<Q", 1 << 63) + b"{}", ["header length"]),
        "st_header_length_beyond_file": (struct.pack("<Q", 1000) + b"{}" + b" " * 30, ["header length"]),
        "st_truncated_data": (good[:-5], ["truncated file"]),
        "st_bad_json": (struct.pack("<Q", 16) + b"{not json at all", ["not valid JSON"]),
        "st_header_is_array": (struct.pack("<Q", 8) + b"[1,2,3] ", ["not an object"]),
        "st_offsets_out_of_range": (st_bytes([("w", "F32", [4], f32)], None, lambda h: h["w"].update(data_offsets=[0, 1 << 40])), ["'w'"]),
        "st_offsets_reversed": (st_bytes([("w", "F32", [0], b"")], None, lambda h: h["w"].update(data_offsets=[8, 0])), ["'w'"]),
        "st_overlapping_tensors": (st_bytes([("a", "F32", [4], f32), ("b", "F32", [4], f32)], None,
                                            lambda h: h["b"].update(data_offsets=[8, 24])), ["overlap"]),
        "st_shape_overflow_2_62": (st_bytes([("w", "F32", [1 << 62, 4], b"")]), ["'w'", "overflow"]),
        "st_negative_dim": (st_bytes([("w", "F32", [-1, 4], b"")]), ["'w'", "negative"]),
        "st_unknown_dtype": (st_bytes([("w", "F99", [4], f32)]), ["F99"]),
        "st_dtype_size_mismatch": (st_bytes([("w", "F32", [4], f32[:12])]), ["'w'"]),
        "st_metadata_not_string": (st_bytes([("w", "F32", [4], f32)], {"a": 1}), ["metadata"]),
        "st_hole_between_tensors": (st_bytes([("a", "F32", [4], f32), ("b", "F32", [4], f32)], None,
                                             lambda h: h["b"].update(data_offsets=[20, 36])), ["'b'"]),
        "st_not_a_runtime_file": (good, ["leanseg.runtime"]),
    }
    for name, (data, expect) in cases.items():
        p = st(name, data)
        c.case(name, [I, p] + bench, 1, expect + [name])
    # The same reader behind model files (leanseg's loader).
    for name, data, expect in [("model_st_truncated", good[:30], []), ("model_st_shape_overflow", cases["st_shape_overflow_2_62"][0], ["overflow"])]:
        p = c.write(f"models/{name}.safetensors", data)
        c.case(name, [L, "info", "--model", p], 1, expect + [name])
    p = c.write("models/model_st_no_leanseg_metadata.safetensors", good)
    c.case("model_st_no_leanseg_metadata", [L, "info", "--model", p], 1, ["not a leanseg model file", "model_st_no_leanseg_metadata"])

    # --- model metadata (config and preprocessing of a model file) -----------------------------
    lite = "mobilenet-aspp-se-unet-lite"
    variants = [
        ("meta_se_reduction_0", set_option("se_reduction", 0, lite), ["se_reduction"], "info"),
        ("meta_aspp_pool_groups_0", set_option("aspp_pool_groups", 0, lite), ["aspp_pool_groups"], "predict"),
        ("meta_attention_heads_0", set_option("attention_heads", 0), ["attention_heads"], "export"),
        ("meta_attention_heads_0_latency", set_option("attention_heads", 0), ["attention_heads"], "latency"),
        ("meta_se_reduction_0_teacher", set_option("se_reduction", 0, lite), ["se_reduction"], "distill"),
        ("meta_negative_channels", set_option("channels", [-8, 8, 16, 16, 32, 32]), ["channels"], "info"),
        ("meta_channels_too_wide", set_option("channels", [8, 8, 16, 16, 32, 1 << 20]), ["channels"], "info"),
        ("meta_dropout_5", set_option("dropout", 5, lite), ["dropout"], "info"),
        ("meta_reduction_is_string", set_option("reduction", "two"), ["reduction"], "info"),
        ("meta_channels_not_a_list", set_option("channels", 8), ["channels"], "eval"),
        ("meta_unknown_option", set_option("wings", 2), ["wings"], "info"),
        ("meta_unknown_arch", lambda m: m["config"].update(arch="resnet-9000"), ["resnet-9000"], "info"),
        ("meta_in_channels_0", lambda m: m["config"].update(in_channels=0), ["in_channels"], "info"),
        ("meta_format_version_string", lambda m: m.update(format_version="1"), ["format_version"], "info"),
        ("meta_format_version_99", lambda m: m.update(format_version=99), ["upgrade leanseg"], "info"),
        ("meta_not_json", lambda m: "{\"format_version\": 1, ", ["not valid JSON"], "info"),
        ("meta_no_config", lambda m: m.pop("config") and None, ["'config'"], "info"),
        ("meta_input_size_1e9", lambda m: m["preprocessing"].update(input_height=1000000000, input_width=1000000000), ["input"], "export_meta"),
        ("meta_std_0", lambda m: m["preprocessing"].update(std=0), ["std"], "predict"),
        ("meta_channels_mismatch", lambda m: m["preprocessing"].update(channels=["gray", "gray"]), ["channels"], "info"),
        ("meta_threshold_string", lambda m: m["preprocessing"].update(threshold="half"), ["threshold"], "eval"),
    ]
    for name, edit, expect, how in variants:
        p = model_variant(c, f"models/{name}.safetensors", base, edit_meta=edit)
        c.case(name, model_command(how, p, name, img), 1, expect + [name], absent=[f"{{dir}}/out/{name}"])
    weights = [
        ("weights_nan", poke_float("enc0.0.0.weight", float("nan")), ["enc0.0.0.weight"], "predict"),
        ("weights_inf", poke_float("head.weight", float("inf")), ["head.weight"], "eval"),
        ("weights_nan_export", poke_float("enc0.0.0.weight", float("nan")), ["enc0.0.0.weight"], "export"),
    ]
    for name, edit, expect, how in weights:
        p = model_variant(c, f"models/{name}.safetensors", base, edit_tensors=edit)
        c.case(name, model_command(how, p, name, img), 1, expect + [name], absent=[f"{{dir}}/out/{name}"])

    def wrong_dtype(header, data):
        header["head.weight"]["dtype"] = "I32"  # same size: only the dtype check can catch it
    p = model_variant(c, "models/weights_wrong_dtype.safetensors", base, edit_tensors=wrong_dtype)
    c.case("weights_wrong_dtype", [L, "info", "--model", p], 1, ["head.weight", "weights_wrong_dtype"])

    def rename_tensor(header, data):
        header["head.bias_renamed"] = header.pop("head.bias")
    p = model_variant(c, "models/weights_missing_tensor.safetensors", base, edit_tensors=rename_tensor)
    c.case("weights_missing_tensor", [L, "info", "--model", p], 1, ["head.bias", "weights_missing_tensor"])

    # --- .lsr runtime files ----------------------------------------------------------------------
    def lsr_case(name, edit=None, expect=(), checksums=False, tensors=None, after=None, meta=None, extra=None):
        m, t = (meta, tensors) if meta is not None else tiny_lsr_parts()
        m = json.loads(json.dumps(m))
        if edit:
            edit(m)
        p = c.write(f"lsr/{name}.lsr", lsr_bytes(m, tensors if tensors is not None else t, checksums, after))
        c.case(name, [I, p] + (extra or bench), 1, list(expect) + [name])

    node = lambda m, i: m["graph"]["nodes"][i]
    def set_attr(i, attr, value):
        def edit(m):
            for a in node(m, i)["attributes"]:
                if a["name"] == attr:
                    a["value"] = value
        return edit
    def set_input_shape(shape):
        def edit(m):
            m["graph"]["inputs"][0]["shape"] = shape
            m["graph"]["outputs"][0]["shape"] = shape
        return edit
    lsr_case("lsr_conv_strides_0", set_attr(0, "strides", [0, 0]), ["strides"])
    lsr_case("lsr_conv_strides_negative", set_attr(0, "strides", [-1, 1]), ["strides"])
    lsr_case("lsr_conv_kernel_0", set_attr(0, "kernel_shape", [0, 0]), ["kernel"])
    lsr_case("lsr_conv_dilations_0", set_attr(0, "dilations", [0, 1]), ["dilations"])
    lsr_case("lsr_conv_pads_negative", set_attr(0, "pads", [-1, 1, 1, 1]), ["pads"])
    lsr_case("lsr_conv_group_0", set_attr(0, "group", 0), ["group"])
    lsr_case("lsr_concat_axis_17", set_attr(2, "axis", 17), ["axis"])
    lsr_case("lsr_input_2_20_squared", set_input_shape([1, 1, 1 << 20, 1 << 20]), ["input"])
    lsr_case("lsr_input_wraps_2_32_plus_32", set_input_shape([1, 1, (1 << 32) + 32, 32]), ["4294967328"])
    lsr_case("lsr_input_channels_2_63", set_input_shape([1, (1 << 63) - 1, 32, 32]), ["image"])
    lsr_case("lsr_unknown_op", lambda m: node(m, 1).update(op="Gelu"), ["Gelu"])
    lsr_case("lsr_undefined_value", lambda m: node(m, 1).update(inputs=["nowhere"]), ["nowhere"])
    lsr_case("lsr_size_divisor_0", lambda m: m.update(size_divisor=0), ["size_divisor"])
    lsr_case("lsr_version_99", lambda m: m.update(version=99), ["version"])
    lsr_case("lsr_wrong_format_name", lambda m: m.update(format="leanseg-model"), ["format"])
    lsr_case("lsr_graph_not_object", lambda m: m.update(graph=[1, 2]), ["graph"])
    lsr_case("lsr_attribute_wrong_kind", lambda m: node(m, 0)["attributes"][4].update(kind="float", value=1.5), ["group"])
    seg = lambda name: [img, "-o", f"{{dir}}/out/{name}", "--threads", "1"]
    pre = lambda **kw: (lambda m: m["preprocessing"].update(**kw))
    lsr_case("lsr_pre_two_channels_graph_takes_one", pre(channels=["gray", "gray"]), ["2 input channels"], extra=seg("pre2"))
    lsr_case("lsr_pre_std_0", pre(std=0), ["std must be > 0"], extra=seg("prestd"))
    lsr_case("lsr_pre_input_size_1e9", pre(input_height=10 ** 9, input_width=10 ** 9), ["exceeds the limit"], extra=seg("prehuge"))
    lsr_case("lsr_pre_threshold_5", pre(threshold=5), ["threshold"], extra=seg("prethr"))
    lsr_case("lsr_pre_max_value_0", pre(max_value=0), ["max_value"], extra=seg("premax"))
    lsr_case("lsr_no_preprocessing", lambda m: m.pop("preprocessing") and None, ["preprocessing"], extra=seg("prenone"))
    lsr_case("lsr_absmax_negative", lambda m: m.update(activation_absmax={"c1": -1.0}), ["activation_absmax"])
    lsr_case("lsr_output_declared_3_channels", lambda m: m["graph"]["outputs"][0].update(shape=[1, 3, 32, 32]),
             ["output 'logits' is declared as [1, 3, 32, 32] but the graph computes [1, 1, 32, 32]"])
    lsr_case("lsr_output_declared_other_size", lambda m: m["graph"]["outputs"][0].update(shape=[1, 1, 16, 16]),
             ["is declared as [1, 1, 16, 16]"])
    lsr_case("lsr_two_outputs", lambda m: m["graph"]["outputs"].append(dict(m["graph"]["outputs"][0], name="c1")), ["one output"])
    _, t = tiny_lsr_parts()
    w_bad = np.zeros((2, 1, 5, 5), np.float32)
    lsr_case("lsr_weight_shape_disagrees", None, ["c1.weight"], tensors=[("c1.weight", "F32", w_bad.shape, w_bad.tobytes())] + t[1:])
    half = np.zeros(18, np.float16).tobytes()
    lsr_case("lsr_weight_dtype_f16", None, ["c1.weight"], tensors=[("c1.weight", "F16", [2, 1, 3, 3], half)] + t[1:])
    nan_w = bytearray(t[0][3])
    struct.pack_into("<f", nan_w, 8, float("nan"))
    lsr_case("lsr_nan_weight", None, ["c1.weight"], checksums=True, tensors=[(t[0][0], t[0][1], t[0][2], bytes(nan_w))] + t[1:])
    # Integrity: a flipped exponent bit in a weight, an edited graph, a checksum list that does not match.
    flipped = bytearray(lsr_bytes(*tiny_lsr_parts()))
    header_len = struct.unpack("<Q", flipped[:8])[0]
    flipped[8 + header_len + 3] ^= 0x40  # c1.weight[0]'s exponent
    p = c.write("lsr/lsr_flipped_exponent_bit.lsr", bytes(flipped))
    c.case("lsr_flipped_exponent_bit", [I, p] + bench, 1, ["c1.weight", "checksum", "lsr_flipped_exponent_bit"])
    lsr_case("lsr_graph_edited_after_checksum", None, ["metadata fails its checksum"], checksums=True,
             after=lambda m: m["graph"]["nodes"][0]["attributes"][2].update(value=[2, 2, 2, 2]))
    lsr_case("lsr_checksum_missing_tensor", None, ["head.bias", "no checksum"], checksums=True,
             after=lambda m: m["checksums"]["tensors"].pop("head.bias"))
    pm, pt = packed_tiny(zero_point=255)
    lsr_case("lsr_4bit_zero_point_255", None, ["c1.weight", "zero point"], checksums=True, meta=pm, tensors=pt)
    pm, pt = packed_tiny(bits=3)
    lsr_case("lsr_packed_3_bits", None, ["3 bits"], checksums=True, meta=pm, tensors=pt)
    pm, pt = packed_tiny()
    p = c.write("lsr/control_packed.lsr", lsr_bytes(pm, pt))
    c.case("control_packed_lsr", [I, p] + bench, 0, ["ms"])
    p = c.write("lsr/lsr_truncated.lsr", lsr_bytes(*tiny_lsr_parts())[:-7])
    c.case("lsr_truncated", [I, p] + bench, 1, ["lsr_truncated"])
    p = c.write("lsr/lsr_old_file_without_checksums.lsr", lsr_bytes(*tiny_lsr_parts(), checksums=False))
    c.case("lsr_old_file_without_checksums_loads_with_note", [I, p] + bench, 0, ["not verified", "lsr_old_file_without_checksums"])

    # --- images ------------------------------------------------------------------------------------
    g = np.where(disc(40, 40, 10), 200, 40).astype(np.uint8)
    images = [
        # Read since #20, not refused, but never silently: page 0 / the image's own range, with a warning.
        ("img_multipage.tif", tiff_bytes([g, g]), 0, ["has 2 pages; reading page 0 (--page N chooses another)"]),
        ("img_float.tif", tiff_bytes([g.astype(np.float32) / 255]), 0, ["has float pixels; mapped by its own range"]),
        ("img_empty.png", b"", 1, ["cannot be decoded"]),
        ("img_truncated.png", png_bytes(g)[:60], 1, ["cannot be decoded"]),
        ("img_zero_by_zero.png", png_bytes(np.zeros((1, 1)), width=0, height=0), 1, ["cannot be decoded"]),
        ("img_garbage.jpg", b"\xff\xd8\xff\xe0 this is not a JPEG " * 10, 1, ["cannot be decoded"]),
    ]
    for fname, data, code, expect in images:
        p = c.write(f"images/{fname}", data)
        stem = fname.split(".")[0]
        c.case(stem + "_infer", [I, tiny, p, "-o", f"{{dir}}/out/{stem}_infer", "--threads", "1"], code, expect + [fname])
        if stem in ("img_multipage", "img_float", "img_truncated"):
            c.case(stem + "_predict", [L, "--threads", "1", "predict", "--model", base_rel, p, "--out", f"{{dir}}/out/{stem}_predict"],
                   code, expect + [fname])
    c.case("img_multipage_page_out_of_range", [I, tiny, "{dir}/images/img_multipage.tif", "-o", "{dir}/out/page5",
                                               "--threads", "1", "--page", "5"],
           1, ["img_multipage.tif' has 2 pages; --page 5 is out of range (0..1)"])
    p = c.write("images/img_missing_dir/none.png", b"")
    os.remove(c.path("images/img_missing_dir/none.png"))
    c.case("img_missing_file", [I, tiny, "{dir}/images/img_missing_dir/none.png", "-o", "{dir}/out/missing"], 1, ["none.png"])
    p = c.write("images/img_16bit.png", png_bytes(g.astype(np.uint16) * 257, bit_depth=16))
    c.case("control_16bit_png_is_scaled_by_its_depth", [I, tiny, p, "-o", "{dir}/out/img16", "--threads", "1"], 0, ["img_16bit"])

    # --- HC18 ----------------------------------------------------------------------------------------
    header = "filename,pixel size(mm),head circumference (mm)"
    ok_rows = ["001_HC.png,0.1,50.5", "002_HC.png,0.12,60.1"]
    hc18 = [
        ("hc18_cr_only_line_ends", "\r".join([header] + ok_rows) + "\r", 0, ["Dice"], 0),
        ("hc18_missing_column", "\r\n".join([header, "001_HC.png,0.1", ok_rows[1]]), 1, ["line 2", "3 columns"], 0),
        ("hc18_wrong_header", "\r\n".join(ok_rows), 1, ["line 1", "header"], 0),
        ("hc18_pixel_size_not_a_number", "\r\n".join([header, "001_HC.png,0.1mm,50", ok_rows[1]]), 1, ["'0.1mm' is not a number"], 0),
        ("hc18_pixel_size_negative", "\r\n".join([header, "001_HC.png,-0.1,50", ok_rows[1]]), 1, ["must be positive"], 0),
        ("hc18_row_listed_twice", "\r\n".join([header] + ok_rows + [ok_rows[0]]), 1, ["listed twice"], 0),
        ("hc18_empty_csv", "", 1, ["empty"], 0),
        ("hc18_image_without_row", "\r\n".join([header, ok_rows[0]]), 1, ["002_HC.png", "has no row"], 0),
        ("hc18_open_outline_closed_with_warning", "\r\n".join([header] + ok_rows), 0, ["open outline", "002_HC_Annotation.png"], 20),
    ]
    for name, csv, code, expect, gap in hc18:
        write_hc18(c, f"hc18/{name}", csv, gap)
        names = [] if code == 0 and name != "hc18_open_outline_closed_with_warning" else ["training_set"]
        c.case(name, [L, "--threads", "1", "eval", "--model", base_rel, "--data", f"{{dir}}/hc18/{name}", "--dataset", "hc18"],
               code, expect + names)

    # --- folder datasets -----------------------------------------------------------------------------
    write_folder_dataset(c, "folder/non_binary_mask", mask_fn=lambda i, m: np.where(m, 255, 0) - (np.arange(40) % 2 == 0)[None, :] * m * 127)
    c.case("folder_non_binary_mask", [L, "--threads", "1", "eval", "--model", base_rel, "--data", "{dir}/folder/non_binary_mask"], 1,
           ["masks/im0.png", "128"])
    write_folder_dataset(c, "folder/missing_mask")
    os.remove(c.path("folder/missing_mask/masks/im2.png"))
    c.case("folder_missing_mask", [L, "--threads", "1", "eval", "--model", base_rel, "--data", "{dir}/folder/missing_mask"], 1,
           ["masks/im2.png", "missing"])
    write_folder_dataset(c, "folder/mask_size")
    c.write("folder/mask_size/masks/im1.png", png_bytes(np.zeros((40, 41))))
    c.case("folder_mask_size_differs", [L, "--threads", "1", "eval", "--model", base_rel, "--data", "{dir}/folder/mask_size"], 1,
           ["masks/im1.png", "41x40"])
    os.makedirs(c.path("folder/no_images/images/x"), exist_ok=True)
    os.makedirs(c.path("folder/no_images/masks/x"), exist_ok=True)
    c.case("folder_without_images", [L, "--threads", "1", "eval", "--model", base_rel, "--data", "{dir}/folder/no_images"], 1,
           ["no_images/images", "contains no"])

    # --- split files ---------------------------------------------------------------------------------
    data = "{dir}/base/data"
    splits = [
        ("split_val_is_string", {"val": "im0", "train": ["im1"]}, ["'val'"]),
        ("split_ids_are_numbers", {"val": [0, 1], "train": ["im2"]}, ["image ids (strings)"]),
        ("split_unknown_id", {"val": ["im99"], "train": ["im1"]}, ["im99"]),
        ("split_is_array", [1, 2], ["JSON object"]),
    ]
    for name, content, expect in splits:
        p = c.write(f"splits/{name}.json", json.dumps(content))
        c.case(name, [L, "--threads", "1", "eval", "--model", base_rel, "--data", data, "--split", p], 1, expect + [name])
    p = c.write("splits/calibration_split_ids_are_lists.json", json.dumps({"train": [["im0"]], "val": ["im1"]}))
    c.case("calibration_split_ids_are_lists", [L, "export", "--model", base_rel, "--format", "runtime", "-o", "{dir}/out/calib.lsr",
                                               "--calibrate", data, "--calibration-split", p], 1,
           ["image ids (strings)", "calibration_split_ids_are_lists"], absent=["{dir}/out/calib.lsr"])
    p = c.write("splits/split_not_json.json", "{\"val\": [\"im0\", ")
    c.case("split_not_json", [L, "--threads", "1", "eval", "--model", base_rel, "--data", data, "--split", p], 1, ["split_not_json"])

    # --- predict: name collisions and a bad image among good ones ---------------------------------
    a_png = c.write("predict/same/a.png", png_bytes(g))
    a_tif = c.write("predict/same/a.tif", tiff_bytes([g]))
    c.case("predict_same_stem_inputs", [L, "--threads", "1", "predict", "--model", base_rel, a_png, a_tif, "--out", "{dir}/out/same_stem"], 1,
           ["a.png", "a.tif"], absent=["{dir}/out/same_stem"])
    c.case("infer_same_stem_inputs", [I, tiny, a_png, a_tif, "-o", "{dir}/out/same_stem_infer"], 1, ["a.png", "a.tif"],
           absent=["{dir}/out/same_stem_infer"])
    c.write("predict/mixed/good.png", png_bytes(g))
    c.write("predict/mixed/bad.png", png_bytes(g)[:50])
    c.case("predict_skip_errors_summary", [L, "--threads", "1", "predict", "--model", base_rel, "{dir}/predict/mixed", "--out",
                                           "{dir}/out/mixed", "--skip-errors"], 1, ["bad.png", "1 of 2"])
    c.case("predict_one_bad_image_stops_without_skip_errors", [L, "--threads", "1", "predict", "--model", base_rel, "{dir}/predict/mixed",
                                                                "--out", "{dir}/out/mixed_stop"], 1, ["bad.png"])

    # --- bad CLI values ------------------------------------------------------------------------------
    c.case("cli_export_input_size_65536", [L, "export", "--model", base_rel, "--format", "runtime", "--input-size", "65536", "-o",
                                           "{dir}/out/huge.lsr"], 2, ["65536"], absent=["{dir}/out/huge.lsr"])
    c.case("cli_export_input_size_100000", [L, "export", "--model", "efficient-unet", "--format", "runtime", "--input-size", "100000", "-o",
                                            "{dir}/out/huge2.lsr"], 2, ["100000"], absent=["{dir}/out/huge2.lsr"])
    c.case("cli_train_qat_3", [L, "train", "--preset", "demo", "--model", "efficient-unet", "--data", data, "--out", "{dir}/out/qat3",
                               "--epochs", "1", "--input-size", "32", "--qat", "3"], 2, ["--qat", "3 not in"], absent=["{dir}/out/qat3"])
    c.case("cli_train_missing_teacher", [L, "train", "--preset", "demo", "--data", data, "--out", "{dir}/out/teacher", "--distill",
                                         "{dir}/models/no_such_teacher.safetensors"], 1, ["no_such_teacher"], absent=["{dir}/out/teacher"])
    c.case("cli_info_input_size_100", [L, "info", "--model", "unet", "--input-size", "100"], 2, ["multiple of 32"])
    c.case("cli_predict_tta_unknown", [L, "predict", "--model", base_rel, img, "--out", "{dir}/out/tta", "--tta", "diagonal"], 2,
           ["--tta", "diagonal"], absent=["{dir}/out/tta"])
    c.case("cli_infer_threads_5000", [I, tiny, "--bench", "--threads", "5000"], 2, ["--threads", "5000"])
    c.case("cli_infer_precision_fp8", [I, tiny, "--bench", "--precision", "fp8"], 2, ["fp8"])
    c.case("cli_train_val_fraction_2", [L, "train", "--data", data, "--out", "{dir}/out/vf", "--val-fraction", "2"], 2,
           ["--val-fraction"], absent=["{dir}/out/vf"])
    c.case("cli_infer_bench_int8_uncalibrated", [I, tiny, "--bench", "--precision", "int8", "--runs", "1"], 1, ["calibrat"])


def model_command(how, p, name, img):
    L = "{leanseg}"
    out = f"{{dir}}/out/{name}"
    if how == "info":
        return [L, "info", "--model", p]
    if how == "predict":
        return [L, "--threads", "1", "predict", "--model", p, img, "--out", out]
    if how == "eval":
        return [L, "--threads", "1", "eval", "--model", p, "--data", "{dir}/base/data"]
    if how == "export":
        return [L, "export", "--model", p, "--format", "runtime", "-o", out]
    if how == "export_meta":
        return [L, "export", "--model", p, "--format", "runtime", "-o", out]
    if how == "latency":
        return [L, "--threads", "1", "latency", "--model", p]
    if how == "distill":
        return [L, "train", "--preset", "demo", "--model", "efficient-unet", "--data", "{dir}/base/data", "--out", out, "--epochs", "1",
                "--input-size", "32", "--distill", p]
    raise ValueError(how)


def write_seeds(out):
    """Small valid inputs for the fuzzers: fuzz/<harness> corpora start from these."""
    def put(sub, name, data):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
        with open(os.path.join(out, sub, name), "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
    meta, tensors = tiny_lsr_parts()
    put("runtime_file", "tiny.lsr", lsr_bytes(meta, tensors))
    put("runtime_file", "tiny_unverified.lsr", lsr_bytes(meta, tensors, checksums=False))
    put("runtime_file", "packed.lsr", lsr_bytes(*packed_tiny()))
    put("safetensors", "tiny.lsr", lsr_bytes(meta, tensors))
    put("safetensors", "two.safetensors", st_bytes([("a", "F32", [2, 2], np.ones(4, np.float32).tobytes()),
                                                   ("b", "U8", [3], b"\1\2\3")], {"k": "v"}))
    put("metadata", "lsr_meta.json", json.dumps(meta))
    put("metadata", "preprocessing.json", json.dumps(meta["preprocessing"]))
    header = "filename,pixel size(mm),head circumference (mm)"
    put("hc18_csv", "crlf.csv", header + "\r\n001_HC.png,0.1,50\r\n")
    put("hc18_csv", "cr.csv", header + "\r001_HC.png,0.1,50\r002_HC.png,0.2,3")
    put("hc18_csv", "bom_lf.csv", "\xef\xbb\xbf" + header + "\n001_HC.png,0.1,50\n")
    g = np.where(disc(16, 16, 5), 200, 40).astype(np.uint8)
    put("image", "grey.png", png_bytes(g))
    put("image", "grey16.png", png_bytes(g.astype(np.uint16) * 257, bit_depth=16))
    put("image", "grey.tif", tiff_bytes([g]))
    put("image", "two_pages.tif", tiff_bytes([g, g]))
    put("image", "float.tif", tiff_bytes([g.astype(np.float32)]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leanseg", help="the leanseg executable (trains the base model)")
    ap.add_argument("--out", help="corpus folder (emptied first)")
    ap.add_argument("--seeds", help="write fuzzer seed inputs into this folder instead")
    a = ap.parse_args()
    if a.seeds:
        write_seeds(a.seeds)
        return
    if not (a.leanseg and a.out):
        ap.error("--leanseg and --out are needed (or --seeds)")
    shutil.rmtree(a.out, ignore_errors=True)
    os.makedirs(a.out)
    c = Corpus(os.path.abspath(a.out))
    build(c, os.path.abspath(a.leanseg))
    names = [k["name"] for k in c.cases]
    assert len(names) == len(set(names)), "duplicate case names"
    with open(os.path.join(a.out, "cases.json"), "w") as f:
        json.dump(c.cases, f, indent=1)
    print(f"make_corpus: {len(c.cases)} cases in {a.out}")


if __name__ == "__main__":
    main()
