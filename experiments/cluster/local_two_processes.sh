#!/bin/bash
# Two processes on this machine, 4 fake CPU devices each: a rehearsal of a multi-host job.
#   ./experiments/cluster/local_two_processes.sh ring.flags --workdir=runs/ring2
set -euo pipefail
FLAGFILE=${1:-ring.flags}
shift || true
PORT=${PORT:-12355}
export XLA_FLAGS=--xla_force_host_platform_device_count=4
for i in 0 1; do
  python experiments/run.py --flagfile="${FLAGFILE}" --coordinator_address=127.0.0.1:${PORT} \
    --num_processes=2 --process_id=$i "$@" &
done
wait
