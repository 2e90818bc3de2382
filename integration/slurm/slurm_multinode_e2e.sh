#!/usr/bin/env bash
# End-to-end test of the multi-node Slurm scripts on a REAL two-node Slurm that
# this machine plays both nodes of.
#
#   integration/slurm/slurm_multinode_e2e.sh          # runs .build/release/mlra (MLRA_BIN to change)
#   integration/slurm/slurm_multinode_e2e.sh --keep   # keep the temporary folder (configs, logs, CSVs)
#
# What it builds (needs root; no mocks):
#   - two compute nodes, mn1 and mn2: each a network namespace with its own
#     address on a veth pair whose other end is on a bridge this test creates
#     (a private /24 of 10.251.0.0/16 that no interface here uses yet), each with
#     its own UTS namespace (its own host name) and its own slurmd
#     (NodeName/NodeAddr, spool, pid and log per node);
#   - one slurmctld (on the bridge's address) and one munged, shared;
#   - Open MPI's TCP transport (btl and out-of-band) restricted to that /24, so
#     every packet between the nodes travels on the addresses the test made.
# What it submits (2 nodes x 2 tasks unless said):
#   1. jobs/slurm_sweep_multinode.sbatch, LAUNCHER=srun (srun --mpi=pmix), TP 1
#      and 2: every TP group inside one node, the DP replicas across both
#      (group_nodes, group_hosts);
#   2. TP 4 without --allow-cross-node-tp: refused with one `mlra: error:` line
#      naming t, the ranks per node and the rule, no row written;
#   3. TP 4 with --allow-cross-node-tp (LAUNCHER=mpirun): one group on both nodes;
#   4. jobs/slurm_array_multinode.sbatch (2 tasks) + merge through
#      jobs/submit_array.sh: the merged CSV holds the single sweep's configurations;
#   5. a sweep whose rank on mn2 is SIGKILLed mid-sweep: the job ends within
#      seconds, the rows written stay whole, a resubmit resumes to the full grid;
#   6. the all-reduce of a TP 2 layer step inside one node against one across
#      the two namespaces, same message (printed; the link is a veth pair, not a
#      network, so the numbers are no cluster's).
# Everything is started and stopped here, configs under one `mktemp -d` folder;
# a trap on EXIT cancels the jobs, stops the daemons it started (pid files),
# deletes the namespaces and the bridge, and removes the folder.
# The last line is "N passed, M failed"; the exit status is 0 only if M = 0.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO/integration/slurm
# shellcheck source=integration/slurm/lib.sh
source "$HERE/lib.sh"
keep=0
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "slurm_multinode_e2e: unknown argument $arg" >&2; exit 64 ;;
  esac
done

T=""
NODES=(mn1 mn2)
ID=$(($$ % 200 + 20))                    # names and subnet of this run
BR=mlrabr$ID
NETNS=()
teardown() {
  local rc=$? left ns
  trap - EXIT INT TERM
  if [ -n "$T" ] && [ -d "$T" ]; then
    cancel_all_jobs
    for n in "${NODES[@]}"; do stop_daemon "slurmd $n" "$T/run/slurmd-$n.pid"; done
    stop_daemon slurmctld "$T/run/slurmctld.pid"
    stop_daemon munged "$T/run/munged.pid"
  fi
  # Whatever still runs in our namespaces is ours (a job step's leftovers).
  for ns in "${NETNS[@]}"; do
    left=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
    # shellcheck disable=SC2086
    [ -n "$left" ] && kill -KILL $left 2>/dev/null
    ip netns del "$ns" 2>/dev/null   # takes its end of the veth pair with it
  done
  ip link del "$BR" 2>/dev/null
  if [ -n "$T" ] && [ -d "$T" ]; then
    if [ "$keep" = 1 ]; then echo "# kept $T"; else rm -rf "$T"; fi
  fi
  finish "$rc" "multi-node e2e"
}
trap teardown EXIT
trap 'bad "interrupted"; exit 130' INT
trap 'bad "terminated"; exit 143' TERM

