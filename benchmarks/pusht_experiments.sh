#!/usr/bin/env bash
# Push-T state comparison experiments (issues 4 and 8): reproduces every run in docs/results.md.
#   bash benchmarks/pusht_experiments.sh main     # Drifting-1 / DDPM-100 / Regression, MLP 3x512, matched steps
#   bash benchmarks/pusht_experiments.sh ddim     # DDPM-100 (last 3 ckpts), DDIM-10/16 (all) of the diffusion run
#   bash benchmarks/pusht_experiments.sh gsweep   # G in {2,4,8,16} + group_mode=mixed, 512 generated chunks/step
#   bash benchmarks/pusht_experiments.sh g1       # G=1: the config refuses it (prints the error)
#   bash benchmarks/pusht_experiments.sh bench    # per-chunk latency (drifting-bench)
#   bash benchmarks/pusht_experiments.sh demo-smoke  # drifting-demo at a smoke budget
#   bash benchmarks/pusht_experiments.sh plot     # docs/figures/pusht_*.png + summary table from metrics.jsonl
# Runs go to runs/exp_*, logs to runs/exp_logs/. Each stage runs its trainings concurrently (<= 3 processes,
# nice -n 5, one torch thread each: train/cpu.yaml) so that compared methods share the same machine load.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
STEPS=${STEPS:-2000}          # main budget (matched steps; evaluation every STEPS/5, checkpoints every STEPS/5)
GSTEPS=${GSTEPS:-600}        # G-sweep budget (matched steps = matched generated samples: batch x G = 512)
LOGS=runs/exp_logs
mkdir -p "$LOGS"

train() {  # [EVAL=0] train <run_name> <steps> <overrides...>; EVAL=0: no evaluation inside training
  local name=$1 steps=$2; shift 2
  local every=$((steps / 5))
  local evals="train.eval_every=$every"
  [ "${EVAL:-1}" = 0 ] && evals="train.eval_every=$((100 * steps)) train.eval_at_end=false"
  # shellcheck disable=SC2086
  nice -n 5 "$PY" -m drifting_policy.train task=pusht_state "$@" seed=0 run_dir="runs/$name" \
    train.max_steps="$steps" $evals train.save_every="$every" \
    train.checkpoint_every="$every" train.val_every="$every" train.progress=false \
    >"$LOGS/$name.log" 2>&1
}

case "${1:-}" in
  main)
    train exp_main_drifting "$STEPS" policy=drifting &
    # DDPM-100 evaluation costs ~5 min per checkpoint here (100 NFE x 38 chunks x 50 envs): done after
    # training, in parallel processes (stage ddim), so it does not hold up the diffusion trainer.
    EVAL=0 train exp_main_diffusion "$STEPS" policy=diffusion &
    train exp_main_regression "$STEPS" policy=regression &
    wait ;;
  ddim)  # DDPM-100 on the last 3 checkpoints, DDIM-10/16 on all 5 (time-to-score curve) from the same weights
    for ckpt in $(ls runs/exp_main_diffusion/checkpoints/step_* | tail -n 3); do  # one process per checkpoint
      nice -n 5 "$PY" -m drifting_policy.eval "checkpoint=$ckpt" \
        >"$LOGS/exp_main_diffusion_ddpm100_$(basename "$ckpt" .safetensors).log" 2>&1 &
    done
    for k in 10 16; do
      nice -n 5 "$PY" -m drifting_policy.eval "checkpoint=runs/exp_main_diffusion/checkpoints/step_*" \
        sampler=ddim num_inference_steps=$k >"$LOGS/exp_main_diffusion_ddim$k.log" 2>&1 &
    done
    wait ;;
  gsweep)  # starts each run when fewer than 3 of this script's trainings are running
    slot() { while [ "$(pgrep -fc 'drifting_policy.train .*run_dir=runs/exp_')" -ge 3 ]; do sleep 20; done; }
    slot; train exp_g8 "$GSTEPS" policy=drifting policy.samples_per_obs=8 train.batch_size=64 & sleep 30
    slot; train exp_mixed_g8 "$GSTEPS" policy=drifting policy.samples_per_obs=8 train.batch_size=64 \
      policy.group_mode=mixed & sleep 30
    slot; train exp_g2 "$GSTEPS" policy=drifting policy.samples_per_obs=2 train.batch_size=256 & sleep 30
    slot; train exp_g16 "$GSTEPS" policy=drifting policy.samples_per_obs=16 train.batch_size=32 & sleep 30
    slot; train exp_g4 "$GSTEPS" policy=drifting policy.samples_per_obs=4 train.batch_size=128 &
    wait ;;
  g1)
    nice -n 5 "$PY" -m drifting_policy.train task=pusht_state policy=drifting policy.samples_per_obs=1 \
      train.batch_size=512 run_dir=runs/exp_g1 train.max_steps=10 2>&1 | tail -5 ;;
  bench)
    nice -n 5 "$PY" -m drifting_policy.bench default_threads=false 2>&1 | tee "$LOGS/bench.log" ;;
  demo-smoke)  # drifting-demo end to end at a smoke budget (the full `make demo` budget: no options)
    /usr/bin/time -f "WALL %e s USER %U s SYS %S s" nice -n 5 "$PY" -m drifting_policy.demo --episodes 10 \
      --data runs/exp_demo_smoke/pusht_10.zarr --out runs/exp_demo_smoke --steps 100 --n-seeds 5 "${@:2}" \
      2>&1 | tee "$LOGS/demo_smoke.log" ;;
  plot)
    "$PY" benchmarks/pusht_experiments.py ;;
  *) echo "usage: $0 main|ddim|gsweep|g1|bench|demo-smoke|plot" >&2; exit 2 ;;
esac
