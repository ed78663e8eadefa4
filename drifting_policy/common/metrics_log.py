"""metrics.jsonl: one JSON row per logged step (flat floats), mirrored to wandb when enabled."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from drifting_policy.common.faults import failpoint


class MetricsLogger:
    """Appends flat float dicts (with their step) to metrics.jsonl; mirrors them to wandb when enabled."""

    def __init__(self, path: Path, wandb_options: dict[str, Any] | None = None, config: dict | None = None):
        self.path = path
        self.run = None
        options = dict(wandb_options or {})
        if options.get("mode", "disabled") != "disabled":
            try:
                import wandb

                options.setdefault("name", path.parent.name)
                options.setdefault("settings", wandb.Settings(init_timeout=60))  # bounded wait offline
                self.run = wandb.init(config=config, dir=str(path.parent), **options)
            except Exception as error:  # wandb must never stop a run (no network, no login, ...)
                warnings.warn(f"wandb disabled: {error}", stacklevel=2)

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after `step` (a resumed run logs them again), and a torn last row: a process
        killed while appending leaves half a line, which belongs to the steps being redone anyway."""
        if not self.path.exists():
            return
        lines = [line for line in self.path.read_text().splitlines() if line.strip()]
        kept = []
        for number, line in enumerate(lines, start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                if number == len(lines):
                    break  # the torn last row of a killed run
                raise ValueError(f"{self.path}: line {number} is not JSON ({error}); only the last line "
                                 "can be torn by a crash, so the file was edited: fix or remove that line"
                                 ) from None
            if row.get("step", 0) <= step:
                kept.append(line)
        self.path.write_text("".join(line + "\n" for line in kept))

    def log(self, metrics: dict[str, float], step: int) -> None:
        row = {"step": step, **{key: float(value) for key, value in metrics.items()}}
        line = json.dumps(row) + "\n"
        half = len(line) // 2
        with self.path.open("a") as handle:
            handle.write(line[:half])
            handle.flush()
            failpoint("metrics_append")  # crash tests: killed here, half a row is on disk
            handle.write(line[half:])
        if self.run is not None:
            self.run.log(metrics, step=step)

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
