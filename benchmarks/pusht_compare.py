"""Compare evaluated runs on the same seeds: last-N-checkpoint mean score and success, paired differences.

    .venv/bin/python benchmarks/pusht_compare.py runs/bf16_s0 runs/ddpm_s0 runs/regr_s0 --tag _ah4 [--last 3]

Reads `<run>/eval/step_<N><tag>.json` (what `drifting-eval` writes for each checkpoint; `--tag _ah4` picks
the evaluations with action_horizon=4, `--tag ''` the policy's own horizon). Per run, each seed's score is
averaged over the last N evaluated checkpoints (not the best); score and success intervals are 95% percentile
bootstraps over seeds (fixed generator; a seed's success is the fraction of checkpoints that solved it).
Differences are the first run minus each other run, paired on seed. One training seed per run: the intervals
cover the seeds' variance only.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from drifting_policy.common.stats import bootstrap_mean_ci


def last_evals(run: Path, tag: str, last: int) -> list[dict]:
    pattern = re.compile(rf"step_(\d+){re.escape(tag)}\.json$")
    found = sorted((int(m.group(1)), path) for path in (run / "eval").glob("step_*.json")
                   if (m := pattern.search(path.name)))
    if len(found) < last:
        raise SystemExit(f"{run}/eval holds {len(found)} evaluations with tag {tag!r}; need {last}")
    return [json.loads(path.read_text()) | {"step": step} for step, path in found[-last:]]


def summarise(run: Path, tag: str, last: int) -> dict:
    evals = last_evals(run, tag, last)
    seeds = evals[0]["eval"]["seeds"]
    if any(e["eval"]["seeds"] != seeds for e in evals):
        raise SystemExit(f"{run}: the last {last} evaluations used different seeds")
    scores = np.mean([e["eval"]["scores"] for e in evals], axis=0)  # [seeds], averaged over checkpoints
    solved = np.mean([e["eval"]["successes"] for e in evals], axis=0)  # [seeds], fraction of checkpoints
    episodes = len(seeds) * len(evals)
    return {"run": str(run), "policy": evals[0]["policy"], "steps": [e["step"] for e in evals],
            "seeds": seeds, "scores": scores, "mean": float(scores.mean()),
            "ci": bootstrap_mean_ci(scores, 4000), "success": float(solved.mean()),
            "success_ci": bootstrap_mean_ci(solved, 4000), "episodes": episodes,
            "train_minutes": evals[-1].get("train_minutes", 0.0)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--tag", default="", help="evaluation file suffix, e.g. _ah4 or _ddim10")
    parser.add_argument("--last", type=int, default=3)
    args = parser.parse_args(argv)
    rows = [summarise(run, args.tag, args.last) for run in args.runs]
    print("| run | policy | checkpoints | mean score [95% CI] | success [95% CI] | train min |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['policy']} | {', '.join(map(str, r['steps']))} | {r['mean']:.3f} "
              f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] | {r['success']:.1%} [{r['success_ci'][0]:.1%}, "
              f"{r['success_ci'][1]:.1%}] ({round(r['success'] * r['episodes'])}/{r['episodes']}) | "
              f"{r['train_minutes']:.1f} |")
    first = rows[0]
    for other in rows[1:]:
        if other["seeds"] != first["seeds"]:
            raise SystemExit(f"{other['run']} was evaluated on other seeds than {first['run']}")
        diff = first["scores"] - other["scores"]
        low, high = bootstrap_mean_ci(diff, 4000)
        print(f"{first['run']} minus {other['run']}: {diff.mean():+.3f} [{low:+.3f}, {high:+.3f}]")
    print(json.dumps([{k: v for k, v in r.items() if k not in ("scores", "seeds")} for r in rows]))


if __name__ == "__main__":
    main()
