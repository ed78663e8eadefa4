"""Time-to-score curves: evaluation scores of kept checkpoints against the training CPU spent to reach them.

    python -m image_gen.time_to_score runs/imagegen_r5_eval/*.json --out docs/figures/<name>.png

Reads ``image-gen-eval --out`` JSON files of checkpoints kept with ``keep_every`` (``checkpoints/step_<N>/``)
or a run's final ``model.safetensors``; a checkpoint's training CPU is ``train/cpu_minutes`` of its run's
metrics row at that step (user + sys CPU of the training steps alone: no start-up, sample grids, checkpoint
writes or evaluation). Curves are grouped by (model kind, NFE, CFG scale); runs of one group (training seeds)
are averaged at the steps they all have, and each is also drawn thin. Prints one Markdown row per group and
step (the mean and each run's value), then writes the figure: fd and class accuracy against CPU minutes.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections import defaultdict
from pathlib import Path

from drifting_policy.common.entry import report_user_errors
from image_gen.run_folder import METRICS_FILE

METRICS = ("fd", "class_accuracy")


def run_folder(checkpoint: str | Path) -> Path:
    """The run folder (the nearest parent holding metrics.jsonl) of a model.safetensors."""
    for parent in Path(checkpoint).parents:
        if (parent / METRICS_FILE).is_file():
            return parent
    raise ValueError(f"{checkpoint} has no {METRICS_FILE} in any parent folder; evaluate a checkpoint of an "
                     "image-gen-train run folder")


@functools.cache
def _cpu_minutes_by_step(run_dir: Path) -> dict[int, float]:
    """{step: train/cpu_minutes} of a run's metrics rows, read once per run folder."""
    by_step: dict[int, float] = {}
    for line in (run_dir / METRICS_FILE).read_text().splitlines():
        row = json.loads(line)
        if "train/cpu_minutes" in row:
            by_step.setdefault(row.get("step"), float(row["train/cpu_minutes"]))  # the first row of a step
    return by_step


def cpu_minutes(run_dir: Path, step: int) -> float:
    """``train/cpu_minutes`` of the run's metrics row at ``step``; ValueError naming the fix if none."""
    by_step = _cpu_minutes_by_step(Path(run_dir))
    if step in by_step:
        return by_step[step]
    raise ValueError(f"{run_dir}/{METRICS_FILE} has no train/cpu_minutes at step {step}; train with "
                     "keep_every dividing the step (or log_every), with a trainer that records CPU time")


def load_points(paths: list[str | Path]) -> dict[tuple, dict[str, dict[int, dict[str, float]]]]:
    """{(model_kind, nfe, alpha): {run folder: {step: {"cpu_minutes", "fd", "class_accuracy"}}}}."""
    groups: dict[tuple, dict[str, dict[int, dict[str, float]]]] = defaultdict(lambda: defaultdict(dict))
    for path in paths:
        result = json.loads(Path(path).read_text())
        run = run_folder(result["checkpoint"])
        key = (result["model_kind"], int(result["nfe"]), float(result["cfg_alpha"]))
        step = int(result["step"])
        point = {"cpu_minutes": cpu_minutes(run, step), **{name: float(result[name]) for name in METRICS}}
        groups[key][str(run)][step] = point
    return groups


def mean_curve(runs: dict[str, dict[int, dict[str, float]]]) -> dict[int, dict[str, float]]:
    """Mean over runs of every value, at the steps every run has."""
    steps = sorted(set.intersection(*(set(points) for points in runs.values())))
    return {step: {name: sum(points[step][name] for points in runs.values()) / len(runs)
                   for name in ("cpu_minutes", *METRICS)} for step in steps}


def label(key: tuple) -> str:
    kind, nfe, alpha = key
    scale = "alpha" if kind == "drifting" else "w"
    return f"{kind} {nfe}-NFE ({scale} {alpha:g})"


def table(groups) -> list[str]:
    lines = ["| curve | step | CPU min (mean) | fd (mean) | class acc. (mean) | fd per run | acc. per run |",
             "|---|---|---|---|---|---|---|"]
    for key in sorted(groups):
        runs = groups[key]
        for step, mean in mean_curve(runs).items():
            fds = " / ".join(f"{points[step]['fd']:.1f}" for points in runs.values())
            accs = " / ".join(f"{points[step]['class_accuracy']:.3f}" for points in runs.values())
            lines.append(f"| {label(key)} | {step} | {mean['cpu_minutes']:.2f} | {mean['fd']:.1f} | "
                         f"{mean['class_accuracy']:.3f} | {fds} | {accs} |")
    return lines


def plot(groups, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless: never open a window
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for index, key in enumerate(sorted(groups)):
        color = f"C{index}"
        for points in groups[key].values():
            steps = sorted(points)
            for ax, name in zip(axes, METRICS, strict=True):
                ax.plot([points[s]["cpu_minutes"] for s in steps], [points[s][name] for s in steps],
                        color=color, alpha=0.35, linewidth=0.8)
        mean = mean_curve(groups[key])
        for ax, name in zip(axes, METRICS, strict=True):
            ax.plot([m["cpu_minutes"] for m in mean.values()], [m[name] for m in mean.values()], "o-",
                    color=color, label=f"{label(key)}, mean of {len(groups[key])}", markersize=3)
    axes[0].set(yscale="log", ylabel="fd (evaluator features, lower is better)")
    axes[1].set(ylabel="class accuracy (higher is better)")
    for ax in axes:
        ax.set_xlabel("training CPU minutes (user + sys, one thread)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


@report_user_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("evals", nargs="+", help="image-gen-eval --out JSON files")
    parser.add_argument("--out", default=None, help="figure PNG (omit: the table only)")
    args = parser.parse_args(argv)
    groups = load_points(args.evals)
    print("\n".join(table(groups)))
    if args.out:
        plot(groups, Path(args.out))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
