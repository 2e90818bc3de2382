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
#   5. tears down on EXIT: cancels its jobs, stops only the daemons it
#      started (by their pid files), removes the folder.
# The last line is "N passed, M failed"; the exit status is 0 only if M = 0.
#
# Environment knobs: MLRA_BIN (binary to test), E2E_SWEEP_ARGS (tiny grid),
# E2E_EXPECT_ROWS (rows that grid gives on 2 ranks), E2E_TERM_SWEEP_ARGS,
# E2E_JOB_TIMEOUT (seconds per job, default 300).
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
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
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

export SLURM_CONF=$T/slurm.conf
{
  echo "# Written by integration/slurm/slurm_e2e.sh; lives and dies with $T."
  slurm_conf_common mlrae2e "$NODE(127.0.0.1)" "$T/spool" "$T/run/slurmd.pid" "$T/logs/slurmd.log"
  echo "NodeName=$NODE NodeAddr=127.0.0.1 $hw RealMemory=1000 State=UNKNOWN"
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

[ "$failed" -eq 0 ] || show_logs
