"""`drifting-demo`: the end-to-end Push-T state pipeline in one command (`make demo`).

    drifting-demo                                        collect -> train both policies -> evaluate -> table
    drifting-demo steps=300 episodes=20 n_seeds=10       a smoke run of the same pipeline (minutes)

Stages, each through the public entry points (so the demo exercises exactly what users run):
1. `drifting-collect task=pusht render_images=false` -> a low-dim store (skipped when it already exists);
2. `drifting-train task=pusht_state policy=<p>` for every policy, concurrently (one torch thread each), at a
   matched number of training steps, no periodic evaluation;
3. `drifting-eval` of each final checkpoint on the test seeds (DDIM too, from the diffusion weights);
4. a Markdown table: mean score (max coverage) with its 95% interval, success rate, NFE, ms per chunk,
   training steps and minutes.
`run_demo(DemoConfig(...))` does the same from Python and returns the table's rows.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from drifting_policy.common.entry import parse_key_values, report_user_errors

POLICIES = ("drifting", "diffusion", "regression")


@dataclasses.dataclass
class DemoConfig:
    out: str = "runs/demo"                          # run folders <out>/<policy>
    data: str = "data/pusht/demo_lowdim.zarr"       # collected once, reused
    episodes: int = 100                             # scripted expert episodes (env seeds 0 .. episodes-1)
    policies: tuple[str, ...] = ("drifting", "diffusion")
    steps: int = 4000                               # matched training steps (~0.085 s CPU per step)
    ddim_steps: tuple[int, ...] = (10,)             # extra DDIM evaluations of the diffusion weights
    n_seeds: int = 50                               # test seeds 100000 .. 100000 + n_seeds - 1
    seed: int = 0                                   # training seed
    python: str = sys.executable

    def __post_init__(self):
        self.policies = tuple(self.policies)
        self.ddim_steps = tuple(self.ddim_steps)
        unknown = [p for p in self.policies if p not in POLICIES]
        if not self.policies or unknown:
            raise ValueError(f"policies={self.policies}: expected a non-empty subset of {POLICIES}; "
                             f"e.g. policies=[drifting,diffusion]")
        for name in ("episodes", "steps", "n_seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected >= 1; fix the {name}= setting")
        if any(k < 1 for k in self.ddim_steps):
            raise ValueError(f"ddim_steps={self.ddim_steps}: expected positive step counts; "
                             f"e.g. ddim_steps=[10,16]")


def collect_command(cfg: DemoConfig) -> list[str]:
    return [cfg.python, "-m", "drifting_policy.collect.cli", "task=pusht", f"episodes={cfg.episodes}",
            "seed=0", f"out={cfg.data}", "render_images=false", "overwrite=true", "progress=false"]


def train_command(cfg: DemoConfig, policy: str) -> list[str]:
    """Train one policy for cfg.steps steps: one checkpoint at the end, no evaluation inside training."""
    return [cfg.python, "-m", "drifting_policy.training.train", "task=pusht_state", f"policy={policy}",
            f"task.dataset.zarr_path={cfg.data}", f"seed={cfg.seed}", f"run_dir={cfg.out}/{policy}",
            f"train.max_steps={cfg.steps}", "train.eval_at_end=false", f"train.eval_every={10 * cfg.steps}",
            f"train.val_every={cfg.steps}", f"train.checkpoint_every={cfg.steps}", "train.save_every=null",
            "train.progress=false", "train.resume=true"]  # a second demo reuses its finished runs


def eval_commands(cfg: DemoConfig) -> list[tuple[str, list[str]]]:
    """(row label, command) for every evaluation; DDIM rows reuse the diffusion checkpoint."""
    out = []
    for policy in cfg.policies:
        base = [cfg.python, "-m", "drifting_policy.evaluation.eval",
                f"checkpoint={cfg.out}/{policy}/checkpoints/latest",
                f"n_seeds={cfg.n_seeds}", f"n_envs={cfg.n_seeds}", "n_videos=1"]
        label = {"drifting": "Drifting-1", "diffusion": "DDPM-100", "regression": "Regression"}[policy]
        out.append((label, base))
        if policy == "diffusion":
            out += [(f"DDIM-{k}", [*base, "sampler=ddim", f"num_inference_steps={k}"])
                    for k in cfg.ddim_steps]
    return out


def run_parallel(commands: list[list[str]], logs: list[Path]) -> list[str]:
    """Run the commands concurrently; returns each one's stdout; raises naming the log of a failure."""
    procs = []
    for command, log in zip(commands, logs, strict=True):
        log.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
        procs.append((proc, log))
    outputs = []
    for proc, log in procs:
        stdout, _ = proc.communicate()
        if proc.returncode:
            said = [line for line in log.read_text().splitlines() if line.strip()][-1:] or ["(no output)"]
            raise RuntimeError(f"{' '.join(map(str, proc.args[2:4]))} exited with {proc.returncode}: "
                               f"{said[0]} (full log: {log})")
        outputs.append(stdout)
    return outputs


