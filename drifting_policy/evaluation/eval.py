"""`drifting-eval`: closed-loop evaluation of checkpoints with Diffusion Policy's protocol.

    drifting-eval checkpoint=runs/x/checkpoints/latest
    drifting-eval checkpoint=runs/x/checkpoints/latest n_envs=25 n_seeds=50 n_videos=4
    drifting-eval checkpoint=runs/x/checkpoints/latest sampler=ddim num_inference_steps=10   (diffusion only)
    drifting-eval checkpoint=runs/x/checkpoints/latest candidates=8   (drifting only: 8 draws per replan)
    drifting-eval "checkpoint=runs/x/checkpoints/step_*" last=3      (mean over the last 3 checkpoints)
    drifting-eval checkpoint=... "info_records=[first_block,zones]"  (per-episode final info in the JSON)

The checkpoint alone defines the policy, the task and the protocol (its stored run config); the options
here override the protocol. Writes <run>/eval/<checkpoint>[_<sampler><steps>].json (per-seed scores, videos
listed) and prints a summary; the last printed line is a JSON object.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from drifting_policy.common.entry import check_overrides, report_user_errors, set_threads
from drifting_policy.evaluation.runner import EnvRunner, RunnerConfig
from drifting_policy.training.checkpoint import load_policy, read_metadata, resolve_path
from drifting_policy.training.setup import check_test_seeds_unseen

RUNNER_OVERRIDES = ("n_envs", "seed_start", "n_seeds", "n_videos", "vector_mode", "sampling_seed",
                    "max_steps", "info_records")


def checkpoint_paths(pattern: str, last: int | None) -> list[Path]:
    """A checkpoint path, or a glob over checkpoints (sorted by name: step order), optionally the last N."""
    if any(char in pattern for char in "*?["):
        paths = sorted(Path(p) for p in glob.glob(pattern) if p.endswith(".safetensors") or Path(p).is_dir())
        paths = [resolve_path(p) for p in paths]
        if not paths:
            raise FileNotFoundError(f"checkpoint={pattern!r} matches no checkpoint file")
    else:
        paths = [resolve_path(pattern)]
    return paths[-last:] if last else paths


def nfe(policy) -> int:
    """Network evaluations per chunk: the diffusion sampler's steps, else 1."""
    return int(getattr(policy.config, "num_inference_steps", 1)) if policy.name == "diffusion" else 1


def set_action_horizon(policy, action_horizon: int) -> None:
    """Change how many steps of each predicted chunk are executed before the next prediction."""
    config = policy.config
    room = config.prediction_horizon - config.obs_horizon + 1  # chunk steps from the current one on
    if not 1 <= action_horizon <= room:
        raise ValueError(f"action_horizon={action_horizon}: expected 1..{room} (prediction_horizon "
                         f"{config.prediction_horizon} - obs_horizon {config.obs_horizon} + 1)")
    config.action_horizon = action_horizon


