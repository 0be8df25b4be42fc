#!/usr/bin/env bash
# Installs every Debian package leanseg needs to build, test and benchmark.
# Idempotent: packages already present are skipped by apt-get.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache
  libtorch-dev                 # LibTorch 1.13.1 (tensors, autograd, quantized kernels)
  libopenblas0-pthread libopenblas-dev  # fast BLAS: libblas.so.3 must not be netlib
  libopencv-dev                # image I/O, geometry, ellipse fitting
  libcli11-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libdnnl-dev                  # oneDNN for the LibTorch-free runtime
  libonnx-dev libprotobuf-dev protobuf-compiler  # ONNX export (ModelProto, checker)
  python3 python3-numpy        # the Python module's tests (Debian's python3)
  gnuplot-nox                  # training-curve and comparison plots (PNG via pngcairo)
  libomp5-14                   # LLVM's OpenMP runtime: leanseg-infer runs on it (src/util/openmp_wait_policy.c)
  libyaml-cpp-dev              # `leanseg train --config run.yaml` (YAML run configs; JSON needs nothing)
  # Renders eval's report.html headless in the test Cli.EvalReportHtmlLoadsInHeadlessChromium, so
  # CI checks the page in a browser (81 MB download, 290 MB installed; Debian 12, 2026-12).
  # LEANSEG_SETUP_CHROMIUM=0 leaves it out (the test then skips with a message).
  libgloo-dev                  # Gloo headers for c10d ProcessGroupGloo (data-parallel training; library ships with LibTorch)
)
if [ "${LEANSEG_SETUP_CHROMIUM:-1}" = 1 ]; then PACKAGES+=(chromium); fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# LibTorch routes some layers through libblas.so.3; make it OpenBLAS, not netlib.
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
for lib in libblas.so.3 liblapack.so.3; do
  alt="/usr/lib/$arch/openblas-pthread/$lib"
  if [ -e "$alt" ]; then
    $SUDO update-alternatives --set "$lib-$arch" "$alt" >/dev/null 2>&1 || true
  fi
done
echo "setup: libblas.so.3 -> $(readlink -f /usr/lib/$arch/libblas.so.3)"
