"""leanseg's LibTorch-free inference engine from Python (ctypes over the C API, runtime_c.h).

    import numpy as np, leanseg
    engine = leanseg.Engine("model.lsr", precision="int8", threads=2)
    prob = engine.segment(image)           # raw uint8/uint16 image, the file's own preprocessing
    logits = engine.run(x)                 # normalised float32 (C,H,W) or a batch (N,C,H,W)
    mask = prob > engine.threshold

Why ctypes and not a compiled extension: the C API is already the engine's stable boundary
(no C++ exception crosses it), so the module needs no compiler, no Python headers and no
rebuild per Python version; it loads libleanseg_runtime.so and needs only NumPy.
Errors raise leanseg.Error with the engine's message (which names the file at fault).
"""
import ctypes
import json
import os

import numpy as np

from . import _library

__all__ = ["Engine", "Error", "bf16_is_supported"]


class Error(RuntimeError):
    """An error reported by the engine (the C++ message)."""


_ERR_LEN = 4096
_float_p = ctypes.POINTER(ctypes.c_float)


def _load_library():
    path = os.environ.get("LEANSEG_RUNTIME_LIBRARY") or _library.path()
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise Error(f"cannot load the leanseg runtime library '{path}': {e}") from None
    lib.ls_engine_load_flags.restype = ctypes.c_void_p
    lib.ls_engine_load_flags.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint,
                                         ctypes.c_char_p, ctypes.c_size_t]
    for name in ("ls_engine_input_channels", "ls_engine_input_height", "ls_engine_input_width",
                 "ls_engine_output_channels"):
        getattr(lib, name).restype = ctypes.c_int
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    lib.ls_engine_set_input_size.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
    for name in ("ls_engine_run_batch", "ls_engine_probabilities_batch"):
        getattr(lib, name).restype = ctypes.c_int
        getattr(lib, name).argtypes = [ctypes.c_void_p, _float_p, ctypes.c_int, _float_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.ls_engine_preprocessing_json.restype = ctypes.c_long
    lib.ls_engine_preprocessing_json.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.ls_engine_free.argtypes = [ctypes.c_void_p]
    lib.ls_engine_free.restype = None
    lib.ls_bf16_is_supported.argtypes = []
    lib.ls_bf16_is_supported.restype = ctypes.c_int
    return lib


_lib = None


def _runtime():
    global _lib
    if _lib is None:
        _lib = _load_library()
    return _lib


_PRECISIONS = ("fp32", "bf16", "int8")


def bf16_is_supported():
    """True when this CPU can run precision="bf16" (oneDNN's bf16 kernels need AVX-512)."""
    return bool(_runtime().ls_bf16_is_supported())


class Engine:
    """A loaded .lsr model. Not thread-safe: use one Engine per thread (they are independent)."""

    def __init__(self, path, precision="fp32", threads=0, winograd=None, adapt_threads=True):
        if precision not in _PRECISIONS:
            raise Error(f"precision must be one of {', '.join(_PRECISIONS)}, got {precision!r}")
        if not isinstance(threads, int) or threads < 0:
            raise Error(f"threads must be an int >= 0 (0: every core), got {threads!r}")
        lib = _runtime()
        err = ctypes.create_string_buffer(_ERR_LEN)
        # None: the Winograd kernel where it pays on this CPU; True/False: LS_ENGINE_WINOGRAD / _DIRECT_CONVS
        flags = 0 if winograd is None else (1 if winograd else 2)
        # adapt_threads: half the threads while other processes hold the cores (runtime.h);
        # False: LS_ENGINE_FIXED_THREADS, always `threads` (bit-reproducible)
        if not adapt_threads:
            flags |= 4
        handle = lib.ls_engine_load_flags(os.fsencode(path), precision.encode(), threads, flags, err, _ERR_LEN)
        if not handle:
            raise Error(err.value.decode(errors="replace"))
        self._handle = handle
        self.path, self.precision, self.threads = str(path), precision, threads
        n = lib.ls_engine_preprocessing_json(handle, None, 0)
        buf = ctypes.create_string_buffer(n + 1)
        lib.ls_engine_preprocessing_json(handle, buf, n + 1)
        info = json.loads(buf.value.decode())
        self.preprocessing = info["preprocessing"]
        self.size_divisor = int(info["size_divisor"])
        self.threshold = float(self.preprocessing.get("threshold", 0.5))

    def close(self):
        if getattr(self, "_handle", None):
            _runtime().ls_engine_free(self._handle)
            self._handle = None

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check_open(self):
        if not self._handle:
            raise Error(f"engine for '{self.path}' is closed")

    @property
    def input_shape(self):
        """(channels, height, width) the engine is planned for."""
        self._check_open()
        lib = _runtime()
        return (lib.ls_engine_input_channels(self._handle), lib.ls_engine_input_height(self._handle),
                lib.ls_engine_input_width(self._handle))

    def set_input_size(self, height, width):
        self._check_open()
        err = ctypes.create_string_buffer(_ERR_LEN)
        if _runtime().ls_engine_set_input_size(self._handle, int(height), int(width), err, _ERR_LEN) != 0:
            raise Error(err.value.decode(errors="replace"))

    def _call(self, function, x):
        self._check_open()
        x = np.asarray(x)
        single = x.ndim == 3
        if x.ndim not in (3, 4):
            raise Error(f"input must be (C,H,W) or (N,C,H,W), got shape {x.shape}")
        batch = x[None] if single else x
        c, h, w = batch.shape[1:]
        if (c, h, w) != self.input_shape:
            self.set_input_size(h, w)
            if batch.shape[1] != self.input_shape[0]:
                raise Error(f"'{self.path}' takes {self.input_shape[0]} input channel(s), got {c}")
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        # Binary models: one map per image; K-class models: K maps (planar, as the engine writes them).
        k = _runtime().ls_engine_output_channels(self._handle)
        out = np.empty((batch.shape[0], h, w) if k == 1 else (batch.shape[0], k, h, w), dtype=np.float32)
        err = ctypes.create_string_buffer(_ERR_LEN)
        rc = getattr(_runtime(), function)(self._handle, batch.ctypes.data_as(_float_p), batch.shape[0],
                                            out.ctypes.data_as(_float_p), err, _ERR_LEN)
        if rc != 0:
            raise Error(err.value.decode(errors="replace"))
        return out[0] if single else out

    def run(self, x):
        """Logits for normalised float input: (C,H,W) -> (H,W), (N,C,H,W) -> (N,H,W); a K-class model
        gives (K,H,W) and (N,K,H,W)."""
        return self._call("ls_engine_run_batch", x)

    def probabilities(self, x):
        """Foreground probabilities (sigmoid of the logits), or a K-class model's class probabilities
        (softmax over the K maps); shapes as run()."""
        return self._call("ls_engine_probabilities_batch", x)

    def normalise(self, image):
        """A raw image (H,W) or (C,H,W), uint8/uint16/float, scaled as the model file says."""
        p = self.preprocessing
        x = np.asarray(image)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3:
            raise Error(f"image must be (H,W) or (C,H,W), got shape {np.asarray(image).shape}")
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            raise Error("image has NaN or infinite pixels")
        x = x.astype(np.float32)
        if p.get("intensity", "max") == "minmax":
            lo, hi = x.min(axis=(1, 2), keepdims=True), x.max(axis=(1, 2), keepdims=True)
            x = (x - lo) / np.maximum(hi - lo, 1e-12)
        else:
            max_value = float(p.get("max_value", 255.0))
            if x.max(initial=0) > max_value:
                raise Error(f"image values reach {x.max():g}, above the model's max_value {max_value:g} "
                            f"(a {np.asarray(image).dtype} image for a model trained on values up to {max_value:g}?)")
            x = x / max_value
        return (x - float(p.get("mean", 0.0))) / float(p.get("std", 1.0))

    def segment(self, image):
        """Foreground probability (H,W) at the image's own size (a K-class model: (K,H,W) class
        probabilities; argmax over axis 0 gives the labels), with the file's preprocessing:
        'resize' mode resizes to the model's input size (bilinear) and the result back; 'pad'
        mode pads to a multiple of the size divisor and crops back."""
        x = self.normalise(image)
        h, w = x.shape[1:]
        mode = self.preprocessing.get("mode", "resize")
        if mode == "resize":
            ih, iw = int(self.preprocessing["input_height"]), int(self.preprocessing["input_width"])
            return _resize_bilinear(self.probabilities(_resize_to_input(x, ih, iw)), h, w)
        if mode == "pad":
            d = self.size_divisor
            ph, pw = -h % d, -w % d
            padded = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="reflect" if min(h, w) > max(ph, pw) else "edge")
            return self.probabilities(padded)[..., :h, :w]
        raise Error(f"'{self.path}': preprocessing mode '{mode}' is not supported from Python "
                    "(use leanseg-infer or leanseg predict)")


