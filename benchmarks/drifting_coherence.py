"""Closed-loop score of a drifting checkpoint when each replan executes one chosen of N draws (a probe).

    .venv/bin/python benchmarks/drifting_coherence.py runs/on02_s0/checkpoints/step_0030000 \
        --candidates 1 4 8 --rule <travel|coherent|contrast> [--seed-start 200000 --n-seeds 200]

At every replan the generator draws N chunks per observation in one batched network call (still one
evaluation deep) and one is executed. Rules: `travel`, the policy's own `candidates` option (the draw whose
executed steps cover the longest path: against stalls); `coherent`, the draw closest to what the previous
chunk had planned for the same future steps (its unexecuted tail shifted by the executed steps, normalised
units: "backward coherence" from bidirectional decoding of chunked policies, against switching modes between
replans); `contrast`, the farthest from it. N = 1 is the plain policy. Prints one JSON line per N (EMA
weights, validation seeds by default: a probe for choosing settings, never run it on the test seeds), with the
episodes scoring below 0.2.
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
    parser.add_argument("--candidates", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--seed-start", type=int, default=200000)
    parser.add_argument("--n-seeds", type=int, default=200)
    parser.add_argument("--action-horizon", type=int, default=4)
    parser.add_argument("--rule", choices=RULES, default="travel")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    meta = read_metadata(args.checkpoint)
    if meta["policy_name"] != "drifting":
        raise SystemExit(f"{args.checkpoint} holds a {meta['policy_name']} policy; this probe needs a "
                         "drifting checkpoint")
    for candidates in args.candidates:
        policy = load_policy(args.checkpoint, use_ema=True, device="cpu")
        set_action_horizon(policy, args.action_horizon)
        if args.rule == "travel":
            policy.config.candidates = candidates
        else:
            keep_coherent(policy, candidates, args.action_horizon, args.rule)
        spec = {**meta["config"]["task"]["runner"], "obs_horizon": policy.config.obs_horizon,
                "action_horizon": args.action_horizon, "seed_start": args.seed_start,
                "n_seeds": args.n_seeds, "n_envs": 50, "n_videos": 0}
        result = EnvRunner(RunnerConfig(**spec, prefix="eval/")).run_episodes(policy, video_dir=None)
        metrics = result.metrics("eval/", n_bootstrap=200)
        print(json.dumps({"checkpoint": str(args.checkpoint), "candidates": candidates, "rule": args.rule,
                          "mean_score": round(metrics["eval/mean_score"], 4),
                          "success_rate": metrics["eval/success_rate"],
                          "episodes_below_0.2": sum(score < 0.2 for score in result.scores)}), flush=True)


RULES = ("travel", "coherent", "contrast")


def keep_coherent(policy, candidates: int, action_horizon: int, rule: str) -> None:
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
        cond = policy.encode_obs(obs)  # [B, E]
        batch = cond.shape[0]
        chunks = policy.generate(cond, candidates, generator)  # [B * N, T, A], rows of one obs adjacent
        chunks = chunks.reshape(batch, candidates, *chunks.shape[1:])  # [B, N, T, A]
        if previous[0] is None or candidates == 1:
            chosen = chunks[:, 0]
        else:
            overlap = chunks.shape[2] - first - action_horizon
            planned = previous[0][:, first + action_horizon:].unsqueeze(1)  # [B, 1, overlap, A]
            distance = (chunks[:, :, first:first + overlap] - planned).square().sum(dim=(2, 3))  # [B, N]
            pick = distance.argmin(dim=1) if rule == "coherent" else distance.argmax(dim=1)
            chosen = chunks[torch.arange(batch), pick]  # [B, T, A]
        previous[0] = chosen
        return policy.unnormalize_action(chosen)

    policy.reset = reset_and_forget
    policy.predict_action = predict_action


if __name__ == "__main__":
    main()
