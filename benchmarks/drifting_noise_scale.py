"""Closed-loop score of a drifting checkpoint under changed sampling at evaluation (a probe).

    .venv/bin/python benchmarks/drifting_noise_scale.py runs/bf16_s0/checkpoints/step_0030000 \
        --scales 0.5 1 1.5 2 [--hold-noise] [--seed-start 200000 --n-seeds 200 --action-horizon 4]
    .venv/bin/python benchmarks/drifting_noise_scale.py runs/on02_s0/checkpoints/step_0030000 --scales 1 \
        --candidates 1 4 8 --rule <travel|coherent|contrast>

A one-step generator maps standard-normal noise to a chunk; multiplying that noise by s < 1 moves every
sample towards the generator's "mean" chunk (s = 0 is deterministic), s > 1 spreads them beyond what training
saw. `--hold-noise` draws each episode's noise once and reuses it at every replan, which makes the policy a
deterministic function of the observation within an episode (is the fresh draw per chunk doing work?).

`--candidates N` draws N chunks per observation at every replan in one batched network call and executes one:
`travel`, the policy's own `candidates` option (the draw whose executed steps cover the longest path: against
stalls); `coherent`, the draw closest to what the previous chunk had planned for the same future steps (its
unexecuted tail shifted by the executed steps, normalised units: "backward coherence" from bidirectional
decoding of chunked policies, against switching modes between replans); `contrast`, the farthest from it.
Prints one JSON line per scale and N (EMA weights, validation seeds by default: this is a probe for choosing
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

RULES = ("travel", "coherent", "contrast")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--scales", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0])
    parser.add_argument("--seed-start", type=int, default=200000)
    parser.add_argument("--n-seeds", type=int, default=200)
    parser.add_argument("--action-horizon", type=int, default=4)
    parser.add_argument("--hold-noise", action="store_true",
                        help="one noise draw per episode, reused at every replan")
    parser.add_argument("--candidates", type=int, nargs="+", default=[1], help="draws per replan")
    parser.add_argument("--rule", choices=RULES, default="travel", help="which draw is executed")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    meta = read_metadata(args.checkpoint)
    if meta["policy_name"] != "drifting":
        raise SystemExit(f"{args.checkpoint} holds a {meta['policy_name']} policy; this probe needs a "
                         "drifting checkpoint")
    for scale in args.scales:
        for candidates in args.candidates:
            result = _evaluate(args, meta, scale, candidates)
            metrics = result.metrics("eval/", n_bootstrap=200)
            print(json.dumps({"checkpoint": str(args.checkpoint), "noise_scale": scale,
                              "hold_noise": args.hold_noise, "candidates": candidates, "rule": args.rule,
                              "mean_score": round(metrics["eval/mean_score"], 4),
                              "success_rate": metrics["eval/success_rate"],
                              "episodes_below_0.2": sum(score < 0.2 for score in result.scores)}), flush=True)


def _evaluate(args, meta: dict, scale: float, candidates: int):
    policy = load_policy(args.checkpoint, use_ema=True, device="cpu")
    set_action_horizon(policy, args.action_horizon)
    scaled = _scaled_noise(policy.sample_noise, scale)
    policy.sample_noise = _held_noise(policy, scaled) if args.hold_noise else scaled
    if args.rule == "travel":
        policy.set_candidates(candidates)
    else:
        _follow_plan(policy, candidates, args.action_horizon, closest=args.rule == "coherent")
    spec = {**meta["config"]["task"]["runner"], "obs_horizon": policy.config.obs_horizon,
            "action_horizon": args.action_horizon, "seed_start": args.seed_start,
            "n_seeds": args.n_seeds, "n_envs": 50, "n_videos": 0}
    return EnvRunner(RunnerConfig(**spec, prefix="eval/")).run_episodes(policy, video_dir=None)


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


def _follow_plan(policy, candidates: int, action_horizon: int, closest: bool) -> None:
    """Replace policy.predict_action by the N-draw choice closest to (coherent) or farthest from (contrast)
    the previous chunk's plan; the plan is forgotten when the runner resets the policy."""
    first = policy.config.obs_horizon - 1
    previous: list[torch.Tensor | None] = [None]  # [B, T, A] normalised chunk chosen at the last replan
    reset = policy.reset

    def reset_and_forget() -> None:
        previous[0] = None
        reset()

    @torch.no_grad()
    def predict_action(obs, generator=None):
        chunks = policy.draw_chunks(obs, candidates, generator)  # [B, N, T, A], normalised
        batch = chunks.shape[0]
        if previous[0] is None or candidates == 1:
            chosen = chunks[:, 0]
        else:
            overlap = chunks.shape[2] - first - action_horizon
            planned = previous[0][:, first + action_horizon:].unsqueeze(1)  # [B, 1, overlap, A]
            distance = (chunks[:, :, first:first + overlap] - planned).square().sum(dim=(2, 3))  # [B, N]
            pick = distance.argmin(dim=1) if closest else distance.argmax(dim=1)
            chosen = chunks[torch.arange(batch), pick]  # [B, T, A]
        previous[0] = chosen
        return policy.unnormalize_action(chosen)

    policy.reset = reset_and_forget
    policy.predict_action = predict_action


if __name__ == "__main__":
    main()
