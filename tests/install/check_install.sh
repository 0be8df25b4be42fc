#!/usr/bin/env bash
# Installs the build into a temporary prefix and builds and runs programs against the install,
# not the build tree: a C++ consumer through find_package(leanseg CONFIG), a C consumer through
# pkg-config, the installed leanseg and leanseg-infer, and the Python module.
#   usage: tests/install/check_install.sh BUILD_DIR
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "$1" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
P="$TMP/prefix"
cmake --install "$BUILD" --prefix "$P" >/dev/null
unset LD_LIBRARY_PATH LEANSEG_RUNTIME_LIBRARY
for f in bin/leanseg bin/leanseg-infer lib/libleanseg_runtime.so lib/libleanseg_runtime.so.0 \
         lib/pkgconfig/leanseg-runtime.pc lib/cmake/leanseg/leansegConfig.cmake include/leanseg/runtime.h \
         include/leanseg/runtime_c.h lib/leanseg/libleanseg-infer-images.so lib/python3/dist-packages/leanseg/__init__.py; do
  [ -e "$P/$f" ] || { echo "not installed: $f"; exit 1; }
done
soname=$(objdump -p "$P/lib/libleanseg_runtime.so" | awk '/SONAME/ {print $2}')
[ "$soname" = libleanseg_runtime.so.0 ] || { echo "soname is '$soname', expected libleanseg_runtime.so.0"; exit 1; }
if objdump -p "$P/lib/libleanseg_runtime.so" | grep NEEDED | grep -q torch; then echo "the runtime links LibTorch"; exit 1; fi

# The installed commands (rpath to the installed runtime; the plugin found in lib/leanseg).
"$P/bin/leanseg" export --model efficient-unet --format runtime --input-size 64 --out "$TMP/m.lsr" >/dev/null
PY=/usr/bin/python3; [ -x $PY ] || PY=python3
$PY -c "import zlib,struct
w=h=64; raw=b''.join(b'\0'+bytes((x*4)&255 for x in range(w)) for _ in range(h))
c=lambda t,d: struct.pack('>I',len(d))+t+d+struct.pack('>I',zlib.crc32(t+d)&0xffffffff)
open('$TMP/img.png','wb').write(b'\x89PNG\r\n\x1a\n'+c(b'IHDR',struct.pack('>IIBBBBB',w,h,8,0,0,0,0))+c(b'IDAT',zlib.compress(raw))+c(b'IEND',b''))"
"$P/bin/leanseg-infer" "$TMP/m.lsr" "$TMP/img.png" --out "$TMP/out" --threads 2 >/dev/null
[ -e "$TMP/out/img_mask.png" ] || { echo "installed leanseg-infer wrote no mask"; exit 1; }

# C++ through the CMake package.
cmake -S "$SRC/examples/runtime_cpp" -B "$TMP/cpp" -G Ninja -DCMAKE_PREFIX_PATH="$P" >/dev/null
cmake --build "$TMP/cpp" >/dev/null
"$TMP/cpp/example_runtime_cpp" "$TMP/m.lsr"

# C through pkg-config.
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
cc -std=c99 -Wall -Werror "$SRC/examples/runtime_c/main.c" -o "$TMP/example_runtime_c" \
   $(pkg-config --cflags --libs leanseg-runtime) -Wl,-rpath,"$(pkg-config --variable=libdir leanseg-runtime)" -lm
"$TMP/example_runtime_c" "$TMP/m.lsr"

# Python, the library found beside the installed module.
PYTHONPATH="$P/lib/python3/dist-packages" $PY -c "
import numpy as np, leanseg
e = leanseg.Engine('$TMP/m.lsr', threads=2)
p = e.segment((np.arange(64 * 64).reshape(64, 64) % 256).astype(np.uint8))
assert p.shape == (64, 64) and ((p >= 0) & (p <= 1)).all()
print('python: segment', p.shape, 'from', leanseg._library.path())"

# The Debian package (cpack -G DEB, cmake/install.cmake): it holds the runtime, the commands, the
# CMake package and the Python module, depends on Debian's packages (oneDNN among them), and its
# leanseg-infer, unpacked anywhere, runs on the package's own runtime library ($ORIGIN/../lib).
cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$TMP/deb" >/dev/null
deb=$(ls "$TMP"/deb/leanseg_*.deb)
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/leanseg ./usr/bin/leanseg-infer ./usr/lib/libleanseg_runtime.so.0 ./usr/lib/pkgconfig/leanseg-runtime.pc \
         ./usr/lib/cmake/leanseg/leansegConfig.cmake ./usr/lib/python3/dist-packages/leanseg/__init__.py; do
  [[ "$contents" == *" $f"* ]] || { echo "not in $deb: $f"; exit 1; }
done
depends=$(dpkg-deb -f "$deb" Depends)
[[ "$depends" == *libdnnl* ]] || { echo "$deb does not depend on oneDNN: $depends"; exit 1; }
dpkg-deb -x "$deb" "$TMP/deb/root"
"$TMP/deb/root/usr/bin/leanseg-infer" "$TMP/m.lsr" --bench --runs 1 --warmup 0 >/dev/null
echo "deb: $(basename "$deb"), $(stat -c %s "$deb") bytes, Depends: $depends"
echo "install check: ok"
