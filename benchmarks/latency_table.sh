#!/usr/bin/env bash
# Builds mlra, makes the torch venv if missing, and prints the latency table.
# Extra arguments go to latency_table.py (e.g. --quick, --csv out.csv).
set -euo pipefail
cd "$(dirname "$0")/.."
SCRATCH=${SCRATCH:-.build}                      # swift build folder
swift build -c release --scratch-path "$SCRATCH" --product mlra
if [ ! -x benchmarks/.venv/bin/python ] || ! benchmarks/.venv/bin/python -c "import torch" 2>/dev/null; then
  python3 -m venv benchmarks/.venv
  benchmarks/.venv/bin/pip install torch numpy  # benchmark only; never a harness dependency
fi
exec benchmarks/.venv/bin/python benchmarks/latency_table.py --mlra "$SCRATCH/release/mlra" "$@"
