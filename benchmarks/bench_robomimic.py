"""robomimic benchmarks: env step cost, scripted-expert success rate / length / time, dataset collection,
and the summary of policy evaluations (last-checkpoint averages).

    .venv/bin/python benchmarks/bench_robomimic.py speed
    .venv/bin/python benchmarks/bench_robomimic.py expert --task lift --seeds 10000:10200 --noise 0.1
    .venv/bin/python benchmarks/bench_robomimic.py collect --task lift --episodes 200 --seed 0 \
        --out data/robomimic/lift_scripted.hdf5
    .venv/bin/python benchmarks/bench_robomimic.py summary runs/rm2_*      (after drifting-eval of the last 3)
    .venv/bin/python benchmarks/bench_robomimic.py seeds runs/rm3_*        (rm3_<task>_<policy>_s<seed>)

``expert`` runs episodes without writing anything; ``collect`` writes the robomimic hdf5 dataset through
``drifting_policy.collect.robomimic`` and reports its success rate and wall time.
Prints one JSON line per benchmark.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

from drifting_policy.collect.robomimic import (
    EXPERT_STREAM,
    RobomimicCollectConfig,
    collect_robomimic,
    record_episode,
)
from envs.robomimic.env import TASKS, RobomimicEnv, RobomimicEnvConfig
from envs.robomimic.experts import EXPERT_VERSION, make_expert


def bench_speed(steps: int) -> dict:
    """Per task: env build (s), reset (s, mean of 5) and low-dim step (ms, zero actions), each as wall
    time and as this process's CPU time (what a quiet machine would show; wall time includes waiting for
    a shared CPU)."""
    out = {}
    for task in TASKS:
        timer = _Timer()
        env = RobomimicEnv(task=task)
        build = timer.lap()
        for seed in range(5):
            env.reset(seed=seed)
        reset = timer.lap(5)
        for _ in range(steps):
            env.step(np.zeros(7))
        step = timer.lap(steps / 1000)
        out[task] = {
            f"{name}_{kind}": round(value, 3)
            for name, pair in (("build_s", build), ("reset_s", reset), ("step_ms", step))
            for kind, value in zip(("wall", "cpu"), pair, strict=True)
        }
        env.close()
    return out


class _Timer:
    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self, per: float = 1.0) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        result = ((wall - self.wall) / per, (cpu - self.cpu) / per)
        self.wall, self.cpu = wall, cpu
        return result


def bench_expert(task: str, seeds: range, noise_std: float) -> dict:
    env = RobomimicEnv(RobomimicEnvConfig(task=task, terminate_on_success=False))
    successes, lengths, seconds, cpu_seconds, failed, frames = 0, [], [], [], [], 0
    for seed in seeds:
        start, cpu_start = time.perf_counter(), time.process_time()
        expert = make_expert(
            task, np.random.default_rng(np.random.SeedSequence([seed, EXPERT_STREAM])), noise_std
        )
        episode, success = record_episode(env, expert, seed)
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
        successes += success
        if task == "tool_hang":  # sub-goal of the attempt: the frame stands in the tube at the end
            frames += bool(env.sim_env._check_frame_assembled())
        if success:
            lengths.append(len(episode))
        else:
            failed.append(seed)
    return {
        "task": task,
        "expert_version": EXPERT_VERSION,
        "noise_std": noise_std,
        "seeds": f"{seeds.start}:{seeds.stop}",
        "success": successes,
        "episodes": len(seeds),
        "success_rate": successes / len(seeds),
        "mean_steps": float(np.mean(lengths)) if lengths else None,
        "max_steps": int(np.max(lengths)) if lengths else None,
        "s_per_episode": float(np.mean(seconds)),
        "cpu_s_per_episode": float(np.mean(cpu_seconds)),
        "failed_seeds": failed,
        **({"frame_assembled": frames} if task == "tool_hang" else {}),
    }


EVAL_FILE = re.compile(r"step_\d+(?P<tag>.*)\.json$")


def last_evaluations(run: str, last: int) -> dict[str, list[dict]]:
    """A run's last `last` drifting-eval summaries (<run>/eval/step_N[tag].json) per sampler tag, in step
    order: "" for the policy's own sampler, e.g. "_ddim10" for a DDIM-10 evaluation of a DDPM run."""
    by_tag: dict[str, list[Path]] = {}
    for path in sorted(Path(run, "eval").glob("step_*.json")):
        by_tag.setdefault(EVAL_FILE.match(path.name)["tag"], []).append(path)
    return {tag: [json.loads(path.read_text()) for path in files[-last:]] for tag, files in by_tag.items()}


