"""Tables and curves for the Push-T state experiments (benchmarks/pusht_experiments.sh runs them).

    .venv/bin/python benchmarks/pusht_experiments.py            # tables (Markdown) + docs/figures/pusht_*.png

Reads runs/exp_*/eval/step_<N>[_<sampler><k>].json (per-seed scores written by the trainer or drifting-eval)
and runs/exp_*/metrics.jsonl. A method's number is the average over its last 3 evaluated checkpoints (not the
best): per-seed scores are averaged over the checkpoints first, then a 95% percentile-bootstrap interval is
taken over the 50 test seeds (2000 resamples, seed 0), for the score, the max coverage and the success rate.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from drifting_policy.common.stats import bootstrap_mean_ci

RUNS = Path("runs")
FIGURES = Path("docs/figures")
LAST = 3
MAIN = [("Drifting-1", "exp_main_drifting", ""), ("DDPM-100", "exp_main_diffusion", ""),
        ("DDIM-10", "exp_main_diffusion", "_ddim10"), ("DDIM-16", "exp_main_diffusion", "_ddim16"),
        ("Regression", "exp_main_regression", "")]
SWEEP = [("G=2 (256 obs)", "exp_g2"), ("G=4 (128 obs)", "exp_g4"), ("G=8 (64 obs)", "exp_g8"),
         ("G=16 (32 obs)", "exp_g16"), ("mixed, G=8 (64 obs)", "exp_mixed_g8")]


def eval_files(run: str, tag: str = "") -> list[Path]:
    """Evaluation JSONs of a run for one sampler tag, in step order."""
    pattern = re.compile(rf"step_\d{{7}}{re.escape(tag)}\.json$")
    return sorted(p for p in (RUNS / run / "eval").glob("step_*.json") if pattern.search(p.name))


def aggregate(paths: list[Path]) -> dict:
    """Average of the given checkpoints' evaluations; intervals over seeds of the per-seed averages."""
    evals = [json.loads(p.read_text()) for p in paths]
    seeds = [e["eval"]["seeds"] for e in evals]
    if any(s != seeds[0] for s in seeds):
        raise ValueError(f"{paths}: checkpoints were evaluated on different seeds; "
                         f"re-evaluate them on one seed set")
    out = {"steps": [e["step"] for e in evals], "train_minutes": [e["train_minutes"] for e in evals],
           "n_seeds": len(seeds[0]), "nfe": evals[0].get("nfe", 1),
           "ms_per_chunk": float(np.mean([e["eval"]["policy_ms_per_chunk"] for e in evals]))}
    for key, name in (("scores", "score"), ("max_coverages", "coverage"), ("successes", "success")):
        per_seed = np.mean([np.asarray(e["eval"][key], dtype=np.float64) for e in evals], axis=0)  # [n_seeds]
        out[name] = float(per_seed.mean())
        out[name + "_ci"] = bootstrap_mean_ci(per_seed)
        out[name + "_per_ckpt"] = [float(np.mean(e["eval"][key])) for e in evals]
    return out


def metrics_rows(run: str) -> list[dict]:
    path = RUNS / run / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def last_train_row(run: str) -> dict:
    rows = [r for r in metrics_rows(run) if "train/minutes" in r and "train/loss" in r]
    return rows[-1] if rows else {}


def fmt_ci(value: float, ci: tuple[float, float], digits: int = 3) -> str:
    return f"{value:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def main_table() -> tuple[str, dict]:
    lines = ["| method | NFE | mean score [95% CI] | mean max coverage [95% CI] | success [95% CI] | "
             "score per ckpt | ckpt steps | train steps | train min (wall, loaded) |", "|---" * 9 + "|"]
    results = {}
    for label, run, tag in MAIN:
        paths = eval_files(run, tag)[-LAST:]
        if not paths:
            continue
        a = aggregate(paths)
        nfe = {"DDPM-100": 100, "DDIM-10": 10, "DDIM-16": 16}.get(label, 1)
        train = last_train_row(run)
        results[label] = {**a, "nfe": nfe, "train_steps": train.get("step"),
                          "train_total_minutes": train.get("train/minutes")}
        per_ckpt = ", ".join(f"{s:.3f}" for s in a["score_per_ckpt"])
        lines.append(f"| {label} | {nfe} | {fmt_ci(a['score'], a['score_ci'])} | "
                     f"{fmt_ci(a['coverage'], a['coverage_ci'])} | "
                     f"{fmt_ci(a['success'], a['success_ci'], 2)} | {per_ckpt} | "
                     f"{', '.join(map(str, a['steps']))} | {train.get('step', '?')} | "
                     f"{train.get('train/minutes', float('nan')):.1f} |")
    return "\n".join(lines), results


