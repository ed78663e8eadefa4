"""Order modes of multi-stage tasks: does a policy keep the different orders its expert demonstrates?

An episode's *mode* is a label read from the env's info at its last step, which the runner keeps per
episode when asked (`drifting-eval ... "info_records=[first_block,zones]"`, `EvalResult.info_records`):

- block pushing: which cube entered a zone first and which zone cube 0 ended in, e.g. `c1 first, c0 in z0`
  (`none` when no cube reached a zone); the expert's from the store's `meta/first_in` and
  `meta/zone_of_block0`;
- kitchen: the first `depth` tasks completed, e.g. `microwave` (depth 1) or `microwave > light switch >
  ...` (depth 4; fewer when the episode completed fewer); the expert's from `meta/achieved_<k>`.

Per policy: mode counts, their entropy (nats), and the total variation distance to the expert's mode
shares, TV = 1/2 sum_m |p_m - q_m| over the union of modes (0: same shares; 1: no mode in common).

    python -m drifting_policy.evaluation.order_modes summarise --task blockpush \\
        --store data/blockpush/blockpush_scripted.zarr --eval drifting=runs/a/eval/latest.json --out bp.json
    (--eval drifting=a.json,b.json pools the episodes of several evaluations, e.g. the last 3 checkpoints)
    python -m drifting_policy.evaluation.order_modes plot bp.json [kitchen.json] --figure modes.png
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

NONE = "none"  # no stage reached
TASKS = ("blockpush", "kitchen")


def mode_counts(labels: Iterable[str]) -> dict[str, int]:
    """Episodes per mode label, most frequent first (ties by label)."""
    counts = Counter(labels)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def shares(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    if total == 0:
        raise ValueError("no episodes: mode counts are empty")
    return {label: count / total for label, count in counts.items()}


def entropy(counts: Mapping[str, int]) -> float:
    """Shannon entropy of the mode shares in nats (log 4 for an even four-way split)."""
    return float(sum(-p * math.log(p) for p in shares(counts).values() if p > 0))


def total_variation(counts: Mapping[str, int], reference: Mapping[str, int]) -> float:
    """1/2 sum over modes of |share - reference share|: 0 for equal shares, 1 for disjoint modes."""
    p, q = shares(counts), shares(reference)
    return 0.5 * sum(abs(p.get(label, 0.0) - q.get(label, 0.0)) for label in set(p) | set(q))


def blockpush_label(first_block: int, zone_of_block0: int) -> str:
    if first_block < 0:
        return NONE
    zone = f"z{zone_of_block0}" if zone_of_block0 >= 0 else "no zone"
    return f"c{first_block} first, c0 in {zone}"


def kitchen_label(completed: Sequence[str], depth: int) -> str:
    return " > ".join(completed[:depth]) if completed else NONE


def rollout_labels(task: str, records: Mapping[str, list[Any]], depth: int = 1) -> list[str]:
    """Mode labels from a runner's `info_records` (block pushing: first_block, zones; kitchen:
    completed_tasks)."""
    needed = {"blockpush": ("first_block", "zones"), "kitchen": ("completed_tasks",)}[task]
    missing = [key for key in needed if key not in records]
    if missing:
        raise ValueError(f"info_records lack {missing} (have {sorted(records)}); evaluate with "
                         f"drifting-eval ... \"info_records=[{','.join(needed)}]\"")
    if task == "blockpush":
        return [blockpush_label(int(first), int(zones[0]))
                for first, zones in zip(records["first_block"], records["zones"], strict=True)]
    return [kitchen_label(list(done), depth) for done in records["completed_tasks"]]


def expert_labels(task: str, store: str | Path, depth: int = 1) -> list[str]:
    """Mode labels of the demonstrations, from the store's meta/ arrays."""
    import zarr  # only the expert's side needs the store

    root = zarr.open_group(str(store), mode="r")
    meta = root["meta"]
    if task == "blockpush":
        firsts, zones = meta["first_in"][:], meta["zone_of_block0"][:]
        return [blockpush_label(int(f), int(z)) for f, z in zip(firsts, zones, strict=True)]
    names = list(root.attrs["task_names"])
    achieved = np.stack([meta[f"achieved_{k}"][:] for k in range(depth)], axis=1)  # [episodes, depth]
    return [kitchen_label([names[i] for i in row if i >= 0], depth) for row in achieved]


def summarise(labels: Sequence[str], expert: Sequence[str]) -> dict[str, Any]:
    """Counts, entropy and TV to the expert for one policy's rollouts; ``tv_completed`` is the TV over the
    episodes that reached a stage (``none`` left out on both sides; None when no episode did), which asks
    only whether the policy spreads over the expert's orders, however often it gets that far."""
    counts, reference = mode_counts(labels), mode_counts(expert)
    reached = {mode: n for mode, n in counts.items() if mode != NONE}
    reached_reference = {mode: n for mode, n in reference.items() if mode != NONE}
    return {"n_episodes": len(labels), "counts": counts, "entropy": entropy(counts),
            "n_modes": len(counts), "tv_to_expert": total_variation(counts, reference),
            "tv_completed": total_variation(reached, reached_reference) if reached else None}


