"""Closed-loop score of a drifting checkpoint when its input noise is scaled at evaluation (a probe).

    .venv/bin/python benchmarks/drifting_noise_scale.py runs/bf16_s0/checkpoints/step_0030000 \
        --scales 0.5 1 1.5 2 [--hold-noise] [--seed-start 200000 --n-seeds 200 --action-horizon 4]

A one-step generator maps standard-normal noise to a chunk; multiplying that noise by s < 1 moves every
sample towards the generator's "mean" chunk (s = 0 is deterministic), s > 1 spreads them beyond what training
saw. `--hold-noise` draws each episode's noise once and reuses it at every replan, which makes the policy a
deterministic function of the observation within an episode (is the fresh draw per chunk doing work?).
Prints one JSON line per scale (EMA weights, validation seeds by default: this is a probe for choosing
settings, never run it on the test seeds), with the number of episodes scoring below 0.2 (complete failures).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from drifting_policy.evaluation.eval import set_action_horizon
from drifting_policy.evaluation.runner import EnvRunner, RunnerConfig
from drifting_policy.training.checkpoint import load_policy, read_metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--scales", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0])
    parser.add_argument("--seed-start", type=int, default=200000)
    parser.add_argument("--n-seeds", type=int, default=200)
    parser.add_argument("--action-horizon", type=int, default=4)
    parser.add_argument("--hold-noise", action="store_true",
                        help="one noise draw per episode, reused at every replan")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    meta = read_metadata(args.checkpoint)
    if meta["policy_name"] != "drifting":
        raise SystemExit(f"{args.checkpoint} holds a {meta['policy_name']} policy; this probe needs a "
                         "drifting checkpoint")
    for scale in args.scales:
        policy = load_policy(args.checkpoint, use_ema=True, device="cpu")
        set_action_horizon(policy, args.action_horizon)
        scaled = _scaled_noise(policy.sample_noise, scale)
        policy.sample_noise = _held_noise(policy, scaled) if args.hold_noise else scaled
        spec = {**meta["config"]["task"]["runner"], "obs_horizon": policy.config.obs_horizon,
                "action_horizon": args.action_horizon, "seed_start": args.seed_start,
                "n_seeds": args.n_seeds, "n_envs": 50, "n_videos": 0}
        result = EnvRunner(RunnerConfig(**spec, prefix="eval/")).run_episodes(policy, video_dir=None)
        metrics = result.metrics("eval/", n_bootstrap=200)
        print(json.dumps({"checkpoint": str(args.checkpoint), "noise_scale": scale,
                          "hold_noise": args.hold_noise, "mean_score": round(metrics["eval/mean_score"], 4),
                          "success_rate": metrics["eval/success_rate"],
                          "episodes_below_0.2": sum(score < 0.2 for score in result.scores)}), flush=True)


def _scaled_noise(draw, scale: float):
    return lambda shape, generator: draw(shape, generator) * scale


def _held_noise(policy, draw):
    """The first draw of each shape is kept until the runner resets the policy (a new batch of episodes)."""
    held: dict[tuple[int, ...], torch.Tensor] = {}
    reset = policy.reset

    def reset_and_forget() -> None:
        held.clear()
        reset()

    policy.reset = reset_and_forget

    def draw_once(shape, generator) -> torch.Tensor:
        if tuple(shape) not in held:
            held[tuple(shape)] = draw(shape, generator)
        return held[tuple(shape)]

    return draw_once


if __name__ == "__main__":
    main()
