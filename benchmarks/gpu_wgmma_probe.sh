#!/usr/bin/env bash
# decode_wgmma and decode_wgmma_solo on their own (gpu_wgmma_probe.cu), with nvcc on a Hopper
# node, from a checkout: the paper's MLA, GLA-2 and MLRA-4 per-device shapes, checked against
# a double reference at lengths around the tile and split boundaries, then timed with one
# split per SM (132 on an H100/H200) at 16K (one tile per warpgroup: what a step costs
# besides streaming), 128K and 512K tokens, with and without decode_combine. A development
# check: it prints, it asserts nothing. With --timeline it builds the kernels with
# PROBE_TIMELINE and prints where a block's time goes (entry skew, prologue, loop, epilogue)
# at 16K, 128K and 512K instead.
#   benchmarks/gpu_wgmma_probe.sh [sms] [--timeline]
set -uo pipefail
cd "$(dirname "$0")"
sms=${1:-132}
timeline=${2:-}
run() { # name defines...
  local name=$1; shift
  if [ "$timeline" = --timeline ]; then
    nvcc -gencode arch=compute_90a,code=sm_90a -O2 -std=c++17 --use_fast_math -o /tmp/probe_$name gpu_wgmma_probe.cu "$@" -DPROBE_TIMELINE=1 2>&1 | grep -v "^$" | head -5
    for L in 16384 131072 524288; do echo -n "$name: "; /tmp/probe_$name $L $sms | tr '\n' ' '; echo; done
    return
  fi
  nvcc -gencode arch=compute_90a,code=sm_90a -O2 -std=c++17 --use_fast_math -o /tmp/probe_$name gpu_wgmma_probe.cu "$@" 2>&1 | grep -v "^$" | head -5
  for args in "64 1" "1000 1" "1000 3" "4099 5" "16384 $sms" "131072 $sms" "524288 $sms" "16384 $sms main" "131072 $sms main" "524288 $sms main"; do
    echo -n "$name: "; /tmp/probe_$name $args
  done
}
common="-DELEM=0 -DFAST_WGMMA=1 -DHEADS=64 -DMT=4 -DNWARPS=8 -DVAL_IS_KEY=1"
MLA="$common -DGROUP_HEADS=64 -DKEY_W=512 -DROPE_W=64 -DVAL_W=512 -DROW_W=576"
GLA="$common -DGROUP_HEADS=32 -DKEY_W=256 -DROPE_W=64 -DVAL_W=256 -DROW_W=320"
MLRA="$common -DGROUP_HEADS=64 -DKEY_W=128 -DROPE_W=64 -DVAL_W=128 -DROW_W=192"
run mla_pair_32x2 $MLA -DTN=32 -DSTAGES=2
run gla_pair_64x2 $GLA -DTN=64 -DSTAGES=2
run mlra_pair_64x3 $MLRA -DTN=64 -DSTAGES=3
run gla_solo_64x2 $GLA -DWG_SOLO=1 -DTN=64 -DSTAGES=2
run mlra_solo_64x4 $MLRA -DWG_SOLO=1 -DTN=64 -DSTAGES=4
run mlra_solo_64x2 $MLRA -DWG_SOLO=1 -DTN=64 -DSTAGES=2
