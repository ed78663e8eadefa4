"""Training speed on Push-T state: steps/s and observations/s of every policy x backbone, and where a drifting
step's time goes (data, observation encoder, backbone forward, field + loss, backward, optimiser, EMA).

    .venv/bin/python benchmarks/bench_training.py [--store data/pusht/pusht_scripted.zarr] [--steps 30]
        [--threads 1 2] [--backbones mlp unet] [--bf16]

Every configuration runs in this one process, one after the other, so ratios between rows are measured under
the same conditions; take absolute numbers only on an otherwise idle machine. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import yaml
from torch.utils.data import DataLoader, default_collate

from drifting_policy.common.ema import EMA
from drifting_policy.common.precision import resolve_precision
from drifting_policy.drift import drift_loss_with_metrics
from drifting_policy.policy import build_policy
from drifting_policy.training.setup import build_datasets, fit_normalizer
from drifting_policy.training.trainer import IndexBatches

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ("drifting", "diffusion", "regression")
SMALL_UNET = {"backbone": "unet", "down_dims": [64, 128, 256]}


def policy_options(name: str, backbone: str) -> tuple[dict, int]:
    """(policy options, observations per step) from configs/policy/<name>.yaml, as drifting-train does."""
    config = yaml.safe_load((ROOT / "configs" / "policy" / f"{name}.yaml").read_text())
    options = {k: v for k, v in config["policy"].items() if k != "name"}
    if backbone == "unet":
        options.update(SMALL_UNET)
    return options, int(config.get("train", {}).get("batch_size", 256))


def setup(store: str, name: str, backbone: str):
    options, batch_size = policy_options(name, backbone)
    task = {"dataset": {"type": "pusht", "zarr_path": store, "obs_type": "keypoints", "val_ratio": 0.02,
                        "max_train_episodes": None, "seed": 42}}
    train, _ = build_datasets(task, options)
    torch.manual_seed(0)
    policy = build_policy(name, options, train.shape_meta)
    policy.set_normalizer(fit_normalizer(train, train.shape_meta))
    batches = IndexBatches(len(train), batch_size, seed=0)
    loader = DataLoader(train, collate_fn=default_collate, batch_sampler=batches)
    return policy, iter(loader), batch_size


def time_steps(store: str, name: str, backbone: str, steps: int, bf16: bool = False) -> dict:
    """Whole training steps as the trainer runs them (AdamW, grad clip, EMA), split into phases; `bf16` runs
    the forward pass under CPU bfloat16 autocast (the drift field casts to float32 itself)."""
    policy, batches, batch_size = setup(store, name, backbone)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3, betas=(0.95, 0.999), weight_decay=1e-6)
    ema = EMA(policy, 0.75, 0.9999)
    generator = torch.Generator().manual_seed(0)
    phases = dict.fromkeys(("data", "forward_and_loss", "backward", "optimiser", "ema"), 0.0)
    warmup = 3
    for step in range(steps + warmup):
        marks = [time.perf_counter()]
        batch = next(batches)
        marks.append(time.perf_counter())
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = policy.compute_loss(batch, generator)
        marks.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        marks.append(time.perf_counter())
        optimizer.step()
        marks.append(time.perf_counter())
        ema.update(policy, step + 1)
        marks.append(time.perf_counter())
        if step >= warmup:
            for key, start, end in zip(phases, marks[:-1], marks[1:], strict=True):
                phases[key] += end - start
    seconds = sum(phases.values())
    return {"policy": name, "backbone": backbone, "bf16": bf16, "obs_per_step": batch_size,
            "steps_per_s": steps / seconds, "obs_per_s": steps * batch_size / seconds,
            **{f"ms_{key}": 1000 * value / steps for key, value in phases.items()}}


def drifting_forward_split(store: str, backbone: str, steps: int) -> dict:
    """The drifting forward pass cut into observation encoder, backbone (G rows per observation), field."""
    policy, batches, _ = setup(store, "drifting", backbone)
    generator = torch.Generator().manual_seed(0)
    parts = dict.fromkeys(("obs_encoder", "backbone_forward", "field_and_loss"), 0.0)
    for _ in range(steps):
        batch = next(batches)
        marks = [time.perf_counter()]
        cond = policy.encode_obs(batch["obs"], generator)  # [B, E]
        marks.append(time.perf_counter())
        gen = policy.generate(cond, policy.config.samples_per_obs, generator)  # [B * G, T, A]
        marks.append(time.perf_counter())
        action = policy.normalized_action(batch, cond.shape[0]).reshape(cond.shape[0], -1)
        drift_loss_with_metrics(gen.reshape(cond.shape[0], policy.config.samples_per_obs, -1),
                                action.unsqueeze(1), temperatures=policy.config.temperatures,
                                check_finite=False)
        marks.append(time.perf_counter())
        for key, start, end in zip(parts, marks[:-1], marks[1:], strict=True):
            parts[key] += end - start
    return {f"ms_{key}": 1000 * value / steps for key, value in parts.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(ROOT / "data" / "pusht" / "pusht_scripted.zarr"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backbones", nargs="+", default=["mlp", "unet"])
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    parser.add_argument("--bf16", action="store_true", help="also time every row under bfloat16 autocast")
    args = parser.parse_args(argv)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for backbone in args.backbones:
            for name in args.policies:
                for bf16 in (False, True) if args.bf16 else (False,):
                    row = {"threads": threads, **time_steps(args.store, name, backbone, args.steps, bf16)}
                    if name == "drifting" and not bf16:
                        row.update(drifting_forward_split(args.store, backbone, args.steps))
                    rows.append(row)
                    shown = (f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
                    print(" | ".join(shown), flush=True)
    summary = default_speedup(rows)
    if summary:
        print(summary["line"])
    print(json.dumps({"rows": rows, "default_speedup": summary}))


def default_speedup(rows: list[dict]) -> dict | None:
    """Drifting MLP steps/s under the old CPU default (1 thread, fp32) and the current one (configs/train/
    cpu.yaml: every core, precision auto), when both were timed in this run."""
    new_bf16 = resolve_precision("auto", torch.device("cpu")) == "bf16"
    cores = max(row["threads"] for row in rows)

    def find(threads: int, bf16: bool) -> dict | None:
        return next((r for r in rows if r["policy"] == "drifting" and r["backbone"] == "mlp"
                     and r["threads"] == threads and r["bf16"] == bf16), None)

    before, after = find(1, False), find(cores, new_bf16)
    if before is None or after is None or (cores, new_bf16) == (1, False):
        return None
    ratio = after["steps_per_s"] / before["steps_per_s"]
    line = (f"drifting MLP default: {before['steps_per_s']:.1f} steps/s (1 thread, fp32) -> "
            f"{after['steps_per_s']:.1f} ({cores} threads, {'bf16' if new_bf16 else 'fp32'}): {ratio:.2f}x")
    return {"before": before["steps_per_s"], "after": after["steps_per_s"], "ratio": ratio, "line": line}


if __name__ == "__main__":
    main()
