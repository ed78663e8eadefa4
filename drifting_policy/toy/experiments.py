"""The paper's 2-D experiments (Figs. 3-4, Tables 1 and 11) and the collapsed-start map: ``drifting-toy``.

A small MLP generator (noise 32 -> 3 x 256 SiLU -> 2, as in the official notebook) is trained with
:func:`drifting_policy.drift.drift_loss` on one unconditional kernel problem per step: gen [1, G, 2] against
pos [1, P, 2] fresh data samples.

Initial distributions: the generator is ``skip(noise) + mlp(noise)`` where ``skip`` is a trainable linear
map initialised to ``init_offset + init_std * noise[:2]`` and the MLP's output layer starts at zero, so at
step 0 the generated distribution is exactly N(init_offset, init_std^2 I): "between the modes", "far away"
and "collapsed onto one mode" are just offsets and a small std.

Temperature schedule: the kernel temperatures at step t are ``temperatures * f(t)`` with
f(t) = start_factor ** (1 - t / (anneal_fraction * steps)) for t < anneal_fraction * steps, then 1:
a geometric anneal from wide kernels (which see the far mode) to the configured set (which is sharp).
``start_factor=1`` is the plain fixed set. The default x10 anneal is what lets the between-modes and
far-away starts escape the official affinity floor's pull to the data mean (docs/experiments/toy.md).

Usage: ``drifting-toy [experiment=summary|fig3|fig4|ablations|collapse_map|all] [seeds=[1,2,3]]
[overrides.steps=500] [out_dir=runs/x]``; ``run_experiment`` and ``train_toy`` work without hydra.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from drifting_policy.common.entry import check_overrides, report_user_errors
from drifting_policy.drift import DEFAULT_TEMPERATURES, drift_loss_with_metrics
from drifting_policy.toy.data import TargetSpec, energy_distance, mode_masses, sample_target

# Held-out evaluation data and evaluation noise come from these seed offsets, never from training streams.
EVAL_SEED_OFFSET = 10_000
FLOOR_SEED_OFFSET = 20_000
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class ToyConfig:
    """One toy training run.

    target:           the data distribution
    init_offset/std:  the generator starts as exactly N(init_offset, init_std^2 I) (see module docstring)
    num_gen, num_pos: G generated samples and P data samples per step (one kernel problem)
    temperatures:     the field's temperature set (relative to the mean distance when ``normalize``)
    temperature_start_factor, temperature_anneal_fraction: the schedule (module docstring); 1.0 = fixed
    normalize, kernel_norm, attraction, repulsion: passed to the field (Tables 1 and 11 ablate them)
    """

    target: TargetSpec = field(default_factory=TargetSpec)
    init_offset: tuple[float, float] = (0.0, 0.0)
    init_std: float = 1.0
    steps: int = 1000
    num_gen: int = 128
    num_pos: int = 128
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    noise_dim: int = 32
    hidden: int = 256
    depth: int = 3
    temperatures: tuple[float, ...] = DEFAULT_TEMPERATURES
    temperature_start_factor: float = 10.0
    temperature_anneal_fraction: float = 0.5
    normalize: bool = True
    kernel_norm: str = "both"
    attraction: float = 1.0
    repulsion: float = 1.0
    seed: int = 1
    log_every: int = 25
    eval_samples: int = 2000

    def __post_init__(self):
        for name in ("steps", "lr", "noise_dim", "hidden", "depth", "num_pos", "log_every", "eval_samples",
                     "temperature_start_factor"):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"ToyConfig.{name}={value}; expected > 0")
        if self.num_gen < 2:
            raise ValueError(f"ToyConfig.num_gen={self.num_gen}; the field needs G >= 2 "
                             "(generated samples are the self-masked negatives)")
        if self.noise_dim < 2:
            raise ValueError(f"ToyConfig.noise_dim={self.noise_dim}; expected >= 2 "
                             "(the skip map reads 2 noise dims)")
        if not 0.0 < self.temperature_anneal_fraction <= 1.0:
            raise ValueError(f"ToyConfig.temperature_anneal_fraction={self.temperature_anneal_fraction}; "
                             "expected in (0, 1]")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"ToyConfig.lr_schedule={self.lr_schedule!r}; expected one of {LR_SCHEDULES}")
        if len(self.init_offset) != 2:
            raise ValueError(f"ToyConfig.init_offset={self.init_offset}; expected two numbers (x, y)")

    def temperatures_at(self, step: int) -> tuple[float, ...]:
        """The temperature set used at ``step`` (the schedule of the module docstring)."""
        progress = min(step / (self.temperature_anneal_fraction * self.steps), 1.0)
        factor = self.temperature_start_factor ** (1.0 - progress)
        return tuple(tau * factor for tau in self.temperatures)


class ToyGenerator(nn.Module):
    """noise [n, noise_dim] -> samples [n, 2]; starts as exactly N(init_offset, init_std^2 I)."""

    def __init__(self, noise_dim: int = 32, hidden: int = 256, depth: int = 3,
                 init_offset: Sequence[float] = (0.0, 0.0), init_std: float = 1.0):
        super().__init__()
        layers: list[nn.Module] = []
        width = noise_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.mlp = nn.Sequential(*layers, nn.Linear(width, 2))
        self.skip = nn.Linear(noise_dim, 2)
        self._init_weights(init_offset, init_std)

    def _init_weights(self, init_offset: Sequence[float], init_std: float) -> None:
        # Zero output layer: the MLP adds nothing at step 0, so the initial q is the skip map's Gaussian.
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        with torch.no_grad():
            self.skip.weight.zero_()
            self.skip.weight[0, 0] = init_std
            self.skip.weight[1, 1] = init_std
            self.skip.bias.copy_(torch.as_tensor(init_offset, dtype=torch.float32))

    def forward(self, noise: Tensor) -> Tensor:
        return self.skip(noise) + self.mlp(noise)  # [n, 2]


@dataclass
class ToyRun:
    """A finished run: the model, logged metrics, snapshots {step: [n, 2]} and final scores."""

    config: ToyConfig
    model: ToyGenerator
    history: list[dict[str, float]]
    snapshots: dict[int, Tensor]
    scores: dict[str, float]


def train_toy(config: ToyConfig, snapshot_steps: Sequence[int] = (), snapshot_samples: int = 1000) -> ToyRun:
    """Train one generator with the drift loss; same config (seed included) -> same numbers."""
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)  # only nn.Linear's default init reads the global generator
    model = ToyGenerator(config.noise_dim, config.hidden, config.depth, config.init_offset, config.init_std)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    # Cosine decay to 0: with drift normalisation the target never stops moving, so a decaying step size
    # is what averages out the field's sampling noise at the end.
    lr_scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.steps)
                    if config.lr_schedule == "cosine" else None)
    snapshot_noise = torch.randn(snapshot_samples, config.noise_dim,
                                 generator=torch.Generator().manual_seed(config.seed + EVAL_SEED_OFFSET))
    history: list[dict[str, float]] = []
    snapshots: dict[int, Tensor] = {}
    start = time.process_time()  # CPU time of this process: comparable across a shared, loaded machine
    for step in range(config.steps + 1):
        if step in snapshot_steps:
            with torch.no_grad():
                snapshots[step] = model(snapshot_noise)
        if step == config.steps:
            break
        temperatures = config.temperatures_at(step)
        noise = torch.randn(config.num_gen, config.noise_dim, generator=generator)
        positives = sample_target(config.target, config.num_pos, generator)
        loss, metrics = drift_loss_with_metrics(
            model(noise)[None], positives[None], temperatures=temperatures, normalize=config.normalize,
            kernel_norm=config.kernel_norm, attraction=config.attraction, repulsion=config.repulsion,
            check_finite=False)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if lr_scheduler is not None:
            lr_scheduler.step()
        if step % config.log_every == 0 or step == config.steps - 1:
            history.append(_flat_metrics(step, loss, metrics, temperatures[0] / config.temperatures[0]))
    scores = evaluate(model, config)
    scores["cpu_seconds"] = time.process_time() - start
    return ToyRun(config, model, history, snapshots, scores)


def _flat_metrics(step: int, loss: Tensor, metrics: dict[str, Tensor], factor: float) -> dict[str, float]:
    # Temperatures move under the schedule, so drift norms are logged per slot of the set, not per value.
    flat = {"train/step": float(step), "train/loss": float(loss.detach()), "train/temperature_factor": factor}
    flat.update({f"train/{key}": float(value) for key, value in metrics.items() if "drift_rms" not in key})
    rms = [float(value) for key, value in metrics.items() if key.startswith("drift_rms/")]
    flat.update({f"train/drift_rms_{slot}": value for slot, value in enumerate(rms)})
    return flat


def evaluate(model: ToyGenerator, config: ToyConfig) -> dict[str, float]:
    """Energy distance of generated samples to held-out data, the data-vs-data floor, and mode masses."""
    eval_generator = torch.Generator().manual_seed(config.seed + EVAL_SEED_OFFSET)
    with torch.no_grad():
        generated = model(torch.randn(config.eval_samples, config.noise_dim, generator=eval_generator))
    held_out = sample_target(config.target, config.eval_samples, eval_generator)
    scores = {"energy_distance": float(energy_distance(generated, held_out)),
              "energy_floor": data_floor(config.target, config.eval_samples, config.seed)}
    if config.target.name in ("bimodal", "gaussian"):
        masses = mode_masses(generated, config.target)
        scores.update({f"mode_mass_{i}": float(m) for i, m in enumerate(masses)})
        scores["minority_mass"] = float(masses.min())
    return scores


def data_floor(target: TargetSpec, num_samples: int, seed: int) -> float:
    """Energy distance between two independent held-out data sets of ``num_samples`` each."""
    floor_generator = torch.Generator().manual_seed(seed + FLOOR_SEED_OFFSET)
    first = sample_target(target, num_samples, floor_generator)
    return float(energy_distance(first, sample_target(target, num_samples, floor_generator)))


def covers_both_modes(scores: dict[str, float], min_mass: float = 0.3) -> bool:
    """Bimodal verdict: each mode holds at least ``min_mass`` of the samples (within 3 mode std)."""
    return scores.get("minority_mass", 0.0) >= min_mass


def save_run(run: ToyRun, folder: Path) -> None:
    """config.yaml, metrics.jsonl (train/ history, then one eval/ line) and the final weights."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(asdict(run.config))))
    with (folder / "metrics.jsonl").open("w") as handle:
        for line in run.history:
            handle.write(json.dumps(line) + "\n")
        handle.write(json.dumps({f"eval/{k}": v for k, v in run.scores.items()}) + "\n")
    torch.save(run.model.state_dict(), folder / "generator.pt")


