"""robomimic benchmarks: env step cost, scripted-expert success rate / length / time, dataset collection.

    .venv/bin/python benchmarks/bench_robomimic.py speed
    .venv/bin/python benchmarks/bench_robomimic.py expert --task lift --seeds 10000:10200 --noise 0.1
    .venv/bin/python benchmarks/bench_robomimic.py collect --task lift --episodes 200 --seed 0 \
        --out data/robomimic/lift_scripted.hdf5

``expert`` runs episodes without writing anything; ``collect`` writes the robomimic hdf5 dataset through
``envs.robomimic.collect`` and reports its success rate and wall time. Prints one JSON line per benchmark.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from envs.robomimic.collect import EXPERT_STREAM, RobomimicCollectConfig, collect_robomimic, record_episode
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("speed", "expert", "collect"))
    parser.add_argument("--task", default="lift", choices=sorted(TASKS))
    parser.add_argument("--seeds", default="10000:10200", help="expert: env seeds start:stop")
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=200, help="speed: steps per task")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    if args.what == "speed":
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
