#!/usr/bin/env bash
# Launch shapes of the GPU decode kernels, measured: for each of the paper's per-device
# shapes (method §6) at one context, every kernel path, tile, stage count and warp count
# worth trying, graph-replay median and fraction of the read bandwidth. The defaults in
# Sources/MLRACuda/GPUAttention.swift (launchShape) were chosen from this table.
#   benchmarks/gpu_tune.sh [mlra] [context]     (a benchmark: prints figures, asserts nothing)
set -uo pipefail
mlra=${1:-mlra}; L=${2:-524288}
cal=$(mktemp); "$mlra" calibrate --device cuda --format json > "$cal" || exit 1
common=(--head-dim 128 --rope-dim 64 --kv-rank 512 --kv-dtype bf16 --context "$L" --gpu-calibration "$cal" --no-full-check --format csv)
run() {  # label, flags...
    local label=$1; shift
    local out; out=$("$mlra" bench --device cuda "${common[@]}" "$@" 2>&1) || { printf '%-44s failed: %s\n' "$label" "${out##*$'\n'}"; return; }
    python3 -c 'import csv, sys
r = next(csv.DictReader(sys.stdin))
print("%-44s %9.1f us  %6.3f of read BW  %s" % (sys.argv[1], float(r["kernel_us_median"]), float(r["read_bw_fraction"]), r["gpu_kernel"]))' "$label" <<< "$out"
}
printf 'context %s, bf16, batch 1\n' "$L"
for shape in "mlra4:--variant mlra4 --heads 64 --tp 4" "gqa:--variant gqa --heads 64 --kv-heads 8 --tp 8"; do
    name=${shape%%:*}; flags=(${shape#*:})
    run "$name default" "${flags[@]}"
    for w in 4 8; do for t in 64 128; do for s in 2 3 4; do
        run "$name warps $w tile $t stages $s" "${flags[@]}" --gpu-kernel warps --gpu-warps $w --gpu-tile $t --gpu-stages $s
    done; done; done
    run "$name mma" "${flags[@]}" --gpu-kernel mma
done
for shape in "mla:--variant mla --heads 64 --tp 1" "gla2:--variant gla2 --heads 64 --tp 2"; do
    name=${shape%%:*}; flags=(${shape#*:})
    run "$name default" "${flags[@]}"
    for t in 16 32 64; do for s in 2 3; do
        run "$name mma tile $t stages $s" "${flags[@]}" --gpu-kernel mma --gpu-tile $t --gpu-stages $s
    done; done
    for t in 16 32; do for s in 2 3 4; do
        run "$name mma 32 heads/block tile $t stages $s" "${flags[@]}" --gpu-kernel mma --gpu-heads-per-block 32 --gpu-tile $t --gpu-stages $s
    done; done
done
rm -f "$cal"
