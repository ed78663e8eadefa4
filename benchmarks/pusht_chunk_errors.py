"""How far a policy's sampled chunks are from held-out demonstrations, and how spread they are.

    .venv/bin/python benchmarks/pusht_chunk_errors.py runs/<run>/checkpoints/step_0030000 [more checkpoints]

For every other window of the store's validation episodes (the split drifting-train holds out), G = 8
chunks are sampled for the window's observation. Printed per checkpoint, in pixels per waypoint: the samples'
distance to the demonstrated chunk (all 16 steps, and the steps a runner executes at action_horizon 8), the
distance of the mean chunk, and the samples' spread around their mean. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json

import torch
from torch.utils.data import default_collate

from drifting_policy.training.checkpoint import load_policy, read_metadata
from drifting_policy.training.setup import build_datasets

SAMPLES = 8


def chunk_errors(path: str, stride: int = 2) -> dict[str, float]:
    meta = read_metadata(path)
    policy = load_policy(path).eval()
    config = policy.config
    horizons = {"obs_horizon": config.obs_horizon, "action_horizon": config.action_horizon,
                "prediction_horizon": config.prediction_horizon}
    _, val = build_datasets(meta["config"]["task"], horizons)
    batch = default_collate([val[i] for i in range(0, len(val), stride)])
    obs = {key: value.repeat_interleave(SAMPLES, 0) for key, value in batch["obs"].items()}
    with torch.no_grad():
        chunks = policy.predict_action(obs, torch.Generator().manual_seed(0))  # [B * G, T, A] pixels
    demo = batch["action"].float()[:, None]  # [B, 1, T, A]
    chunks = chunks.reshape(demo.shape[0], SAMPLES, *demo.shape[2:])  # [B, G, T, A]
    executed = slice(config.obs_horizon - 1, config.obs_horizon - 1 + config.action_horizon)
    distance = (chunks - demo).norm(dim=-1)  # [B, G, T]
    mean_chunk = chunks.mean(1, keepdim=True)
    return {"checkpoint": str(path), "windows": int(demo.shape[0]),
            "sample_px": float(distance.mean()), "sample_executed_px": float(distance[..., executed].mean()),
            "mean_chunk_px": float((mean_chunk - demo).norm(dim=-1).mean()),
            "spread_px": float((chunks - mean_chunk).norm(dim=-1).mean())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for path in args.checkpoints:
        row = chunk_errors(path)
        rows.append(row)
        print(f"{path}: {row['windows']} windows x {SAMPLES} samples: sample {row['sample_px']:.1f} px "
              f"(executed steps {row['sample_executed_px']:.1f}), mean chunk {row['mean_chunk_px']:.1f}, "
              f"spread {row['spread_px']:.1f}", flush=True)
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
