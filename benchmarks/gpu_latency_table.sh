#!/usr/bin/env bash
# The paper's four per-device decode-kernel shapes on one GPU (method §6), bf16, batch 1,
# contexts 128K..2M, with PyTorch on the same GPU where torch is installed; then short
# contexts. A benchmark: it prints figures, it asserts nothing.
#   benchmarks/gpu_latency_table.sh [--mlra PATH] [--out DIR] [--contexts L,L,...] [--no-torch] [--no-short] [--new]
# --new also times the new paths beside each default (gpu_latency_table.py NEW; docs/gpu-kernels.md).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec python3 "$here/gpu_latency_table.py" "$@"
