"""The `leanseg` Python module (python/leanseg) against a real .lsr file and leanseg-infer.

Run by ctest with LEANSEG_CLI, LEANSEG_INFER and LEANSEG_RUNTIME_LIBRARY set (or against an
install: PYTHONPATH=<prefix>/lib/python3/dist-packages, the library found beside the module).
"""
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import leanseg

CLI = os.environ["LEANSEG_CLI"]
INFER = os.environ["LEANSEG_INFER"]


class EngineFromPython(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.lsr = os.path.join(cls.dir.name, "m3.lsr")
        subprocess.run([CLI, "export", "--model", "efficient-unet", "--format", "runtime", "--input-size", "64",
                        "--calibrate", "random", "--out", cls.lsr], check=True, capture_output=True)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_run_single_and_batch_agree_exactly(self):
        engine = leanseg.Engine(self.lsr, threads=2)
        self.assertEqual(engine.input_shape, (1, 64, 64))
        x = np.random.default_rng(0).standard_normal((3, 1, 64, 64)).astype(np.float32)
        batch = engine.run(x)
        self.assertEqual(batch.shape, (3, 64, 64))
        for i in range(3):
            np.testing.assert_array_equal(engine.run(x[i]), batch[i])
        np.testing.assert_allclose(engine.probabilities(x), 1 / (1 + np.exp(-batch)), rtol=1e-5, atol=1e-6)

    def test_a_fixed_thread_count_gives_the_adaptive_engines_result(self):
        x = np.random.default_rng(2).standard_normal((1, 64, 64)).astype(np.float32)
        adaptive = leanseg.Engine(self.lsr, threads=2).run(x)
        with leanseg.Engine(self.lsr, threads=2, adapt_threads=False) as fixed:
            np.testing.assert_allclose(fixed.run(x), adaptive, rtol=1e-5, atol=1e-5)

    def test_every_precision_runs_and_stays_close_to_fp32(self):
        x = np.random.default_rng(1).standard_normal((1, 64, 64)).astype(np.float32)
        fp32 = leanseg.Engine(self.lsr).probabilities(x)
        for precision in (("bf16", "int8") if leanseg.bf16_is_supported() else ("int8",)):
            with leanseg.Engine(self.lsr, precision=precision, threads=1) as engine:
                p = engine.probabilities(x)
                self.assertTrue(np.isfinite(p).all())
                self.assertLess(np.abs(p - fp32).mean(), 0.05, precision)

    def test_segment_raw_image_matches_leanseg_infer(self):
        rng = np.random.default_rng(2)
        image = (rng.random((96, 128)) * 255).astype(np.uint8)  # shrunk to 64x64 (area), result resized back
        png = os.path.join(self.dir.name, "img.png")
        write_png(png, image)
        out = os.path.join(self.dir.name, "infer-out")
        subprocess.run([INFER, self.lsr, png, "--out", out, "--threads", "2"], check=True, capture_output=True)
        expected = read_png(os.path.join(out, "img_prob.png")).astype(np.float32) / 255
        prob = leanseg.Engine(self.lsr, threads=2).segment(image)
        self.assertEqual(prob.shape, image.shape)
        self.assertLessEqual(np.abs(prob - expected).max(), 1.5 / 255 + 1e-3)

    def test_errors_raise_with_the_engines_message(self):
        missing = os.path.join(self.dir.name, "missing.lsr")
        with self.assertRaises(leanseg.Error) as e:
            leanseg.Engine(missing)
        self.assertIn(missing, str(e.exception))
        with self.assertRaises(leanseg.Error) as e:
            leanseg.Engine(self.lsr, precision="int4")
        self.assertIn("precision", str(e.exception))
        engine = leanseg.Engine(self.lsr)
        with self.assertRaises(leanseg.Error) as e:
            engine.run(np.zeros((2, 64, 64), np.float32))
        self.assertIn("input channel", str(e.exception))
        with self.assertRaises(leanseg.Error) as e:
            engine.run(np.zeros((1, 60, 64), np.float32))  # not a multiple of 32
        self.assertIn("multiple", str(e.exception))
        with self.assertRaises(leanseg.Error) as e:
            engine.segment(np.full((64, 64), 4000, np.uint16))  # a 16-bit image for an 8-bit model
        self.assertIn("max_value", str(e.exception))


def write_png(path, image):
    """Grey 8-bit PNG with the standard library (zlib), so the test needs only NumPy."""
    import struct
    import zlib
    h, w = image.shape
    raw = b"".join(b"\0" + image[r].tobytes() for r in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def read_png(path):
    """Grey 8-bit PNG (as leanseg-infer writes its probabilities), filters undone."""
    import struct
    import zlib
    data = open(path, "rb").read()
    pos, idat, (w, h) = 8, b"", (0, 0)
    while pos < len(data):
        n, tag = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if tag == b"IHDR":
            w, h, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (8, 0), (depth, colour)
        elif tag == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    out = np.zeros((h, w), np.int32)
    prev = np.zeros(w, np.int32)
    for r in range(h):
        f, line = raw[r * (w + 1)], np.frombuffer(raw[r * (w + 1) + 1:(r + 1) * (w + 1)], np.uint8).astype(np.int32)
        cur = np.zeros(w, np.int32)
        for i in range(w):
            a = cur[i - 1] if i else 0
            b, c = prev[i], (prev[i - 1] if i else 0)
            pred = {0: 0, 1: a, 2: b, 3: (a + b) // 2}.get(f)
            if f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[i] = (line[i] + pred) & 0xFF
        out[r], prev = cur, cur
    return out.astype(np.uint8)


if __name__ == "__main__":
    unittest.main(verbosity=2)