def snapshot_schedule(steps: int, fractions: Sequence[float] = (0.0, 0.05, 0.15, 0.4, 1.0)) -> list[int]:
    """Steps at which to snapshot the generated distribution."""
    return sorted({int(round(f * steps)) for f in fractions})


# ---------------------------------------------------------------------------------------------- experiments
# Fig. 3 starts: (init_offset, init_std) against modes at (+-3, 0) with std 0.3.
FIG3_STARTS = {"between": ((0.0, 0.0), 0.3), "far": ((0.0, 8.0), 0.3), "collapsed": ((3.0, 0.0), 0.3)}
FIG4_TARGETS = ("swiss_roll", "checkerboard")
# Table 1: (attraction, repulsion) multipliers of V+ and V-.
ANTI_SYMMETRY = {"V+ - V-": (1.0, 1.0), "1.5 V+ - V-": (1.5, 1.0), "V+ - 1.5 V-": (1.0, 1.5),
                 "V+ only": (1.0, 0.0)}
KERNEL_NORM_LABELS = {"both": "softmax over x and y", "rows": "softmax over y only",
                      "none": "no normalisation"}
COLLAPSE_SEPARATIONS = (1.0, 2.0, 3.0, 5.0)


def _fixed(normalize: bool, temperatures: tuple[float, ...]) -> dict:
    return dict(normalize=normalize, temperatures=temperatures, temperature_start_factor=1.0)


