#!/usr/bin/env bash
# robomimic state experiments (issue 5): Drifting-1 vs DDPM-100, MLP 3x512 (train=cpu), seed 0, evaluated on
# the 50 test seeds (100000-100049) at each of the last 3 checkpoints; docs/experiments/robomimic.md reports them.
#   bash benchmarks/robomimic_experiments.sh lift      # train both policies on Lift (LIFT_STEPS), then evaluate
#   bash benchmarks/robomimic_experiments.sh can       # the same on Can (CAN_STEPS)
#   bash benchmarks/robomimic_experiments.sh lift-abs  # Lift with absolute 10-D actions (task=lift_state_abs)
#   bash benchmarks/robomimic_experiments.sh bench     # batch-1 policy latency (drifting-bench) on Lift and Can
#   bash benchmarks/robomimic_experiments.sh summary   # table: per-checkpoint and pooled (150 episodes) Wilson CIs
# Three training seeds (issue 13), Drifting-1 and DDPM-100 on Lift, Can and Square (state):
#   bash benchmarks/robomimic_experiments.sh seeds     # every (task, policy, seed) job, two at a time
#   bash benchmarks/robomimic_experiments.sh job can_state diffusion 1 1500   # one job: train, evaluate last 3
#   bash benchmarks/robomimic_experiments.sh ddim <task>...  # DDIM-10 from the DDPM runs' last 3 checkpoints
#   bash benchmarks/robomimic_experiments.sh seeds-summary   # table over seeds (benchmarks/bench_robomimic.py)
# lift|can|lift-abs run one process at a time, seeds|ddim two (one per core); trainings and evaluations at
# nice 10 with one torch thread. Checkpoints every steps/10, so the last 3 are at 80%, 90% and 100%.
# Runs go to runs/rm2_<task>[_abs]_<policy> (seeds: runs/rm3_<task>_<policy>_s<seed>), logs to runs/rm_logs/.
# REPO=<dir> runs the stages in another checkout.
set -euo pipefail
cd "${REPO:-$(dirname "$0")/..}"
PY=${PY:-.venv/bin/python}
LIFT_STEPS=${LIFT_STEPS:-1000}
CAN_STEPS=${CAN_STEPS:-1500}         # what fit the session (2000 planned; DDPM-100 evaluation is slow here)
LOGS=runs/rm_logs
mkdir -p "$LOGS"

# shellcheck source=benchmarks/budget_run.sh
source benchmarks/budget_run.sh

train() {  # train <run_name> <steps> <overrides...>: no evaluation inside training
  local name=$1 steps=$2; shift 2
  NICE=10 train_budget "runs/$name" "$steps" "$LOGS/$name.log" "$@" train.precision=fp32
}

evaluate() {  # evaluate <run_name>...: the last 3 step_N checkpoints of each run, one process at a time,
  # round-robin over the runs, newest first, so that an interrupted stage has the final checkpoint of every run
  local rank name ckpt
  for rank in 1 2 3; do
    for name in "$@"; do
      ckpt=$(ls "runs/$name/checkpoints/"step_*.safetensors | tail -n 3 | sort -r | sed -n "${rank}p")
      [ -n "$ckpt" ] || continue
      nice -n 10 "$PY" -m drifting_policy.evaluation.eval "checkpoint=$ckpt" \
        >"$LOGS/${name}_eval_$(basename "$ckpt" .safetensors).log" 2>&1
    done
  done
}

job() {  # job <task config> <policy> <seed> <steps>: one training, then its last 3 checkpoints evaluated
  local task=$1 policy=$2 seed=$3 steps=$4
  local name="rm3_${task%_state}_${policy}_s$seed"
  train "$name" "$steps" "task=$task" "policy=$policy" "seed=$seed"
  evaluate "$name"
}

seeds() {  # the issue-13 table's jobs in priority order, two processes at a time (one per core)
  local seed task
  for task in "can_state 1500" "lift_state 1000" "square_state 6000"; do
    for seed in 0 1 2; do
      set -- $task
      echo "$1 drifting $seed $2"
      echo "$1 diffusion $seed $2"
    done
  done | xargs -P 2 -L 1 bash "$0" job
}

ddim() {  # ddim <task>...: each DDPM run's last 3 checkpoints sampled with DDIM-10, two processes at a time
  local task run
  for task in "$@"; do
    for run in runs/rm3_"${task}"_diffusion_s*; do
      ls "$run"/checkpoints/step_*.safetensors | tail -n 3
    done
  done | xargs -P 2 -I{} sh -c 'run=$(basename "$(dirname "$(dirname "$1")")")
    nice -n 10 "$0" -m drifting_policy.evaluation.eval "checkpoint=$1" sampler=ddim num_inference_steps=10 \
      >"$2/${run}_eval_$(basename "$1" .safetensors)_ddim10.log" 2>&1' "$PY" {} "$LOGS"
}

both() {  # both <task config> <steps>: train Drifting-1 and DDPM-100, then evaluate both
  local task=$1 steps=$2
  local run="rm2_${task%_state*}${task#*_state}"
  for policy in drifting diffusion; do
    train "${run}_$policy" "$steps" "task=$task" "policy=$policy" seed=0
  done
  evaluate "${run}_drifting" "${run}_diffusion"
}

case "${1:-}" in
  lift) both lift_state "$LIFT_STEPS" ;;
  can) both can_state "$CAN_STEPS" ;;
  lift-abs) both lift_state_abs "$LIFT_STEPS" ;;
  bench)  # batch-1 latency per chunk, one thread, MLP 3x512 (weights do not matter for latency)
    for task in lift_state can_state; do
      nice -n 10 "$PY" -m drifting_policy.evaluation.bench "task=$task" default_threads=false | tail -n 1
    done ;;
  summary) "$PY" benchmarks/bench_robomimic.py summary runs/rm2_* ;;
  job) shift; job "$@" ;;
  seeds) seeds ;;
  ddim) shift; ddim "$@" ;;
  seeds-summary) "$PY" benchmarks/bench_robomimic.py seeds runs/rm3_* ;;
  *) echo "usage: $0 lift|can|lift-abs|bench|summary|job|seeds|ddim|seeds-summary" >&2; exit 2 ;;
esac
