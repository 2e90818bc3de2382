#!/usr/bin/env bash
# End-to-end test of the Slurm job scripts on a REAL single-node Slurm.
#
#   integration/slurm/slurm_e2e.sh               # runs .build/release/mlra sweep
#   integration/slurm/slurm_e2e.sh --stand-in    # runs integration/slurm/stand_in_mlra.sh instead
#   integration/slurm/slurm_e2e.sh --keep        # keep the temporary folder (configs, logs, CSVs)
#   integration/slurm/slurm_e2e.sh --time-limit  # stop the SIGTERM job by its real time limit
#                                          # (--time=1 --signal=B:TERM@45; ~1 min longer)
#
# What it does (no mocks):
#   1. installs slurmctld, slurmd, slurm-client and munge from Debian if they
#      are missing (apt-get --no-install-recommends; needs root);
#   2. starts its own munged, slurmctld and slurmd with every config, key,
#      socket, state, spool, pid and log file under one `mktemp -d` folder
#      (SLURM_CONF points there; free ports are picked; daemons get stdin
#      from /dev/null);
#   3. submits with sbatch: jobs/slurm_sweep.sbatch; the array + dependent
#      merge through jobs/submit_array.sh; and a second single sweep that is
#      sent SIGTERM mid-sweep (by `scancel --batch --signal=TERM`, which is
#      what --signal=B:TERM does at the time limit; or, with --time-limit, by
#      the time limit itself) and then resubmitted to resume;
#   4. waits for each job by polling `scontrol -o show job` (timeouts
#      everywhere) and checks the CSVs (header = docs/csv-schema.md's columns
#      in order, row counts, no partial rows, validation = pass, no
#      configuration twice, the merged array = the single sweep) and the job
#      states in the jobcomp file;
#   5. the GPU scripts (jobs/slurm_sweep_gpu.sbatch, jobs/slurm_array_gpu.sbatch),
#      always with the stand-in (no GPU here): `bash -n`; `sbatch --test-only`
#      of their own GPU request (--gpus-per-task=1) and of the commented
#      --gres/--gpu-bind alternative; then real submissions that run end to
#      end: the calibration once, --devices cuda, --gpu-calibration, the spec,
#      the CUDA variables and each rank's GPUs as the stand-in saw them
#      (MLRA_STANDIN_LOG), a resume under srun, SIGTERM mid-sweep, the array
#      with its merge (srun), the --gres alternative under srun. The
#      node offers 2 GPUs (GresTypes=gpu, gres.conf naming two character
#      devices this test makes under its folder with mknod, 1:3 as /dev/null:
#      Slurm allocates and binds them, CUDA_VISIBLE_DEVICES included; nothing
#      opens them); jobs shrink to 2 ranks x 1 core (the scripts ask for 4 x 4).
#      If mknod fails the node has no GPUs: the GPU request is switched off in
#      copies of the scripts (sed '#SBATCH --gpus-per-task' -> '##'), and the
#      checks that need Slurm's GPUs are skipped with a note;
#   6. tears down on EXIT: cancels its jobs, stops only the daemons it
#      started (by their pid files), removes the folder.
# The last line is "N passed, M failed"; the exit status is 0 only if M = 0.
#
# Environment knobs: MLRA_BIN (binary to test), E2E_SWEEP_ARGS (tiny grid),
# E2E_EXPECT_ROWS (rows that grid gives on 2 ranks), E2E_TERM_SWEEP_ARGS,
# E2E_JOB_TIMEOUT (seconds per job, default 300), E2E_NO_GPUS=1 (no made-up GPUs on the
# node: the GPU scripts run with their GPU request switched off).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO/integration/slurm
# shellcheck source=integration/slurm/lib.sh
source "$HERE/lib.sh"   # counters, daemons, job states, CSV checks: shared with slurm_multinode_e2e.sh
use_stand_in=0
keep=0
time_limit=0
for arg in "$@"; do
  case "$arg" in
    --stand-in) use_stand_in=1 ;;
    --keep) keep=1 ;;
    --time-limit) time_limit=1 ;;
    -h|--help) sed -n '2,49p' "$0"; exit 0 ;;
    *) echo "slurm_e2e: unknown argument $arg" >&2; exit 64 ;;
  esac
done


# --------------------------------------------------------------------------
# Teardown: runs on every exit; prints the summary as the very last line.
# --------------------------------------------------------------------------
T=""
teardown() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$T" ] && [ -d "$T" ]; then
    cancel_all_jobs
    stop_daemon slurmd "$T/run/slurmd.pid"
    stop_daemon slurmctld "$T/run/slurmctld.pid"
    stop_daemon munged "$T/run/munged.pid"
    if [ "$keep" = 1 ] || { [ "$failed" -gt 0 ] && [ -n "${E2E_KEEP_ON_FAIL:-}" ]; }; then
      echo "# kept $T"
    else
      rm -rf "$T"
    fi
  fi
  finish "$rc" e2e
}
trap teardown EXIT
trap 'bad "interrupted"; exit 130' INT
trap 'bad "terminated"; exit 143' TERM


# --------------------------------------------------------------------------
# 0. The binary under test.
# --------------------------------------------------------------------------
if [ "$use_stand_in" = 1 ]; then
  MLRA_BIN=$HERE/stand_in_mlra.sh
  export MLRA_STANDIN_DELAY=${MLRA_STANDIN_DELAY:-0.2}
else
  MLRA_BIN=${MLRA_BIN:-$REPO/.build/release/mlra}
