#!/usr/bin/env bash
# Issue 12's GPU run (layer scope on one GPU): the layer check of every variant at t = 1, 2, 4
# ranks sharing the GPU, then the paper's shapes at t = 1 and t = 4 in layer and kernel scope.
# Run from the repository root with the static binary at .devbin/mlra.gz; results under $OUT.
set -uo pipefail
# Everything goes to a working folder, packed into one $OUT/results.tgz at the end.
out=/tmp/gpu_layer_out; rm -rf "$out"; mkdir -p "$out"
source benchmarks/gpu_layer/device_env.sh
here=benchmarks/gpu_layer
{ nvidia-smi -L; lscpu | grep -E 'Model name|Flags' | cut -c1-400; echo "nvrtc=${MLRA_NVRTC:-} cublas=${MLRA_CUBLAS:-}"; } > "$out/machine.txt" 2>&1
/tmp/mlra calibrate --device cuda --format json > "$out/gpu_cal.json" 2> "$out/gpu_cal.err"
cal=(--gpu-calibration "$out/gpu_cal.json")
timeout 300 mpirun -n 4 --oversubscribe /tmp/mlra sweep --spec $here/check.json --out "$out/check.csv" "${cal[@]}" > "$out/check.log" 2>&1; echo "check rc $?"
timeout 200 mpirun -n 1 /tmp/mlra sweep --spec $here/paper_t1.json --out "$out/paper_t1.csv" --samples "$out/paper_t1.samples.csv" "${cal[@]}" > "$out/paper_t1.log" 2>&1; echo "paper t1 rc $?"
timeout 200 mpirun -n 4 --oversubscribe /tmp/mlra sweep --spec $here/paper_t4.json --out "$out/paper_t4.csv" --samples "$out/paper_t4.samples.csv" "${cal[@]}" > "$out/paper_t4.log" 2>&1; echo "paper t4 rc $?"
tar czf "${OUT:-/tmp}/results.tgz" -C "$out" . && ls "$out"