# Collapsed-start map: field settings (normalised temperatures are relative to the mean distance, raw ones
# are in data units).
COLLAPSE_SETTINGS = {
    "norm (0.02,0.05,0.2)": _fixed(True, DEFAULT_TEMPERATURES),
    "norm (0.2)": _fixed(True, (0.2,)),
    "norm (0.5)": _fixed(True, (0.5,)),
    "raw (0.05)": _fixed(False, (0.05,)),
    "raw (0.2)": _fixed(False, (0.2,)),
    "raw (0.5)": _fixed(False, (0.5,)),
    "raw (1.0)": _fixed(False, (1.0,)),
    "norm (0.02,0.05,0.2) x3 anneal": dict(normalize=True, temperature_start_factor=3.0),
    "norm (0.02,0.05,0.2) x10 anneal": dict(normalize=True, temperature_start_factor=10.0),
}
EXPERIMENTS = ("summary", "fig3", "fig4", "ablations", "collapse_map", "all")


def _train_cases(cases: dict[str, ToyConfig], folder: Path, seeds: Sequence[int], figure: str | None,
                 limits: float = 4.0) -> dict[tuple[str, int], ToyRun]:
    """Train every case for every seed, save each run; plot evolution and curves of the first seed."""
    from tqdm import tqdm

    runs: dict[tuple[str, int], ToyRun] = {}
    jobs = [(name, seed) for seed in seeds for name in cases]
    for name, seed in tqdm(jobs, desc=folder.name, leave=False):
        config = replace(cases[name], seed=seed)
        run = train_toy(config, snapshot_schedule(config.steps) if figure and seed == seeds[0] else ())
        save_run(run, folder / f"{_slug(name)}_seed{seed}")
        runs[name, seed] = run
    if figure:
        from drifting_policy.toy.plots import plot_curves, plot_evolution

        data_generator = torch.Generator().manual_seed(seeds[0] + EVAL_SEED_OFFSET)
        rows = [(name, sample_target(cases[name].target, 2000, data_generator),
                 runs[name, seeds[0]].snapshots) for name in cases]
        plot_evolution(rows, folder / f"{figure}_evolution.png", limits)
        plot_curves({name: runs[name, seeds[0]].history for name in cases}, folder / f"{figure}_curves.png")
    return runs


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def _mean_row(runs: dict[tuple[str, int], ToyRun], name: str, seeds: Sequence[int]) -> dict[str, float]:
    keys = runs[name, seeds[0]].scores.keys()
    return {k: sum(runs[name, s].scores[k] for s in seeds) / len(seeds) for k in keys}