fi
# Absolute, since the jobs run it from their own working folder.
case "$MLRA_BIN" in /*) ;; *) MLRA_BIN=$PWD/$MLRA_BIN ;; esac
export MLRA_BIN
# An unknown subcommand's --help prints the top-level help and exits 0, so
# look for the sweep's own options (the array split is one the jobs need).
help=$(timeout 60 "$MLRA_BIN" sweep --help </dev/null 2>&1)
if ! printf '%s' "$help" | grep -q -- '--array-count' || ! printf '%s' "$help" | grep -q -- '--out'; then
  die "$MLRA_BIN has no 'sweep' with --out and --array-count: build it (make build) or run with --stand-in"
fi
ok "binary under test: $MLRA_BIN"

# --------------------------------------------------------------------------
# 1. Packages.
# --------------------------------------------------------------------------
need_slurm_packages

# --------------------------------------------------------------------------
# 2. A private Slurm under a temporary folder.
# --------------------------------------------------------------------------
T=$(mktemp -d /tmp/mlra-slurm-e2e.XXXXXX) || die "mktemp -d failed"
chmod 0755 "$T"   # munged needs every folder on its socket path searchable
mkdir -p "$T/munge" "$T/run" "$T/state" "$T/spool" "$T/logs" "$T/results" "$T/tmp"
chmod 0700 "$T/munge"
chmod 0755 "$T/run"
SOCK=$T/run/munge.socket
NODE=$(hostname -s)
start_munge


# Two free TCP ports (nothing accepts a connection on them).
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 1 50); do
  P1=$((20000 + RANDOM % 30000)); P2=$((P1 + 1))
  port_free "$P1" && port_free "$P2" && break
done

# The node's hardware as slurmd sees it, with a small RealMemory (a value
# above what slurmd detects would leave the node INVAL).
hw=$(slurmd -C 2>/dev/null | head -n 1 | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')
[ -n "$hw" ] || die "slurmd -C printed no hardware line"
NCPU=$(printf '%s\n' $hw | sed -n 's/^CPUs=//p')

# Two GPUs for the GPU scripts: Slurm's gres/gpu wants character devices, and
# these are /dev/null's (1:3) under $T; Slurm only allocates them and sets
# CUDA_VISIBLE_DEVICES (the stand-in opens nothing).
GPUS=0
gres=""
mkdir -p "$T/dev"
if [ -z "${E2E_NO_GPUS:-}" ] && mknod "$T/dev/gpu0" c 1 3 2>/dev/null && mknod "$T/dev/gpu1" c 1 3 2>/dev/null; then
  GPUS=2
  gres="Gres=gpu:2 "
  echo "Name=gpu File=$T/dev/gpu[0-1]" >"$T/gres.conf"   # read from beside slurm.conf
fi

export SLURM_CONF=$T/slurm.conf
{
  echo "# Written by integration/slurm/slurm_e2e.sh; lives and dies with $T."
  slurm_conf_common mlrae2e "$NODE(127.0.0.1)" "$T/spool" "$T/run/slurmd.pid" "$T/logs/slurmd.log"
  [ "$GPUS" = 0 ] || echo "GresTypes=gpu"
  echo "NodeName=$NODE NodeAddr=127.0.0.1 $hw RealMemory=1000 ${gres}State=UNKNOWN"
  echo "PartitionName=e2e Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
} >"$SLURM_CONF"

slurmctld -f "$SLURM_CONF" -c </dev/null >"$T/logs/slurmctld.out" 2>&1 \
  || die "slurmctld did not start: $(tail -5 "$T/logs/slurmctld.out" "$T/logs/slurmctld.log" 2>/dev/null)"
slurmd -f "$SLURM_CONF" </dev/null >"$T/logs/slurmd.out" 2>&1 \
  || die "slurmd did not start: $(tail -5 "$T/logs/slurmd.out" "$T/logs/slurmd.log" 2>/dev/null)"
state=""
for _ in $(seq 1 100); do
  state=$(timeout 5 scontrol -o show node "$NODE" 2>/dev/null | sed -n 's/.*State=\([^ ]*\).*/\1/p')
  [ "$state" = IDLE ] && break
  sleep 0.3
done
[ "$state" = IDLE ] || die "node $NODE not IDLE after 30 s (state '$state'): $(tail -5 "$T/logs/slurmctld.log" "$T/logs/slurmd.log" 2>/dev/null)"
ok "slurmctld + slurmd up, node $NODE IDLE ($hw; ports $P1/$P2)"
if [ "$GPUS" = 0 ]; then
  note "no GPUs on the node (mknod failed, or E2E_NO_GPUS): the GPU scripts run with their GPU request switched off"
elif ! timeout 10 scontrol -o show node "$NODE" | grep -q 'Gres=gpu:2'; then
  bad "node $NODE does not offer Gres=gpu:2: $(tail -3 "$T/logs/slurmd.log")"
fi

# --------------------------------------------------------------------------
# Helpers: submit, wait, job states, CSV checks.
# --------------------------------------------------------------------------