show_logs() { # on failure: the job logs and daemon log tails
  for f in "$T"/logs/*.out; do [ -f "$f" ] && { echo "# --- $f"; tail -n 15 "$f" | sed 's/^/#   /'; }; done
  for f in "$T"/logs/slurm*.log; do echo "# --- $f"; tail -n 8 "$f" 2>/dev/null | sed 's/^/#   /'; done
}

# --------------------------------------------------------------------------
# 0. What it needs.
# --------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, slurmd as root)"
if ! command -v ip >/dev/null 2>&1; then   # minimal images lack iproute2
  timeout 600 apt-get install -y -q --no-install-recommends iproute2 </dev/null >/dev/null 2>&1 \
    || { timeout 300 apt-get update -q </dev/null >/dev/null 2>&1; timeout 600 apt-get install -y -q --no-install-recommends iproute2 </dev/null >/dev/null 2>&1; }
fi
for c in ip nsenter unshare mpirun; do command -v "$c" >/dev/null 2>&1 || die "needs $c (iproute2, util-linux, openmpi-bin)"; done
MLRA_BIN=${MLRA_BIN:-$REPO/.build/release/mlra}
case "$MLRA_BIN" in /*) ;; *) MLRA_BIN=$PWD/$MLRA_BIN ;; esac
export MLRA_BIN
timeout 60 "$MLRA_BIN" sweep --help </dev/null 2>&1 | grep -q -- '--allow-cross-node-tp' \
  || die "$MLRA_BIN has no 'sweep --allow-cross-node-tp': build it (make build)"
ok "binary under test: $MLRA_BIN"
need_slurm_packages

# --------------------------------------------------------------------------
# 1. Two nodes: a bridge, and per node a network namespace on a veth pair.
# --------------------------------------------------------------------------
NET=""
for x in $(seq "$ID" 254) $(seq 20 "$ID"); do   # a /24 nothing here uses
  ip -4 addr show 2>/dev/null | grep -q " 10\.251\.$x\." || { NET=10.251.$x; break; }
done
[ -n "$NET" ] || die "no free /24 in 10.251.0.0/16"
T=$(mktemp -d /tmp/mlra-slurm-mn.XXXXXX) || die "mktemp -d failed"
chmod 0755 "$T"
mkdir -p "$T/munge" "$T/run" "$T/state" "$T/logs" "$T/results" "$T/tmp" "$T/spool-mn1" "$T/spool-mn2" "$T/tmp-mn1" "$T/tmp-mn2"
chmod 0700 "$T/munge"
ip link add "$BR" type bridge && ip addr add "$NET.1/24" dev "$BR" && ip link set "$BR" up \
  || die "cannot create bridge $BR"
for i in 1 2; do
  ns=mlra-e2e-$ID-${NODES[i - 1]}
  ip netns add "$ns" || die "ip netns add $ns failed"
  NETNS+=("$ns")
  ip link add "mlv${ID}h$i" type veth peer name "mlv${ID}n$i" \
    && ip link set "mlv${ID}n$i" netns "$ns" \
    && ip link set "mlv${ID}h$i" master "$BR" up \
    && ip -n "$ns" addr add "$NET.$((i + 1))/24" dev "mlv${ID}n$i" \
    && ip -n "$ns" link set "mlv${ID}n$i" up \
    && ip -n "$ns" link set lo up \
    || die "cannot wire $ns to $BR"
done
ok "nodes ${NODES[*]}: namespaces ${NETNS[*]} at $NET.2, $NET.3 on bridge $BR ($NET.1)"

SOCK=$T/run/munge.socket
start_munge

# --------------------------------------------------------------------------
# 2. slurmctld on the bridge's address, one slurmd per namespace.
# --------------------------------------------------------------------------
P1=$((20000 + ($$ % 20000))); P2=$((P1 + 1))
hw=$(slurmd -C 2>/dev/null | head -n 1 | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')
[ -n "$hw" ] || die "slurmd -C printed no hardware line"
NCPU=$(printf '%s\n' $hw | sed -n 's/^CPUs=//p')
[ "$NCPU" -ge 2 ] || die "each node needs 2 CPUs for 2 tasks; slurmd -C says $NCPU"
export SLURM_CONF=$T/slurm.conf
{
  echo "# Written by integration/slurm/slurm_multinode_e2e.sh; lives and dies with $T."
  slurm_conf_common mlramn "$(hostname -s)($NET.1)" "$T/spool-%n" "$T/run/slurmd-%n.pid" "$T/logs/slurmd-%n.log"
  echo "KillWait=5"   # a killed rank's step is torn down within seconds
  echo "NodeName=mn1 NodeAddr=$NET.2 NodeHostname=mn1 $hw RealMemory=1000 State=UNKNOWN"
  echo "NodeName=mn2 NodeAddr=$NET.3 NodeHostname=mn2 $hw RealMemory=1000 State=UNKNOWN"
  echo "PartitionName=e2e Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
} >"$SLURM_CONF"
slurmctld -f "$SLURM_CONF" -c </dev/null >"$T/logs/slurmctld.out" 2>&1 \
  || die "slurmctld did not start: $(tail -5 "$T/logs/slurmctld.out" "$T/logs/slurmctld.log" 2>/dev/null)"
for i in 1 2; do
  n=${NODES[i - 1]}
  # Its own host name (UTS namespace), so that MPI_Get_processor_name, Open MPI's
  # session folders and the node's log name it; slurmd forks into the background there.
  # nsenter, not `ip netns exec`: that mounts a sysfs of its own, without the cgroup
  # file system slurmd refuses to start without ("No filesystem mounted on /sys/fs/cgroup").
  # Its own TmpFS too (a private mount namespace binds tmp-<node> over tmp): PMIx
  # makes its per-step folders there, and two nodes sharing one collide ("File exists").
  nsenter --net="/run/netns/${NETNS[i - 1]}" unshare --uts --mount \
    sh -c "hostname $n && mount --bind '$T/tmp-$n' '$T/tmp' && exec slurmd -f '$SLURM_CONF' -N $n" \
    </dev/null >"$T/logs/slurmd-$n.out" 2>&1 \
    || die "slurmd $n did not start: $(tail -5 "$T/logs/slurmd-$n.out" "$T/logs/slurmd-$n.log" 2>/dev/null)"
done
idle=0
for _ in $(seq 1 100); do
  idle=$(timeout 5 sinfo -h -N -t idle -o %N 2>/dev/null | sort -u | wc -l)
  [ "$idle" -eq 2 ] && break
  sleep 0.3
done
[ "$idle" -eq 2 ] || die "nodes not IDLE after 30 s: $(timeout 5 sinfo -N 2>&1 | tr '\n' ';') $(tail -3 "$T"/logs/slurm*.log 2>/dev/null)"
ok "slurmctld at $NET.1:$P1 + slurmd on mn1 ($NET.2) and mn2 ($NET.3), both IDLE ($hw)"
# Node to node over the bridge (no ping here): each connects to the other's slurmd.
for i in 1 2; do
  nsenter --net="/run/netns/${NETNS[i - 1]}" timeout 5 bash -c "exec 3<>/dev/tcp/$NET.$((4 - i))/$P2" 2>/dev/null \
    || die "${NODES[i - 1]} cannot reach $NET.$((4 - i)):$P2 over the bridge"
done
ok "mn1 and mn2 reach each other over the bridge"

# --------------------------------------------------------------------------
# 3. The jobs. Open MPI talks TCP on the test's /24 only; the sweeps read one
# calibration file (no per-job measurement) and keep caches warm (a cold-cache
# set spans 4 x LLC per rank, too much for two nodes on one machine).
# --------------------------------------------------------------------------
export OMPI_MCA_btl=self,vader,tcp
export OMPI_MCA_btl_tcp_if_include=$NET.0/24
export OMPI_MCA_oob_tcp_if_include=$NET.0/24
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export MLRA_OUT_DIR=$T/results
cd "$REPO" || die "cd $REPO"
timeout 120 "$MLRA_BIN" calibrate --quick --format json >"$T/calibration.json" </dev/null 2>"$T/logs/calibrate.err" \
  || die "mlra calibrate failed: $(tail -3 "$T/logs/calibrate.err")"
# A small layer (8 heads, d 512) keeps validation and the Double reference quick.
SHAPE="--heads 8 --head-dim 64 --rope-dim 32 --q-rank 256 --kv-ranks 128 --n-embd 512"
RUN="--kv-dtypes f32 --threads 1 --isolate off --no-cold-cache --calibration $T/calibration.json --quiet"
BASE="--contexts 64 --batch 4 $SHAPE $RUN"
GRID="--variants mla,mlra4 --tp 1,2 --scopes kernel,layer --steps 5 $BASE"
EXPECT=24                       # 2 variants x 2 scopes x (4 groups at t 1 + 2 at t 2)
MN=(--nodes=2 --ntasks-per-node=2 --time=00:10:00 "--output=$T/logs/%x-%j.out")

# csv_cells FILE COLUMN... -> the named columns of every row, '|'-separated, one row a line.
csv_cells() {
  local f=$1; shift
  awk -v want="$*" -f "$HERE/csv.awk" -f /dev/stdin "$f" <<'AWK'
    NR == 1 { nh = csvsplit($0, h); for (i = 1; i <= nh; i++) col[h[i]] = i; nw = split(want, w, " "); next }
    { csvsplit($0, f); line = ""; for (i = 1; i <= nw; i++) line = line (i > 1 ? "|" : "") f[col[w[i]]]; print line }
AWK
}
finished() { # description job -> waits, then checks COMPLETED 0:0
  if wait_job "$2"; then check "$1: job $2 COMPLETED, exit 0:0" all_completed "$2"; else bad "$1: job $2 did not finish"; fi
}

# 3.1 The sweep, srun --mpi=pmix: TP inside nodes, DP across.
SWEEP=$(MLRA_LAUNCHER=srun MLRA_SWEEP_NAME=mn MLRA_SWEEP_ARGS=$GRID sub "${MN[@]}" --job-name=mn-sweep jobs/slurm_sweep_multinode.sbatch) \
  || die "sbatch jobs/slurm_sweep_multinode.sbatch failed"
ok "sbatch --nodes=2 --ntasks-per-node=2 jobs/slurm_sweep_multinode.sbatch (LAUNCHER=srun) -> job $SWEEP"
finished "multi-node sweep (srun)" "$SWEEP"
csv_ok "multi-node sweep CSV: schema header, $EXPECT rows, validation=pass, no duplicate" "$T/results/mn.csv" "$EXPECT"
layout=$(csv_cells "$T/results/mn.csv" tp tp_group group_nodes group_hosts | sort -u | tr '\n' ' ')
want="1|0|1|mn1 1|1|1|mn1 1|2|1|mn2 1|3|1|mn2 2|0|1|mn1 2|1|1|mn2 "
if [ "$layout" = "$want" ]; then
  ok "TP groups inside nodes, DP across them (tp|tp_group|group_nodes|group_hosts): $layout"
else
  bad "TP groups inside nodes, DP across them: got '$layout', expected '$want'"
fi
check "srun started the ranks (the job log says so)" grep -q "srun --mpi=pmix" "$T/logs/mn-sweep-$SWEEP.out"

# 3.2 t = 4 on 2 ranks per node, not allowed to span: refused before anything is written.
REFUSE=$(MLRA_SWEEP_NAME=refused MLRA_SWEEP_ARGS="--variants mla --tp 4 --scopes layer --steps 5 $BASE" \
  sub "${MN[@]}" --job-name=mn-refuse jobs/slurm_sweep_multinode.sbatch) || die "sbatch (refused layout) failed"
wait_job "$REFUSE" || bad "refused layout: job $REFUSE did not finish"
errs=$(grep -c '^mlra: error:' "$T/logs/mn-refuse-$REFUSE.out")
line=$(grep '^mlra: error:' "$T/logs/mn-refuse-$REFUSE.out" | head -n 1)
if [ "$errs" = 1 ] && [[ "$line" == *"t = 4"* ]] && [[ "$line" == *"2 ranks per node"* ]] && [[ "$line" == *"--allow-cross-node-tp"* ]]; then
  ok "t = 4 on 2 ranks per node refused with one line: $line"
else
  bad "t = 4 on 2 ranks per node: $errs 'mlra: error:' lines, first '$line'"
fi
st=$(job_states "$REFUSE" | awk '{print $2}')
if [ "$st" = FAILED ] && [ "$(rows_of "$T/results/refused.csv")" = 0 ]; then
  ok "refused job $REFUSE FAILED, no row written"
else
  bad "refused job $REFUSE: state '$st', $(rows_of "$T/results/refused.csv") rows"
fi

# 3.3 --allow-cross-node-tp: one t = 4 group over both nodes (mpirun this time).
CROSS=$(MLRA_LAUNCHER=mpirun MLRA_SWEEP_NAME=cross \
  MLRA_SWEEP_ARGS="--variants mla,mlra4 --tp 4 --scopes layer --steps 5 --allow-cross-node-tp $BASE" \
  sub "${MN[@]}" --job-name=mn-cross jobs/slurm_sweep_multinode.sbatch) || die "sbatch (cross-node TP) failed"
finished "--allow-cross-node-tp t = 4 (mpirun)" "$CROSS"
csv_ok "cross-node CSV: 2 rows, validation=pass" "$T/results/cross.csv" 2
cells=$(csv_cells "$T/results/cross.csv" tp group_nodes group_hosts | sort -u | tr '\n' ' ')
if [ "$cells" = "4|2|mn1;mn2 " ]; then ok "one t = 4 group across both nodes: $cells"; else bad "cross-node group: got '$cells'"; fi

# 3.4 The multi-node array and its merge.
ids=$(MLRA_ARRAY_SCRIPT=jobs/slurm_array_multinode.sbatch MLRA_ARRAY=0-1 MLRA_SWEEP_NAME=split MLRA_SWEEP_ARGS=$GRID \
  MLRA_EXPECT_TASKS=2 timeout 60 jobs/submit_array.sh "${MN[@]}" </dev/null | tail -n 1)
ARRAY=$(printf '%s' "$ids" | sed -n 's/.*ARRAY_JOB=\([0-9]*\).*/\1/p')
MERGE=$(printf '%s' "$ids" | sed -n 's/.*MERGE_JOB=\([0-9]*\).*/\1/p')
[ -n "$ARRAY" ] && [ -n "$MERGE" ] || die "jobs/submit_array.sh printed '$ids'"
ok "jobs/submit_array.sh with jobs/slurm_array_multinode.sbatch -> array job $ARRAY (tasks 0-1), merge job $MERGE"
finished "multi-node array" "$ARRAY"
finished "merge" "$MERGE"
t0=$(rows_of "$T/results/split.task0.csv"); t1=$(rows_of "$T/results/split.task1.csv")
csv_ok "merged CSV: $EXPECT rows, validation=pass, no duplicate" "$T/results/split.csv" "$EXPECT"
if [ "$t0" -gt 0 ] && [ "$t1" -gt 0 ] && cmp -s "$T/results/split.csv.keys" "$T/results/mn.csv.keys"; then
  ok "array tasks ($t0 + $t1 rows, both on 2 nodes) merge to the single sweep's configurations"
else
  bad "array tasks ($t0 + $t1 rows) merged differ from the single sweep's configurations"
fi

# 3.5 One rank killed on mn2 mid-sweep (srun --kill-on-bad-exit): the job ends within
# seconds, finished rows stay whole; the resubmitted job resumes to the full grid.
# Each step has a barrier over TCP, so 400 steps take a few seconds a configuration.
KGRID="--variants mla,mlra4 --contexts 64,128,256 --tp 2 --scopes kernel --batch 4 --steps 400 $SHAPE $RUN"
KEXPECT=12                      # 2 variants x 3 contexts x 2 groups
KILLME=$(MLRA_LAUNCHER=srun MLRA_SWEEP_NAME=killed MLRA_SWEEP_ARGS=$KGRID sub "${MN[@]}" --job-name=mn-kill jobs/slurm_sweep_multinode.sbatch) \
  || die "sbatch (kill job) failed"
victim=""
BIN_REAL=$(readlink -f "$MLRA_BIN")
deadline=$(($(date +%s) + JOB_TIMEOUT))
while [ "$(date +%s)" -lt "$deadline" ]; do
  if [ "$(rows_of "$T/results/killed.csv")" -ge 2 ]; then
    victim=$(ip netns pids "${NETNS[1]}" | while read -r p; do
      [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$BIN_REAL" ] && echo "$p"; done | head -n 1)
    [ -n "$victim" ] && break
  fi
  [[ "$(job_states "$KILLME" | awk '{print $2}')" =~ $TERMINAL ]] && break
  sleep 0.2
done
if [ -n "$victim" ]; then
  before=$(rows_of "$T/results/killed.csv")
  t_kill=$(date +%s.%N)
  kill -KILL "$victim"
  wait_job "$KILLME" || bad "kill job $KILLME did not end"
  t_end=$(date +%s.%N)
  took=$(awk -v a="$t_kill" -v b="$t_end" 'BEGIN { printf "%.1f", b - a }')
  st=$(job_states "$KILLME" | awk '{print $2, $3}')
  if awk -v t="$took" 'BEGIN { exit !(t < 30) }' && [[ "$st" == FAILED* ]]; then
    ok "rank $victim on mn2 SIGKILLed with $before of $KEXPECT rows written: job $KILLME ended '$st' ${took} s later"
  else
    bad "rank on mn2 SIGKILLed: job $KILLME ended '$st' after ${took} s (want FAILED within 30 s)"
  fi
  csv_ok "killed sweep CSV: finished rows only, whole, valid" "$T/results/killed.csv" ""
  RESUME=$(MLRA_LAUNCHER=srun MLRA_SWEEP_NAME=killed MLRA_SWEEP_ARGS=$KGRID sub "${MN[@]}" --job-name=mn-resume jobs/slurm_sweep_multinode.sbatch) \
    || die "sbatch (resume) failed"
  finished "resubmitted after the kill" "$RESUME"
  csv_ok "resumed CSV: all $KEXPECT configurations exactly once" "$T/results/killed.csv" "$KEXPECT"
else
  bad "no rank of job $KILLME found on mn2 to kill (rows $(rows_of "$T/results/killed.csv"))"
fi

# 3.6 All-reduce of a TP 2 layer step: inside one node against across the veth pair.
# A d = 4096 layer: a 16 KiB all-reduce per step (one sequence). Isolated timing: the
# collectives are timed on their own, so the all-reduce column holds no wait for a
# slower rank's kernel on these shared cores.
AGRID="--variants mla --heads 32 --head-dim 128 --q-rank 512 --kv-ranks 512 --n-embd 4096 --contexts 64 --tp 2 --scopes layer --batch 1 --steps 200 ${RUN/--isolate off/--isolate on}"
IN=$(MLRA_SWEEP_NAME=ar_in MLRA_SWEEP_ARGS=$AGRID sub --nodes=1 --ntasks=2 --time=00:10:00 "--output=$T/logs/%x-%j.out" \
  --job-name=mn-ar-in jobs/slurm_sweep.sbatch) || die "sbatch (all-reduce in a node) failed"
ACROSS=$(MLRA_SWEEP_NAME=ar_across MLRA_SWEEP_ARGS="$AGRID --allow-cross-node-tp" \
  sub --nodes=2 --ntasks-per-node=1 --time=00:10:00 "--output=$T/logs/%x-%j.out" --job-name=mn-ar-across jobs/slurm_sweep_multinode.sbatch) \
  || die "sbatch (all-reduce across nodes) failed"
finished "t = 2 in one node" "$IN"
finished "t = 2 across two nodes" "$ACROSS"
a_in=$(csv_cells "$T/results/ar_in.csv" allreduce_us_median group_nodes allreduce_bytes_per_step | head -n 1)
a_x=$(csv_cells "$T/results/ar_across.csv" allreduce_us_median group_nodes allreduce_bytes_per_step | head -n 1)
if [ "${a_in#*|}" = "1|${a_in##*|}" ] && [ "${a_x#*|}" = "2|${a_in##*|}" ]; then
  ok "all-reduce, t = 2, ${a_in##*|} bytes per step per rank: ${a_in%%|*} us inside one node (shared memory), ${a_x%%|*} us across two namespaces (TCP over a veth pair, not a network)"
else
  bad "all-reduce rows: in one node '$a_in', across '$a_x' (allreduce_us_median|group_nodes|allreduce_bytes_per_step)"
fi

# --------------------------------------------------------------------------
# 4. Slurm's own record of the jobs.
# --------------------------------------------------------------------------
for id in "$SWEEP" "$CROSS" $(task_ids "$ARRAY") "$MERGE" ${RESUME:-} "$IN" "$ACROSS"; do
  s=$(jobcomp_state "$id")
  if [ "$s" = COMPLETED ]; then ok "jobcomp: job $id COMPLETED"; else bad "jobcomp: job $id state '$s'"; fi
done
nodes=$(awk -v id="$SWEEP" '{ for (i = 1; i <= NF; i++) if ($i == "JobId=" id) for (j = 1; j <= NF; j++) if ($j ~ /^NodeList=/) print substr($j, 10) }' "$T/jobcomp.txt" | tail -n 1)
if [ "$nodes" = "mn[1-2]" ]; then ok "jobcomp: sweep $SWEEP ran on $nodes"; else bad "jobcomp: sweep $SWEEP ran on '$nodes'"; fi

[ "$failed" -eq 0 ] || show_logs
