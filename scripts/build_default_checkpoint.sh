#!/usr/bin/env bash
# Rebuild the S2 checkpoint shipped in src/s2kit/plugins/executors/s2/default/
# (docs/experiments.md, "Nothing privileged at run time; the shipped checkpoint"; docs/executors.md, "Training: s2kit train"):
#   1. 200 expert episodes of the simulated HSR's id suite (seeds 0-199), the expert's funnel approach;
#   2. 200 more with DART noise on the expert's actions (seeds 1000-1199; 0.01 m per step, replanned every step),
#      so the data show the expert recovering from the states a learned policy drifts into;
#   3. S2 trained on both for 6000 steps (seed 0, one thread): regression head, lr 1e-3, the focus map, the focus as
#      an input, the map's prior on the keep-scores, 4 register tokens;
#   4. its newest checkpoint copied without the optimizer state (4.9 MB).
# About 2 h on an idle 2-core CPU (20 min collecting, 90-120 min training). Re-running resumes where it stopped.
#
#   bash scripts/build_default_checkpoint.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-runs/default-checkpoint}
export MUJOCO_GL=${MUJOCO_GL:-osmesa}
bin=.venv/bin
mkdir -p "$work"
if [ ! -f "$work/id/meta/info.json" ]; then
  rm -rf "$work/id"
  "$bin/s2kit" collect --robot hsr --suite id --episodes 200 --seed 0 --out "$work/id" \
    --set executor.approach=funnel --json > "$work/id.json"
fi
if [ ! -f "$work/dart/meta/info.json" ]; then
  rm -rf "$work/dart"
  "$bin/s2kit" collect --robot hsr --suite id --episodes 200 --seed 1000 --out "$work/dart" --noise 0.01 \
    --set executor.horizon=1 --set executor.approach=funnel --json > "$work/dart.json"
fi
"$bin/s2kit" train --executor s2 --data "$work/id,$work/dart" --out "$work/run" --steps 6000 --set threads=1 \
  --set model.head=regression --set lr=0.001 \
  --set model.focus_map=1 --set model.focus_input=true --set model.keep_prior=10 --set model.registers=4 \
  $( [ -d "$work/run/checkpoints" ] && echo --resume )
target=src/s2kit/plugins/executors/s2/default
newest=$(ls -d "$work"/run/checkpoints/step_* | sort | tail -1)
rm -rf "$target" && mkdir -p "$target"
cp "$newest/config.json" "$newest/model.safetensors" "$target/"
echo "shipped $newest -> $target"
