#!/usr/bin/env bash
# Configures and builds leanseg into build/ (Release, Ninja, 2 jobs: LibTorch TUs are heavy).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "${LEANSEG_JOBS:-2}"