def _resize_to_input(x, height, width):
    """leanseg's resize_image (geometry.cpp): area averaging when shrinking both sides (no
    aliasing), bilinear otherwise."""
    h, w = x.shape[-2:]
    if height <= h and width <= w:
        return _area_weights(h, height) @ x @ _area_weights(w, width).T
    return _resize_bilinear(x, height, width)


def _area_weights(n_in, n_out):
    """(n_out, n_in) matrix: output pixel i averages input [i*s, (i+1)*s), s = n_in / n_out,
    fractional pixels weighted by overlap (OpenCV's INTER_AREA when shrinking)."""
    s = n_in / n_out
    edges = np.arange(n_out + 1) * s
    lo, hi = edges[:-1, None], edges[1:, None]
    pix = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, pix + 1) - np.maximum(lo, pix), 0, None)
    return (overlap / s).astype(np.float32)


def _resize_bilinear(x, height, width):
    """Bilinear resize of (..., H, W) with pixel centres aligned (OpenCV's INTER_LINEAR rule)."""
    h, w = x.shape[-2:]
    if (h, w) == (height, width):
        return x

    def axis(n_in, n_out):
        pos = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (pos - lo).astype(np.float32)

    y0, y1, fy = axis(h, height)
    x0, x1, fx = axis(w, width)
    top = x[..., y0, :] * (1 - fy)[:, None] + x[..., y1, :] * fy[:, None]
    return top[..., x0] * (1 - fx) + top[..., x1] * fx
