"""Compare evaluated runs on the same seeds: last-N-checkpoint mean score and success, paired differences.

    .venv/bin/python benchmarks/pusht_compare.py runs/bf16_s0 runs/ddpm_s0 runs/regr_s0 --tag _ah4 [--last 3]
    .venv/bin/python benchmarks/pusht_compare.py runs/a_s0,runs/a_s1,runs/a_s2 runs/b_s0,runs/b_s1,runs/b_s2

Reads `<run>/eval/step_<N><tag>.json` (what `drifting-eval` writes for each checkpoint; `--tag _ah4` picks
the evaluations with action_horizon=4, `--tag ''` the policy's own horizon). Per run, each seed's score is
averaged over the last N evaluated checkpoints (not the best); a seed's success is the fraction of
checkpoints that solved it; "episodes < 0.2" counts the evaluated episodes that scored below 0.2 (complete
failures). An argument is one method: a run, or its training seeds' runs joined by commas. One run: the
intervals are 95% percentile bootstraps over test seeds. Several: the mean is over training and test seeds and
the interval a two-level bootstrap (training seeds, then test seeds inside each), so it carries both sources
of variance. Differences are the first method minus each other one, paired on (training seed, test seed) —
give the runs of every method in the same training-seed order.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from drifting_policy.common.stats import bootstrap_mean_ci, two_level_bootstrap

FAILED = 0.2  # an episode scoring below this barely moved the T towards the goal (a complete failure)


def last_evals(run: Path, tag: str, last: int) -> list[dict]:
    pattern = re.compile(rf"step_(\d+){re.escape(tag)}\.json$")
    found = sorted((int(m.group(1)), path) for path in (run / "eval").glob("step_*.json")
                   if (m := pattern.search(path.name)))
    if len(found) < last:
        raise SystemExit(f"{run}/eval holds {len(found)} evaluations with tag {tag!r}; need {last}")
    return [json.loads(path.read_text()) | {"step": step} for step, path in found[-last:]]


def per_test_seed(run: Path, tag: str, last: int) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """The last evaluations of one run and their [test seeds] score and success, averaged over checkpoints."""
    evals = last_evals(run, tag, last)
    seeds = evals[0]["eval"]["seeds"]
    if any(e["eval"]["seeds"] != seeds for e in evals):
        raise SystemExit(f"{run}: the last {last} evaluations used different seeds")
    scores = np.mean([e["eval"]["scores"] for e in evals], axis=0)  # [seeds], averaged over checkpoints
    solved = np.mean([e["eval"]["successes"] for e in evals], axis=0)  # [seeds], fraction of checkpoints
    return evals, scores, solved


def interval(values: np.ndarray) -> tuple[float, float]:
    """values [training seeds, test seeds]: one training seed -> bootstrap over test seeds, else two-level."""
    return bootstrap_mean_ci(values[0], 4000) if len(values) == 1 else two_level_bootstrap(values, 4000)


def summarise(runs: list[Path], tag: str, last: int) -> dict:
    per_run = [per_test_seed(run, tag, last) for run in runs]
    evals = per_run[0][0]
    seeds = evals[0]["eval"]["seeds"]
    if any(e[0]["eval"]["seeds"] != seeds for e, _, _ in per_run):
        raise SystemExit(f"{','.join(map(str, runs))}: the training seeds' runs used different test seeds")
    scores = np.stack([s for _, s, _ in per_run])  # [training seeds, test seeds]
    solved = np.stack([s for _, _, s in per_run])  # [training seeds, test seeds]
    return {"run": ",".join(map(str, runs)), "policy": evals[0]["policy"],
            "steps": [e["step"] for e in evals], "seeds": seeds, "scores": scores,
            "mean": float(scores.mean()), "ci": interval(scores),
            "per_training_seed": [round(float(s.mean()), 4) for s in scores],
            "success": float(solved.mean()), "success_ci": interval(solved),
            "episodes": solved.size * len(evals),
            "below_0.2": sum(int(np.sum(np.asarray(e["eval"]["scores"]) < FAILED))
                             for run_evals, _, _ in per_run for e in run_evals),
            "train_minutes": float(np.mean([e[-1].get("train_minutes", 0.0) for e, _, _ in per_run]))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+",
                        help="a run folder, or a method's training-seed runs joined by commas")
    parser.add_argument("--tag", default="", help="evaluation file suffix, e.g. _ah4 or _ddim10")
    parser.add_argument("--last", type=int, default=3)
    args = parser.parse_args(argv)
    rows = [summarise([Path(run) for run in group.split(",")], args.tag, args.last) for group in args.runs]
    print("| run | policy | checkpoints | mean score [95% CI] | per training seed | success [95% CI] "
          "| episodes < 0.2 | train min |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        per_seed = ", ".join(f"{s:.3f}" for s in r["per_training_seed"])
        print(f"| {r['run']} | {r['policy']} | {', '.join(map(str, r['steps']))} | {r['mean']:.3f} "
              f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] | {per_seed} | "
              f"{r['success']:.1%} [{r['success_ci'][0]:.1%}, {r['success_ci'][1]:.1%}] "
              f"({round(r['success'] * r['episodes'])}/{r['episodes']}) | {r['below_0.2']} | "
              f"{r['train_minutes']:.1f} |")
    first = rows[0]
    for other in rows[1:]:
        if other["seeds"] != first["seeds"] or other["scores"].shape != first["scores"].shape:
            raise SystemExit(f"{other['run']} was evaluated on other test seeds, or has another number of "
                             f"training seeds, than {first['run']}")
        diff = first["scores"] - other["scores"]  # [training seeds, test seeds], paired
        low, high = interval(diff)
        print(f"{first['run']} minus {other['run']}: {diff.mean():+.3f} [{low:+.3f}, {high:+.3f}]")
    print(json.dumps([{k: v for k, v in r.items() if k not in ("scores", "seeds")} for r in rows]))


if __name__ == "__main__":
    main()