# --------------------------------------------------------------------------
# 3. Submit. The grid is tiny: 2 ranks, TP 2 only, so every configuration is
# one row. Jobs are --exclusive, so they run one after another.
# --------------------------------------------------------------------------
cd "$REPO" || die "cd $REPO"
SWEEP=${E2E_SWEEP_ARGS:---variants mla,mlra4 --contexts 64,128 --tp 2 --kv-dtypes f32 --scopes kernel --batch 1 --threads 1 --isolate off --quiet}
EXPECT=${E2E_EXPECT_ROWS:-4}
# Each configuration of this grid runs 2000 steps (~0.5 s) so the job is still sweeping when SIGTERM arrives.
TERM_SWEEP=${E2E_TERM_SWEEP_ARGS:---variants mla,mlra4 --contexts 64,128,256,512,1024,2048 --tp 2 --kv-dtypes f32 --scopes kernel --batch 1 --threads 1 --isolate off --steps 2000 --quiet}
TERM_EXPECT=${E2E_TERM_EXPECT_ROWS:-12}
COMMON=(--ntasks=2 --time=00:10:00 "--output=$T/logs/%x-%j.out")
export MLRA_OUT_DIR=$T/results


SINGLE=$(MLRA_SWEEP_NAME=single MLRA_SWEEP_ARGS=$SWEEP sub "${COMMON[@]}" --job-name=e2e-sweep jobs/slurm_sweep.sbatch) \
  || die "sbatch jobs/slurm_sweep.sbatch failed"
ok "sbatch jobs/slurm_sweep.sbatch -> job $SINGLE"

# One rank with 2 cores (--cpus-per-task=2: the script maps with PE=2).
THREADS_SWEEP=${E2E_THREADS_SWEEP_ARGS:---variants mla,mlra4 --contexts 64,128 --tp 1 --kv-dtypes f32 --scopes kernel --batch 1 --threads 2 --isolate off --quiet}
THREADED=$(MLRA_SWEEP_NAME=threaded MLRA_SWEEP_ARGS=$THREADS_SWEEP \
  sub --ntasks=1 --cpus-per-task=2 --time=00:10:00 "--output=$T/logs/%x-%j.out" --job-name=e2e-threads jobs/slurm_sweep.sbatch) \
  || die "sbatch --cpus-per-task=2 jobs/slurm_sweep.sbatch failed"
ok "sbatch --ntasks=1 --cpus-per-task=2 jobs/slurm_sweep.sbatch -> job $THREADED"

ids=$(MLRA_ARRAY=0-1 MLRA_SWEEP_NAME=split MLRA_SWEEP_ARGS=$SWEEP MLRA_EXPECT_TASKS=2 \
  timeout 60 jobs/submit_array.sh "${COMMON[@]}" </dev/null | tail -n 1)
ARRAY=$(printf '%s' "$ids" | sed -n 's/.*ARRAY_JOB=\([0-9]*\).*/\1/p')
MERGE=$(printf '%s' "$ids" | sed -n 's/.*MERGE_JOB=\([0-9]*\).*/\1/p')
[ -n "$ARRAY" ] && [ -n "$MERGE" ] || die "jobs/submit_array.sh printed '$ids'"
ok "jobs/submit_array.sh -> array job $ARRAY (tasks 0-1), merge job $MERGE (afterok:$ARRAY)"

if [ "$time_limit" = 1 ]; then
  # A 1-minute limit with SIGTERM 45 s before it (Slurm may send it up to
  # ~30 s early); the stand-in takes 3 s a configuration, 36 s in all.
  STOP_OPTS=(--ntasks=2 --time=00:01:00 --signal=B:TERM@45 "--output=$T/logs/%x-%j.out")
  STOP_DELAY=3
else
  STOP_OPTS=("${COMMON[@]}")
  STOP_DELAY=1
fi
STOPME=$(MLRA_SWEEP_NAME=stopped MLRA_SWEEP_ARGS=$TERM_SWEEP MLRA_STANDIN_DELAY=$STOP_DELAY \
  sub "${STOP_OPTS[@]}" --job-name=e2e-term jobs/slurm_sweep.sbatch) || die "sbatch (SIGTERM job) failed"
ok "sbatch jobs/slurm_sweep.sbatch (to be stopped) -> job $STOPME"

# --------------------------------------------------------------------------
# 4a. The single sweep.
# --------------------------------------------------------------------------
if wait_job "$SINGLE"; then
  check "single sweep job $SINGLE COMPLETED, exit 0:0" all_completed "$SINGLE"
else
  bad "single sweep job $SINGLE did not finish"
fi
csv_ok "single sweep CSV: schema header, $EXPECT rows, no partial row, validation=pass, no duplicate" \
  "$T/results/single.csv" "$EXPECT"
check "single sweep job log written" test -s "$T/logs/e2e-sweep-$SINGLE.out"

if wait_job "$THREADED"; then
  check "1 rank x 2 cores job $THREADED COMPLETED, exit 0:0" all_completed "$THREADED"
else
  bad "1 rank x 2 cores job $THREADED did not finish"
fi
csv_ok "1 rank x 2 cores CSV: $EXPECT rows, valid" "$T/results/threaded.csv" "$EXPECT"

# --------------------------------------------------------------------------
# 4b. The array and its merge.
# --------------------------------------------------------------------------
if wait_job "$ARRAY"; then
  check "array job $ARRAY: every task COMPLETED, exit 0:0" all_completed "$ARRAY"
else
  bad "array job $ARRAY did not finish"
fi
if wait_job "$MERGE"; then
  check "merge job $MERGE COMPLETED, exit 0:0 (ran after the array)" all_completed "$MERGE"
else
  bad "merge job $MERGE did not finish"
