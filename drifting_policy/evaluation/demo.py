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
LABELS = {"drifting": "Drifting-1", "diffusion": "DDPM-100", "regression": "Regression"}
GIF_TRIES = 5  # sampling seeds tried when replaying a successful test seed for the GIF


@dataclasses.dataclass
class DemoConfig:
    out: str = "runs/demo"                          # run folders <out>/<policy>
    data: str = "data/pusht/demo_lowdim.zarr"       # collected once, reused
    episodes: int = 200                             # scripted expert episodes (env seeds 0 .. episodes-1)
    policies: tuple[str, ...] = ("drifting", "diffusion")
    steps: int = 8000                               # matched training steps
    ddim_steps: tuple[int, ...] = (10,)             # extra DDIM evaluations of the diffusion weights
    n_seeds: int = 50                               # test seeds 100000 .. 100000 + n_seeds - 1
    seed: int = 0                                   # training seed
    # steps of each chunk executed before the next prediction, for every policy alike (Diffusion Policy: 8;
    # 4 scored higher for drifting and diffusion on validation seeds, docs/experiments/pusht.md)
    action_horizon: int = 4
    precision: str = "auto"                         # train.precision: bf16 where the CPU has it natively
    # policy.obs_noise for every training: 0 at this short budget, where the drifting default (0.02, against
    # memorising the demos over 30k steps) lowered validation success (docs/experiments/pusht.md, round 4)
    obs_noise: float = 0.0
    gif: bool = True                                # film one successful Drifting-1 test rollout
    python: str = sys.executable

    def __post_init__(self):
        self.policies = tuple(self.policies)
        self.ddim_steps = tuple(self.ddim_steps)
        unknown = [p for p in self.policies if p not in POLICIES]
        if not self.policies or unknown:
            raise ValueError(f"policies={self.policies}: expected a non-empty subset of {POLICIES}; "
                             f"e.g. policies=[drifting,diffusion]")
        for name in ("episodes", "steps", "n_seeds", "action_horizon"):
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
            "train.progress=false", "train.num_threads=1", f"train.precision={cfg.precision}",
            f"policy.obs_noise={cfg.obs_noise}",
            "train.resume=true"]  # a second demo reuses its finished runs


def eval_commands(cfg: DemoConfig) -> list[tuple[str, list[str]]]:
    """(row label, command) for every evaluation; DDIM rows reuse the diffusion checkpoint."""
    out = []
    for policy in cfg.policies:
        base = [cfg.python, "-m", "drifting_policy.evaluation.eval",
                f"checkpoint={cfg.out}/{policy}/checkpoints/latest",
                f"n_seeds={cfg.n_seeds}", f"n_envs={cfg.n_seeds}", "n_videos=0",
                f"action_horizon={cfg.action_horizon}"]
        label = LABELS[policy]
        if policy == "drifting":  # its per-seed outcomes choose the rollout to film
            base.append(f"output={cfg.out}/eval_drifting.json")
        out.append((label, base))
        if policy == "diffusion":
            out += [(f"DDIM-{k}", [*base, "sampler=ddim", f"num_inference_steps={k}"])
                    for k in cfg.ddim_steps]
    return out


def film_success(cfg: DemoConfig) -> Path | None:
    """Replay a test seed the drifting policy solved, with a camera, until a replay succeeds too (a single
    episode draws different noise than the same seed inside the batch of 50); returns the GIF or None."""
    outcomes = json.loads((Path(cfg.out) / "eval_drifting.json").read_text())["eval"]
    solved = [seed for seed, ok in zip(outcomes["seeds"], outcomes["successes"], strict=True) if ok]
    video_dir = Path(cfg.out) / "gif"
    for attempt, seed in enumerate((solved * GIF_TRIES)[:GIF_TRIES]):
        replay = Path(cfg.out) / "logs" / f"gif_{attempt}.json"
        command = [cfg.python, "-m", "drifting_policy.evaluation.eval",
                   f"checkpoint={cfg.out}/drifting/checkpoints/latest", f"seed_start={seed}", "n_seeds=1",
                   "n_envs=1", "n_videos=1", f"sampling_seed={attempt}",
                   f"action_horizon={cfg.action_horizon}", f"video_dir={video_dir / str(attempt)}",
                   f"output={replay}"]
        run_parallel([command], [Path(cfg.out) / "logs" / f"gif_{attempt}.log"])
        result = json.loads(replay.read_text())["eval"]
        if result["successes"][0] and result["videos"]:  # no videos: this machine cannot render
            return Path(result["videos"][0])
    return None


def contact_strip(gif: Path, out: Path, frames: int = 4) -> Path:
    """Evenly spaced frames of a GIF side by side (first and last included), as one PNG."""
    from PIL import Image

    with Image.open(gif) as movie:
        last = movie.n_frames - 1
        picked = []
        for k in range(frames):
            movie.seek(round(k * last / (frames - 1)))
            picked.append(movie.convert("RGB"))
    width, height = picked[0].size
    strip = Image.new("RGB", (width * frames, height), "white")
    for k, frame in enumerate(picked):
        strip.paste(frame, (k * width, 0))
    strip.save(out)
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
    print(f"\nPush-T state, {cfg.episodes} demos, {cfg.steps} training steps each, {cfg.n_seeds} test seeds, "
          f"{cfg.action_horizon} steps executed per chunk (wall: collect {clock['collect']:.0f} s, "
          f"train {clock['train']:.0f} s, eval {clock['eval']:.0f} s)")
    print(table(rows))
    if cfg.gif and "drifting" in cfg.policies:
        gif = film_success(cfg)
        if gif:
            strip = contact_strip(gif, Path(cfg.out) / "success_strip.png")
            print(f"[demo] a successful Drifting-1 rollout: {gif} (4 frames: {strip})")
        else:
            print("[demo] no Drifting-1 test rollout succeeded (or none replayed successfully): no GIF")
    return rows


def parse_args(argv: list[str] | None = None) -> DemoConfig:
    """`key=value` settings over DemoConfig's defaults, e.g. `steps=300 policies=[drifting,diffusion]`."""
    return parse_key_values(DemoConfig, sys.argv[1:] if argv is None else argv)


@report_user_errors
def main(argv: list[str] | None = None) -> None:
    run_demo(parse_args(argv))


if __name__ == "__main__":
    main()
