#!/usr/bin/env bash
# decode_wgmma on its own (gpu_wgmma_probe.cu), with nvcc on a Hopper node, from a checkout:
# the paper's MLA, GLA-2 and MLRA-4 per-device shapes at lengths around the tile and split
# boundaries. The last variants flip the wgmma descriptor fields whose meaning public
# documentation describes ambiguously (P_DESC_SWAP: the no-swizzle P operand's two byte
# offsets; V_LBO: the N-major value operand's unused offset), so one run says which layout
# the hardware takes if the default is wrong. A development check: it prints, it asserts nothing.
#   benchmarks/gpu_wgmma_probe.sh
set -uo pipefail
cd "$(dirname "$0")"
run() { # name defines...
  local name=$1; shift
  nvcc -gencode arch=compute_90a,code=sm_90a -O2 -std=c++17 --use_fast_math -o /tmp/probe_$name gpu_wgmma_probe.cu "$@" 2>&1 | grep -v "^$" | head -5
  for args in "64 1" "1000 1" "1000 3" "4099 5"; do echo -n "$name: "; /tmp/probe_$name $args; done
}
MLA="-DELEM=0 -DGROUP_HEADS=64 -DKEY_W=512 -DROPE_W=64 -DVAL_W=512 -DROW_W=576 -DFAST_WGMMA=1 -DHEADS=64 -DMT=4 -DTN=32 -DSTAGES=2 -DNWARPS=8 -DVAL_IS_KEY=1"
GLA="-DELEM=0 -DGROUP_HEADS=32 -DKEY_W=256 -DROPE_W=64 -DVAL_W=256 -DROW_W=320 -DFAST_WGMMA=1 -DHEADS=64 -DMT=4 -DTN=64 -DSTAGES=2 -DNWARPS=8 -DVAL_IS_KEY=1"
MLRA="-DELEM=0 -DGROUP_HEADS=64 -DKEY_W=128 -DROPE_W=64 -DVAL_W=128 -DROW_W=192 -DFAST_WGMMA=1 -DHEADS=64 -DMT=4 -DTN=64 -DSTAGES=3 -DNWARPS=8 -DVAL_IS_KEY=1"
run mla $MLA
run gla $GLA
run mlra $MLRA
run mla_pswap $MLA -DP_DESC_SWAP=1
run mlra_pswap $MLRA -DP_DESC_SWAP=1
run mlra_vlbo16 $MLRA -DV_LBO=16
