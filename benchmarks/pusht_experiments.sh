#!/usr/bin/env bash
# Push-T state comparison experiments (issues 4 and 8): reproduces every Push-T run in docs/experiments/pusht.md.
#   bash benchmarks/pusht_experiments.sh main     # Drifting-1 / DDPM-100 / Regression, MLP 3x512, matched steps
#   bash benchmarks/pusht_experiments.sh ddim     # DDPM-100 (last 3 ckpts), DDIM-10/16 (all) of the diffusion run
#   bash benchmarks/pusht_experiments.sh gsweep   # G in {2,4,8,16} + group_mode=mixed, 512 generated chunks/step
#   bash benchmarks/pusht_experiments.sh g1       # G=1: the config refuses it (prints the error)
#   bash benchmarks/pusht_experiments.sh bench    # per-chunk latency (drifting-bench)
#   bash benchmarks/pusht_experiments.sh demo-smoke  # drifting-demo at a smoke budget
#   bash benchmarks/pusht_experiments.sh plot     # docs/figures/pusht_*.png + summary table from metrics.jsonl
#   bash benchmarks/pusht_experiments.sh seeds    # issue 8: 3 seeds x {drifting, diffusion, regression}, MLP,
#                                                 # matched steps and matched samples seen
#   bash benchmarks/pusht_experiments.sh seeds-unet  # the same three methods on the small UNet, seed 0
#   bash benchmarks/pusht_experiments.sh seeds-eval [runs]  # DDPM-100, DDIM-10 (last 3 ckpts), DDIM-16 (all)
#   bash benchmarks/pusht_experiments.sh long     # 10,000 steps, seed 0, three methods (then seeds-eval)
# Runs go to runs/exp_*, logs to runs/exp_logs/. Each stage runs its trainings concurrently (<= 3 processes,
# nice -n 5, one torch thread each: train/cpu.yaml) so that compared methods share the same machine load.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
STEPS=${STEPS:-2000}          # main budget (matched steps; evaluation every STEPS/5, checkpoints every STEPS/5)
GSTEPS=${GSTEPS:-600}        # G-sweep budget (matched steps = matched generated samples: batch x G = 512)
LOGS=runs/exp_logs
mkdir -p "$LOGS"

