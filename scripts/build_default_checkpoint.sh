#!/usr/bin/env bash
# Rebuild the S2 checkpoint shipped in src/s2kit/plugins/executors/s2/default/:
# 200 expert episodes of the simulated HSR's id suite (seeds 0-199), S2 trained
# on them for 3000 steps (seed 0, regression head, lr 1e-3: docs/experiments.md), its newest checkpoint copied without the
# optimizer state. About 45 min on a 2-core CPU (3 min collecting, the rest training).
#
#   bash scripts/build_default_checkpoint.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-runs/default-checkpoint}
export MUJOCO_GL=${MUJOCO_GL:-osmesa}
bin=.venv/bin
mkdir -p "$work"
if [ ! -f "$work/data/meta/info.json" ]; then
  "$bin/s2kit" collect --robot hsr --suite id --episodes 200 --seed 0 --out "$work/data" --json > "$work/collect.json"
fi
"$bin/s2kit" train --executor s2 --data "$work/data" --out "$work/run" --steps 3000 --set save_every=500 \
  --set model.head=regression --set lr=0.001 \
  $( [ -d "$work/run/checkpoints" ] && echo --resume )
target=src/s2kit/plugins/executors/s2/default
newest=$(ls -d "$work"/run/checkpoints/step_* | sort | tail -1)
rm -rf "$target" && mkdir -p "$target"
cp "$newest/config.json" "$newest/model.safetensors" "$target/"
echo "shipped $newest -> $target"
