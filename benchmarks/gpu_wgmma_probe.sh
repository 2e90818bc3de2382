#!/usr/bin/env bash
# The wgmma decode kernels on their own (gpu_wgmma_probe.cu), with nvcc on a Hopper node, from a
# checkout (no Swift): the paper's MLA, GLA-2 and MLRA-4 per-device shapes, each kernel as
# GPUAttention would compile it, old and new side by side:
#   mla.wgmma        decode_wgmma, 32-token tiles × 2 stages (path wgmma, MLA's default)
#   mla.wgmma-q      the same with the query image (path wgmma-q)
#   mla.wgmma-q16    16-token tiles × 4 stages, the query image (wgmma-q --gpu-tile 16): 3 pairs in flight, not 1
#   gla.solo         decode_wgmma_solo, 2 warpgroups, 64 × 2 (path wgmma-solo, GLA-2's default)
#   gla.solo-q       the same with the query image (path wgmma-solo-q)
#   gla.solo-q32     32-token tiles × 4 stages, the query image (wgmma-solo-q --gpu-tile 32): 3 tiles in flight per warpgroup, not 1
#   mlra.solo        decode_wgmma_solo, 2 warpgroups, 64 × 4 (path wgmma-solo, MLRA-4's default)
#   mlra.solo3       3 warpgroups, 64 × 2, f32 queries as before (no path: shows what the warpgroups alone give)
#   mlra.solo-q      3 warpgroups, 64 × 2, the query image (path wgmma-solo-q)
#   mlra.solo-q32    3 warpgroups, 32 × 4, the query image (wgmma-solo-q --gpu-tile 32)
#   mlra.solo4-q     4 warpgroups, 64 × 2, the query image (wgmma-solo-q --gpu-warps 16)
# 1. Checks every kernel against a double reference at lengths around the tile and split
#    boundaries (1 to 132 splits; the -q kernels launched as programmatic dependents, as the
#    harness launches them, and once in plain stream order): CHECK lines, then one verdict line
#    "checks: N OK, M WRONG". Any WRONG or CUDA error: do not use that kernel.
# 2. Times one decode step (decode_qprep + split kernel + decode_combine; CUDA-graph replay, 132
#    splits, caches rotated beyond the L2) at 128K, 512K, 1M and 2M tokens; -q kernels also with
#    programmatic dependent launches ("+pdl", what the harness does). A table: µs and the fraction
#    of the read bandwidth (--bw, GB/s, default 4511: the last H200 calibration; pass the value
#    `mlra calibrate` measures on this GPU).
# With --timeline it builds the kernels with PROBE_TIMELINE and prints where a block's time goes
# (entry skew, prologue, loop, epilogue) at 16K, 128K and 512K instead.
#   benchmarks/gpu_wgmma_probe.sh [--bw GB/s] [--sms N] [--timeline] [--only NAME,NAME]
set -uo pipefail
cd "$(dirname "$0")"
sms=132; bw=4511; timeline=""; only=""
while [ $# -gt 0 ]; do
  case $1 in
    --bw) bw=$2; shift 2 ;;
    --sms) sms=$2; shift 2 ;;
    --timeline) timeline=1; shift ;;
    --only) only=$2; shift 2 ;;
    *) echo "unknown argument $1"; exit 2 ;;
  esac
