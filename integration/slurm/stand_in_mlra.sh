#!/usr/bin/env bash
# A stand-in for `mlra sweep`, for developing and testing the job scripts
# without the Swift build. NOT a benchmark: every number it writes is made up.
#
#   mpirun -n 2 integration/slurm/stand_in_mlra.sh sweep --variants mla,mlra4 \
#       --contexts 128,256 --tp 2 --out results/x.csv [--samples s.csv] \
#       [--array-task I --array-count N] [--quiet]
#
# It honours the parts of the real interface the jobs rely on:
#   - rank 0 (OMPI_COMM_WORLD_RANK) writes; other ranks exit at once;
#   - the header is docs/csv-schema.md's columns, in order;
#   - one row per (configuration, TP group), appended whole, one at a time;
#   - rerunning with the same --out skips configurations already present;
#   - --array-task I --array-count N keeps configurations whose index mod N == I;
#   - a TP degree that does not divide the world size is skipped with a reason;
#   - --devices cpu,cuda is a grid key (the row's `device`); --spec, --calibration
#     and --gpu-calibration must name readable files (their contents are not read);
#   - `calibrate [--device cuda] --format json` prints a (made-up) calibration.
# Grid = variants x contexts x tp x dtypes x scopes x devices (heads, kv-ranks,
# batch and threads are single values here). MLRA_STANDIN_DELAY (seconds, default
# 0.3) is the time one configuration "takes". MLRA_STANDIN_LOG=FILE: every process
# (every rank) appends one line: the subcommand, its rank, the GPU variables it
# sees and its arguments, so a test can check what a job script passed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rank=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-0}}
# srun --mpi=pmix sets no OMPI_COMM_WORLD_SIZE before MPI_Init: the step's task count is the world.
world=${OMPI_COMM_WORLD_SIZE:-${PMIX_RANK:+${SLURM_STEP_NUM_TASKS:-1}}}
world=${world:-1}
if [ -n "${MLRA_STANDIN_LOG:-}" ]; then
  # One short line per process, appended in one write.
  printf '%s\n' "${1:-} rank=$rank world=$world CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-unset} MLRA_NVRTC=${MLRA_NVRTC-unset} MLRA_CUBLAS=${MLRA_CUBLAS-unset} MLRA_KERNEL_CACHE=${MLRA_KERNEL_CACHE-unset} args: ${*:2}" >>"$MLRA_STANDIN_LOG"
fi
case "${1:-}" in
  --version) echo "mlra stand-in 0.0"; exit 0 ;;
  sweep) shift ;;
  calibrate)
    shift; device=cpu format=table
    while [ $# -gt 0 ]; do
      case "$1" in
        --device) device=$2; shift 2 ;;
        --format) format=$2; shift 2 ;;
        --threads) shift 2 ;;
        --quick) shift ;;
        *) echo "stand_in_mlra: calibrate: unknown option $1" >&2; exit 64 ;;
      esac
    done
    if [ "$format" = json ]; then
      echo "{\"stand_in\": true, \"device\": \"$device\", \"read_gbs\": 1.0, \"note\": \"not a measurement\"}"
    else
      echo "stand_in_mlra: calibrate ($device): not a measurement"
    fi
    exit 0 ;;
  *) echo "stand_in_mlra: only 'sweep' and 'calibrate' are implemented" >&2; exit 64 ;;
esac

variants=mla,mlra4 contexts=1024 tps=1 dtypes=f32 scopes=kernel devices=cpu
heads=64 kvrank=512 batch=1 threads=1
out="" samples="" task=0 count=1 quiet=0
while [ $# -gt 0 ]; do
  case "$1" in
    --help) echo "usage: stand_in_mlra.sh sweep [--variants L] [--contexts L] [--tp L] [--array-task I --array-count N] --out FILE.csv ..."; exit 0 ;;
    --out) out=$2; shift 2 ;;
    --samples) samples=$2; shift 2 ;;
    --variants) variants=$2; shift 2 ;;
    --contexts) contexts=$2; shift 2 ;;
    --tp) tps=$2; shift 2 ;;
    --kv-dtypes|--dtypes) dtypes=$2; shift 2 ;;
    --scopes) scopes=$2; shift 2 ;;
    --devices) devices=$2; shift 2 ;;
    --spec|--calibration|--gpu-calibration)
      # The real sweep reads these before touching any output; so does this one (existence only).
      [ -r "$2" ] && [ -s "$2" ] || { echo "mlra: error: $1 $2: no such file or empty" >&2; exit 1; }
      shift 2 ;;
    --heads) heads=$2; shift 2 ;;
    --kv-ranks) kvrank=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --array-task) task=$2; shift 2 ;;
    --array-count) count=$2; shift 2 ;;
    --quiet) quiet=1; shift ;;
    --preset|--isolate|--steps|--warmup) shift 2 ;;   # accepted, ignored
    *) echo "stand_in_mlra: unknown option $1" >&2; exit 64 ;;
  esac