def summarize_runs(run_dirs: list[str], last: int = 3) -> dict:
    """Per run: test success of each of the last `last` evaluated checkpoints (``drifting-eval`` files
    <run>/eval/step_*.json, the policy's own sampler) with 95% Wilson intervals, their mean, and the pooled
    episodes' interval."""
    from drifting_policy.common.stats import wilson_interval

    out = {}
    for run in run_dirs:
        checkpoints = last_evaluations(run, last).get("", [])
        if not checkpoints:
            continue
        rows = []
        for summary in checkpoints:
            episodes = summary["eval"]
            success = int(np.sum(episodes["successes"]))
            rows.append(
                {
                    "step": summary["step"],
                    "success": success,
                    "episodes": len(episodes["successes"]),
                    "wilson": wilson_interval(success, len(episodes["successes"])),
                    "mean_episode_steps": float(np.mean(episodes["episode_steps"])),
                    "policy_ms_per_chunk": episodes["policy_ms_per_chunk"],
                    "eval_seconds": episodes["seconds"],
                }
            )
        pooled = sum(row["success"] for row in rows), sum(row["episodes"] for row in rows)
        out[str(run)] = {
            "policy": checkpoints[-1]["policy"],
            "nfe": checkpoints[-1]["nfe"],
            "train_minutes": checkpoints[-1]["train_minutes"],
            "checkpoints": rows,
            "mean_success_rate": float(np.mean([row["success"] / row["episodes"] for row in rows])),
            "pooled": {"success": pooled[0], "episodes": pooled[1], "wilson": wilson_interval(*pooled)},
            "policy_ms_per_chunk": float(np.mean([row["policy_ms_per_chunk"] for row in rows])),
            "mean_episode_steps": float(np.mean([row["mean_episode_steps"] for row in rows])),
            "eval_minutes_per_checkpoint": float(np.mean([row["eval_seconds"] for row in rows])) / 60,
        }
    return out


SEED_RUN = re.compile(r"rm3_(?P<task>.+)_(?P<policy>drifting|diffusion)_s(?P<seed>\d+)$")


def summarize_seeds(run_dirs: list[str], last: int = 3) -> dict:
    """Per (task, policy) over training seeds: each seed's mean success over its last `last` checkpoints, the
    mean over seeds with a two-level bootstrap interval (training seeds, then test seeds), and pooled counts.
    Runs are named rm3_<task>_<policy>_s<seed>; evaluations with another sampler (drifting-eval's
    ``_ddim10`` files) form their own group; a run with fewer than `last` evaluated checkpoints is left out
    (and named in `incomplete`)."""
    from drifting_policy.common.stats import two_level_bootstrap, wilson_interval

    groups: dict[tuple[str, str], dict[int, np.ndarray]] = {}  # (task, policy + tag) -> seed -> [test seeds]
    steps: dict[tuple[str, str], set[int]] = {}  # the final checkpoint's step, per group
    incomplete = []
    for run in sorted(run_dirs):
        match = SEED_RUN.match(Path(run).name)
        if match is None:
            raise ValueError(f"{run}: not a rm3_<task>_<policy>_s<seed> run folder")
        for tag, summaries in last_evaluations(run, last).items():
            if len(summaries) < last:
                incomplete.append(f"{run}{tag}")
                continue
            evals = [summary["eval"] for summary in summaries]
            if any(e["seeds"] != evals[0]["seeds"] for e in evals):
                raise ValueError(f"{run}: its checkpoints were evaluated on different test seeds")
            key = (match["task"], match["policy"] + tag)
            groups.setdefault(key, {})[int(match["seed"])] = np.mean(
                [np.asarray(e["successes"], dtype=np.float64) for e in evals], axis=0)  # [test seeds]
            steps.setdefault(key, set()).add(summaries[-1]["step"])
    out = {}
    for (task, policy), by_seed in sorted(groups.items()):
        values = np.stack([by_seed[seed] for seed in sorted(by_seed)])  # [training seeds, test seeds]
        successes = int(round(values.sum() * last))
        episodes = values.size * last
        out[f"{task}/{policy}"] = {
            "task": task, "policy": policy, "seeds": sorted(by_seed), "steps": sorted(steps[task, policy]),
            "per_seed": [float(row.mean()) for row in values],
            "mean": float(values.mean()),
            "ci": two_level_bootstrap(values) if len(values) > 1 else None,  # one seed: no spread to resample
            "pooled": {"success": successes, "episodes": episodes,
                       "wilson": wilson_interval(successes, episodes)},
        }
    return {"groups": out, "incomplete": incomplete}


