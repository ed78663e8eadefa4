"""Scripted Push-T expert: privileged push planner emitting teleoperator-like absolute targets at 10 Hz.

Each decision samples contact points continuously along the T's 8 edges, routes to each pre-contact
point around the inflated T, rolls every push out in a private physics copy and picks one with a
softmax over "cost decrease per control step" (travel included), so comparably good options (left or
right side, clockwise or anticlockwise trips) are chosen at random. Pushes are closed loop (the target
tracks the contact as the block turns) and are re-planned every few steps without leaving the block,
so a good push simply continues. Travel follows the path with a look-ahead carrot (smooth curves,
no stops) at a per-episode speed with slow random variation. Targets stay within MAX_LEAD px of the
agent (before the optional action noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from envs.pusht.geometry import GOAL_POSE, WINDOW_SIZE, local_to_world
from envs.pusht.planner import (
    ARENA_HI,
    ARENA_LO,
    EDGES,
    MAX_LEAD,
    Candidate,
    PushSimulator,
    Router,
    pose_cost,
    push_target,
)
from envs.pusht.render import AGENT_RADIUS

EXPERT_VERSION = "pusht-expert-1"
EDGE_HABIT = 0.35


@dataclass
class ExpertConfig:
    contacts_per_edge: int = 3
    horizon: int = 14  # rollout length per candidate (control steps)
    max_stroke: int = 6  # steps executed before re-planning
    switch_dist: float = 9.0  # start pushing when this close to the pre-contact point (px)

    def __post_init__(self):
        if self.contacts_per_edge < 1 or self.horizon < 2 or not 1 <= self.max_stroke <= self.horizon:
            raise ValueError(f"need contacts_per_edge >= 1, horizon >= 2, 1 <= max_stroke <= horizon; "
                             f"got {self}")


@dataclass
class Style:
    """Per-episode randomness: speed, push depth, gap, choice temperature, and a habit: a fixed
    preference of up to ±EDGE_HABIT for each edge of the T, so that one episode consistently favours,
    say, the left side and the next one the right where both are about as good."""

    travel_lead: float
    push_lead: float
    gap: float
    temperature: float
    node_noise: float
    edge_bias: np.ndarray  # [8]

    @staticmethod
    def sample(rng: np.random.Generator) -> Style:
        return Style(travel_lead=rng.uniform(34.0, 46.0), push_lead=rng.uniform(13.0, 20.0),
                     gap=rng.uniform(5.0, 9.0), temperature=rng.uniform(0.06, 0.15), node_noise=0.15,
                     edge_bias=rng.uniform(-EDGE_HABIT, EDGE_HABIT, size=len(EDGES)))


class PushTExpert:
    """`act(env)` reads the env's simulator state and returns float32 [2] (target + N(0, noise_std²))."""

    def __init__(self, rng: np.random.Generator, noise_std: float = 0.0, config: ExpertConfig | None = None,
                 goal_pose=GOAL_POSE):
        if noise_std < 0:
            raise ValueError(f"noise_std={noise_std}; expected >= 0 (pixels)")
        self.rng = rng
        self.noise_std = float(noise_std)
        self.config = config or ExpertConfig()
        self.goal_pose = np.asarray(goal_pose, dtype=np.float64)
        self.router = Router()
        self.sim = PushSimulator()
        self.reset()

    def reset(self) -> None:
        self.style = Style.sample(self.rng)
        self.speed = 1.0  # slowly varying speed factor
        self.plan: Candidate | None = None
        self.mode = "idle"
        self.plan_pose = None
        self.steps_in_mode = 0
        self.path_s = 0.0
        self.last_clean_action = None
        self.edge_history: list[int] = []  # edges pushed, in order (repeats merged): multimodality stats
        self.n_plans = 0

    def act(self, env) -> np.ndarray:
        block, agent = env.block, env.agent
        pose = (block.position.x, block.position.y, block.angle)
        agent_xy = np.array([agent.position.x, agent.position.y])
        agent_vel = np.array([agent.velocity.x, agent.velocity.y])
        self.speed = float(np.clip(0.9 * self.speed + 0.1 + 0.05 * self.rng.standard_normal(), 0.8, 1.2))
        target = self._target(pose, agent_xy, agent_vel)
        self.last_clean_action = target
        action = target + self.noise_std * self.rng.standard_normal(2) if self.noise_std > 0 else target
        return np.clip(action, 0.0, float(WINDOW_SIZE)).astype(np.float32)

    def _target(self, pose, agent_xy, agent_vel) -> np.ndarray:
        if self.mode == "travel" and self._block_moved(pose):
            self.mode = "idle"
        if self.mode == "push" and self.steps_in_mode >= self.plan.n_push:
            self.mode = "idle"
        if self.mode == "idle":
            self._replan(pose, agent_xy, agent_vel)
        if self.mode == "travel":
            target = self._follow_path(agent_xy)
            if target is not None:
                self.steps_in_mode += 1
                return target
            self.mode, self.steps_in_mode = "push", 0
        self.steps_in_mode += 1
        lead = self._push_lead(pose)
        return np.array(push_target(pose, self.plan.contact, self.plan.normal, agent_xy, lead))

    def _block_moved(self, pose) -> bool:
        p0 = self.plan_pose
        return math.hypot(pose[0] - p0[0], pose[1] - p0[1]) > 2.0 or abs(pose[2] - p0[2]) > 0.03

    def _push_lead(self, pose) -> float:
        """Push depth: shallow (slow, precise) near the goal, the style's depth far from it."""
        err = math.sqrt(pose_cost(pose, self.goal_pose))
        return float(np.clip(0.5 * err, 4.0, self.style.push_lead * self.speed))

    # ---------------------------------------------------------------- planning
    def _sample_candidates(self, pose, n_per_edge: int) -> list[Candidate]:
        out = []
        for i, (a, tangent, normal, lo, hi) in enumerate(EDGES):
            for u in self.rng.uniform(lo, hi, size=n_per_edge):
                contact = a + tangent * u
                start = contact + normal * (AGENT_RADIUS + self.style.gap)
                w = local_to_world(start, pose)
                if np.all((w >= ARENA_LO) & (w <= ARENA_HI)):
                    out.append(Candidate(edge=i, contact=contact, normal=normal, start=start))
        return out

    def _replan(self, pose, agent_xy, agent_vel) -> None:
        self.n_plans += 1
        cost0 = pose_cost(pose, self.goal_pose)
        lead = self._push_lead(pose)
        cfg = self.config
        cands = self._sample_candidates(pose, cfg.contacts_per_edge)
        if cands:
            goals = np.array([c.start for c in cands])
            paths, lengths = self.router.routes(pose, agent_xy, goals, self.rng, self.style.node_noise)
            speed = 0.5 * self.style.travel_lead  # px per step at the PD's steady-state lag of 2 steps
            for cand, path, length in zip(cands, paths, lengths, strict=True):
                if path is None:
                    cand.value, cand.travel = -math.inf, math.inf
                    continue
                cand.path, cand.travel = path, float(length)
                start_xy = path[-1]
                costs = self.sim.rollout(pose, start_xy, (0.0, 0.0), cand, cfg.horizon, lead, self.goal_pose)
                self._score(cand, cost0, costs, length / speed + 3.0)
        if self.plan is not None and self.mode != "travel" and self._touching(pose, agent_xy):
            cont = Candidate(self.plan.edge, self.plan.contact, self.plan.normal, self.plan.start)
            costs = self.sim.rollout(pose, agent_xy, agent_vel, cont, cfg.horizon, lead, self.goal_pose)
            self._score(cont, cost0, costs, 1.0)
            cands.append(cont)
        self._choose(cands, pose)

    def _touching(self, pose, agent_xy) -> bool:
        c = local_to_world(self.plan.contact, pose)
        return float(np.linalg.norm(c - agent_xy)) < AGENT_RADIUS + 4.0

    def _score(self, cand: Candidate, cost0: float, costs: np.ndarray, overhead: float) -> None:
        k = np.arange(1, len(costs) + 1)
        rate = (cost0 - costs) / (overhead + k)
        cand.value = float(rate.max())
        cand.n_push = int(min(np.argmin(costs) + 1, self.config.max_stroke))  # push while it still helps

    def _choose(self, cands: list[Candidate], pose) -> None:
        values = np.array([c.value for c in cands]) if cands else np.zeros(0)
        good = np.isfinite(values) & (values > 0)
        if not good.any():  # nothing improves within the horizon: explore with a short random push
            valid = [c for c in cands if c.path is not None or c.travel == 0.0]
            if not valid:
                valid = [Candidate(0, EDGES[0][0], EDGES[0][2], EDGES[0][0], path=None)]
            chosen = valid[int(self.rng.integers(len(valid)))]
            chosen.n_push = 4
        else:
            bias = np.array([1.0 + self.style.edge_bias[c.edge] for c in cands])
            v = np.where(good, values * bias, -np.inf)
            vmax = v.max()
            logits = (v - vmax) / (self.style.temperature * vmax)
            p = np.exp(logits)
            chosen = cands[int(self.rng.choice(len(cands), p=p / p.sum()))]
        self.plan, self.plan_pose = chosen, pose
        self.steps_in_mode, self.path_s = 0, 0.0
        self.mode = "travel" if chosen.path is not None else "push"
        if not self.edge_history or self.edge_history[-1] != chosen.edge:
            self.edge_history.append(chosen.edge)

    @property
    def first_contact_edge(self) -> int | None:
        return self.edge_history[0] if self.edge_history else None

    # ---------------------------------------------------------------- travel
    def _follow_path(self, agent_xy) -> np.ndarray | None:
        """Look-ahead target along the path, or None when close enough to start pushing."""
        path = self.plan.path
        end = path[-1]
        if np.linalg.norm(end - agent_xy) < self.config.switch_dist:
            return None
        if self.steps_in_mode > 25 + 3 * self.plan.travel / self.style.travel_lead:
            self.mode = "idle"  # taking too long (noise, blocked): plan afresh next step
        seg = path[1:] - path[:-1]  # [K-1, 2]
        seg_len = np.linalg.norm(seg, axis=-1)
        cum = np.concatenate([[0.0], np.cumsum(seg_len)])
        rel = agent_xy - path[:-1]
        t = np.clip(np.sum(rel * seg, axis=-1) / np.maximum(seg_len**2, 1e-9), 0.0, 1.0)
        proj = path[:-1] + seg * t[:, None]
        d = np.linalg.norm(proj - agent_xy, axis=-1)
        s_all = cum[:-1] + t * seg_len
        d = np.where(s_all >= self.path_s - 1.0, d, np.inf)  # never project backwards along the path
        i = int(np.argmin(d))
        self.path_s = float(s_all[i])
        s_target = min(self.path_s + self.style.travel_lead * self.speed, cum[-1])
        j = min(int(np.searchsorted(cum, s_target, side="right")) - 1, len(seg) - 1)
        frac = (s_target - cum[j]) / max(seg_len[j], 1e-9)
        target = path[j] + seg[j] * min(frac, 1.0)
        off = target - agent_xy
        dist = float(np.linalg.norm(off))
        return target if dist <= MAX_LEAD else agent_xy + off * (MAX_LEAD / dist)
