#!/usr/bin/env bash
# Rebuild the S2 checkpoint shipped for one robot in src/s2kit/plugins/executors/s2/default/<robot>/
# (docs/experiments.md, "Executors without annotations"; docs/executors.md, "Training: s2kit train"):
#   1. 200 expert episodes of the simulated robot's id suite (seeds 0-199), the expert's funnel approach;
#   2. 200 more with DART noise on the expert's actions (seeds 1000-1199; 0.01 m per step, replanned every step),
#      so the data show the expert recovering from the states a learned policy drifts into;
#   3. S2 trained on both for 6000 steps (seed 0, one thread) with the recipe below, which reads nothing a real
#      robot's dataset lacks (images, state, actions, language annotations; no privileged.* column);
#   4. its newest checkpoint copied without the optimizer state.
# About 1 h for HSR on an idle 2-core CPU (5 min collecting, 25 min training); TX-G2's expert is slower
# (30-40 min collecting). Re-running resumes where it stopped.
#
#   bash scripts/build_default_checkpoint.sh ROBOT [WORKDIR]      (ROBOT: hsr or txg2)
set -euo pipefail
cd "$(dirname "$0")/.."
robot=${1:?usage: build_default_checkpoint.sh ROBOT [WORKDIR]}
work=${2:-runs/default-checkpoint-$robot}
export MUJOCO_GL=${MUJOCO_GL:-osmesa}
bin=.venv/bin
# The shipped recipe: the frozen ImageNet trunk (its features computed once, so no pixel augmentation), regression head,
# 4 register tokens; no privileged research switch (focus_weight, focus_map, focus_input, keep_prior stay 0).
RECIPE=(--steps 6000 --set threads=1 --set model.head=regression --set lr=0.001 --set model.registers=4
        --set model.stem=efficientnet --set augment=false)
mkdir -p "$work"
if [ ! -f "$work/id/meta/info.json" ]; then
  rm -rf "$work/id"
  "$bin/s2kit" collect --robot "$robot" --suite id --episodes 200 --seed 0 --out "$work/id" \
    --set executor.approach=funnel --json > "$work/id.json"
fi
if [ ! -f "$work/dart/meta/info.json" ]; then
  rm -rf "$work/dart"
  "$bin/s2kit" collect --robot "$robot" --suite id --episodes 200 --seed 1000 --out "$work/dart" --noise 0.01 \
    --set executor.horizon=1 --set executor.approach=funnel --json > "$work/dart.json"
fi
"$bin/s2kit" train --executor s2 --data "$work/id,$work/dart" --out "$work/run" "${RECIPE[@]}" \
  $( [ -d "$work/run/checkpoints" ] && echo --resume )
target=src/s2kit/plugins/executors/s2/default/$robot
newest=$(ls -d "$work"/run/checkpoints/step_* | sort | tail -1)
rm -rf "$target" && mkdir -p "$target"
cp "$newest/config.json" "$newest/model.safetensors" "$target/"
echo "shipped $newest -> $target"
