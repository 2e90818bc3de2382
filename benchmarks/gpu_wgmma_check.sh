#!/usr/bin/env bash
# One pass over what the wgmma kernel must show before it becomes Hopper's default for the
# MLA family (docs/gpu-kernels.md, "decode_wgmma"): the nvcc probe, the self-test (which
# checks wgmma beside the default kernels on sm_90a), a calibration, and the paper's
# per-device shapes at 128K, 512K and 2M tokens on the default kernel and on wgmma at each
# tile and stage count. A benchmark: it prints figures, it asserts nothing.
#   benchmarks/gpu_wgmma_check.sh [mlra] [out-dir]
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mlra=${1:-mlra}; out=${2:-.}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
if command -v nvcc > /dev/null && [ -e "$here/../Sources/MLRACuda/kernels/decode_attention.cu" ]; then  # from a checkout
    echo "== probe (nvcc)"; timeout 150 bash "$here/gpu_wgmma_probe.sh" 2>&1 | tee "$out/probe.txt"
fi
echo "== selftest"
timeout 300 "$mlra" selftest --device cuda > "$out/selftest.txt" 2>&1; echo "selftest exit $?"
grep -E "FAIL|passed|error" "$out/selftest.txt" | head -40
echo "wgmma rows: $(grep -c wgmma "$out/selftest.txt")"
echo "== bench"
"$mlra" calibrate --device cuda --format json > "$out/cal.json" || exit 1
common=(--head-dim 128 --rope-dim 64 --kv-rank 512 --kv-dtype bf16 --gpu-calibration "$out/cal.json" --no-full-check --format csv)
bench() {  # label, flags...
    local label=$1; shift
    local o; o=$(timeout 90 "$mlra" bench --device cuda "${common[@]}" "$@" 2>&1) || { printf '%-40s failed: %s\n' "$label" "${o##*$'\n'}"; return; }
    python3 -c 'import csv, sys
r = next(csv.DictReader(sys.stdin))
print("%-40s %9.1f us  %6.3f of read BW  %s" % (sys.argv[1], float(r["kernel_us_median"]), float(r["read_bw_fraction"]), r["gpu_kernel"]))' "$label" <<< "$o"
}
shapes=("mla:--variant mla --heads 64 --tp 1" "gla2:--variant gla2 --heads 64 --tp 2" "mlra4:--variant mlra4 --heads 64 --tp 4")
for L in 131072 524288 2097152; do
    for shape in "${shapes[@]}"; do
        name=${shape%%:*}; flags=(${shape#*:})
        bench "$name $L default" "${flags[@]}" --context $L
        bench "$name $L wgmma" "${flags[@]}" --context $L --gpu-kernel wgmma
    done
done
for shape in "${shapes[@]:1}"; do
    name=${shape%%:*}; flags=(${shape#*:})
    for t in 32 64; do for s in 2 3; do
        bench "$name 524288 wgmma tile $t stages $s" "${flags[@]}" --context 524288 --gpu-kernel wgmma --gpu-tile $t --gpu-stages $s
    done; done
done
