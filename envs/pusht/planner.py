"""Push planning for the scripted Push-T expert: candidate contacts, routing around the T, push rollouts.

Everything geometric is done in the block's frame, where the T never moves: a contact is a point on one
of the T's 8 edges with the edge's outward normal; the agent pushes along the inward normal while its
target tracks the contact point as the block turns (contacts are frictionless, so the agent would slide
off otherwise). A candidate is scored by rolling its push out in a private copy of the physics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import Polygon

from envs.pusht.env import PushTWorld
from envs.pusht.geometry import BLOCK_COG, T_OUTLINE, local_to_world, world_to_local
from envs.pusht.render import AGENT_RADIUS

BLOCK_COG_ARRAY = np.array(BLOCK_COG)
ARENA_LO, ARENA_HI = 24.0, 487.0  # agent centre stays this far inside the walls (5..506, radius 2 + 15)
CONVEX_MARGIN = 4.0  # contacts keep this far from the T's outer corners
CONCAVE_MARGIN = 22.0  # ... and this far from its inner corners, so the agent does not touch the other edge
CLEARANCE = 3.0  # travel keeps the agent this far from touching the T
NODE_OFFSET = 6.0  # routing nodes sit on the T inflated by radius + NODE_OFFSET
MAX_LEAD = 50.0  # the commanded target never leads the agent by more than this (px)
# Points compared between current and goal pose: the 8 corners and 5 interior points of the T, spread
# 1.6x about the centre of gravity so that orientation errors weigh more (fixing the angle first made
# episodes ~10% shorter than the plain keypoint error).
ROTATION_EMPHASIS = 1.6
_T_POINTS = np.concatenate([T_OUTLINE, [[0, 15], [0, 60], [0, 105], [-40, 15], [40, 15]]])  # [13, 2]
COST_POINTS = (_T_POINTS - BLOCK_COG_ARRAY) * ROTATION_EMPHASIS + BLOCK_COG_ARRAY


def pose_cost(pose, goal_pose) -> float:
    """Mean squared distance (px²) of COST_POINTS between two poses."""
    d = local_to_world(COST_POINTS, pose) - local_to_world(COST_POINTS, goal_pose)
    return float(np.mean(np.sum(d * d, axis=-1)))


def _edges():
    """Per edge: start, end, outward normal, allowed range of the edge parameter (in px along it)."""
    out = []
    n = len(T_OUTLINE)
    for i in range(n):
        a, b = T_OUTLINE[i], T_OUTLINE[(i + 1) % n]
        length = float(np.linalg.norm(b - a))
        tangent = (b - a) / length
        normal = np.array([-tangent[1], tangent[0]])  # outward for this vertex order (y down)
        lo = CONCAVE_MARGIN if _is_concave(i) else CONVEX_MARGIN
        hi = length - (CONCAVE_MARGIN if _is_concave((i + 1) % n) else CONVEX_MARGIN)
        out.append((a, tangent, normal, lo, hi))
    return out


def _is_concave(i: int) -> bool:
    a, b, c = T_OUTLINE[i - 1], T_OUTLINE[i], T_OUTLINE[(i + 1) % len(T_OUTLINE)]
    cross = (b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0])
    return cross > 0  # the outline turns the other way at the T's two inner corners


EDGES = _edges()


@dataclass
class Candidate:
    edge: int
    contact: np.ndarray  # [2] local contact point on the edge
    normal: np.ndarray  # [2] local outward normal
    start: np.ndarray  # [2] local pre-contact point (agent centre)
    path: np.ndarray | None = None  # [K, 2] world waypoints from the agent to the pre-contact point
    travel: float = 0.0  # path length, px
    n_push: int = 0  # chosen stroke length (control steps)
    value: float = -math.inf  # cost decrease per control step, travel included


def push_target(pose, contact, normal, agent_xy, lead: float) -> tuple[float, float]:
    """Target that drives the agent `lead` px into the block at the tracked contact, bounded by MAX_LEAD."""
    c, s = math.cos(pose[2]), math.sin(pose[2])
    cx = pose[0] + c * contact[0] - s * contact[1]
    cy = pose[1] + s * contact[0] + c * contact[1]
    nx, ny = c * normal[0] - s * normal[1], s * normal[0] + c * normal[1]
    tx, ty = cx + nx * (AGENT_RADIUS - lead), cy + ny * (AGENT_RADIUS - lead)
    dx, dy = tx - agent_xy[0], ty - agent_xy[1]
    dist = math.hypot(dx, dy)
    if dist > MAX_LEAD:
        tx, ty = agent_xy[0] + dx * MAX_LEAD / dist, agent_xy[1] + dy * MAX_LEAD / dist
    return tx, ty


class Router:
    """Shortest paths around the inflated T (visibility graph, in the block frame)."""

    def __init__(self):
        t_shape = Polygon(T_OUTLINE)
        self.obstacle = t_shape.buffer(AGENT_RADIUS + CLEARANCE, join_style="mitre")
        shapely.prepare(self.obstacle)
        ring = t_shape.buffer(AGENT_RADIUS + NODE_OFFSET, join_style="mitre").exterior.coords
        self.nodes_local = np.array(ring)[:-1]  # [M, 2]
        m = len(self.nodes_local)
        ii, jj = np.triu_indices(m, 1)
        vis = np.zeros((m, m), dtype=bool)
        vis[ii, jj] = ~self.blocked(self.nodes_local[ii], self.nodes_local[jj])
        self.node_vis = vis | vis.T  # [M, M] node-to-node visibility, fixed in the block frame

    def blocked(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """a, b [S, 2] local segment ends -> [S] bool, True where the segment enters the obstacle."""
        return shapely.intersects(self.obstacle, shapely.linestrings(np.stack([a, b], axis=1)))

    def escape(self, agent_local: np.ndarray) -> np.ndarray:
        """A point just outside the obstacle, straight out from the T's nearest boundary point."""
        if not shapely.intersects_xy(self.obstacle, *agent_local):
            return agent_local
        t_ring = self.obstacle.exterior
        along = t_ring.project(shapely.Point(agent_local))
        nearest = np.array(shapely.line_interpolate_point(t_ring, along).coords[0])
        away = nearest - agent_local
        return nearest + away / max(np.linalg.norm(away), 1e-6) * 1.5

    def routes(self, pose, agent_xy, goals_local: np.ndarray, rng: np.random.Generator, node_noise: float):
        """Paths from the agent to each local goal [C, 2] -> (list of world paths or None, lengths [C])."""
        agent_local = world_to_local(np.asarray(agent_xy, dtype=np.float64), pose)
        start = self.escape(agent_local)
        nodes, m, c = self.nodes_local, len(self.nodes_local), len(goals_local)
        ok = np.all((local_to_world(nodes, pose) >= ARENA_LO) & (local_to_world(nodes, pose) <= ARENA_HI),
                    axis=-1)  # [M] nodes inside the arena
        weight = 1.0 + node_noise * rng.random(m)  # random detours make cw / ccw a coin flip when close
        graph, nxt = self._node_paths(ok, weight)
        s_vis = ~self.blocked(np.repeat(start[None], m, 0), nodes) & ok  # [M]
        g_vis = ~self.blocked(np.repeat(nodes, c, 0), np.tile(goals_local, (m, 1))).reshape(m, c)
        g_vis &= ok[:, None]
        direct = ~self.blocked(np.repeat(start[None], c, 0), goals_local)  # [C]
        d_s = np.where(s_vis, np.linalg.norm(nodes - start, axis=-1) * weight, np.inf)  # [M]
        d_g = np.where(g_vis, np.linalg.norm(nodes[:, None] - goals_local[None], axis=-1), np.inf)  # [M, C]
        flat = (d_s[:, None, None] + graph[:, :, None] + d_g[None]).reshape(m * m, c)  # [M(i) * M(j), C]
        best = np.argmin(flat, axis=0)
        lengths = np.where(direct, np.linalg.norm(goals_local - start, axis=-1), flat[best, np.arange(c)])
        lengths = lengths + np.linalg.norm(start - agent_local)
        paths = []
        for k in range(c):
            if direct[k]:
                paths.append(local_to_world(np.array([start, goals_local[k]]), pose))
            elif np.isfinite(lengths[k]):
                i, j = divmod(int(best[k]), m)
                via = [nodes[n] for n in self._unroll(nxt, i, j)]
                paths.append(local_to_world(np.array([start, *via, goals_local[k]]), pose))
            else:
                paths.append(None)
        return paths, lengths

    def _node_paths(self, ok: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All-pairs shortest paths between usable nodes (Floyd-Warshall on <= 8 nodes): lengths, next hop."""
        nodes, m = self.nodes_local, len(self.nodes_local)
        vis = self.node_vis & ok[:, None] & ok[None, :]
        dist = np.linalg.norm(nodes[:, None] - nodes[None], axis=-1) * 0.5 * (weight[:, None] + weight[None])
        graph = np.where(vis, dist, np.inf)
        np.fill_diagonal(graph, 0.0)
        nxt = np.tile(np.arange(m), (m, 1))
        for k in range(m):
            via = graph[:, k:k + 1] + graph[k:k + 1, :]
            better = via < graph
            graph = np.where(better, via, graph)
            nxt = np.where(better, nxt[:, k:k + 1], nxt)
        return graph, nxt

    @staticmethod
    def _unroll(nxt: np.ndarray, i: int, j: int) -> list[int]:
        hops = [i]
        while i != j:
            i = int(nxt[i, j])
            hops.append(i)
        return hops


class PushSimulator:
    """Private physics copy: rolls a push out from an agent state; returns the cost after each step."""

    def __init__(self):
        self.world = PushTWorld(count_contacts=False)

    def rollout(self, pose, agent_xy, agent_vel, cand: Candidate, n_steps: int, lead: float,
                goal_pose) -> np.ndarray:
        world = self.world
        block, agent = world.block, world.agent
        block.velocity, block.angular_velocity = (0.0, 0.0), 0.0
        block.angle = pose[2]
        block.position = (pose[0], pose[1])
        agent.position = (float(agent_xy[0]), float(agent_xy[1]))
        agent.velocity = (float(agent_vel[0]), float(agent_vel[1]))
        costs = np.empty(n_steps)
        for k in range(n_steps):
            bp = world.block_pose()
            a = agent.position
            tx, ty = push_target(bp, cand.contact, cand.normal, (a.x, a.y), lead)
            world.step(tx, ty)
            costs[k] = pose_cost(world.block_pose(), goal_pose)
        return costs
