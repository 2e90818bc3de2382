#!/bin/sh
# Submit the sweep array and the merge job that runs once every task of the
# array has succeeded.
#
#   jobs/submit_array.sh [sbatch options for both jobs ...]
#   MLRA_ARRAY=0-7%2 jobs/submit_array.sh      # 8 shares, at most 2 at a time
#   MLRA_SWEEP_NAME=big MLRA_SWEEP_ARGS="--preset paper" jobs/submit_array.sh
#   MLRA_ARRAY_SCRIPT=jobs/slurm_array_multinode.sbatch jobs/submit_array.sh   # tasks over several nodes
#   MLRA_ARRAY_SCRIPT=jobs/slurm_array_gpu.sbatch jobs/submit_array.sh         # tasks on GPU nodes
#
# The MLRA_* variables of jobs/slurm_array.sbatch travel to both jobs in the
# environment (sbatch's default --export=ALL). The last line printed is
# "ARRAY_JOB=<id> MERGE_JOB=<id>" for scripts.
set -eu
cd "$(dirname "$0")/.."      # submit from the repository's root: results/ lands there

script=${MLRA_ARRAY_SCRIPT:-jobs/slurm_array.sbatch}
# The merge job must look for the files the array writes: the GPU array's
# default name is paper_gpu (its spec's), the CPU arrays' throughput (their
# preset's, which is the merge's default), unless MLRA_SWEEP_NAME says.
case "$script" in
  *_gpu.sbatch) MLRA_SWEEP_NAME=${MLRA_SWEEP_NAME:-paper_gpu}; export MLRA_SWEEP_NAME ;;
esac
array_opt=
if [ -n "${MLRA_ARRAY:-}" ]; then array_opt="--array=$MLRA_ARRAY"; fi

# --parsable prints "jobid" or "jobid;cluster".
aid=$(sbatch --parsable $array_opt "$@" "$script")
aid=${aid%%;*}
mid=$(sbatch --parsable \
  --dependency="afterok:$aid" \
  --kill-on-invalid-dep=yes \
  "$@" jobs/slurm_merge.sbatch)
mid=${mid%%;*}
echo "submit_array: array job $aid; merge job $mid starts after every task of $aid succeeds"
echo "ARRAY_JOB=$aid MERGE_JOB=$mid"