def evaluate_checkpoint(path: Path, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Evaluate one checkpoint; returns the JSON summary (also written next to the run's other evals)."""
    meta = read_metadata(path)
    policy = load_policy(path, use_ema=cfg["use_ema"], device=cfg["device"])
    tag = ""
    if cfg.get("sampler") or cfg.get("num_inference_steps"):
        if not hasattr(policy, "set_sampler"):
            raise ValueError(f"sampler/num_inference_steps apply to diffusion checkpoints; {path} holds a "
                             f"{meta['policy_name']} policy")
        sampler = cfg.get("sampler") or policy.config.sampler
        policy.set_sampler(sampler, int(cfg.get("num_inference_steps") or policy.config.num_inference_steps))
        tag = f"_{sampler}{policy.config.num_inference_steps}"
    if cfg.get("candidates") is not None:  # drifting: best of N draws per replan (DriftingConfig.candidates)
        if not hasattr(policy, "set_candidates"):
            raise ValueError(f"candidates= applies to drifting checkpoints; {path} holds a "
                             f"{meta['policy_name']} policy")
        policy.set_candidates(int(cfg["candidates"]))
        tag += f"_n{policy.config.candidates}"
    task = meta["config"]["task"]
    if cfg.get("action_horizon") is not None:  # execute fewer (or more) steps of each predicted chunk
        set_action_horizon(policy, int(cfg["action_horizon"]))
        tag += f"_ah{policy.config.action_horizon}"
    overrides = {key: cfg[key] for key in RUNNER_OVERRIDES if cfg.get(key) is not None}
    base = {**task["runner"], "obs_horizon": policy.config.obs_horizon,
            "action_horizon": policy.config.action_horizon}
    specs = {"eval/": {**base, **overrides}}
    if cfg.get("train_seeds"):
        specs["train/"] = {**base, **overrides, **task["train_seeds"], "n_videos": 0}
    run_dir = path.parent.parent
    stem = path.name.removesuffix(".safetensors") + tag
    summary: dict[str, Any] = {"checkpoint": str(path), "policy": meta["policy_name"], "nfe": nfe(policy),
                               "step": meta["train_state"].get("step"), "use_ema": cfg["use_ema"],
                               "train_minutes": meta["train_state"].get("train_seconds", 0.0) / 60.0,
                               "metrics": {}}
    for prefix, spec in specs.items():
        runner = EnvRunner(RunnerConfig(**spec, prefix=prefix))
        if prefix == "eval/":
            check_test_seeds_unseen(runner.config, meta["config"].get("dataset_info", {}).get("store", {}))
        video_dir = Path(cfg.get("video_dir") or run_dir / "videos" / stem) / prefix.strip("/")
        result = runner.run_episodes(policy, video_dir=video_dir)
        summary["metrics"].update(result.metrics(prefix, n_bootstrap=runner.config.n_bootstrap))
        summary[prefix.strip("/")] = result.to_json(prefix)
    output = Path(cfg.get("output") or run_dir / "eval" / f"{stem}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(summary, indent=1))
    summary["output"] = str(output)
    return summary


def run_eval(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Evaluate the checkpoint(s); returns the flat summary printed as the last line.

    Several checkpoints of one run: their metrics averaged (Diffusion Policy's "average of the last
    checkpoints"). Checkpoints of several runs: one such summary per run under "runs", and a table.
    """
    set_threads(cfg.get("num_threads"))
    if cfg.get("checkpoint") in (None, "", "???"):
        raise ValueError("checkpoint= is required: a checkpoint file, a run folder, or a glob such as "
                         "'runs/x/checkpoints/step_*' (drifting-eval checkpoint=runs/x/checkpoints/latest)")
    paths = checkpoint_paths(str(cfg["checkpoint"]), cfg.get("last"))
    if len(paths) > 1 and cfg.get("output"):
        raise ValueError("output= names one file but several checkpoints match; drop output=")
    runs: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        summary = evaluate_checkpoint(path, cfg)
        print(summary_line(summary))
        runs.setdefault(str(path.parent.parent), []).append(summary)
    merged = {run: merge_checkpoints(summaries) for run, summaries in runs.items()}
    if len(merged) == 1:
        return next(iter(merged.values()))
    print(table(merged))
    return {"runs": merged}


def summary_line(s: Mapping[str, Any]) -> str:
    m = s["metrics"]
    return (f"{s['checkpoint']} (step {s['step']}, {s['policy']}, NFE {s['nfe']}): mean_score "
            f"{m['eval/mean_score']:.3f} [{m['eval/mean_score_ci_low']:.3f}, "
            f"{m['eval/mean_score_ci_high']:.3f}], success {m['eval/success_rate']:.2f} "
            f"[{m['eval/success_rate_ci_low']:.2f}, {m['eval/success_rate_ci_high']:.2f}] over "
            f"{int(m['eval/n_episodes'])} seeds -> {s['output']}")


def merge_checkpoints(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """One checkpoint: its flat summary. Several (one run): metrics averaged, per-checkpoint values kept."""
    first = summaries[0]
    out: dict[str, Any] = {"policy": first["policy"], "nfe": first["nfe"]}
    if len(summaries) == 1:
        return {"checkpoint": first["checkpoint"], "step": first["step"],
                "train_minutes": first["train_minutes"], **out, **first["metrics"]}
    out.update(checkpoints=[s["checkpoint"] for s in summaries], steps=[s["step"] for s in summaries],
               train_minutes=summaries[-1]["train_minutes"])
    for key in first["metrics"]:
        values = np.array([s["metrics"][key] for s in summaries])
        out[key] = float(values.mean())
        if key.endswith(("mean_score", "success_rate")):
            out[key + "_per_checkpoint"] = values.tolist()
            out[key + "_std_over_checkpoints"] = float(values.std())
    return out


def table(runs: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown table, one row per run."""
    lines = ["| run | policy | NFE | mean score [95% CI] | success [95% CI] | ms/chunk (batch) | train min |",
             "|---|---|---|---|---|---|---|"]
    for run, m in runs.items():
        lines.append(f"| {run} | {m['policy']} | {m['nfe']} | {m['eval/mean_score']:.3f} "
                     f"[{m['eval/mean_score_ci_low']:.3f}, {m['eval/mean_score_ci_high']:.3f}] | "
                     f"{m['eval/success_rate']:.2f} [{m['eval/success_rate_ci_low']:.2f}, "
                     f"{m['eval/success_rate_ci_high']:.2f}] | {m['eval/policy_ms_per_chunk']:.2f} | "
                     f"{m['train_minutes']:.1f} |")
    return "\n".join(lines)


@hydra.main(config_path="../../configs", config_name="eval", version_base=None)
@report_user_errors
def _main(cfg: DictConfig) -> None:
    summary = run_eval(OmegaConf.to_container(cfg, resolve=True))
    print(json.dumps(summary))


def main() -> None:
    report_user_errors(check_overrides)("configs", "eval")
    _main()


if __name__ == "__main__":
    main()