done
out=/tmp/wgmma_probe; mkdir -p $out; rm -f $out/*.log $out/probe_*
common="-DELEM=0 -DFAST_WGMMA=1 -DHEADS=64 -DMT=4 -DVAL_IS_KEY=1"
MLA="$common -DGROUP_HEADS=64 -DKEY_W=512 -DROPE_W=64 -DVAL_W=512 -DROW_W=576"
GLA="$common -DGROUP_HEADS=32 -DKEY_W=256 -DROPE_W=64 -DVAL_W=256 -DROW_W=320"
MLRA="$common -DGROUP_HEADS=64 -DKEY_W=128 -DROPE_W=64 -DVAL_W=128 -DROW_W=192"
declare -A flags=(
  [mla.wgmma]="$MLA -DNWARPS=8 -DTN=32 -DSTAGES=2"
  [mla.wgmma-q]="$MLA -DNWARPS=8 -DTN=32 -DSTAGES=2 -DQPREP=1"
  [mla.wgmma-q16]="$MLA -DNWARPS=8 -DTN=16 -DSTAGES=4 -DQPREP=1"
  [gla.solo]="$GLA -DWG_SOLO=1 -DNWARPS=8 -DTN=64 -DSTAGES=2"
  [gla.solo-q]="$GLA -DWG_SOLO=1 -DNWARPS=8 -DTN=64 -DSTAGES=2 -DQPREP=1"
  [gla.solo-q32]="$GLA -DWG_SOLO=1 -DNWARPS=8 -DTN=32 -DSTAGES=4 -DQPREP=1"
  [mlra.solo]="$MLRA -DWG_SOLO=1 -DNWARPS=8 -DTN=64 -DSTAGES=4"
  [mlra.solo3]="$MLRA -DWG_SOLO=1 -DNWARPS=12 -DTN=64 -DSTAGES=2"
  [mlra.solo-q]="$MLRA -DWG_SOLO=1 -DNWARPS=12 -DTN=64 -DSTAGES=2 -DQPREP=1"
  [mlra.solo-q32]="$MLRA -DWG_SOLO=1 -DNWARPS=12 -DTN=32 -DSTAGES=4 -DQPREP=1"
  [mlra.solo4-q]="$MLRA -DWG_SOLO=1 -DNWARPS=16 -DTN=64 -DSTAGES=2 -DQPREP=1"
)
names="mla.wgmma mla.wgmma-q mla.wgmma-q16 gla.solo gla.solo-q gla.solo-q32 mlra.solo mlra.solo3 mlra.solo-q mlra.solo-q32 mlra.solo4-q"
[ -n "$only" ] && names=${only//,/ }
extra=""; [ -n "$timeline" ] && extra="-DPROBE_TIMELINE=1"

echo "== building ($(echo $names | wc -w) kernels, in parallel)"
for n in $names; do
  nvcc -gencode arch=compute_90a,code=sm_90a -O2 -std=c++17 --use_fast_math -o $out/probe_$n gpu_wgmma_probe.cu ${flags[$n]} $extra \
    > $out/build_$n.log 2>&1 &
done
wait
for n in $names; do
  if [ ! -x $out/probe_$n ]; then echo "BUILD FAILED $n:"; head -20 $out/build_$n.log; exit 1; fi
done
pdl_of() { case $1 in *-q|*-q[0-9]*) echo pdl ;; *) echo "" ;; esac; }

if [ -n "$timeline" ]; then
  for n in $names; do
    for L in 16384 131072 524288; do $out/probe_$n $n $L $sms $(pdl_of $n) | grep -v '^TIME'; done
  done
  exit 0
fi

echo "== checks against the double reference (relative error ≤ 2e-2 of max|ref|)"
for n in $names; do
  ( p=$(pdl_of $n)
    for args in "64 1" "1000 1" "1000 3" "4099 5" "4099 $sms" "16384 $sms"; do $out/probe_$n $n $args $p 2>&1 | grep -v '^TIME'; done
    [ -n "$p" ] && $out/probe_$n $n 16384 $sms 2>&1 | grep -v '^TIME' | sed 's/$/  (plain stream order)/'
  ) > $out/check_$n.log &
done
wait
cat $(for n in $names; do echo $out/check_$n.log; done)
ok=$(cat $out/check_*.log | grep -c ' OK') ; bad=$(cat $out/check_*.log | grep -vc ' OK')
expected=0; for n in $names; do expected=$((expected + 6)); [ -n "$(pdl_of $n)" ] && expected=$((expected + 1)); done
echo "checks: $ok OK, $bad WRONG or failed, of $expected expected$([ $ok = $expected ] && [ $bad = 0 ] && echo ': ALL PASS' || echo ': NOT ALL PASS')"

echo "== timing (µs per step, CUDA-graph replay, $sms splits; fraction of $bw GB/s)"
for L in 131072 524288 1048576 2097152; do
  for n in $names; do
    $out/probe_$n $n $L $sms | grep '^TIME\|CUDA' >> $out/time.log
    p=$(pdl_of $n); [ -n "$p" ] && $out/probe_$n $n $L $sms pdl | grep '^TIME\|CUDA' >> $out/time.log
  done
done
grep CUDA $out/time.log
python3 - "$out/time.log" "$bw" <<'EOF'
import sys, re, collections
bw = float(sys.argv[2])
dk = {"mla": 576, "gla": 320, "mlra": 192}
t = collections.OrderedDict()
for line in open(sys.argv[1]):
    m = re.match(r"TIME (\S+) L=(\d+) splits=\d+ (\S+) ([\d.]+) us", line)
    if not m: continue
    name, L, mode, us = m.group(1), int(m.group(2)), m.group(3), float(m.group(4))
    shape, kernel = name.split(".", 1)
    t.setdefault(shape, collections.OrderedDict()).setdefault(kernel + ("+pdl" if "pdl" in mode else ""), {})[L] = us
for shape, ks in t.items():
    print(f"\n{shape} (key+rope {dk[shape]}): µs (fraction of read bandwidth)")
    print(f"{'context':>8} | " + " | ".join(f"{k:>18}" for k in ks))
    for L in sorted({L for v in ks.values() for L in v}):
        ideal = L * dk[shape] * 2 / (bw * 1e3)
        cells = [f"{ks[k][L]:8.1f} ({ideal / ks[k][L]:.2f})" if L in ks[k] else "" for k in ks]
        print(f"{L // 1024:>7}K | " + " | ".join(f"{c:>18}" for c in cells))
if "mla" in t and "mlra" in t:
    print("\nMLA / MLRA-4 time ratio (target ≥ 2.8): old = mla.wgmma / mlra.solo, new = best MLA -q / best MLRA-4 -q")
    for L in sorted(t["mla"].get("wgmma", {})):
        old = t["mla"]["wgmma"][L] / t["mlra"]["solo"][L] if L in t["mlra"].get("solo", {}) else float("nan")
        newmla = min(v[L] for k, v in t["mla"].items() if "-q" in k and L in v)
        newmlra = min(v[L] for k, v in t["mlra"].items() if "-q" in k and L in v)
        print(f"{L // 1024:>7}K  old {old:.2f}  new {newmla / newmlra:.2f}")
EOF
