"""Multimodality, measured: how many distinct action modes a policy samples from one observation, and how
well their weights and centres match the scripted expert's own stochastic choices (issue 8).

Metric. S sampled chunks [S, T, A] (raw pixels) from one observation are compared on a window of steps
(by default the executed part). The distance between two chunks is the mean over steps of the Euclidean
distance between their actions (pixels). Chunks are clustered by DBSCAN on that distance: a chunk with at
least `min_samples` chunks (itself included) within `eps_px` is a core; cores within `eps_px` of each other
share a cluster (connected components); a non-core chunk joins the cluster of its nearest core within
`eps_px`, else it is noise. A cluster is a *mode* when it holds at least `min_weight` of the S samples;
lighter clusters and noise are reported as `unassigned`. DBSCAN chains along a continuous spread, so a
wide but connected cloud stays one mode and only an empty gap wider than `eps_px` splits two; identical
samples (a regression policy) are one mode.

Comparison with the expert. Each policy sample is assigned to the nearest expert mode centre if it lies
within `match_px` of it and at most `match_ratio` times as far from it as from the next expert centre,
else it is *off-mode* (e.g. the average of two modes, equally far from both). `tv` is the total
variation distance between the expert's mode weights (renormalised over its modes) and the policy's
assigned weights, with off-mode mass counted in full; `centre_px[k]` is the distance between expert
centre k and the mean of the policy samples assigned to it (nan if none); `between` the fraction of
samples projecting onto the middle half of the segment between the two heaviest expert centres.

Usage: `drifting-modes --checkpoint drifting=runs/a/checkpoints/latest --checkpoint regression=...`
(or `python -m drifting_policy.evaluation.multimodality ...`); everything is a plain function as well.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.sparse.csgraph import connected_components

NOISE = -1  # label of chunks in no mode


@dataclass
class ModeConfig:
    """eps_px: DBSCAN radius (mean per-step distance, pixels); min_samples_frac: a core needs
    max(2, ceil(frac * S)) chunks within eps_px; min_weight: lightest cluster counted as a mode;
    match_px: radius around an expert centre within which a policy sample counts as that mode;
    match_ratio: and only if it is at most match_ratio times as far from that centre as from any other
    expert centre (so a chunk midway between two close modes is off-mode, whatever match_px)."""

    eps_px: float = 20.0
    min_samples_frac: float = 0.05
    min_weight: float = 0.1
    match_px: float = 40.0
    match_ratio: float = 0.5

    def __post_init__(self):
        for name in ("eps_px", "match_px"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ModeConfig.{name}={getattr(self, name)}; expected > 0 pixels")
        if not 0 < self.match_ratio <= 1:
            raise ValueError(f"ModeConfig.match_ratio={self.match_ratio}; expected in (0, 1]")
        for name in ("min_samples_frac", "min_weight"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"ModeConfig.{name}={getattr(self, name)}; expected a fraction in [0, 1)")

    def min_samples(self, n: int) -> int:
        return max(2, int(np.ceil(self.min_samples_frac * n)))


@dataclass
class Modes:
    weights: np.ndarray  # [K] fraction of all samples in each mode, descending
    centres: np.ndarray  # [K, T, A] mean chunk of each mode
    labels: np.ndarray  # [S] mode index, NOISE (-1) for unassigned samples
    unassigned: float  # fraction of samples in no mode

    @property
    def n_modes(self) -> int:
        return len(self.weights)


@dataclass
class ModeMatch:
    weights: np.ndarray  # [K] fraction of policy samples assigned to each expert mode
    off_mode: float  # fraction of policy samples near no expert mode
    tv: float  # total variation distance to the expert's mode weights, in [0, 1]
    centre_px: np.ndarray  # [K] expert centre -> mean of assigned policy samples (nan if none)
    between: float  # fraction projecting onto the middle half of the segment between the top-2 centres


def chunk_distances(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """a [S, T, A], b [S2, T, A] (default a) -> [S, S2] mean over T of per-step Euclidean distances."""
    b = a if b is None else b
    if a.ndim != 3 or b.shape[1:] != a.shape[1:]:
        raise ValueError(f"chunks must be [S, T, A] with equal T, A; got {a.shape} and {b.shape}")
    diff = a[:, None].astype(np.float64) - b[None].astype(np.float64)  # [S, S2, T, A]
    return np.linalg.norm(diff, axis=-1).mean(axis=-1)


def dbscan(dist: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """Precomputed distances [S, S] -> cluster labels [S] (0..C-1 by first core index, NOISE for noise)."""
    near = dist <= eps  # [S, S], diagonal included
    core = near.sum(axis=1) >= min_samples
    labels = np.full(len(dist), NOISE, dtype=np.int64)
    core_idx = np.flatnonzero(core)
    if len(core_idx) == 0:
        return labels
    _, comp = connected_components(near[np.ix_(core_idx, core_idx)], directed=False)
    labels[core_idx] = comp
    for i in np.flatnonzero(~core):  # border points join the nearest core within eps
        d = dist[i, core_idx]
        j = int(np.argmin(d))
        if d[j] <= eps:
            labels[i] = comp[j]
    return labels


def count_modes(samples: np.ndarray, config: ModeConfig | None = None) -> Modes:
    """samples [S, T, A] (pixels, already cut to the compared window) -> Modes (heaviest first)."""
    config = config or ModeConfig()
    samples = np.asarray(samples, dtype=np.float64)
    n = len(samples)
    if n < 2:
        raise ValueError(f"count_modes needs at least 2 samples [S, T, A]; got shape {samples.shape}")
    labels = dbscan(chunk_distances(samples), config.eps_px, config.min_samples(n))
    clusters = [c for c in np.unique(labels) if c != NOISE]
    sizes = np.array([np.sum(labels == c) for c in clusters], dtype=np.int64)
    keep = [c for c, s in zip(clusters, sizes, strict=True) if s / n >= config.min_weight]
    keep.sort(key=lambda c: (-np.sum(labels == c), c))  # heaviest first, ties by first index
    out = np.full(n, NOISE, dtype=np.int64)
    for k, c in enumerate(keep):
        out[labels == c] = k
    weights = np.array([np.mean(out == k) for k in range(len(keep))])
    centres = np.stack([samples[out == k].mean(axis=0) for k in range(len(keep))]) if keep else \
        np.zeros((0, *samples.shape[1:]))
    return Modes(weights=weights, centres=centres, labels=out, unassigned=float(np.mean(out == NOISE)))


def assign_to_modes(samples: np.ndarray, modes: Modes, match_px: float,
                    match_ratio: float = 1.0) -> np.ndarray:
    """samples [S, T, A] -> [S] index of the nearest mode centre if within match_px and at most
    match_ratio times the distance to the second nearest centre, else NOISE."""
    if modes.n_modes == 0:
        return np.full(len(samples), NOISE, dtype=np.int64)
    dist = chunk_distances(np.asarray(samples, dtype=np.float64), modes.centres)  # [S, K]
    order = np.sort(dist, axis=1)
    nearest = np.argmin(dist, axis=1)
    ok = order[:, 0] <= match_px
    if modes.n_modes > 1:
        ok &= order[:, 0] <= match_ratio * order[:, 1]
    return np.where(ok, nearest, NOISE)


def between_fraction(samples: np.ndarray, modes: Modes) -> float:
    """Fraction of samples [S, T, A] whose projection on the segment from the heaviest to the second
    mode centre (flattened chunks) falls in its middle half: the signature of averaging two modes."""
    if modes.n_modes < 2:
        return 0.0
    c0, c1 = modes.centres[0].ravel(), modes.centres[1].ravel()
    x = np.asarray(samples, dtype=np.float64).reshape(len(samples), -1)
    lam = (x - c0) @ (c1 - c0) / float((c1 - c0) @ (c1 - c0))  # [S], 0 at mode 0, 1 at mode 1
    return float(np.mean((lam > 0.25) & (lam < 0.75)))


def compare_to_expert(samples: np.ndarray, expert: Modes, config: ModeConfig | None = None) -> ModeMatch:
    """Policy samples [S, T, A] vs the expert's modes (same window) -> ModeMatch."""
    config = config or ModeConfig()
    if expert.n_modes == 0:
        raise ValueError("the expert has no mode at this state; lower ModeConfig.min_weight or add runs")
    samples = np.asarray(samples, dtype=np.float64)
    labels = assign_to_modes(samples, expert, config.match_px, config.match_ratio)
    weights = np.array([np.mean(labels == k) for k in range(expert.n_modes)])
    off = float(1.0 - weights.sum())
    target = expert.weights / expert.weights.sum()
    tv = 0.5 * (float(np.abs(weights - target).sum()) + off)
    centre_px = np.full(expert.n_modes, np.nan)
    for k in range(expert.n_modes):
        mine = samples[labels == k]
        if len(mine):
            centre_px[k] = chunk_distances(mine.mean(axis=0)[None], expert.centres[k][None])[0, 0]
    return ModeMatch(weights=weights, off_mode=off, tv=tv, centre_px=centre_px,
                     between=between_fraction(samples, expert))