train() {  # [EVAL=0] [SEED=s] train <run_name> <steps> <overrides...>; EVAL=0: no evaluation inside training
  local name=$1 steps=$2; shift 2
  local every=$((steps / 5))
  local evals="train.eval_every=$every"
  [ "${EVAL:-1}" = 0 ] && evals="train.eval_every=$((100 * steps)) train.eval_at_end=false"
  # shellcheck disable=SC2086
  nice -n 5 "$PY" -m drifting_policy.training.train task=pusht_state "$@" seed="${SEED:-0}" run_dir="runs/$name" \
    train.max_steps="$steps" $evals train.save_every="$every" \
    train.checkpoint_every="$every" train.val_every="$every" train.progress=false \
    train.num_threads=1 train.precision=fp32 \
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
      nice -n 5 "$PY" -m drifting_policy.evaluation.eval "checkpoint=$ckpt" \
        >"$LOGS/exp_main_diffusion_ddpm100_$(basename "$ckpt" .safetensors).log" 2>&1 &
    done
    for k in 10 16; do
      nice -n 5 "$PY" -m drifting_policy.evaluation.eval "checkpoint=runs/exp_main_diffusion/checkpoints/step_*" \
        sampler=ddim num_inference_steps=$k >"$LOGS/exp_main_diffusion_ddim$k.log" 2>&1 &
    done
    wait ;;
  gsweep)  # starts each run when fewer than 3 of this script's trainings are running
    slot() { while [ "$(pgrep -fc 'drifting_policy.training.train .*run_dir=runs/exp_')" -ge 3 ]; do sleep 20; done; }
    slot; train exp_g8 "$GSTEPS" policy=drifting policy.samples_per_obs=8 train.batch_size=64 & sleep 30
    slot; train exp_mixed_g8 "$GSTEPS" policy=drifting policy.samples_per_obs=8 train.batch_size=64 \
      policy.group_mode=mixed & sleep 30
    slot; train exp_g2 "$GSTEPS" policy=drifting policy.samples_per_obs=2 train.batch_size=256 & sleep 30
    slot; train exp_g16 "$GSTEPS" policy=drifting policy.samples_per_obs=16 train.batch_size=32 & sleep 30
    slot; train exp_g4 "$GSTEPS" policy=drifting policy.samples_per_obs=4 train.batch_size=128 &
    wait ;;
  g1)
    nice -n 5 "$PY" -m drifting_policy.training.train task=pusht_state policy=drifting policy.samples_per_obs=1 \
      train.batch_size=512 run_dir=runs/exp_g1 train.max_steps=10 2>&1 | tail -5 ;;
  bench)
    nice -n 5 "$PY" -m drifting_policy.evaluation.bench default_threads=false 2>&1 | tee "$LOGS/bench.log" ;;
  demo-smoke)  # drifting-demo end to end at a smoke budget (the full `make demo` budget: no options)
    /usr/bin/time -f "WALL %e s USER %U s SYS %S s" nice -n 5 "$PY" -m drifting_policy.evaluation.demo --episodes 10 \
      --data runs/exp_demo_smoke/pusht_10.zarr --out runs/exp_demo_smoke --steps 100 --n-seeds 5 "${@:2}" \
      2>&1 | tee "$LOGS/demo_smoke.log" ;;
  seeds)  # issue 8's protocol; at most JOBS trainings at once (default 2: the machine has 2 cores)
    S8=${S8:-3000}
    jobs_file=$(mktemp)
    for seed in 0 1 2; do
      for m in drifting regression diffusion; do
        ev=1; [ "$m" = diffusion ] && ev=0
        echo "EVAL=$ev SEED=$seed train exp8_mlp_${m}_s$seed $S8 policy=$m" >>"$jobs_file"
      done
    done
    for seed in 0 1 2; do  # matched samples seen: 64 observations per step, like drifting's 64 x G=8
      echo "SEED=$seed train exp8_mlpb64_regression_s$seed $S8 policy=regression train.batch_size=64" >>"$jobs_file"
      echo "EVAL=0 SEED=$seed train exp8_mlpb64_diffusion_s$seed $S8 policy=diffusion train.batch_size=64" >>"$jobs_file"
    done
    export -f train; export PY LOGS
    xargs -d '\n' -P "${JOBS:-2}" -I{} bash -c '{}' <"$jobs_file"
    rm -f "$jobs_file" ;;
  seeds-unet)  # the small ConditionalUnet1D (64/128/256), one training seed, U8 steps
    U8=${U8:-1000}
    jobs_file=$(mktemp)
    for m in drifting regression diffusion; do
      ev=1; [ "$m" = diffusion ] && ev=0
      echo "EVAL=$ev SEED=0 train exp8_unet_${m}_s0 $U8 policy=$m policy.backbone=unet" >>"$jobs_file"
    done
    export -f train; export PY LOGS
    xargs -d '\n' -P "${JOBS:-2}" -I{} bash -c '{}' <"$jobs_file"
    rm -f "$jobs_file" ;;
  long)  # a longer budget, seed 0, the three methods at once (L8 steps; last 3 checkpoints = 60/80/100%)
    L8=${L8:-10000}
    train exp8long_mlp_drifting_s0 "$L8" policy=drifting &
    train exp8long_mlp_regression_s0 "$L8" policy=regression &
    EVAL=0 train exp8long_mlp_diffusion_s0 "$L8" policy=diffusion &
    wait
    "$0" seeds-eval runs/exp8long_mlp_diffusion_s0 ;;
  seeds-eval)  # [run dirs...] (default: every runs/exp8_*_diffusion_s*): DDPM-100 and DDIM-10 on the last 3
    # checkpoints, DDIM-16 on all 5 (the time-to-score curve of the diffusion weights)
    jobs_file=$(mktemp)
    runs=("${@:2}"); [ ${#runs[@]} -eq 0 ] && runs=(runs/exp8_*_diffusion_s*)
    for run in "${runs[@]}"; do
      ev="nice -n 5 $PY -m drifting_policy.evaluation.eval 'checkpoint=$run/checkpoints/step_*'"
      log="$LOGS/$(basename "$run")"
      echo "$ev last=3 >${log}_ddpm100.log 2>&1" >>"$jobs_file"
      echo "$ev last=3 sampler=ddim num_inference_steps=10 >${log}_ddim10.log 2>&1" >>"$jobs_file"
      echo "$ev sampler=ddim num_inference_steps=16 >${log}_ddim16.log 2>&1" >>"$jobs_file"
    done
    xargs -d '\n' -P "${JOBS:-2}" -I{} bash -c '{}' <"$jobs_file"
    rm -f "$jobs_file" ;;
  plot)
    "$PY" benchmarks/pusht_experiments.py ;;
  *) echo "usage: $0 main|ddim|gsweep|g1|bench|demo-smoke|seeds|seeds-unet|long|seeds-eval|plot" >&2; exit 2 ;;
esac
