# Sourced by the experiment scripts (robomimic_experiments.sh, multistage_experiments.sh): one training at a
# fixed step budget, the way their tables are made. Needs PY (the python) set by the caller.
#   train_budget <run_dir> <steps> <log> <drifting-train overrides...>
# Checkpoints every steps/10 (so the last 3 sit at 80%, 90% and 100% of the budget), validation loss every
# steps/5, no rollouts inside training (the scripts evaluate checkpoints afterwards), one torch thread so two
# stages can share a 2-core machine. NICE=<n> runs it at that niceness.
train_budget() {
  local run_dir=$1 steps=$2 log=$3
  shift 3
  local every=$((steps / 10))
  ${NICE:+nice -n "$NICE"} "$PY" -m drifting_policy.training.train "$@" run_dir="$run_dir" \
    train.max_steps="$steps" train.eval_every=null train.eval_at_end=false train.save_every="$every" \
    train.checkpoint_every="$every" train.val_every=$((steps / 5)) train.progress=false train.num_threads=1 \
    >"$log" 2>&1
}
