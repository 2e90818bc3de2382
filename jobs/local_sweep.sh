#!/usr/bin/env bash
# Run one sweep on this machine with mpirun (no scheduler).
#
#   jobs/local_sweep.sh                 # the quick preset on 4 ranks
#   RANKS=2 PRESET=paper jobs/local_sweep.sh
#   jobs/local_sweep.sh --variants mla,mlra4 --contexts 1024   # extra sweep flags
#
# Rank 0 writes the CSV row by row; rerun the same command to resume an
# interrupted sweep (configurations already in the CSV are skipped).
# Columns and units: docs/csv-schema.md.
set -euo pipefail

# ---------------------------------------------------------------------------
# What you may change (each can also be set in the environment).
# ---------------------------------------------------------------------------
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MLRA_BIN=${MLRA_BIN:-$REPO/.build/release/mlra}   # built by `make build` (swift build -c release)
RANKS=${RANKS:-4}                  # MPI ranks; a 4-rank job sweeps TP degrees 1, 2 and 4
PRESET=${PRESET:-quick}            # quick | paper | throughput (see `mlra sweep --help`)
OUT_DIR=${MLRA_OUT_DIR:-$REPO/results}
NAME=${MLRA_SWEEP_NAME:-local-$PRESET}
OUT=$OUT_DIR/$NAME.csv             # one row per configuration and TP group
SAMPLES=$OUT_DIR/$NAME.samples.csv # every timed step, for distributions

# ---------------------------------------------------------------------------
# The sweep's flags, one per line. Flags given to this script are appended,
# so they can narrow the preset (e.g. --variants mla,mlra4).
# ---------------------------------------------------------------------------
SWEEP_ARGS=(
  --preset "$PRESET"     # the grid: variants x contexts x TP x ranks x heads ...
  --isolate auto         # time a TP group's ranks one after another if ranks > cores
  --out "$OUT"           # the CSV (resumes if it exists)
  --samples "$SAMPLES"   # raw per-step samples next to it
)
SWEEP_ARGS+=("$@")

# ---------------------------------------------------------------------------
# mpirun's flags, one per line.
# ---------------------------------------------------------------------------
MPIRUN_ARGS=(
  -n "$RANKS"            # number of ranks
)
# Open MPI refuses to start more ranks than cores unless told to. Timing is
# then pessimistic for concurrent ranks, which is why --isolate auto exists.
cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)
if [ "$cores" -lt "$RANKS" ]; then
  MPIRUN_ARGS+=(--oversubscribe)
fi
# Open MPI also refuses to run as root (containers, CI) unless both of these
# are set; the environment variables are the documented equivalent of
# --allow-run-as-root and work for every Open MPI version that has it.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1
  export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

if [ ! -x "$MLRA_BIN" ]; then
  echo "local_sweep: $MLRA_BIN not found; build it first: make build (or swift build -c release)" >&2
  exit 1
fi
mkdir -p "$OUT_DIR"
echo "local_sweep: $(date -u +%FT%TZ) $RANKS ranks on $cores cores -> $OUT" >&2
set -x
exec mpirun "${MPIRUN_ARGS[@]}" "$MLRA_BIN" sweep "${SWEEP_ARGS[@]}"