# ------------------------------------------------------------------ the expert's own modes on Push-T
@dataclass
class ExpertState:
    state_seed: int
    obs: dict[str, np.ndarray]  # the env's first observation (keypoints obs)
    agent_pos: np.ndarray  # [2]
    block_pose: np.ndarray  # [3]
    chunks: np.ndarray  # [R, L, 2] the expert's first L actions (pixels), one row per expert seed
    first_edges: np.ndarray  # [R] first contact edge (-1 if none within L steps)


def expert_first_chunks(state_seed: int, expert_seeds: range, n_steps: int = 15) -> ExpertState:
    """Run the expert from env seed `state_seed` once per expert rng seed; record its first n_steps
    actions."""
    from envs.pusht.env import PushTEnv
    from envs.pusht.expert import PushTExpert

    env = PushTEnv(obs_type="keypoints")
    chunks, edges = [], []
    for expert_seed in expert_seeds:
        expert = PushTExpert(np.random.default_rng(expert_seed))
        obs, _ = env.reset(seed=state_seed)
        expert.reset()  # as the data collector does
        first = obs, env.world.block_pose(), env.get_state()[:2].copy()
        actions = []
        for _ in range(n_steps):
            actions.append(expert.act(env))
            _, _, terminated, truncated, _ = env.step(actions[-1])
            if terminated or truncated:
                break
        actions += [actions[-1]] * (n_steps - len(actions))  # hold the last target after a success
        chunks.append(np.stack(actions))
        edges.append(-1 if expert.first_contact_edge is None else expert.first_contact_edge)
    return ExpertState(state_seed=state_seed, obs=first[0], agent_pos=first[2],
                       block_pose=np.asarray(first[1], dtype=np.float64), chunks=np.stack(chunks),
                       first_edges=np.array(edges))