def sweep_table() -> tuple[str, dict]:
    lines = ["| setting | mean score [95% CI] | success | score per ckpt (steps) | final demo_mse | "
             "final gen_spread | train min (wall, loaded) |", "|---" * 7 + "|"]
    results = {}
    for label, run in SWEEP:
        paths = eval_files(run)[-LAST:]
        if not paths:
            continue
        a = aggregate(paths)
        train = last_train_row(run)
        nan = float("nan")
        results[label] = {**a, "demo_mse": train.get("train/demo_mse"),
                          "gen_spread": train.get("train/gen_spread")}
        per = ", ".join(f"{s:.3f} ({n})" for s, n in zip(a["score_per_ckpt"], a["steps"], strict=True))
        lines.append(f"| {label} | {fmt_ci(a['score'], a['score_ci'])} | {a['success']:.2f} | {per} | "
                     f"{train.get('train/demo_mse', nan):.3f} | {train.get('train/gen_spread', nan):.3f} | "
                     f"{train.get('train/minutes', nan):.1f} |")
    return "\n".join(lines), results


def per_seed_scores(run: str, tag: str = "") -> np.ndarray:
    """[n_seeds] scores averaged over the run's last 3 evaluated checkpoints."""
    evals = [json.loads(p.read_text()) for p in eval_files(run, tag)[-LAST:]]
    return np.mean([np.asarray(e["eval"]["scores"], dtype=np.float64) for e in evals], axis=0)


def paired_differences() -> str:
    """Drifting-1 minus each other method, per test seed (same seeds), with a bootstrap interval."""
    runs = {label: (run, tag) for label, run, tag in MAIN if eval_files(run, tag)}
    if "Drifting-1" not in runs:
        return ""
    drifting = per_seed_scores(*runs["Drifting-1"])
    lines = ["| Drifting-1 minus | mean score difference [95% CI, paired over seeds] |", "|---|---|"]
    for label, (run, tag) in runs.items():
        if label != "Drifting-1":
            diff = drifting - per_seed_scores(run, tag)
            lines.append(f"| {label} | {fmt_ci(float(diff.mean()), bootstrap_mean_ci(diff))} |")
    return "\n".join(lines)


def curve(run: str, tag: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, training minutes, mean score) of every evaluated checkpoint of a run."""
    evals = [json.loads(p.read_text()) for p in eval_files(run, tag)]
    return (np.array([e["step"] for e in evals]), np.array([e["train_minutes"] for e in evals]),
            np.array([np.mean(e["eval"]["scores"]) for e in evals]))


def finish_figure(fig, title: str, name: str) -> Path:
    """Title, tight layout, save as docs/figures/<name>, close; returns the path."""
    import matplotlib.pyplot as plt

    fig.suptitle(title)
    fig.tight_layout()
    path = FIGURES / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves() -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    written = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, run, tag in MAIN:
        steps, minutes, score = curve(run, tag)
        if len(steps):
            for ax, x in zip(axes, (minutes, steps), strict=True):
                ax.plot(x, score, marker="o", label=label)
    axes[0].set_xlabel("training minutes (wall, 2-core CPU shared, load ~15; methods run concurrently)")
    axes[1].set_xlabel("training steps (matched)")
    for ax in axes:
        ax.set_ylabel("mean score, 50 test seeds")
        ax.grid(alpha=0.3)
        ax.legend()
    written.append(finish_figure(fig, "Push-T state, MLP 3x512, seed 0: time to score",
                                 "pusht_time_to_score.png"))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, run in SWEEP:
        steps, _, score = curve(run)
        if len(steps):
            axes[0].plot(steps, score, marker="o", label=label)
        rows = [r for r in metrics_rows(run) if "train/demo_mse" in r]
        if rows:
            axes[1].plot([r["step"] for r in rows], [r["train/demo_mse"] for r in rows], label=label)
    axes[0].set_ylabel("mean score, 50 test seeds")
    axes[1].set_ylabel("train/demo_mse (normalised units)")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("training steps (matched: 512 generated chunks per step)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    written.append(finish_figure(fig, "Drifting Policy, Push-T: samples per observation G, mixed groups",
                                 "pusht_gsweep.png"))
    return written


def main() -> None:
    main_md, main_results = main_table()
    sweep_md, sweep_results = sweep_table()
    print("## Main table\n" + main_md + "\n\n" + paired_differences() + "\n\n## G sweep\n" + sweep_md)
    figures = plot_curves()
    out = RUNS / "exp_logs" / "summary.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"main": main_results, "sweep": sweep_results}, indent=1))
    print(f"wrote {out} and {', '.join(map(str, figures))}")


if __name__ == "__main__":
    main()
