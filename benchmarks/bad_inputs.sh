#!/usr/bin/env bash
# The reliability table's policy rows: each bad input run for real, in a fresh scratch folder.
# Prints "case | exit status | last stderr line". Needs the Push-T store (drifting-collect task=pusht ...).
#   bash benchmarks/bad_inputs.sh [path/to/pusht.zarr]
set -u
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
V="$ROOT/.venv/bin"
STORE="$(realpath "${1:-$ROOT/data/pusht/pusht_scripted.zarr}")"
SCRATCH="$(mktemp -d)"
cd "$SCRATCH" || exit 1
run() {
  local name="$1"; shift
  "$@" > out.txt 2> err.txt
  local status=$?
  echo "$name | $status | $(grep -v '^\s*$' err.txt | grep -iv 'warn' | tail -n 1 | cut -c1-170)"
}
TINY="task.dataset.zarr_path=$STORE train.max_steps=2 train.batch_size=8 train.eval_at_end=false train.progress=false"
TINY="$TINY policy.mlp_width=16 policy.mlp_depth=1"
run "first tiny run (ok)" "$V/drifting-train" $TINY run_dir=runs/r
run "existing run, train.resume=false" "$V/drifting-train" $TINY run_dir=runs/r train.resume=false
run "resume with seed=7 train.lr=0.5" "$V/drifting-train" $TINY run_dir=runs/r seed=7 train.lr=0.5
run "resume a drifting run with policy=diffusion" "$V/drifting-train" $TINY run_dir=runs/r policy=diffusion
run "config typo train.lrr=1" "$V/drifting-train" $TINY run_dir=runs/r2 train.lrr=1
run "missing dataset" "$V/drifting-train" run_dir=runs/r3 task.dataset.zarr_path=nope.zarr
mkdir -p abc/checkpoints && cp runs/r/checkpoints/latest.safetensors abc/checkpoints/
run "drifting-eval without checkpoint" "$V/drifting-eval"
head -c 64 /dev/urandom > g.safetensors
run "drifting-eval on a garbage file" "$V/drifting-eval" checkpoint=g.safetensors
run "drifting-collect into an existing store" "$V/drifting-collect" task=pusht episodes=1 out="$STORE"
run "drifting-demo with an unknown setting" "$V/drifting-demo" stepz=3
echo "scratch folder (delete at will): $SCRATCH"