def seeds_table(summary: dict) -> str:
    lines = ["| task | policy | steps | training seeds | mean success per seed (last 3 ckpts) | "
             "mean over seeds [95% two-level bootstrap] | pooled episodes [95% Wilson] |", "|---" * 7 + "|"]
    for group in summary["groups"].values():
        per_seed = ", ".join(f"{value:.3f}" for value in group["per_seed"])
        ci = "" if group["ci"] is None else f" [{group['ci'][0]:.3f}, {group['ci'][1]:.3f}]"
        pooled = group["pooled"]
        lines.append(f"| {group['task']} | {group['policy']} | {', '.join(map(str, group['steps']))} | "
                     f"{len(group['seeds'])} | {per_seed} | **{group['mean']:.3f}**{ci} | "
                     f"{_rate(pooled['success'], pooled['episodes'], pooled['wilson'])} |")
    if summary["incomplete"]:
        lines.append(f"\nNot yet evaluated at 3 checkpoints (left out): {', '.join(summary['incomplete'])}")
    return "\n".join(lines)


def summary_table(runs: dict) -> str:
    lines = [
        "| run | policy | NFE | steps | success per checkpoint [95% Wilson] | mean of last 3 | "
        "pooled [95% Wilson] | mean episode steps | train min | eval min / checkpoint | "
        "policy ms / chunk (batch 25) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run, r in runs.items():
        steps = ", ".join(str(c["step"]) for c in r["checkpoints"])
        per = "; ".join(_rate(c["success"], c["episodes"], c["wilson"]) for c in r["checkpoints"])
        pooled = _rate(r["pooled"]["success"], r["pooled"]["episodes"], r["pooled"]["wilson"])
        lines.append(
            f"| {run} | {r['policy']} | {r['nfe']} | {steps} | {per} | **{r['mean_success_rate']:.3f}** | "
            f"{pooled} | {r['mean_episode_steps']:.1f} | {r['train_minutes']:.1f} | "
            f"{r['eval_minutes_per_checkpoint']:.1f} | {r['policy_ms_per_chunk']:.1f} |"
        )
    return "\n".join(lines)


def _rate(success: int, episodes: int, wilson: tuple[float, float]) -> str:
    return f"{success}/{episodes} [{wilson[0]:.2f}, {wilson[1]:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("speed", "expert", "collect", "summary", "seeds"))
    parser.add_argument("runs", nargs="*", help="summary, seeds: run folders evaluated by drifting-eval")
    parser.add_argument("--task", default="lift", choices=sorted(TASKS))
    parser.add_argument("--seeds", default="10000:10200", help="expert: env seeds start:stop")
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=200, help="speed: steps per task")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    if args.what == "summary":
        runs = summarize_runs(args.runs)
        print(summary_table(runs))
        result = {"runs": runs}
    elif args.what == "seeds":
        summary = summarize_seeds(args.runs)
        print(seeds_table(summary))
        result = summary
    elif args.what == "speed":
        result = bench_speed(args.steps)
    elif args.what == "expert":
        start, stop = (int(x) for x in args.seeds.split(":"))
        result = bench_expert(args.task, range(start, stop), args.noise)
    else:
        config = RobomimicCollectConfig(
            task=args.task,
            out=args.out,
            episodes=args.episodes,
            seed=args.seed,
            noise_std=args.noise,
            overwrite=args.overwrite,
            progress=False,
        )
        cpu_start = time.process_time()
        summary = collect_robomimic(config)
        result = {
            "task": args.task,
            "out": str(summary.out),
            "attempted": summary.attempted,
            "succeeded": summary.succeeded,
            "success_rate": summary.succeeded / summary.attempted,
            "kept": summary.kept,
            "steps": summary.steps,
            "seconds": round(summary.seconds, 1),
            "cpu_seconds": round(time.process_time() - cpu_start, 1),
            "noise_std": args.noise,
            "expert_version": EXPERT_VERSION,
        }
    print(json.dumps({"benchmark": args.what, **result}))


if __name__ == "__main__":
    main()
