"""Issue 8's seed-averaged Push-T state table, time-to-score curves and health curve.

    .venv/bin/python benchmarks/pusht_seeds.py      # Markdown tables + docs/figures/pusht_seeds_*.png

Reads the runs of `bash benchmarks/pusht_experiments.sh seeds` / `seeds-eval`
(runs/exp8_<backbone>_<method>_s<seed>). Per training seed, a method's number is the average over its last 3
evaluated checkpoints (not the best) of the per-test-seed scores; the 95% interval is a two-level percentile
bootstrap (resample training seeds, then the 50 test seeds inside each; 4000 resamples, generator seed 0), so
it carries both sources of variance. Differences between methods are paired on (training seed, test seed).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from pusht_experiments import FIGURES, LAST, RUNS, eval_files, finish_figure, fmt_ci, metrics_rows

from drifting_policy.common.stats import two_level_bootstrap

METHODS = [("Drifting-1", "drifting", "", 1), ("DDPM-100", "diffusion", "", 100),
           ("DDIM-10", "diffusion", "_ddim10", 10), ("DDIM-16", "diffusion", "_ddim16", 16),
           ("Regression", "regression", "", 1)]
BACKBONES = [("mlp", "MLP 3x512, matched steps (drifting 64 obs x G 8; others 256 obs per step)"),
             ("mlpb64", "MLP 3x512, matched samples seen (64 obs per step for every method)"),
             ("unet", "ConditionalUnet1D 64/128/256, matched steps, one training seed"),
             ("long", "MLP 3x512, longer budget: 10,000 matched steps, one training seed")]
RUN_PREFIX = {"mlp": "exp8_mlp", "mlpb64": "exp8_mlpb64", "unet": "exp8_unet", "long": "exp8long_mlp"}
N_BOOT = 4000


def runs_of(backbone: str, policy: str) -> list[str]:
    """Run directories of one backbone/policy, in training-seed order."""
    if backbone == "mlpb64" and policy == "drifting":
        backbone = "mlp"  # drifting's own runs already see 64 observations per step
    prefix = RUN_PREFIX[backbone]
    pattern = re.compile(rf"{prefix}_{policy}_s(\d+)$")
    found = [(int(m.group(1)), p.name) for p in RUNS.glob(f"{prefix}_{policy}_s*")
             if (m := pattern.match(p.name))]
    return [name for _, name in sorted(found)]


def last_evals(run: str, tag: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in eval_files(run, tag)[-LAST:]]


def per_seed(evals: list[dict], key: str = "scores") -> np.ndarray:
    """[n_test_seeds] metric averaged over the given checkpoints (which must share one test-seed list)."""
    seeds = [e["eval"]["seeds"] for e in evals]
    if any(s != seeds[0] for s in seeds):
        raise ValueError("checkpoints evaluated on different test seeds; re-evaluate on one seed set")
    return np.mean([np.asarray(e["eval"][key], dtype=np.float64) for e in evals], axis=0)


def method_result(backbone: str, policy: str, tag: str) -> dict | None:
    """Scores of every training seed of one method (only seeds with all last checkpoints evaluated)."""
    scores, successes, minutes, ms, steps, params = [], [], [], [], [], None
    for run in runs_of(backbone, policy):
        evals = last_evals(run, tag)
        if len(evals) < LAST:
            continue
        scores.append(per_seed(evals))
        successes.append(per_seed(evals, "successes"))
        minutes.append(max(e["train_minutes"] for e in evals))
        ms.append(float(np.mean([e["eval"]["policy_ms_per_chunk"] for e in evals])))
        steps.append([e["step"] for e in evals])
        params = params or parameter_count(run)
    if not scores:
        return None
    score = np.stack(scores)                                                 # [n_train, n_test]
    return {"score": float(score.mean()), "score_ci": two_level_bootstrap(score, N_BOOT),
            "per_training_seed": [float(s.mean()) for s in score], "success": float(np.mean(successes)),
            "n_successes": int(round(float(np.sum(successes)) * LAST)), "n_episodes": score.size * LAST,
            "train_minutes": float(np.mean(minutes)), "ms_per_chunk": float(np.mean(ms)),
            "ckpt_steps": steps[0], "params": params, "per_seed_scores": score}


def parameter_count(run: str) -> str | None:
    log = RUNS / "exp_logs" / f"{run}.log"
    if log.exists() and (m := re.search(r"([\d.]+M) parameters", log.read_text())):
        return m.group(1)
    return None


def table(backbone: str) -> tuple[str, dict]:
    lines = ["| method | NFE | training seeds | mean score [95% CI, 2-level bootstrap] | "
             "score per training seed | success (episodes) | ckpt steps | params | train min (mean, wall) | "
             "policy ms / chunk (batch 50) |", "|---" * 10 + "|"]
    results = {}
    for label, policy, tag, nfe in METHODS:
        r = method_result(backbone, policy, tag)
        if r is None:
            continue
        results[label] = r
        per = ", ".join(f"{s:.3f}" for s in r["per_training_seed"])
        lines.append(f"| {label} | {nfe} | {len(r['per_training_seed'])} | "
                     f"{fmt_ci(r['score'], r['score_ci'])} | {per} | "
                     f"{r['success']:.3f} ({r['n_successes']}/{r['n_episodes']}) | "
                     f"{', '.join(map(str, r['ckpt_steps']))} | {r['params'] or '?'} | "
                     f"{r['train_minutes']:.1f} | {r['ms_per_chunk']:.1f} |")
    return "\n".join(lines), results


def paired(results: dict) -> str:
    if "Drifting-1" not in results:
        return ""
    ref = results["Drifting-1"]["per_seed_scores"]
    lines = ["| Drifting-1 minus | mean difference [95% CI, paired on training and test seed] |", "|---|---|"]
    for label, r in results.items():
        other = r["per_seed_scores"]
        if label == "Drifting-1" or other.shape != ref.shape:
            continue
        diff = ref - other
        lines.append(f"| {label} | {fmt_ci(float(diff.mean()), two_level_bootstrap(diff, N_BOOT))} |")
    return "\n".join(lines)


def matched_wall_clock(backbone: str = "mlp") -> str:
    """Score of every method at one training-time budget T: per training seed, its latest evaluated checkpoint
    with training minutes <= T (one checkpoint, not an average), T = the shortest run's final minutes."""
    per_method = {label: curves(backbone, policy, tag) for label, policy, tag, _ in METHODS}
    per_method = {label: c for label, c in per_method.items() if c}
    if not per_method:
        return ""
    budget = min(float(minutes[-1]) for c in per_method.values() for _, minutes, _ in c)
    lines = [f"Matched wall-clock: T = {budget:.1f} training minutes (the shortest run's total).", "",
             "| method | mean score at T | per training seed: score (step) |", "|---|---|---|"]
    for label, runs in per_method.items():
        picks = []
        for steps, minutes, score in runs:
            inside = np.flatnonzero(minutes <= budget + 1e-9)
            if len(inside):
                picks.append((float(score[inside[-1]]), int(steps[inside[-1]])))
        if picks:
            cells = ", ".join(f"{sc:.3f} ({st})" for sc, st in picks)
            lines.append(f"| {label} | {np.mean([sc for sc, _ in picks]):.3f} | {cells} |")
    return "\n".join(lines)