fi
t0=$(rows_of "$T/results/split.task0.csv"); t1=$(rows_of "$T/results/split.task1.csv")
csv_ok "array task 0 CSV valid" "$T/results/split.task0.csv" ""
csv_ok "array task 1 CSV valid" "$T/results/split.task1.csv" ""
if [ $((t0 + t1)) -eq "$EXPECT" ] && [ "$t0" -gt 0 ] && [ "$t1" -gt 0 ]; then
  ok "array tasks split the grid: $t0 + $t1 = $EXPECT rows"
else
  bad "array tasks split the grid: $t0 + $t1 rows, expected $EXPECT in all, both > 0"
fi
if [ -s "$T/results/split.task0.csv.keys" ] && [ -s "$T/results/split.task1.csv.keys" ] \
  && [ -z "$(comm -12 "$T/results/split.task0.csv.keys" "$T/results/split.task1.csv.keys")" ]; then
  ok "array tasks measured disjoint configurations"
else
  bad "array tasks measured disjoint configurations"
fi
csv_ok "merged CSV: schema header, $EXPECT rows, no partial row, validation=pass" "$T/results/split.csv" "$EXPECT"
if [ -s "$T/results/split.csv.keys" ] && cmp -s "$T/results/split.csv.keys" "$T/results/single.csv.keys"; then
  ok "merged array CSV has the same configurations as the single sweep"
else
  bad "merged array CSV has the same configurations as the single sweep"
fi
if [ -s "$T/results/split.samples.task0.csv" ]; then
  check "raw samples merged too (split.samples.csv)" test -s "$T/results/split.samples.csv"
fi

# --------------------------------------------------------------------------
# 4c. SIGTERM to the batch shell mid-sweep (what --signal=B:TERM@N does at
# the time limit): finished rows kept, no partial row; resubmitting resumes.
# --------------------------------------------------------------------------
deadline=$(($(date +%s) + JOB_TIMEOUT))
stopped_mid=0
while [ "$(date +%s)" -lt "$deadline" ]; do
  st=$(job_states "$STOPME" | awk '{print $2}')
  if [ "$time_limit" = 1 ]; then
    stopped_mid=1   # Slurm sends the signal; just wait
    break
  fi
  if [ "$st" = RUNNING ] && [ "$(rows_of "$T/results/stopped.csv")" -ge 1 ]; then
    timeout 10 scancel --batch --signal=TERM "$STOPME" && stopped_mid=1
    break
  fi
  [[ "$st" =~ $TERMINAL ]] && break
  sleep 0.2
done
wait_job "$STOPME" || bad "SIGTERM job $STOPME did not finish"
r1=$(rows_of "$T/results/stopped.csv")
if [ "$stopped_mid" = 1 ] && [ "$r1" -lt "$TERM_EXPECT" ]; then
  st=$(job_states "$STOPME" | awk '{print $2, $3}')
  if [ "$st" = "FAILED 143:0" ]; then
    ok "SIGTERM mid-sweep: job $STOPME ended FAILED 143:0 with $r1 of $TERM_EXPECT rows"
  else
    bad "SIGTERM mid-sweep: job $STOPME ended '$st', expected 'FAILED 143:0'"
  fi
  check "SIGTERM forwarded by the batch script (its log says so)" \
    grep -q "SIGTERM received" "$T/logs/e2e-term-$STOPME.out"
  csv_ok "stopped sweep CSV: finished rows only, no partial row" "$T/results/stopped.csv" ""
  RESUME=$(MLRA_SWEEP_NAME=stopped MLRA_SWEEP_ARGS=$TERM_SWEEP MLRA_STANDIN_DELAY=0.1 \
    sub "${COMMON[@]}" --job-name=e2e-resume jobs/slurm_sweep.sbatch) || die "sbatch (resume) failed"
  if wait_job "$RESUME"; then
    check "resubmitted job $RESUME COMPLETED, exit 0:0" all_completed "$RESUME"
  else
    bad "resubmitted job $RESUME did not finish"
  fi
  csv_ok "resumed CSV: all $TERM_EXPECT configurations exactly once" "$T/results/stopped.csv" "$TERM_EXPECT"
else
  note "SKIP SIGTERM test: the sweep finished (rows $r1) before it could be stopped; give E2E_TERM_SWEEP_ARGS a bigger grid"
fi

# --------------------------------------------------------------------------
# 5. The jobcomp file (Slurm's own record of every finished job).
# --------------------------------------------------------------------------
for id in "$SINGLE" "$THREADED" $(task_ids "$ARRAY") "$MERGE" ${RESUME:-}; do
  s=$(jobcomp_state "$id")
  if [ "$s" = COMPLETED ]; then ok "jobcomp: job $id COMPLETED"; else bad "jobcomp: job $id state '$s'"; fi
done
if [ "$stopped_mid" = 1 ]; then
  s=$(jobcomp_state "$STOPME")
  if [ "$s" = FAILED ]; then ok "jobcomp: stopped job $STOPME FAILED"; else bad "jobcomp: stopped job $STOPME state '$s'"; fi
fi

