#!/bin/bash
# A TPU VM pod slice (e.g. v5e-32: 8 workers x 4 chips): the same command on every worker.
# jax.distributed.initialize() finds the coordinator and process ids from the TPU metadata (--distributed).
# The workdir should be a gs:// bucket or a shared disk; checkpoints are written by all workers together.
#
#   TPU=my-pod ZONE=us-central2-b ./experiments/cluster/tpu_vm_pod.sh dcgan.flags --workdir=gs://bucket/runs/dcgan
set -euo pipefail
FLAGFILE=${1:-dcgan.flags}
shift || true
gcloud compute tpus tpu-vm ssh "${TPU:?set TPU}" --zone="${ZONE:?set ZONE}" --worker=all --command="
  cd ~/gan-jax && source .venv/bin/activate &&
  python experiments/run.py --flagfile=${FLAGFILE} --distributed $*"
# One-time setup on all workers:
#   gcloud compute tpus tpu-vm ssh $TPU --zone=$ZONE --worker=all --command='git clone ... ~/gan-jax &&
#     cd ~/gan-jax && python3 -m venv .venv && . .venv/bin/activate && pip install -e . && pip install -U "jax[tpu]"'