def is_bimodal(modes: Modes, min_second_weight: float = 0.25) -> bool:
    """Two comparably frequent modes: the second heaviest mode holds at least min_second_weight."""
    return modes.n_modes >= 2 and modes.weights[1] >= min_second_weight


def find_bimodal_states(state_seeds: range, expert_seeds: range, window: int,
                        config: ModeConfig | None = None, min_second_weight: float = 0.25) -> list[int]:
    """Env seeds whose expert first chunks (first `window` steps) show >= 2 comparably frequent modes."""
    found = []
    for seed in state_seeds:
        state = expert_first_chunks(seed, expert_seeds, n_steps=window)
        if is_bimodal(count_modes(state.chunks[:, :window], config), min_second_weight):
            found.append(seed)
    return found


# ------------------------------------------------------------------ policies
def policy_obs(obs: dict[str, np.ndarray], obs_horizon: int, n: int) -> dict[str, torch.Tensor]:
    """First env observation {key: [...]} -> {key: [n, obs_horizon, ...]}: DP repeats it at episode start."""
    return {k: torch.as_tensor(np.asarray(v), dtype=torch.float32)[None, None]
            .expand(n, obs_horizon, *np.shape(v)).contiguous() for k, v in obs.items()}


@torch.no_grad()
def sample_policy_chunks(policy, obs: dict[str, np.ndarray], n: int, seed: int) -> np.ndarray:
    """n chunks [n, prediction_horizon - obs_horizon + 1, A] (pixels) aligned with the expert's actions
    from its first step: prediction index obs_horizon - 1 is the action taken at the current step."""
    cfg = policy.config
    generator = torch.Generator().manual_seed(seed)
    pred = policy.predict_action(policy_obs(obs, cfg.obs_horizon, n), generator=generator)  # [n, T, A]
    return pred[:, cfg.obs_horizon - 1:].cpu().numpy().astype(np.float64)