# --------------------------------------------------------------------------
# 6. The GPU scripts, with the stand-in whatever the binary under test (no GPU
# here: what is tested is what the scripts ask of Slurm and pass to mlra).
# Each job: 2 ranks x 1 core on the 2 (made-up) GPUs, one after another.
# --------------------------------------------------------------------------
STANDIN=$HERE/stand_in_mlra.sh
GPU_SIZE=(--ntasks-per-node=2 --cpus-per-task=1 --time=00:10:00 "--output=$T/logs/%x-%j.out")
GPU_SWEEP_SCRIPT=jobs/slurm_sweep_gpu.sbatch
GPU_ARRAY_SCRIPT=jobs/slurm_array_gpu.sbatch
mkdir -p "$T/gpu"
if [ "$GPUS" = 0 ]; then
  # No GPUs on this node: copies with the GPU request switched off (the rest as written).
  for f in "$GPU_SWEEP_SCRIPT" "$GPU_ARRAY_SCRIPT"; do
    sed 's/^#SBATCH --gpus-per-task=/##SBATCH --gpus-per-task=/' "$f" >"$T/gpu/$(basename "$f")"
  done
  GPU_SWEEP_SCRIPT=$T/gpu/slurm_sweep_gpu.sbatch
  GPU_ARRAY_SCRIPT=$T/gpu/slurm_array_gpu.sbatch
  note "as written: $(timeout 30 sbatch --test-only "${GPU_SIZE[@]}" jobs/slurm_sweep_gpu.sbatch </dev/null 2>&1 | tail -n 1) (a GPU request on a node without GPUs)"
fi
# The commented alternative: --gres=gpu:N and --gpu-bind switched on, --gpus-per-task off.
sed -e 's/^#SBATCH --gpus-per-task=/##SBATCH --gpus-per-task=/' -e 's/^##SBATCH --gres=/#SBATCH --gres=/' \
  -e 's/^##SBATCH --gpu-bind=/#SBATCH --gpu-bind=/' jobs/slurm_sweep_gpu.sbatch >"$T/gpu/gres_alternative.sbatch"
# Where the binary would look for CUDA's libraries (nothing is there; the stand-in reports
# what it saw). Exported in a subshell around each submission: sbatch passes it to the job.
GPU_ENV=(MLRA_BIN="$STANDIN" MLRA_NVRTC="$T/cuda/nvrtc/lib" MLRA_CUBLAS="$T/cuda/cublas/lib" MLRA_KERNEL_CACHE="$T/kernel-cache")
GPU_ENV_SEEN="MLRA_NVRTC=$T/cuda/nvrtc/lib MLRA_CUBLAS=$T/cuda/cublas/lib MLRA_KERNEL_CACHE=$T/kernel-cache"
SPEC=$REPO/jobs/specs/paper_gpu.json
GPU_EXPECT=4   # the stand-in's grid under --spec: mla, mlra4 at TP 1 on 2 ranks = 2 configurations x 2 groups