def summarise_task(task: str, store: str | Path, evals: Mapping[str, Sequence[str | Path]], depth: int = 1
                   ) -> dict:
    """{"task", "depth", "expert": summary, "<policy>": summary, ...} from eval JSONs (drifting-eval).

    Each policy's JSONs (e.g. its last 3 checkpoints on the same seeds) have their episodes pooled."""
    if task not in TASKS:
        raise ValueError(f"task={task!r}: expected one of {TASKS}")
    expert = expert_labels(task, store, depth)
    out: dict[str, Any] = {"task": task, "depth": depth, "expert": summarise(expert, expert)}
    for name, paths in evals.items():
        labels: list[str] = []
        for path in paths:
            records = json.loads(Path(path).read_text())["eval"]["info_records"]
            labels += rollout_labels(task, records, depth)
        out[name] = summarise(labels, expert)
    return out


def _names_and_modes(summary: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(expert then the policies, the expert's modes then any other mode the policies reached)."""
    names = [key for key in summary if isinstance(summary[key], dict)]
    modes = list(summary["expert"]["counts"])
    modes += sorted({m for n in names for m in summary[n]["counts"]} - set(modes))
    return names, modes


def plot(summaries: Sequence[Mapping[str, Any]], path: str | Path) -> None:
    """One panel per task: share of episodes per mode, the expert's bars beside each policy's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(summaries), 1, figsize=(10, 3.6 * len(summaries)), squeeze=False)
    for ax, summary in zip(axes[:, 0], summaries, strict=True):
        names, modes = _names_and_modes(summary)
        width = 0.8 / len(names)
        for k, name in enumerate(names):
            s = shares(summary[name]["counts"])
            label = name if name == "expert" else (
                f"{name} (TV {summary[name]['tv_to_expert']:.2f}; over episodes that reached a stage "
                f"{_tv_completed(summary[name])})")
            ax.bar(np.arange(len(modes)) + (k - (len(names) - 1) / 2) * width,
                   [s.get(m, 0.0) for m in modes], width, label=label)
        ax.set_xticks(np.arange(len(modes)), modes, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("share of episodes")
        rollouts = (f"policies: {max(summary[n]['n_episodes'] for n in names[1:])} rollouts" if names[1:]
                    else "no policy rollouts yet")
        ax.set_title(f"{summary['task']}: order modes (expert: {summary['expert']['n_episodes']} demos, "
                     f"{rollouts})", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _tv_completed(policy_summary: Mapping[str, Any]) -> str:
    """tv_completed as text: "-" when no episode reached a stage (or a summary written before it existed)."""
    tv = policy_summary.get("tv_completed")
    return "-" if tv is None else f"{tv:.2f}"


def markdown_table(summary: Mapping[str, Any]) -> str:
    names, modes = _names_and_modes(summary)
    lines = ["| mode | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for mode in modes:
        cells = [f"{summary[n]['counts'].get(mode, 0)}" for n in names]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    lines.append("| entropy (nats) | " + " | ".join(f"{summary[n]['entropy']:.2f}" for n in names) + " |")
    lines.append("| TV to expert | " + " | ".join(f"{summary[n]['tv_to_expert']:.2f}" for n in names) + " |")
    lines.append("| TV, episodes that reached a stage | "
                 + " | ".join(_tv_completed(summary[n]) for n in names) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("summarise", help="mode counts / entropy / TV of eval JSONs against the expert")
    s.add_argument("--task", choices=TASKS, required=True)
    s.add_argument("--store", required=True, help="the expert's zarr store (meta/ holds its modes)")
    s.add_argument("--eval", action="append", default=[], metavar="NAME=EVAL_JSON[,EVAL_JSON...]",
                   help="a policy's eval JSON(s); several, comma-separated, are pooled")
    s.add_argument("--depth", type=int, default=1, help="kitchen: tasks in the order label (1..4)")
    s.add_argument("--out", help="write the summary JSON here")
    f = sub.add_parser("plot", help="bar chart of mode shares from summary JSONs, one panel per task")
    f.add_argument("summaries", nargs="+")
    f.add_argument("--figure", required=True)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.command == "plot":
        plot([json.loads(Path(path).read_text()) for path in args.summaries], args.figure)
        print(f"wrote {args.figure}")
        return
    bad = [item for item in args.eval if "=" not in item]
    if bad:
        raise SystemExit(f"--eval takes NAME=EVAL_JSON[,EVAL_JSON...], got {bad}")
    evals = {name: paths.split(",") for name, paths in (item.split("=", 1) for item in args.eval)}
    missing = [path for paths in evals.values() for path in paths if not Path(path).is_file()]
    if missing:
        raise SystemExit(f"--eval: no such eval JSON {missing}; run drifting-eval ... info_records=[...]")
    summary = summarise_task(args.task, args.store, evals, args.depth)
    print(markdown_table(summary))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