# ------------------------------------------------------------------ analysis, figure, entry point
def analyse_state(state: ExpertState, policies: dict, window: int, n_samples: int, seed: int,
                  config: ModeConfig) -> tuple[dict, dict[str, np.ndarray]]:
    """Expert modes at one state vs each policy's -> (row of numbers, {name: chunks [S, L, 2]})."""
    expert = count_modes(state.chunks[:, :window], config)
    edges, counts = np.unique(state.first_edges, return_counts=True)
    separation = chunk_distances(expert.centres[:1], expert.centres[1:2])[0, 0] if expert.n_modes > 1 \
        else float("nan")
    row = {"state_seed": state.state_seed, "expert_runs": len(state.chunks),
           "expert_separation_px": round(float(separation), 1),
           "expert": _modes_row(expert),
           "expert_first_edges": {int(e): int(c) for e, c in zip(edges, counts, strict=True)}}
    chunks = {"expert": state.chunks}
    for name, policy in policies.items():
        samples = sample_policy_chunks(policy, state.obs, n_samples, seed)
        chunks[name] = samples
        match = compare_to_expert(samples[:, :window], expert, config)
        row[name] = {**_modes_row(count_modes(samples[:, :window], config)),
                     "expert_mode_weights": _r(match.weights), "off_mode": round(match.off_mode, 3),
                     "tv": round(match.tv, 3), "centre_px": _r(match.centre_px, 1),
                     "between": round(match.between, 3)}
    return row, chunks


def _modes_row(modes: Modes) -> dict:
    return {"n_modes": modes.n_modes, "weights": _r(modes.weights), "unassigned": round(modes.unassigned, 3)}


def _r(values: np.ndarray, digits: int = 3) -> list[float | None]:
    return [round(float(v), digits) if np.isfinite(v) else None for v in values]  # None: valid JSON