# calls FILE WORD -> the stand-in's lines of that subcommand
calls() { grep "^$2 " "$1" 2>/dev/null; }
# cvd_of FILE -> the CUDA_VISIBLE_DEVICES each sweep rank saw, "rank=R:CVD" sorted, space-separated
cvd_of() { calls "$1" sweep | sed -n 's/^sweep rank=\([0-9]*\) .*CUDA_VISIBLE_DEVICES=\([^ ]*\) .*/rank=\1:\2/p' | sort | tr '\n' ' '; }
# all_calls_have FILE STRING -> every line contains STRING (and there is a line)
all_calls_have() { [ -s "$1" ] && ! grep -v -F -- "$2" "$1" >/dev/null; }
# devices_are FILE DEVICE -> every row's device column is DEVICE
devices_are() {
  awk -v want="$2" -f "$HERE/csv.awk" -f /dev/stdin "$1" <<'AWK'
    NR == 1 { nh = csvsplit($0, h); for (i = 1; i <= nh; i++) col[h[i]] = i; next }
    { rows++; csvsplit($0, f); if (f[col["device"]] != want) bad++ }
    END { exit !(rows > 0 && !bad) }
AWK
}
json_ok() { python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$1" 2>/dev/null; }
# test_only DESCRIPTION SBATCH-ARGS... -> ok if `sbatch --test-only` accepts them; its answer is noted
test_only() {
  local what=$1 out; shift
  if out=$(timeout 30 sbatch --test-only "$@" </dev/null 2>&1); then ok "$what"; else bad "$what"; fi
  note "$(printf '%s' "$out" | tail -n 1)"
}

# 6a. The scripts parse; the spec is JSON (and, with the real binary, a spec it reads).
for f in jobs/slurm_sweep_gpu.sbatch jobs/slurm_array_gpu.sbatch; do
  check "bash -n $f" bash -n "$f"
done
check "jobs/specs/paper_gpu.json is JSON" json_ok "$SPEC"
if [ "$use_stand_in" = 0 ]; then
  plan=$(cd "$T" && timeout 120 "$MLRA_BIN" sweep --spec "$SPEC" --devices cuda --dry-run </dev/null 2>&1)
  if printf '%s\n' "$plan" | grep -q '^# 32 measurements'; then
    ok "$MLRA_BIN reads jobs/specs/paper_gpu.json: 32 cuda measurements (4 shapes x 4 contexts x kernel, layer) in the dry run"
  else
    bad "$MLRA_BIN sweep --spec jobs/specs/paper_gpu.json --dry-run: $(printf '%s' "$plan" | tail -n 2 | tr '\n' ' ')"
  fi
fi

# 6b. sbatch --test-only: the GPU request as written (2 ranks x 1 core: this node; its size
# as written, 4 ranks x 4 cores, is more than it has), and the --gres alternative.
if [ "$GPUS" = 2 ]; then what="their --gpus-per-task=1"; else what="GPU request switched off (no GPUs)"; fi
test_only "sbatch --test-only $GPU_SWEEP_SCRIPT (${what})" "${GPU_SIZE[@]}" "$GPU_SWEEP_SCRIPT"
test_only "sbatch --test-only $GPU_ARRAY_SCRIPT (${what})" --array=0-1 "${GPU_SIZE[@]}" "$GPU_ARRAY_SCRIPT"
if [ "$GPUS" = 2 ]; then
  test_only "sbatch --test-only of the --gres=gpu:N + --gpu-bind alternative (gpu:2 here)" \
    "${GPU_SIZE[@]}" --gres=gpu:2 "$T/gpu/gres_alternative.sbatch"
  # A request beyond the node is refused: the checks above do test the GPU request.
  if timeout 30 sbatch --test-only "${GPU_SIZE[@]}" --gpus-per-task=2 "$GPU_SWEEP_SCRIPT" </dev/null >/dev/null 2>&1; then
    bad "sbatch --test-only --gpus-per-task=2 (4 GPUs on a 2-GPU node) was accepted"
  else
    ok "sbatch --test-only --gpus-per-task=2 (4 GPUs on a 2-GPU node) refused"
  fi
fi

# 6c. The GPU sweep (mpirun): MLRA_SWEEP_ARGS replaces the grid (MLA only), --devices cuda
# stays; the calibration is measured once, before the sweep.
G1LOG=$T/logs/gpu-sweep.calls
G1=$(export "${GPU_ENV[@]}" MLRA_STANDIN_LOG="$G1LOG" MLRA_SWEEP_NAME=gpusweep MLRA_SWEEP_ARGS="--variants mla --isolate auto --quiet"
  sub "${GPU_SIZE[@]}" --job-name=e2e-gpu-sweep "$GPU_SWEEP_SCRIPT") || die "sbatch $GPU_SWEEP_SCRIPT failed"
ok "sbatch $GPU_SWEEP_SCRIPT (mpirun, MLA only) -> job $G1"
if wait_job "$G1"; then
  check "GPU sweep job $G1 COMPLETED, exit 0:0" all_completed "$G1"
else
  bad "GPU sweep job $G1 did not finish"
fi
csv_ok "GPU sweep CSV: $((GPU_EXPECT / 2)) rows (MLA), valid" "$T/results/gpusweep.csv" "$((GPU_EXPECT / 2))"
check "GPU sweep rows are device=cuda" devices_are "$T/results/gpusweep.csv" cuda
GCAL=$T/results/gpusweep.gpu_cal.json
check "GPU calibration written whole to results/gpusweep.gpu_cal.json (JSON)" json_ok "$GCAL"
if [ "$(calls "$G1LOG" calibrate | wc -l)" = 1 ] && calls "$G1LOG" calibrate | grep -q -- 'rank=0 .*args: --device cuda --format json$' \
  && [ "$(head -n 1 "$G1LOG" | cut -d' ' -f1)" = calibrate ]; then
  ok "mlra calibrate --device cuda --format json ran once, as rank 0, before the sweep"
else
  bad "calibration once before the sweep: $(tr '\n' ';' <"$G1LOG" 2>/dev/null | cut -c1-300)"
fi
if [ "$(calls "$G1LOG" sweep | wc -l)" = 2 ] && [ -z "$(calls "$G1LOG" sweep | grep -v -F -- "args: --devices cuda --variants mla --isolate auto --quiet --gpu-calibration $GCAL --out $T/results/gpusweep.csv --samples $T/results/gpusweep.samples.csv")" ]; then
  ok "both ranks got --devices cuda, MLRA_SWEEP_ARGS, --gpu-calibration $GCAL, --out, --samples"
else
  bad "GPU sweep arguments: $(calls "$G1LOG" sweep | head -n 1 | sed 's/.*args: //')"
fi
check "every process saw MLRA_NVRTC, MLRA_CUBLAS, MLRA_KERNEL_CACHE as given to sbatch" all_calls_have "$G1LOG" "$GPU_ENV_SEEN"
check "the kernel cache folder was made (MLRA_KERNEL_CACHE)" test -d "$T/kernel-cache"
check "mpirun bound each rank to a core (--bind-to core in the job log)" \
  grep -q -- "mpirun -n 2 --bind-to core --report-bindings $STANDIN sweep --devices cuda" "$T/logs/e2e-gpu-sweep-$G1.out"
if [ "$GPUS" = 2 ]; then
  c=$(cvd_of "$G1LOG")
  if [ "$c" = "rank=0:0,1 rank=1:0,1 " ]; then
    ok "mpirun: both ranks see the job's 2 GPUs (CUDA_VISIBLE_DEVICES=0,1; the harness takes local rank mod 2)"
  else
    bad "mpirun ranks' CUDA_VISIBLE_DEVICES: '$c', expected both 0,1"
  fi
else
  note "SKIP GPU visibility under mpirun: the node has no GPUs"
fi

# 6d. Resubmitted with the default grid under srun: the spec, the same calibration
# file (not measured again), the MLA rows kept and the rest added.
G2LOG=$T/logs/gpu-resume.calls
G2=$(export "${GPU_ENV[@]}" MLRA_STANDIN_LOG="$G2LOG" MLRA_SWEEP_NAME=gpusweep MLRA_LAUNCHER=srun
  sub "${GPU_SIZE[@]}" --job-name=e2e-gpu-resume "$GPU_SWEEP_SCRIPT") || die "sbatch $GPU_SWEEP_SCRIPT (resume) failed"
ok "sbatch $GPU_SWEEP_SCRIPT (srun, the default spec: resume) -> job $G2"
if wait_job "$G2"; then
  check "GPU resume job $G2 COMPLETED, exit 0:0" all_completed "$G2"
else
  bad "GPU resume job $G2 did not finish"
fi
csv_ok "resumed GPU CSV: all $GPU_EXPECT configurations exactly once" "$T/results/gpusweep.csv" "$GPU_EXPECT"
if [ -z "$(calls "$G2LOG" calibrate)" ] && grep -q "gpu_cal.json exists: reused" "$T/logs/e2e-gpu-resume-$G2.out"; then
  ok "the resume reused the calibration file (no second calibrate)"
else
  bad "the resume measured the GPU again: $(calls "$G2LOG" calibrate | head -n 1)"
fi
if [ "$(calls "$G2LOG" sweep | wc -l)" = 2 ] && [ -z "$(calls "$G2LOG" sweep | grep -v -F -- "args: --devices cuda --spec $SPEC --isolate auto --quiet --gpu-calibration $GCAL --out $T/results/gpusweep.csv")" ]; then
  ok "default flags: --devices cuda --spec jobs/specs/paper_gpu.json --isolate auto --quiet --gpu-calibration (the same file)"
else
  bad "GPU sweep default arguments: $(calls "$G2LOG" sweep | head -n 1 | sed 's/.*args: //')"
fi
check "srun started the ranks with --cpu-bind=verbose,cores" \
  grep -q -- "srun --mpi=pmix --kill-on-bad-exit=1 --cpus-per-task=1 --cpu-bind=verbose,cores" "$T/logs/e2e-gpu-resume-$G2.out"
if [ "$GPUS" = 2 ]; then
  c=$(cvd_of "$G2LOG")
  if [ "$c" = "rank=0:0 rank=1:1 " ]; then
    ok "srun --gpus-per-task=1: each rank sees its own GPU (rank 0: 0, rank 1: 1)"
  else
    bad "srun ranks' CUDA_VISIBLE_DEVICES: '$c', expected rank=0:0 rank=1:1"
  fi
fi

# 6d'. SIGTERM mid-sweep (the time limit's --signal=B:TERM@120) reaches the GPU sweep's
# ranks too: finished rows kept whole, the job FAILED 143:0.
G3=$(export "${GPU_ENV[@]}" MLRA_STANDIN_LOG="$T/logs/gpu-stop.calls" MLRA_SWEEP_NAME=gpustop MLRA_STANDIN_DELAY=1 \
  MLRA_SWEEP_ARGS="--variants mla,mlra4 --contexts 64,128,256 --isolate auto --quiet"
  sub "${GPU_SIZE[@]}" --job-name=e2e-gpu-term "$GPU_SWEEP_SCRIPT") || die "sbatch $GPU_SWEEP_SCRIPT (SIGTERM) failed"
deadline=$(($(date +%s) + JOB_TIMEOUT))
g3_stopped=0
while [ "$(date +%s)" -lt "$deadline" ]; do
  st=$(job_states "$G3" | awk '{print $2}')
  if [ "$st" = RUNNING ] && [ "$(rows_of "$T/results/gpustop.csv")" -ge 1 ]; then
    timeout 10 scancel --batch --signal=TERM "$G3" && g3_stopped=1
    break
  fi
  [[ "$st" =~ $TERMINAL ]] && break
  sleep 0.2
done
wait_job "$G3" || bad "GPU SIGTERM job $G3 did not finish"
r3=$(rows_of "$T/results/gpustop.csv")
st=$(job_states "$G3" | awk '{print $2, $3}')
if [ "$g3_stopped" = 1 ] && [ "$r3" -lt 12 ] && [ "$st" = "FAILED 143:0" ] \
  && grep -q "SIGTERM received" "$T/logs/e2e-gpu-term-$G3.out"; then
  ok "SIGTERM mid-GPU-sweep: job $G3 forwarded it and ended FAILED 143:0 with $r3 of 12 rows"
else
  bad "SIGTERM mid-GPU-sweep: job $G3 '$st', $r3 of 12 rows, signal sent: $g3_stopped"
fi
csv_ok "stopped GPU sweep CSV: finished rows only, no partial row" "$T/results/gpustop.csv" ""

# 6e. The GPU array (srun) and its merge through jobs/submit_array.sh, with no
# MLRA_SWEEP_NAME: the merge must be told the GPU array's name (paper_gpu).
GALOG=$T/logs/gpu-array.calls
ids=$(export "${GPU_ENV[@]}" MLRA_STANDIN_LOG="$GALOG" MLRA_ARRAY_SCRIPT="$GPU_ARRAY_SCRIPT" MLRA_ARRAY=0-1 MLRA_EXPECT_TASKS=2 MLRA_LAUNCHER=srun
  timeout 60 jobs/submit_array.sh "${GPU_SIZE[@]}" </dev/null | tail -n 1)
GARRAY=$(printf '%s' "$ids" | sed -n 's/.*ARRAY_JOB=\([0-9]*\).*/\1/p')
GMERGE=$(printf '%s' "$ids" | sed -n 's/.*MERGE_JOB=\([0-9]*\).*/\1/p')
[ -n "$GARRAY" ] && [ -n "$GMERGE" ] || die "MLRA_ARRAY_SCRIPT=$GPU_ARRAY_SCRIPT jobs/submit_array.sh printed '$ids'"
ok "MLRA_ARRAY_SCRIPT=$GPU_ARRAY_SCRIPT jobs/submit_array.sh -> array job $GARRAY (tasks 0-1), merge job $GMERGE"
if wait_job "$GARRAY"; then
  check "GPU array job $GARRAY: every task COMPLETED, exit 0:0" all_completed "$GARRAY"
else
  bad "GPU array job $GARRAY did not finish"
fi
if wait_job "$GMERGE"; then
  check "GPU merge job $GMERGE COMPLETED, exit 0:0" all_completed "$GMERGE"
else
  bad "GPU merge job $GMERGE did not finish"
fi
csv_ok "GPU array task 0 CSV valid" "$T/results/paper_gpu.task0.csv" ""
csv_ok "GPU array task 1 CSV valid" "$T/results/paper_gpu.task1.csv" ""
csv_ok "merged GPU CSV (results/paper_gpu.csv): $GPU_EXPECT rows, valid" "$T/results/paper_gpu.csv" "$GPU_EXPECT"
if [ -s "$T/results/paper_gpu.csv.keys" ] && cmp -s "$T/results/paper_gpu.csv.keys" "$T/results/gpusweep.csv.keys"; then
  ok "merged GPU array CSV has the same configurations as the GPU sweep"
else
  bad "merged GPU array CSV has the same configurations as the GPU sweep"
fi
check "merged GPU rows are device=cuda" devices_are "$T/results/paper_gpu.csv" cuda
if json_ok "$T/results/paper_gpu.gpu_cal.task0.json" && json_ok "$T/results/paper_gpu.gpu_cal.task1.json" \
  && [ "$(calls "$GALOG" calibrate | wc -l)" = 2 ]; then
  ok "each array task measured its own GPU calibration once (paper_gpu.gpu_cal.task0.json, task1)"
else
  bad "per-task GPU calibrations: $(calls "$GALOG" calibrate | wc -l) calibrate calls; $(ls "$T/results" | grep gpu_cal | tr '\n' ' ')"
fi
ta=$(calls "$GALOG" sweep | grep -c -F -- "--array-task 0 --array-count 2 --gpu-calibration $T/results/paper_gpu.gpu_cal.task0.json --out $T/results/paper_gpu.task0.csv")
tb=$(calls "$GALOG" sweep | grep -c -F -- "--array-task 1 --array-count 2 --gpu-calibration $T/results/paper_gpu.gpu_cal.task1.json --out $T/results/paper_gpu.task1.csv")
if [ "$ta" = 2 ] && [ "$tb" = 2 ] && all_calls_have "$GALOG" "$GPU_ENV_SEEN" \
  && [ -z "$(calls "$GALOG" sweep | grep -v -F -- "args: --devices cuda --spec $SPEC ")" ]; then
  ok "array tasks got --devices cuda, the spec, their share, their calibration, the CUDA variables"
else
  bad "GPU array arguments (task 0: $ta, task 1: $tb of 2 ranks): $(calls "$GALOG" sweep | head -n 1 | sed 's/.*args: //')"
fi
if [ "$GPUS" = 2 ]; then
  c=$(calls "$GALOG" calibrate | sed -n 's/.*CUDA_VISIBLE_DEVICES=\([^ ]*\) .*/\1/p' | sort -u | tr '\n' ' ')
  if [ "$c" = "0 " ]; then
    ok "srun: each task's calibration ran on one GPU, rank 0's (CUDA_VISIBLE_DEVICES=0)"
  else
    bad "srun: the calibrations saw CUDA_VISIBLE_DEVICES '$c', expected 0"
  fi
fi

# 6f. The --gres=gpu:N + --gpu-bind=single:1 alternative, end to end under srun.
if [ "$GPUS" = 2 ]; then
  GRLOG=$T/logs/gpu-gres.calls
  GR=$(export "${GPU_ENV[@]}" MLRA_STANDIN_LOG="$GRLOG" MLRA_SWEEP_NAME=gpugres MLRA_LAUNCHER=srun
    sub "${GPU_SIZE[@]}" --gres=gpu:2 --job-name=e2e-gpu-gres "$T/gpu/gres_alternative.sbatch") || die "sbatch (--gres alternative) failed"
  if wait_job "$GR"; then
    check "--gres=gpu:2 --gpu-bind=single:1 job $GR COMPLETED, exit 0:0" all_completed "$GR"
  else
    bad "--gres alternative job $GR did not finish"
  fi
  csv_ok "--gres alternative CSV: $GPU_EXPECT rows, valid" "$T/results/gpugres.csv" "$GPU_EXPECT"
  c=$(cvd_of "$GRLOG")
  if [ "$c" = "rank=0:0 rank=1:1 " ]; then
    ok "--gpu-bind=single:1 under srun: each rank sees one GPU of its own (rank 0: 0, rank 1: 1)"
  else
    bad "--gpu-bind=single:1 ranks' CUDA_VISIBLE_DEVICES: '$c', expected rank=0:0 rank=1:1"
  fi
else
  note "SKIP the --gres alternative: the node has no GPUs"
fi

for id in "$G1" "$G2" $(task_ids "$GARRAY") "$GMERGE" ${GR:-}; do
  s=$(jobcomp_state "$id")
  if [ "$s" = COMPLETED ]; then ok "jobcomp: GPU job $id COMPLETED"; else bad "jobcomp: GPU job $id state '$s'"; fi
done

[ "$failed" -eq 0 ] || show_logs
