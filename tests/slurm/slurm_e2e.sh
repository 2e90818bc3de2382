#!/usr/bin/env bash
# End-to-end test of the Slurm job scripts on a REAL single-node Slurm.
#
#   tests/slurm/slurm_e2e.sh               # runs .build/release/mlra sweep
#   tests/slurm/slurm_e2e.sh --stand-in    # runs tests/slurm/stand_in_mlra.sh instead
#   tests/slurm/slurm_e2e.sh --keep        # keep the temporary folder (configs, logs, CSVs)
#   tests/slurm/slurm_e2e.sh --time-limit  # stop the SIGTERM job by its real time limit
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
HERE=$REPO/tests/slurm
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

passed=0
failed=0
t_start=$(date +%s)
ok() { passed=$((passed + 1)); echo "ok   - $*"; }
bad() { failed=$((failed + 1)); echo "FAIL - $*"; }
note() { echo "#      $*"; }
check() { # description command...
  local what=$1; shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}

# --------------------------------------------------------------------------
# Teardown: runs on every exit; prints the summary as the very last line.
# --------------------------------------------------------------------------
T=""
stop_daemon() { # name pidfile
  local pid
  [ -s "$2" ] || return 0
  pid=$(cat "$2")
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  echo "# $1 (pid $pid) did not stop on SIGTERM; sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null
}
teardown() {
  local rc=$? left
  trap - EXIT INT TERM
  if [ -n "$T" ] && [ -d "$T" ]; then
    if [ -s "$T/run/slurmctld.pid" ]; then
      # Cancel anything left (only this private cluster's jobs), then wait a little.
      left=$(timeout 10 squeue -h -o %A 2>/dev/null)
      [ -n "$left" ] && timeout 10 scancel --quiet --full $left 2>/dev/null
      for _ in $(seq 1 30); do
        [ -z "$(timeout 5 squeue -h -o %A 2>/dev/null)" ] && break
        sleep 0.5
      done
    fi
    stop_daemon slurmd "$T/run/slurmd.pid"
    stop_daemon slurmctld "$T/run/slurmctld.pid"
    stop_daemon munged "$T/run/munged.pid"
    if [ "$keep" = 1 ] || { [ "$failed" -gt 0 ] && [ -n "${E2E_KEEP_ON_FAIL:-}" ]; }; then
      echo "# kept $T"
    else
      rm -rf "$T"
    fi
  fi
  [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
  echo "# e2e took $(($(date +%s) - t_start)) s"
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}
trap teardown EXIT
trap 'bad "interrupted"; exit 130' INT
trap 'bad "terminated"; exit 143' TERM

die() { bad "$*"; exit 1; }

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
need=()
for c in slurmctld slurmd sbatch scontrol squeue scancel munged munge unmunge; do
  command -v "$c" >/dev/null 2>&1 || need+=("$c")
done
if [ "${#need[@]}" -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "missing ${need[*]}; install slurmctld slurmd slurm-client munge (needs root)"
  note "installing slurmctld slurmd slurm-client munge (missing: ${need[*]})"
  export DEBIAN_FRONTEND=noninteractive
  pk=(slurmctld slurmd slurm-client munge)
  if ! timeout 600 apt-get install -y -q --no-install-recommends "${pk[@]}" </dev/null >/dev/null 2>&1; then
    timeout 300 apt-get update -q </dev/null >/dev/null 2>&1
    timeout 600 apt-get install -y -q --no-install-recommends "${pk[@]}" </dev/null >/dev/null 2>&1 \
      || die "apt-get install ${pk[*]} failed"
  fi
fi
ok "$(slurmctld -V 2>/dev/null) and $(munged -V 2>/dev/null | cut -d" " -f1) present"

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

# munge: own key, socket, pid, log, seed.
dd if=/dev/urandom of="$T/munge/munge.key" bs=1024 count=1 status=none
chmod 0400 "$T/munge/munge.key"
munged --force --key-file="$T/munge/munge.key" --socket="$SOCK" \
  --pid-file="$T/run/munged.pid" --log-file="$T/logs/munged.log" \
  --seed-file="$T/munge/munge.seed" </dev/null >"$T/logs/munged.out" 2>&1 \
  || die "munged did not start: $(tail -3 "$T/logs/munged.out" "$T/logs/munged.log" 2>/dev/null)"
for _ in $(seq 1 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
if timeout 10 munge -n -S "$SOCK" </dev/null | timeout 10 unmunge -S "$SOCK" >/dev/null 2>&1; then
  ok "munged up (socket $SOCK)"
else
  die "munge round trip failed: $(tail -3 "$T/logs/munged.log" 2>/dev/null)"
fi

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
cat >"$SLURM_CONF" <<EOF
# Written by tests/slurm/slurm_e2e.sh; lives and dies with $T.
ClusterName=mlrae2e
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$P1
SlurmdPort=$P2
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCK
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/run/slurmctld.pid
SlurmdPidFile=$T/run/slurmd.pid
SlurmctldLogFile=$T/logs/slurmctld.log
SlurmdLogFile=$T/logs/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
TmpFS=$T/tmp
SchedulerParameters=batch_sched_delay=0
MailProg=/bin/true
JobCompType=jobcomp/filetxt
JobCompLoc=$T/jobcomp.txt
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
MinJobAge=900
NodeName=$NODE NodeAddr=127.0.0.1 $hw RealMemory=1000 State=UNKNOWN
PartitionName=e2e Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

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
JOB_TIMEOUT=${E2E_JOB_TIMEOUT:-300}
TERMINAL='^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)$'

# job_states ID -> one "JobId State ExitCode Reason" line per job/task.
job_states() {
  timeout 10 scontrol -o show job "$1" 2>/dev/null | awk '{
    id = ""; st = ""; ec = ""; rs = ""
    for (i = 1; i <= NF; i++) {
      if ($i ~ /^JobId=/) id = substr($i, 7)
      else if ($i ~ /^JobState=/) st = substr($i, 10)
      else if ($i ~ /^ExitCode=/) ec = substr($i, 10)
      else if ($i ~ /^Reason=/) rs = substr($i, 8)
    }
    print id, st, ec, rs
  }'
}

# wait_job ID -> 0 when every record of the job (all array tasks) is terminal.
wait_job() {
  local id=$1 deadline=$(($(date +%s) + JOB_TIMEOUT)) lines
  while [ "$(date +%s)" -lt "$deadline" ]; do
    lines=$(job_states "$id")
    if [ -n "$lines" ]; then
      if printf '%s\n' "$lines" | awk '$4 ~ /held|DependencyNeverSatisfied/ {found=1} END {exit !found}'; then
        note "job $id stuck: $(printf '%s' "$lines" | tr '\n' ';')"
        return 1
      fi
      printf '%s\n' "$lines" | awk -v re="$TERMINAL" '$2 !~ re {busy=1} END {exit busy}' && return 0
    fi
    sleep 0.5
  done
  note "job $id not finished after $JOB_TIMEOUT s: $(printf '%s' "$lines" | tr '\n' ';')"
  return 1
}

# all_completed ID -> every record COMPLETED with exit code 0:0.
all_completed() {
  job_states "$1" | awk 'NF {n++; if ($2 != "COMPLETED" || $3 != "0:0") bad++} END {exit !(n > 0 && !bad)}'
}

# jobcomp_state ID -> the JobState the jobcomp file recorded for job ID.
jobcomp_state() {
  awk -v id="$1" '{ for (i = 1; i <= NF; i++) if ($i == "JobId=" id) { for (j = 1; j <= NF; j++) if ($j ~ /^JobState=/) print substr($j, 10) } }' "$T/jobcomp.txt" 2>/dev/null | tail -n 1
}

# Job ids of an array's tasks (e.g. 5 -> 6 7 ...; the first task keeps the array's id).
task_ids() { timeout 10 scontrol -o show job "$1" 2>/dev/null | sed -n 's/^JobId=\([0-9]*\) .*/\1/p'; }

show_logs() { # on failure: the job logs and daemon log tails
  for f in "$T"/logs/*.out; do [ -f "$f" ] && { echo "# --- $f"; tail -n 15 "$f" | sed 's/^/#   /'; }; done
  for f in "$T/logs/slurmctld.log" "$T/logs/slurmd.log"; do echo "# --- $f"; tail -n 10 "$f" 2>/dev/null | sed 's/^/#   /'; done
}

SCHEMA_HEADER=$("$HERE/schema_header.sh" "$REPO/docs/csv-schema.md") || die "cannot read the schema from docs/csv-schema.md"
SCHEMA_VERSION=$("$HERE/schema_header.sh" --version "$REPO/docs/csv-schema.md") || die "cannot read the schema version from docs/csv-schema.md's title"

# csv_check FILE EXPECTED_ROWS -> checks, prints the problems; writes FILE.keys
# (one configuration key per row, sorted) for comparisons.
csv_check() {
  local f=$1 want=$2 problems
  if [ ! -s "$f" ]; then echo "missing or empty"; return 1; fi
  if [ "$(head -n 1 "$f")" != "$SCHEMA_HEADER" ]; then echo "header differs from docs/csv-schema.md"; return 1; fi
  if [ -n "$(tail -c 1 "$f")" ]; then echo "last row has no newline (partial row)"; return 1; fi
  problems=$(awk -v want="$want" -v keys="$f.keys" -v version="$SCHEMA_VERSION" -f "$HERE/csv.awk" -f /dev/stdin "$f" <<'AWK'
    NR == 1 { nh = csvsplit($0, h); for (i = 1; i <= nh; i++) col[h[i]] = i; next }
    {
      rows++
      n = csvsplit($0, f)
      if (n != nh) { printf "line %d: %d fields, header has %d (partial row)\n", NR, n, nh; next }
      if (f[col["validation"]] != "pass") printf "line %d: validation=%s\n", NR, f[col["validation"]]
      if (f[col["schema_version"]] != version) printf "line %d: schema_version=%s\n", NR, f[col["schema_version"]]
      k = f[col["variant"]] "|" f[col["scope"]] "|" f[col["tp"]] "|" f[col["tp_group"]] "|" f[col["context"]] "|" f[col["batch"]] "|" f[col["n_head"]] "|" f[col["kv_lora_rank"]] "|" f[col["kv_dtype"]] "|" f[col["threads"]] "|" f[col["timing_mode"]] "|" f[col["cold_cache"]]
      if (k in seen) printf "line %d: configuration %s also on line %d\n", NR, k, seen[k]
      seen[k] = NR
      print k | ("sort > \"" keys "\"")
    }
    END { if (want != "" && rows != want) printf "%d rows, expected %d\n", rows, want }
AWK
)
  if [ -n "$problems" ]; then printf '%s\n' "$problems" | head -n 10; return 1; fi
  return 0
}
csv_ok() { # description FILE EXPECTED_ROWS
  local out
  if out=$(csv_check "$2" "$3"); then ok "$1"; else bad "$1"; printf '%s\n' "$out" | sed 's/^/#      /'; fi
}
rows_of() { [ -s "$1" ] && echo $(($(wc -l <"$1") - 1)) || echo 0; }

# --------------------------------------------------------------------------
# 3. Submit. The grid is tiny: 2 ranks, TP 2 only, so every configuration is
# one row. Jobs are --exclusive, so they run one after another.
# --------------------------------------------------------------------------
cd "$REPO" || die "cd $REPO"
SWEEP=${E2E_SWEEP_ARGS:---variants mla,mlra4 --contexts 64,128 --tp 2 --dtypes f32 --scopes kernel --batch 1 --threads 1 --isolate off --quiet}
EXPECT=${E2E_EXPECT_ROWS:-4}
# Each configuration of this grid runs 2000 steps (~0.5 s) so the job is still sweeping when SIGTERM arrives.
TERM_SWEEP=${E2E_TERM_SWEEP_ARGS:---variants mla,mlra4 --contexts 64,128,256,512,1024,2048 --tp 2 --dtypes f32 --scopes kernel --batch 1 --threads 1 --isolate off --steps 2000 --quiet}
TERM_EXPECT=${E2E_TERM_EXPECT_ROWS:-12}
COMMON=(--ntasks=2 --time=00:10:00 "--output=$T/logs/%x-%j.out")
export MLRA_OUT_DIR=$T/results

sub() { # sbatch args... -> job id (stdout)
  local id
  id=$(timeout 30 sbatch --parsable "$@" </dev/null) || return 1
  echo "${id%%;*}"
}

SINGLE=$(MLRA_SWEEP_NAME=single MLRA_SWEEP_ARGS=$SWEEP sub "${COMMON[@]}" --job-name=e2e-sweep jobs/slurm_sweep.sbatch) \
  || die "sbatch jobs/slurm_sweep.sbatch failed"
ok "sbatch jobs/slurm_sweep.sbatch -> job $SINGLE"

# One rank with 2 cores (--cpus-per-task=2: the script maps with PE=2).
THREADS_SWEEP=${E2E_THREADS_SWEEP_ARGS:---variants mla,mlra4 --contexts 64,128 --tp 1 --dtypes f32 --scopes kernel --batch 1 --threads 2 --isolate off --quiet}
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
