#!/usr/bin/env bash
# Multi-stage tasks (issue 14): Drifting-1, DDPM-100 and regression on block pushing and Franka Kitchen, MLP
# 3x512 (train=cpu), one training seed, the last 3 checkpoints evaluated on the 50 test seeds (100000-100049);
# docs/experiments/blockpush.md and kitchen.md report them.
#   bash benchmarks/multistage_experiments.sh train blockpush drifting   # one training (STEPS_<TASK> steps)
#   bash benchmarks/multistage_experiments.sh val blockpush drifting     # last checkpoint on validation seeds
#   bash benchmarks/multistage_experiments.sh eval blockpush drifting    # last LAST (3) checkpoints, test seeds
#   bash benchmarks/multistage_experiments.sh modes                      # order-mode tables and the figure
# Tasks: blockpush | kitchen; policies: drifting | diffusion | regression. Each stage is one process with one
# torch thread, so two stages can share the 2-core machine. Budgets: STEPS_BLOCKPUSH (20000), STEPS_KITCHEN
# (15000), the same for every policy of a task; checkpoints every budget/10, so the last 3 are at 80-100%.
# Runs go to runs/ms2_<bp|kit>_<policy>_s0, logs to runs/_logs/.
# Executed steps per chunk, the same for every policy: AH_BLOCKPUSH (default 1, Diffusion Policy's block-pushing
# value and the best of 1, 4 and 8 on validation seeds) and AH_KITCHEN (default 8, Diffusion Policy's).
set -euo pipefail
cd "${REPO:-$(dirname "$0")/..}"
PY=${PY:-.venv/bin/python}
STEPS_BLOCKPUSH=${STEPS_BLOCKPUSH:-20000}
STEPS_KITCHEN=${STEPS_KITCHEN:-15000}
LAST=${LAST:-3}
AH_BLOCKPUSH=${AH_BLOCKPUSH:-1}
AH_KITCHEN=${AH_KITCHEN:-8}
LOGS=runs/_logs
mkdir -p "$LOGS"
export OMP_NUM_THREADS=1

short() { case "$1" in blockpush) echo bp ;; kitchen) echo kit ;; *) echo "unknown task $1" >&2; exit 2 ;; esac; }
run_name() { echo "ms2_$(short "$1")_$2_s0"; }
records() { case "$1" in blockpush) echo "[first_block,zones]" ;; kitchen) echo "[completed_tasks]" ;; esac; }
horizon() { case "$1" in blockpush) echo "$AH_BLOCKPUSH" ;; kitchen) echo "$AH_KITCHEN" ;; esac; }
budget() { case "$1" in blockpush) echo "$STEPS_BLOCKPUSH" ;; kitchen) echo "$STEPS_KITCHEN" ;; esac; }

# shellcheck source=benchmarks/budget_run.sh
source benchmarks/budget_run.sh

train() {  # train <task> <policy>
  local name
  name=$(run_name "$1" "$2")
  train_budget "runs/$name" "$(budget "$1")" "$LOGS/$name.log" "task=$1_state" "policy=$2" seed=0
}

evaluate() {  # evaluate <task> <policy> <extra drifting-eval overrides...>
  local task=$1 name
  name=$(run_name "$1" "$2")
  shift 2
  "$PY" -m drifting_policy.evaluation.eval "checkpoint=runs/$name/checkpoints/step_*" n_videos=0 \
    "info_records=$(records "$task")" "action_horizon=$(horizon "$task")" "$@"
}

modes() {  # order modes of every policy, pooled over its last 3 test checkpoints, then the figure
  local task name policy label args
  for task in blockpush kitchen; do
    args=()
    for policy in drifting diffusion regression; do
      case $policy in drifting) label=Drifting-1 ;; diffusion) label=DDPM-100 ;; regression) label=regression ;; esac
      name=$(run_name "$task" "$policy")
      args+=(--eval "$label=$(ls "runs/$name/eval/"step_*_ah"$(horizon "$task")".json | paste -sd,)")
    done
    "$PY" -m drifting_policy.evaluation.order_modes summarise --task "$task" \
      --store "data/$task/${task}_scripted.zarr" "${args[@]}" --out "runs/ms_modes/$task.json"
  done
  "$PY" -m drifting_policy.evaluation.order_modes plot runs/ms_modes/blockpush.json runs/ms_modes/kitchen.json \
    --figure docs/figures/multistage_order_modes.png
}

case "${1:-}" in
  train) train "$2" "$3" ;;
  val) evaluate "$2" "$3" last=1 seed_start=200000 \
         "output=runs/$(run_name "$2" "$3")/eval/val200000_ah$(horizon "$2").json" ;;
  eval) evaluate "$2" "$3" "last=$LAST" > "$LOGS/$(run_name "$2" "$3")_eval.log" 2>&1 ;;
  modes) modes ;;
  *) echo "usage: $0 train|val|eval <blockpush|kitchen> <drifting|diffusion|regression> | modes" >&2; exit 2 ;;
esac
