#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py args...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR, PORT.
# torch DDP through mmengine's `pytorch` launcher; without a GPU the config
# needs env_cfg.dist_cfg.backend=gloo (pass --cfg-options
# env_cfg.dist_cfg.backend=gloo).
set -e
CONFIG=$1
CHECKPOINT=$2
NPROCS=$3
shift 3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python}
exec "$PY" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROCS" \
    "$ROOT/tools/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
