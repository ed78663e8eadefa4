"""Figures of the toy experiments (matplotlib, Agg backend, written as PNG files)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (headless: never open a window)
import matplotlib.pyplot as plt  # noqa: E402
from torch import Tensor  # noqa: E402


def plot_evolution(rows: Sequence[tuple[str, Tensor, dict[int, Tensor]]], path: Path, limits: float) -> None:
    """One row per case: data (grey) and generated samples (blue) at each snapshot step.

    rows: (case name, data [n, 2], {step: generated [m, 2]}); all rows must share the snapshot steps.
    """
    steps = sorted(rows[0][2])
    size = (2.2 * len(steps), 2.2 * len(rows))
    fig, axes = plt.subplots(len(rows), len(steps), figsize=size, squeeze=False)
    for row, (name, data, snapshots) in enumerate(rows):
        for col, step in enumerate(sorted(snapshots)):
            ax = axes[row][col]
            ax.scatter(data[:, 0], data[:, 1], s=1, c="0.7", alpha=0.5, linewidths=0)
            gen = snapshots[step]
            ax.scatter(gen[:, 0], gen[:, 1], s=1, c="tab:blue", alpha=0.6, linewidths=0)
            ax.set_xlim(-limits, limits)
            ax.set_ylim(-limits, limits)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal")
            if row == 0:
                ax.set_title(f"step {step}", fontsize=8)
            if col == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(histories: dict[str, list[dict[str, float]]], path: Path) -> None:
    """Loss and raw drift RMS (per temperature slot, before normalisation) against step, one line per case."""
    fig, (ax_loss, ax_drift) = plt.subplots(1, 2, figsize=(9, 3.2))
    styles = ("-", "--", ":", "-.")
    for index, (name, history) in enumerate(histories.items()):
        color = f"C{index}"
        steps = [h["train/step"] for h in history]
        ax_loss.plot(steps, [h["train/loss"] for h in history], color=color, label=name)
        slots = sorted(k for k in history[0] if k.startswith("train/drift_rms_"))
        for slot_index, slot in enumerate(slots):
            ax_drift.plot(steps, [h[slot] for h in history], color=color, linestyle=styles[slot_index % 4],
                          label=f"{name} tau[{slot.rsplit('_', 1)[-1]}]")
    ax_loss.set_title("drift loss (normalised units)", fontsize=9)
    ax_drift.set_title("raw drift RMS per temperature slot", fontsize=9)
    for ax in (ax_loss, ax_drift):
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_collapse_map(rows: Sequence[dict], path: Path) -> None:
    """Heat map of the minority-mode mass: mode separation (columns) x field setting (rows)."""
    separations = sorted({r["separation"] for r in rows})
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    grid = [[0.0] * len(separations) for _ in settings]
    for r in rows:
        grid[settings.index(r["setting"])][separations.index(r["separation"])] = r["minority_mass"]
    fig, ax = plt.subplots(figsize=(1.3 * len(separations) + 3.5, 0.42 * len(settings) + 1.2))
    image = ax.imshow(grid, vmin=0.0, vmax=0.5, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(separations)), [f"+-{s:g}" for s in separations], fontsize=8)
    ax.set_yticks(range(len(settings)), settings, fontsize=7)
    ax.set_xlabel("mode centres (mode std 0.3)")
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if value < 0.25 else "black")
    fig.colorbar(image, ax=ax, label="minority-mode mass (ideal 0.5)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
