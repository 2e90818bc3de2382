#!/usr/bin/env bash
# Issue 12's all-reduce paths on one GPU (a benchmark script: it prints, it asserts nothing):
#  1. the layer check and a short timing of three variants at t = 1, 2 and 4 on 4 ranks
#     sharing the GPU with --collective mpi (host staging through pinned memory: Open MPI here
#     is not CUDA-aware) — every configuration is validated against the Double reference —
#     then the same with 16-bit GEMMs (--math auto), three variants, bf16 and f16, twice;
#  2. --collective nccl on one rank (NCCL opened, the unique id sent, the check all-reduce
#     of known values, the layer at t = 1);
#  3. --collective nccl with two ranks of a TP group on the one GPU: refused with one line.
# Run from the repository root with the static binary at .devbin/mlra.gz; results under
# $OUT/collective.tgz. Reads: "validated" counts, the rows' collective/allreduce_path, and the
# refusal line.
set -uo pipefail
out=/tmp/gpu_collective_out; rm -rf "$out"; mkdir -p "$out"
here=benchmarks/gpu_layer
source $here/device_env.sh
grid=(--variants mla,mlra4,gqa --contexts 1031 --heads 8 --head-dim 64 --rope-dim 32 --kv-ranks 256 --q-rank 128 --kv-heads 2
      --n-embd 256 --batch 4 --scopes layer --devices cuda --warmup 2 --steps 10 --no-noise-probe)
cal=(); [ -s "${GPU_CAL:-}" ] && cal=(--gpu-calibration "$GPU_CAL")
timeout 80 mpirun -n 4 --oversubscribe /tmp/mlra sweep "${grid[@]}" "${cal[@]}" --tp 1,2,4 --kv-dtypes bf16 \
    --out "$out/mpi.csv" > "$out/mpi.log" 2>&1; echo "mpi (4 ranks, t = 1, 2, 4): rc $?"
# 16-bit GEMMs (--math auto: the projections in the cache's type), each configuration checked
# twice: the layer check once failed now and then with them (docs/gpu-layer.md).
timeout 120 mpirun -n 4 --oversubscribe /tmp/mlra sweep "${grid[@]}" "${cal[@]}" --variants mha,gqa,mlra4 --tp 1,2,4 \
    --kv-dtypes bf16,f16 --math auto --repeats 2 --steps 3 --out "$out/gemm16.csv" > "$out/gemm16.log" 2>&1
echo "16-bit GEMMs (4 ranks, t = 1, 2, 4, two repeats): rc $?"
timeout 40 mpirun -n 1 /tmp/mlra sweep "${grid[@]}" "${cal[@]}" --tp 1 --kv-dtypes bf16 --collective nccl \
    --out "$out/nccl1.csv" > "$out/nccl1.log" 2>&1; echo "nccl (1 rank): rc $?"
timeout 40 mpirun -n 2 --oversubscribe /tmp/mlra sweep "${grid[@]}" "${cal[@]}" --tp 2 --kv-dtypes bf16 --collective nccl \
    --out "$out/nccl2.csv" > "$out/nccl2.log" 2>&1; echo "nccl (2 ranks on one GPU): rc $? (expected 64)"
grep -h "mlra: error" "$out"/nccl2.log | sort -u
python3 - "$out" <<'PY'
import csv, glob, os, sys
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.csv"))):
    rows = list(csv.DictReader(open(f)))
    print(f"{os.path.basename(f)}: {len(rows)} rows, validation {sorted(set(r['validation'] for r in rows))}")
    for r in rows:
        print("  %-6s t=%s %-4s math=%-4s collective=%-4s path=%-16s err=%s (atol %s) step=%s allreduce=%s" % (
            r["variant"], r["tp"], r["kv_dtype"], r["kernel_math"], r["collective"], r["allreduce_path"] or "-",
            r["validation_max_err"], r["validation_atol"], r["step_us_median"], r["allreduce_us_median"] or "-"))
PY
grep -h "validation failed\|mlra: error" "$out"/mpi.log "$out"/gemm16.log "$out"/nccl1.log | head
tar czf "${OUT:-/tmp}/collective.tgz" -C "$out" .
