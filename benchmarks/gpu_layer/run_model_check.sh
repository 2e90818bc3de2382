#!/usr/bin/env bash
# Issue 12's model-scope GPU check (one GPU, 1, 2 and 4 ranks sharing it): the sweep's model
# scope on cuda for every variant at t = 1, 2, 4, bf16 and f32 (model_check.json, each
# configuration checked against the CPU model before timing), then `forward` and `generate`
# --device cuda against the CPU (model_check.py). About 2 minutes (at most 250 s) after
# run_on_device.sh, whose GPU calibration and kernel cache it reuses. Run from the repository root
# with the static binary at .devbin/mlra.gz; results in $OUT/model_results.tgz. Pass: the last
# line is "model check: N passed, 0 failed" and the script exits 0.
set -uo pipefail
out=/tmp/gpu_model_out; rm -rf "$out"; mkdir -p "$out"
source benchmarks/gpu_layer/device_env.sh
here=benchmarks/gpu_layer
# The GPU calibration of run_on_device.sh when it ran on this machine, else a quick one (the
# roofline columns only; nothing here is judged by them).
gpu_cal=/tmp/gpu_layer_out/gpu_cal.json
[ -s "$gpu_cal" ] || { gpu_cal="$out/gpu_cal.json"; /tmp/mlra calibrate --device cuda --quick --format json > "$gpu_cal" 2> "$out/gpu_cal.err"; }
cal=(--gpu-calibration "$gpu_cal")
timeout 120 mpirun -n 4 --oversubscribe /tmp/mlra sweep --spec $here/model_check.json --out "$out/model_check.csv" "${cal[@]}" --no-noise-probe \
    > "$out/sweep.log" 2>&1
echo "sweep rc $?"; grep -E "error|FAIL|skipped" "$out/sweep.log" | head -20
timeout 130 python3 $here/model_check.py /tmp/mlra "$out" "$out/model_check.csv" | tee "$out/model_check.txt"
rc=${PIPESTATUS[0]}
tar czf "${OUT:-/tmp}/model_results.tgz" -C "$out" . 
exit $rc
