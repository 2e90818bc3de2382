# Sourced by jobs/slurm_sweep.sbatch, jobs/slurm_array.sbatch and their GPU
# versions jobs/slurm_sweep_gpu.sbatch, jobs/slurm_array_gpu.sbatch (not run on
# its own): starts the ranks of `mlra sweep` with the launcher LAUNCHER names,
# passes the time-limit SIGTERM on to them, and waits for them.
#
#   launch_sweep ARGS...      # runs: <launcher> "$MLRA_BIN" sweep ARGS...
#   launch_once ARGS...       # runs: <launcher, one rank> "$MLRA_BIN" ARGS... (where rank 0 runs)
#
# Reads: LAUNCHER (mpirun | srun), SRUN_MPI, MLRA_BIN, THREADS, MLRA_STOP_GRACE,
# JOB (the prefix of its log lines), OUT (the CSV, for the log), and, if set,
# the array LAUNCH_BIND (more launcher flags, e.g. CPU binding; the GPU scripts set it).
# Sets:  LAUNCH_STATUS (the launcher's exit status), LAUNCH_STOPPED (1 after SIGTERM/SIGINT).

# The launcher's flags, one per line. launch_command [RANKS] (default: every Slurm task).
launch_command() {
  case "$LAUNCHER" in
    mpirun)
      # Inside an allocation Open MPI reads the nodes and slots from Slurm: no host
      # file, no --oversubscribe; ranks fill a node's slots before the next node's.
      LAUNCH=(mpirun
        -n "${1:-${SLURM_NTASKS:-1}}"   # one rank per Slurm task, on every node of the job
      )
      if [ "$THREADS" -gt 1 ]; then
        # Give every rank THREADS neighbouring cores instead of one.
        LAUNCH+=(--map-by "slot:PE=$THREADS" --bind-to core)
      fi
      # Open MPI refuses to run as root (containers, CI) unless both are set.
      if [ "$(id -u)" -eq 0 ]; then
        export OMPI_ALLOW_RUN_AS_ROOT=1
        export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
      fi
      ;;
    srun)
      LAUNCH=(srun
        --mpi="$SRUN_MPI"            # the PMI the MPI library speaks; `srun --mpi=list` shows what this Slurm offers
        --kill-on-bad-exit=1         # a rank that dies ends the step at once, instead of leaving the others in a collective
        --cpus-per-task="$THREADS"   # since Slurm 22.05 srun no longer takes --cpus-per-task from the job
      )
      # One rank only: on the job's first node, where rank 0 runs.
      if [ -n "${1:-}" ]; then LAUNCH+=(--ntasks="$1" --nodes=1); fi
      ;;
    *)
      echo "$JOB: LAUNCHER must be mpirun or srun, got '$LAUNCHER'" >&2
      exit 1
      ;;
  esac
  # The calling script's extra launcher flags (CPU binding of the GPU scripts).
  if [ -n "${LAUNCH_BIND+x}" ]; then LAUNCH+=("${LAUNCH_BIND[@]}"); fi
}

# One process in rank 0's place (same launcher, binding and environment), in
# the foreground, e.g. `launch_once calibrate --device cuda --format json`. Its
# exit status is launch_once's; stdout is the caller's.
launch_once() {
  launch_command 1
  echo "$JOB: ${LAUNCH[*]} $MLRA_BIN $*" >&2
  "${LAUNCH[@]}" "$MLRA_BIN" "$@" </dev/null
}

# The launcher runs in the background so that the SIGTERM Slurm sends before the
# time limit (--signal=B:TERM@120) reaches this shell at once and is passed on to
# the ranks: `bash` would otherwise act on it only after the launcher ended, which
# is when Slurm kills everything. The sweep flushes each row when it is measured,
# so only the configuration in progress is lost.
LAUNCH_STOPPED=0
launch_pid=
launch_watchdog=
forward() {
  [ "$LAUNCH_STOPPED" = 1 ] && return   # a second signal changes nothing: the ranks are already stopping
  LAUNCH_STOPPED=1
  echo "$JOB: $1 received (time limit near?): the ranks finish the configuration in progress (at most ${MLRA_STOP_GRACE} s) and stop; finished rows stay in $OUT. Submit the job again to resume." >&2
  [ -n "$launch_pid" ] || return
  local ranks=
  if [ "$LAUNCHER" = mpirun ]; then
    # Signal the ranks, not mpirun: Open MPI 4.1's mpirun forwards SIGTERM to the
    # ranks but sends SIGKILL odls_base_sigkill_timeout (1 s) later, so a
    # configuration longer than about 2 s was lost and the 120 s of --signal
    # bought nothing (raising that timeout does not help: mpirun then sleeps for
    # all of it, twice, even after the ranks have exited). The ranks agree on
    # stopping at the next configuration (an all-reduce of the stop flag), so the
    # ranks on this node (mpirun's children running $MLRA_BIN, directly or as a
    # script's interpreter's argument; rank 0 is among them) are enough, on one
    # node or many; then mpirun ends by itself.
    ranks=$(ps -o pid=,args= --ppid "$launch_pid" 2>/dev/null | awk -v bin="$MLRA_BIN" '$2 == bin || $3 == bin { print $1 }' || true)
  else
    # srun passes SIGTERM on to every task of the step and waits for them.
    ranks=$launch_pid
  fi
  if [ -n "$ranks" ]; then
    # shellcheck disable=SC2086  # one pid per word
    kill -TERM $ranks 2>/dev/null || true
    # If the ranks have not ended when the grace is up, the launcher is stopped after
    # all. The watchdog's own sleep ends with it, so no stray process outlives the job.
    ( trap 'kill "$nap" 2>/dev/null; exit 0' TERM
      sleep "$MLRA_STOP_GRACE" & nap=$!
      wait "$nap" && kill -TERM "$launch_pid" 2>/dev/null ) &
    launch_watchdog=$!
  else
    kill -TERM "$launch_pid" 2>/dev/null || true   # no ranks yet (starting up): nothing to finish
  fi
}

launch_sweep() {
  launch_command
  echo "$JOB: ${LAUNCH[*]} $MLRA_BIN sweep $*"
  trap 'forward SIGTERM' TERM
  trap 'forward SIGINT' INT
  # stdin from /dev/null: the sweep reads none, and an mpirun forwarding an open stdin
  # (a terminal, a pipe) to rank 0 was seen to wait on it after the ranks had stopped.
  "${LAUNCH[@]}" "$MLRA_BIN" sweep "$@" </dev/null &
  launch_pid=$!
  LAUNCH_STATUS=0
  wait "$launch_pid" || LAUNCH_STATUS=$?
  # A trapped signal interrupts `wait` (status > 128) while the launcher is still
  # shutting its ranks down: wait again for its real exit status.
  while kill -0 "$launch_pid" 2>/dev/null; do
    LAUNCH_STATUS=0
    wait "$launch_pid" || LAUNCH_STATUS=$?
  done
  # The launcher ended in time: no late kill of a reused pid.
  if [ -n "$launch_watchdog" ]; then kill "$launch_watchdog" 2>/dev/null || true; fi
}