def curves(backbone: str, policy: str, tag: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per training seed: (steps, training minutes, mean score) of every evaluated checkpoint."""
    out = []
    for run in runs_of(backbone, policy):
        evals = [json.loads(p.read_text()) for p in eval_files(run, tag)]
        if evals:
            out.append((np.array([e["step"] for e in evals]), np.array([e["train_minutes"] for e in evals]),
                        np.array([np.mean(e["eval"]["scores"]) for e in evals])))
    return out


def plot() -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    written = []
    panels = [b for b in ("mlp", "mlpb64", "unet", "long") if any(curves(b, p, "") for _, p, _, _ in METHODS)]
    fig, axes = plt.subplots(len(panels), 2, figsize=(12, 4 * len(panels)), squeeze=False)
    for row, backbone in enumerate(panels):
        for i, (label, policy, tag, _) in enumerate(METHODS):
            if label == "DDPM-100":
                continue  # evaluated at the last 3 checkpoints only; DDIM-16 is the curve of the same weights
            for j, (steps, minutes, score) in enumerate(curves(backbone, policy, tag)):
                kw = {"color": f"C{i}", "alpha": 0.8, "marker": "o", "ms": 3,
                      "label": label if j == 0 else None}
                axes[row, 0].plot(minutes, score, **kw)
                axes[row, 1].plot(steps, score, **kw)
        axes[row, 0].set_xlabel("training minutes (wall; concurrent runs on a shared 2-core CPU)")
        axes[row, 1].set_xlabel("training steps")
        for ax in axes[row]:
            ax.set_ylabel("mean score, 50 test seeds")
            ax.set_title(dict(BACKBONES)[backbone], fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    written.append(finish_figure(fig, "Push-T state: time to score, one line per training seed",
                                 "pusht_seeds_time_to_score.png"))

    # baseline health: the diffusion head's validation loss and its DDIM-16 score keep improving with steps
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for j, run in enumerate(runs_of("mlp", "diffusion")):
        rows = [r for r in metrics_rows(run) if "val/loss" in r]
        axes[0].plot([r["step"] for r in rows], [r["val/loss"] for r in rows], color="C1", marker="o", ms=3,
                     label="DDPM val loss" if j == 0 else None)
    for j, (steps, _, score) in enumerate(curves("mlp", "diffusion", "_ddim16")):
        axes[1].plot(steps, score, color="C3", marker="o", ms=3, label="DDIM-16 score" if j == 0 else None)
    axes[0].set_ylabel("validation loss (epsilon MSE)")
    axes[1].set_ylabel("mean score, 50 test seeds")
    for ax in axes:
        ax.set_xlabel("training steps")
        ax.grid(alpha=0.3)
        ax.legend()
    written.append(finish_figure(fig, "Diffusion baseline health, MLP 3x512, 3 training seeds",
                                 "pusht_seeds_diffusion_health.png"))
    return written


def main() -> None:
    summary = {}
    for backbone, title in BACKBONES:
        md, results = table(backbone)
        if not results:
            continue
        print(f"### {title}\n\n{md}\n\n{paired(results)}\n")
        if backbone == "mlp":
            print(matched_wall_clock(backbone) + "\n")
        summary[backbone] = {k: {kk: vv for kk, vv in v.items() if kk != "per_seed_scores"}
                             for k, v in results.items()}
    figures = plot()
    out = RUNS / "exp_logs" / "summary_seeds.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))
    print(f"wrote {out} and {', '.join(map(str, figures))}")


if __name__ == "__main__":
    main()