def plot_states(states: list[ExpertState], chunks: list[dict[str, np.ndarray]], window: int,
                config: ModeConfig, path: str | Path) -> None:
    """One row per state, one panel per source (expert first): sampled chunks over the rendered frame,
    coloured by the expert mode they fall in (within match_px of its centre; grey: none); the executed
    window is drawn thick, the rest thin. Titles give each source's own mode count and weights."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from envs.pusht.geometry import WINDOW_SIZE
    from envs.pusht.render import PushTRenderer

    renderer, colours = PushTRenderer(256), plt.get_cmap("tab10").colors
    names = list(chunks[0])
    fig, axes = plt.subplots(len(states), len(names), figsize=(3 * len(names), 3 * len(states)),
                             squeeze=False)
    for row, (state, by_name) in enumerate(zip(states, chunks, strict=True)):
        frame = renderer.draw(state.agent_pos, state.block_pose)
        expert = count_modes(by_name["expert"][:, :window], config)
        for col, name in enumerate(names):
            ax, samples = axes[row, col], by_name[name]
            modes = count_modes(samples[:, :window], config)
            labels = assign_to_modes(samples[:, :window], expert, config.match_px, config.match_ratio)
            ax.imshow(frame, extent=(0, WINDOW_SIZE, WINDOW_SIZE, 0))
            for chunk, label in zip(samples, labels, strict=True):
                colour = "0.4" if label == NOISE else colours[label % 10]
                ax.plot(chunk[:, 0], chunk[:, 1], color=colour, lw=0.6, alpha=0.5)
                ax.plot(chunk[:window, 0], chunk[:window, 1], color=colour, lw=1.4, alpha=0.5)
            weights = ", ".join(f"{w:.2f}" for w in modes.weights)
            ax.set_title(f"{name} (seed {state.state_seed})\n{modes.n_modes} modes: {weights}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown_table(rows: list[dict], names: list[str]) -> str:
    head = "| state | expert modes (weights) | " + " | ".join(
        f"{n}: modes (weights) / on expert modes / off-mode / TV / between" for n in names) + " |"
    lines = [head, "|" + "---|" * (2 + len(names))]
    for row in rows:
        e = row["expert"]
        cells = [f"{row['state_seed']}", f"{e['n_modes']} ({', '.join(map(str, e['weights']))})"]
        for n in names:
            p = row[n]
            cells.append(f"{p['n_modes']} ({', '.join(map(str, p['weights']))}) / "
                         f"{', '.join(map(str, p['expert_mode_weights']))} / {p['off_mode']} / {p['tv']} / "
                         f"{p['between']}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _range(text: str) -> range:
    lo, hi = (int(v) for v in text.split(":"))
    return range(lo, hi)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--find", type=_range, help="env seeds to search for bimodal expert states, lo:hi")
    p.add_argument("--states", type=lambda s: [int(v) for v in s.split(",")], help="env seeds to analyse")
    p.add_argument("--checkpoint", action="append", default=[], help="name=path (repeatable)")
    p.add_argument("--search-expert-seeds", type=_range, default=range(0, 24))
    p.add_argument("--expert-seeds", type=_range, default=range(1000, 1048), help="reference runs")
    p.add_argument("--window", type=int, default=8, help="compared steps (the executed action_horizon)")
    p.add_argument("--steps", type=int, default=15, help="expert steps recorded (plotted)")
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="policy sampling seed")
    p.add_argument("--eps-px", type=float, default=ModeConfig.eps_px)
    p.add_argument("--match-px", type=float, default=ModeConfig.match_px)
    p.add_argument("--match-ratio", type=float, default=ModeConfig.match_ratio)
    p.add_argument("--min-second-weight", type=float, default=0.25)
    p.add_argument("--plot-states", type=int, default=3)
    p.add_argument("--out", default="runs/multimodality")
    p.add_argument("--figure", default="docs/figures/pusht_modes_states.png")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    config = ModeConfig(eps_px=args.eps_px, match_px=args.match_px, match_ratio=args.match_ratio)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.find is not None:
        found = find_bimodal_states(args.find, args.search_expert_seeds, args.window, config,
                                    args.min_second_weight)
        print(json.dumps({"bimodal_states": found}))
        (out / "bimodal_states.json").write_text(json.dumps({"bimodal_states": found, **_argdict(args)}))
    if not args.states:
        return
    from drifting_policy.training.checkpoint import load_policy

    policies = {n: load_policy(p) for n, p in (c.split("=", 1) for c in args.checkpoint)}
    rows, all_chunks, states = [], [], []
    for seed in args.states:
        states.append(expert_first_chunks(seed, args.expert_seeds, n_steps=args.steps))
        row, chunks = analyse_state(states[-1], policies, args.window, args.samples, args.seed, config)
        rows.append(row)
        all_chunks.append(chunks)
    (out / "modes.json").write_text(json.dumps({"rows": rows, "config": asdict(config), **_argdict(args)},
                                               indent=1))
    print(markdown_table(rows, list(policies)))
    if args.plot_states > 0:
        k = args.plot_states
        plot_states(states[:k], all_chunks[:k], args.window, config, args.figure)


def _argdict(args: argparse.Namespace) -> dict:
    return {k: (f"{v.start}:{v.stop}" if isinstance(v, range) else v) for k, v in vars(args).items()}


if __name__ == "__main__":
    main()