def fig3_cases(base: ToyConfig) -> dict[str, ToyConfig]:
    """Each Fig. 3 start, with ``base``'s temperature schedule and with the fixed set (no anneal)."""
    target = TargetSpec("bimodal", separation=3.0, mode_std=0.3)
    cases = {}
    for name, (offset, std) in FIG3_STARTS.items():
        start = replace(base, target=target, init_offset=offset, init_std=std)
        cases[f"{name}, x{base.temperature_start_factor:g} anneal"] = start
        cases[f"{name}, fixed"] = replace(start, temperature_start_factor=1.0)
    return cases


def run_fig3(out: Path, base: ToyConfig, seeds: Sequence[int]) -> list[dict]:
    runs = _train_cases(fig3_cases(base), out / "fig3", seeds, figure="toy_fig3", limits=9.0)
    return [{"case": name, "seed": seed, **run.scores, "covers both": covers_both_modes(run.scores)}
            for (name, seed), run in runs.items()]


def run_fig4(out: Path, base: ToyConfig, seeds: Sequence[int]) -> list[dict]:
    cases = {name: replace(base, target=TargetSpec(name)) for name in FIG4_TARGETS}
    runs = _train_cases(cases, out / "fig4", seeds, figure="toy_fig4", limits=3.5)
    return [{"case": name, "seeds": len(seeds), **_mean_row(runs, name, seeds)} for name in cases]


def run_ablations(out: Path, base: ToyConfig, seeds: Sequence[int]) -> list[dict]:
    """Table 1 (anti-symmetry) and Table 11 (kernel normalisation) on the Fig. 4 targets, mean over seeds."""
    rows = []
    for target in FIG4_TARGETS:
        spec = TargetSpec(target)
        table1 = {label: replace(base, target=spec, attraction=a, repulsion=r)
                  for label, (a, r) in ANTI_SYMMETRY.items()}
        table11 = {label: replace(base, target=spec, kernel_norm=norm)
                   for norm, label in KERNEL_NORM_LABELS.items()}
        for table, cases in (("Table 1", table1), ("Table 11", table11)):
            runs = _train_cases(cases, out / "ablations" / f"{_slug(table)}_{target}", seeds, figure=None)
            rows += [{"table": table, "target": target, "variant": name, "seeds": len(seeds),
                      **_mean_row(runs, name, seeds)} for name in cases]
    return rows