def last_json(stdout: str) -> dict[str, Any]:
    """The JSON object every entry point prints as its last line."""
    lines = [line for line in stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        raise ValueError(f"expected a JSON summary as the last line of the output; got {stdout[-300:]!r}")
    return json.loads(lines[-1])


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the evaluation rows (keys as produced by run_demo)."""
    lines = ["| method | NFE | mean score [95% CI] | success [95% CI] | ms/chunk (batch) | steps "
             "| train min |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['nfe']} | "
                     f"{r['score']:.3f} [{r['score_lo']:.3f}, {r['score_hi']:.3f}] | "
                     f"{r['success']:.2f} [{r['success_lo']:.2f}, {r['success_hi']:.2f}] | {r['ms']:.2f} | "
                     f"{r['steps']} | {r['minutes']:.1f} |")
    return "\n".join(lines)


def row(label: str, summary: dict[str, Any]) -> dict[str, Any]:
    return {"method": label, "nfe": summary["nfe"], "score": summary["eval/mean_score"],
            "score_lo": summary["eval/mean_score_ci_low"], "score_hi": summary["eval/mean_score_ci_high"],
            "success": summary["eval/success_rate"], "success_lo": summary["eval/success_rate_ci_low"],
            "success_hi": summary["eval/success_rate_ci_high"], "ms": summary["eval/policy_ms_per_chunk"],
            "steps": summary["step"], "minutes": summary["train_minutes"]}


def run_demo(cfg: DemoConfig) -> list[dict[str, Any]]:
    out = Path(cfg.out)
    clock = {}
    start = time.perf_counter()
    if not Path(cfg.data).exists():
        print(f"[demo] collecting {cfg.episodes} expert episodes -> {cfg.data}", flush=True)
        run_parallel([collect_command(cfg)], [out / "logs" / "collect.log"])
    clock["collect"] = time.perf_counter() - start
    print(f"[demo] training {', '.join(cfg.policies)} for {cfg.steps} steps each (concurrently)", flush=True)
    run_parallel([train_command(cfg, p) for p in cfg.policies],
                 [out / "logs" / f"train_{p}.log" for p in cfg.policies])
    clock["train"] = time.perf_counter() - start - clock["collect"]
    evals = eval_commands(cfg)
    print(f"[demo] evaluating {len(evals)} policies on {cfg.n_seeds} test seeds", flush=True)
    stdouts = run_parallel([c for _, c in evals], [out / "logs" / f"eval_{label}.log" for label, _ in evals])
    clock["eval"] = time.perf_counter() - start - clock["collect"] - clock["train"]
    rows = [row(label, last_json(s)) for (label, _), s in zip(evals, stdouts, strict=True)]
    (out / "demo_summary.json").write_text(json.dumps({"rows": rows, "wall_seconds": clock,
                                                       "config": dataclasses.asdict(cfg)}, indent=1))
    print(f"\nPush-T state, {cfg.episodes} demos, {cfg.steps} training steps each, {cfg.n_seeds} test seeds "
          f"(wall: collect {clock['collect']:.0f} s, train {clock['train']:.0f} s, "
          f"eval {clock['eval']:.0f} s)")
    print(table(rows))
    return rows


def parse_args(argv: list[str] | None = None) -> DemoConfig:
    """`key=value` settings over DemoConfig's defaults, e.g. `steps=300 policies=[drifting,diffusion]`."""
    return parse_key_values(DemoConfig, sys.argv[1:] if argv is None else argv)


@report_user_errors
def main(argv: list[str] | None = None) -> None:
    run_demo(parse_args(argv))


if __name__ == "__main__":
    main()
