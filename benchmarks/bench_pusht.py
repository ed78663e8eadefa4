"""Push-T benchmarks: env throughput, scripted-expert success rate / length / time, multimodality.

    .venv/bin/python benchmarks/bench_pusht.py speed
    .venv/bin/python benchmarks/bench_pusht.py expert --seeds 0:500
    .venv/bin/python benchmarks/bench_pusht.py expert --seeds 100000:100050
    .venv/bin/python benchmarks/bench_pusht.py expert --seeds 0:100 --noise 6
    .venv/bin/python benchmarks/bench_pusht.py modes --seeds 1000:1010 --repeats 10
    .venv/bin/python benchmarks/bench_pusht.py figure --seeds 100000:100001

Env seeds use Diffusion Policy's legacy mapping; the expert's generator is seeded with the env seed
(plus --expert-seed), so every number is reproducible. Prints one JSON line per benchmark.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter

import numpy as np

from envs.pusht.env import PushTEnv
from envs.pusht.expert import EXPERT_VERSION, PushTExpert
from envs.pusht.planner import MAX_LEAD


def bench_speed(seconds: float) -> dict:
    """Steps per second per obs type, one process, random-walk actions (a teleoperator-like load).

    `*_per_cpu_s` divides by the process's CPU time (one core's throughput, independent of other jobs on
    a shared machine); `*_per_s` by wall-clock time.
    """
    out = {}
    for obs_type in ("state", "keypoints", "image"):
        env = PushTEnv(obs_type=obs_type)
        rng = np.random.default_rng(0)
        env.reset(seed=0)
        n, start, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - start < seconds:
            action = np.clip(env.get_state()[:2] + rng.normal(0, 20, 2), 0, 512)
            _, _, terminated, truncated, _ = env.step(action)
            n += 1
            if terminated or truncated:
                env.reset(seed=n)
        out[f"steps_per_s/{obs_type}"] = n / (time.perf_counter() - start)
        out[f"steps_per_cpu_s/{obs_type}"] = n / (time.process_time() - cpu)
    frames, start, cpu = 0, time.perf_counter(), time.process_time()
    env = PushTEnv(video_size=256)
    env.reset(seed=0)
    while time.perf_counter() - start < seconds:
        env.render()
        frames += 1
    out["render_256_per_s"] = frames / (time.perf_counter() - start)
    out["render_256_per_cpu_s"] = frames / (time.process_time() - cpu)
    return out


def run_episode(seed: int, expert_seed: int, noise: float) -> dict:
    env = PushTEnv(obs_type="state")
    expert = PushTExpert(np.random.default_rng(expert_seed), noise_std=noise)
    env.reset(seed=seed)
    expert.reset()
    max_lead, start, info = 0.0, time.process_time(), {"coverage": 0.0, "is_success": False}
    for t in range(env.config.max_episode_steps):  # noqa: B007 (t is the episode length afterwards)
        action = expert.act(env)
        max_lead = max(max_lead, float(np.linalg.norm(expert.last_clean_action - env.get_state()[:2])))
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return {"seed": seed, "success": bool(info["is_success"]), "length": t + 1, "coverage": info["coverage"],
            "cpu_s": time.process_time() - start, "max_lead": max_lead,
            "first_edge": expert.first_contact_edge, "edges": tuple(expert.edge_history[:3])}


def bench_expert(seeds: range, noise: float, expert_seed: int) -> dict:
    rows = [run_episode(s, s + expert_seed, noise) for s in seeds]
    ok = [r for r in rows if r["success"]]
    return {
        "expert": EXPERT_VERSION, "seeds": f"{seeds.start}:{seeds.stop}", "noise_std": noise,
        "episodes": len(rows), "success_rate": len(ok) / len(rows),
        "failed_seeds": [r["seed"] for r in rows if not r["success"]],
        "mean_length_success": float(np.mean([r["length"] for r in ok])) if ok else math.nan,
        "p90_length_success": float(np.percentile([r["length"] for r in ok], 90)) if ok else math.nan,
        "cpu_s_per_episode": float(np.mean([r["cpu_s"] for r in rows])),
        "max_target_lead_px": max(r["max_lead"] for r in rows), "lead_bound_px": MAX_LEAD,
    }


def bench_modes(seeds: range, repeats: int) -> dict:
    """Per initial state, over `repeats` expert seeds: distinct first-contact edges (and their entropy in
    bits) and distinct sequences of the first three pushed edges."""
    distinct, entropy, success, sequences = [], [], [], []
    for s in seeds:
        rows = [run_episode(s, 10_000 * (r + 1) + s, 0.0) for r in range(repeats)]
        counts = np.array(list(Counter(r["first_edge"] for r in rows).values()), dtype=np.float64)
        p = counts / counts.sum()
        distinct.append(len(counts))
        sequences.append(len({r["edges"] for r in rows}))
        entropy.append(float(-(p * np.log2(p)).sum()))
        success += [r["success"] for r in rows]
    return {"expert": EXPERT_VERSION, "seeds": f"{seeds.start}:{seeds.stop}", "repeats": repeats,
            "mean_distinct_first_edges": float(np.mean(distinct)),
            "mean_entropy_bits": float(np.mean(entropy)),
            "mean_distinct_first3_edge_sequences": float(np.mean(sequences)),
            "success_rate": float(np.mean(success))}


def make_figures(seed: int, out_dir: str = "docs/figures") -> dict:
    """A PNG strip (every 12th step) and a GIF (every 2nd step) of one expert episode."""
    import imageio.v2 as imageio

    env = PushTEnv(video_size=160)
    expert = PushTExpert(np.random.default_rng(seed))
    env.reset(seed=seed)
    expert.reset()
    frames = [env.render()]
    for _ in range(env.config.max_episode_steps):
        _, _, terminated, truncated, info = env.step(expert.act(env))
        frames.append(env.render())
        if terminated or truncated:
            break
    strip = frames[::12][:10] + ([frames[-1]] if (len(frames) - 1) % 12 else [])
    imageio.imwrite(f"{out_dir}/pusht_expert_strip.png", np.concatenate(strip, axis=1))
    imageio.mimsave(f"{out_dir}/pusht_expert.gif", frames[::2], duration=0.2, loop=0)
    return {"seed": seed, "steps": len(frames) - 1, "success": bool(info["is_success"])}


def parse_range(text: str) -> range:
    lo, hi = (int(v) for v in text.split(":"))
    return range(lo, hi)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["speed", "expert", "modes", "figure"])
    parser.add_argument("--seeds", type=parse_range, default=range(0, 20))
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--expert-seed", type=int, default=0, help="offset added to the env seed")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if args.what == "speed":
        result = bench_speed(args.seconds)
    elif args.what == "expert":
        result = bench_expert(args.seeds, args.noise, args.expert_seed)
    elif args.what == "modes":
        result = bench_modes(args.seeds, args.repeats)
    else:
        result = make_figures(args.seeds.start)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