done
[ -n "$out" ] || { echo "stand_in_mlra: --out FILE.csv is required" >&2; exit 64; }
[ "$task" -ge 0 ] && [ "$task" -lt "$count" ] || {
  echo "stand_in_mlra: --array-task $task is not in 0..<$count" >&2; exit 64; }

[ "$rank" = 0 ] || exit 0

header=$("$here/schema_header.sh")
schema_version=$("$here/schema_header.sh" --version)
sample_header="run_id,variant,scope,tp,tp_group,context,batch,n_head,kv_lora_rank,kv_dtype,threads,timing_mode,step_index,step_us,kernel_us,allreduce_us"
IFS=, read -r -a cols <<<"$header"

# Keys of rows already in --out (resume). Columns are found by name; the
# split is quote-aware because mpi_library holds a comma.
declare -A done_keys=()
if [ -s "$out" ]; then
  first=$(head -n 1 "$out")
  [ "$first" = "$header" ] || { echo "stand_in_mlra: $out has another header; refusing to append" >&2; exit 65; }
  while IFS= read -r k; do done_keys[$k]=1; done < <(awk -f "$here/csv.awk" -f /dev/stdin "$out" <<'AWK'
    NR == 1 { n = csvsplit($0, h); for (i = 1; i <= n; i++) col[h[i]] = i; next }
    { csvsplit($0, f)
      print f[col["variant"]] "|" f[col["scope"]] "|" f[col["tp"]] "|" f[col["tp_group"]] "|" f[col["context"]] "|" f[col["kv_dtype"]] "|" f[col["device"]] }
AWK
)
else
  mkdir -p "$(dirname "$out")"
  printf '%s\n' "$header" >"$out"
fi
if [ -n "$samples" ] && [ ! -s "$samples" ]; then
  mkdir -p "$(dirname "$samples")"
  printf '%s\n' "$sample_header" >"$samples"
fi

run_id=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
delay=${MLRA_STANDIN_DELAY:-0.3}
IFS=, read -r -a V <<<"$variants"; IFS=, read -r -a C <<<"$contexts"
IFS=, read -r -a T <<<"$tps"; IFS=, read -r -a D <<<"$dtypes"; IFS=, read -r -a S <<<"$scopes"
IFS=, read -r -a E <<<"$devices"
index=-1 written=0
for v in "${V[@]}"; do for s in "${S[@]}"; do for t in "${T[@]}"; do for c in "${C[@]}"; do for d in "${D[@]}"; do for e in "${E[@]}"; do
  index=$((index + 1))
  [ $((index % count)) -eq "$task" ] || continue
  if [ $((world % t)) -ne 0 ]; then
    [ "$quiet" = 1 ] || echo "stand_in_mlra: skip $v tp=$t: tp does not divide world size $world" >&2
    continue
  fi
  dp=$((world / t))
  for ((g = 0; g < dp; g++)); do
    [ -z "${done_keys[$v|$s|$t|$g|$c|$d|$e]:-}" ] || continue
    sleep "$delay"
    declare -A r=(
      [schema_version]=$schema_version [run_id]=$run_id [harness_version]="stand-in 0.0" [git_rev]=unknown
      [host]=$(hostname -s) [mpi_library]='"stand-in, not a measurement"' [world_size]=$world
      [date_utc]=$(date -u +%Y-%m-%dT%H:%M:%SZ) [variant]=$v [scope]=$s [tp]=$t [dp]=$dp
      [tp_group]=$g [context]=$c [batch]=$batch [n_layer]=1 [n_head]=$heads
      [kv_lora_rank]=$kvrank [kv_dtype]=$d [threads]=$threads [device]=$e [timing_mode]=concurrent
      [cold_cache]=false [validation]=pass [validation_max_err]=0 [warmup_steps]=1
      [timed_steps]=3 [step_us_median]=1.0 [kernel_us_median]=1.0
    )
    line=""
    for name in "${cols[@]}"; do line+="${line:+,}${r[$name]:-}"; done
    line=${line#,}
    # cols[0] always has a value, so the leading comma trick above is safe.
    printf '%s\n' "$line" >>"$out"
    if [ -n "$samples" ]; then
      for k in 0 1 2; do
        printf '%s\n' "$run_id,$v,$s,$t,$g,$c,$batch,$heads,$kvrank,$d,$threads,concurrent,$k,1.0,1.0," >>"$samples"
      done
    fi
    unset r
    written=$((written + 1))
    [ "$quiet" = 1 ] || echo "stand_in_mlra: $v $s tp=$t group=$g L=$c $d $e done" >&2
  done
done; done; done; done; done; done
[ "$quiet" = 1 ] || echo "stand_in_mlra: wrote $written rows to $out" >&2