def run_collapse_map(out: Path, base: ToyConfig, seeds: Sequence[int]) -> list[dict]:
    """Start collapsed on the +separation mode; does the generator find the other one?"""
    from drifting_policy.toy.plots import plot_collapse_map

    rows = []
    for separation in COLLAPSE_SEPARATIONS:
        target = TargetSpec("bimodal", separation=separation, mode_std=0.3)
        start = replace(base, target=target, init_offset=(separation, 0.0), init_std=0.3)
        cases = {label: replace(start, **options) for label, options in COLLAPSE_SETTINGS.items()}
        runs = _train_cases(cases, out / "collapse_map" / f"sep{separation:g}", seeds, figure=None)
        for name in cases:
            escaped = sum(covers_both_modes(runs[name, seed].scores) for seed in seeds)
            rows.append({"separation": separation, "setting": name, "seeds": len(seeds),
                         "escaped": f"{escaped}/{len(seeds)}", **_mean_row(runs, name, seeds)})
    plot_collapse_map(rows, out / "collapse_map" / "toy_collapse_map.png")
    return rows


def format_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """Markdown table of the given columns (floats to 4 significant digits, booleans as yes/no)."""
    def cell(value) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


TABLE_COLUMNS = {
    "fig3": ("case", "seed", "energy_distance", "energy_floor", "minority_mass", "covers both",
             "cpu_seconds"),
    "fig4": ("case", "seeds", "energy_distance", "energy_floor", "cpu_seconds"),
    "ablations": ("table", "target", "variant", "seeds", "energy_distance", "energy_floor", "cpu_seconds"),
    "collapse_map": ("separation", "setting", "seeds", "escaped", "minority_mass", "energy_distance",
                     "energy_floor", "cpu_seconds"),
}
# Per-experiment defaults under the user's overrides: the Fig. 4 shapes need more samples and steps.
PART_DEFAULTS = {"fig4": {"steps": 2000, "num_gen": 256, "num_pos": 256}}
RUNNERS = {"fig3": run_fig3, "fig4": run_fig4, "ablations": run_ablations, "collapse_map": run_collapse_map}


def run_experiment(name: str, out: Path, overrides: Mapping[str, object] | None = None,
                   seeds: Sequence[int] = (1,)) -> str:
    """Run one experiment ('summary' = fig3, 'all' = every part); writes ``<out>/<part>.md`` tables.

    overrides: ToyConfig fields applied to every case (over ``PART_DEFAULTS``). Returns the printed text.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment={name!r}; expected one of {EXPERIMENTS}")
    if not seeds:
        raise ValueError("seeds is empty; pass at least one training seed, e.g. seeds=[1]")
    parts = {"summary": ["fig3"], "all": list(RUNNERS)}.get(name, [name])
    out.mkdir(parents=True, exist_ok=True)
    texts = []
    for part in parts:
        base = ToyConfig(**{**PART_DEFAULTS.get(part, {}), **(overrides or {})})
        table = format_table(RUNNERS[part](out, base, seeds), TABLE_COLUMNS[part])
        (out / f"{part}.md").write_text(table + "\n")
        texts.append(f"## {part}\n\n{table}\n\nruns, tables and figures: {out / part}/ and {out / part}.md")
    return "\n\n".join(texts)


@hydra.main(config_path="../../configs/toy", config_name="toy", version_base=None)
@report_user_errors
def _main(cfg: DictConfig) -> None:
    """Console script ``drifting-toy``: ``drifting-toy experiment=ablations seeds=[1,2,3]``."""
    torch.set_num_threads(int(cfg.threads))
    overrides = {k: v for k, v in OmegaConf.to_container(cfg.overrides).items() if v is not None}
    print(run_experiment(str(cfg.experiment), Path(cfg.out_dir), overrides, tuple(int(s) for s in cfg.seeds)))


def main() -> None:
    report_user_errors(check_overrides)("configs.toy", "toy")
    _main()
