# Sourced by integration/slurm/slurm_e2e.sh and integration/slurm/slurm_multinode_e2e.sh: the
# pass/fail counters, starting and stopping daemons, submitting and waiting for
# jobs, and the CSV checks. Callers set REPO and HERE before sourcing it, T and SOCK
# before start_munge, and a teardown on EXIT (die exits through it).

passed=0
failed=0
t_start=$(date +%s)
ok() { passed=$((passed + 1)); echo "ok   - $*"; }
bad() { failed=$((failed + 1)); echo "FAIL - $*"; }
note() { echo "#      $*"; }
die() { bad "$*"; exit 1; }
check() { # description command...
  local what=$1; shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}

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

# Teardown: cancels whatever this private cluster still runs and waits a little.
cancel_all_jobs() {
  local left
  [ -s "$T/run/slurmctld.pid" ] || return 0
  left=$(timeout 10 squeue -h -o %A 2>/dev/null)
  # shellcheck disable=SC2086  # one job id per word
  [ -n "$left" ] && timeout 10 scancel --quiet --full $left 2>/dev/null
  for _ in $(seq 1 30); do
    [ -z "$(timeout 5 squeue -h -o %A 2>/dev/null)" ] && break
    sleep 0.5
  done
}

# Teardown's last words: a non-zero exit with no failure counted is one; the
# summary "N passed, M failed" is the last line; exits 0 only if M = 0.
finish() { # rc label
  [ "$1" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
  echo "# $2 took $(($(date +%s) - t_start)) s"
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

# slurmctld, slurmd, slurm-client and munge from Debian when missing (needs root).
need_slurm_packages() {
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
}

# munge: own key, socket, pid, log and seed under $T; a round trip proves it.
start_munge() {
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
}

# slurm_conf_common CLUSTER CONTROLLER SLURMD_SPOOL SLURMD_PID SLURMD_LOG -> the slurm.conf
# lines both tests share (what works without systemd or cgroups: /work/shared/SLURM-NOTES.md);
# each test adds its nodes and partition. Uses T, SOCK, P1 and P2.
slurm_conf_common() {
  cat <<EOF
ClusterName=$1
SlurmctldHost=$2
SlurmdSpoolDir=$3
SlurmdPidFile=$4
SlurmdLogFile=$5
SlurmctldPort=$P1
SlurmdPort=$P2
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCK
StateSaveLocation=$T/state
SlurmctldPidFile=$T/run/slurmctld.pid
SlurmctldLogFile=$T/logs/slurmctld.log
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
EOF
}

# --------------------------------------------------------------------------
# Submitting, waiting, job states, CSV checks.
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

sub() { # sbatch args... -> job id (stdout)
  local id
  id=$(timeout 30 sbatch --parsable "$@" </dev/null) || return 1
  echo "${id%%;*}"
}
