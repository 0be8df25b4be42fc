#!/usr/bin/env bash
# Newcomer's first command: set up, build, run the demo, show the model zoo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
build/leanseg demo --out demo-out
build/leanseg info
