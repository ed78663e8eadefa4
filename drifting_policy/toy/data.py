"""2-D target distributions and the scores of the toy experiments (paper Figs. 3-4, Tables 1 and 11).

Every sampler takes an explicit ``torch.Generator``; nothing here touches global random state.
Shapes: n samples of dimension 2, ``[n, 2]`` float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

TARGETS = ("bimodal", "swiss_roll", "checkerboard", "gaussian")
# A generated sample counts towards a mode when it lies within this many mode standard deviations of it.
MODE_RADIUS_STDS = 3.0


@dataclass(frozen=True)
class TargetSpec:
    """A 2-D target distribution.

    name:        one of ``TARGETS``
    separation:  bimodal: the modes sit at (-separation, 0) and (+separation, 0)
    mode_std:    bimodal/gaussian: isotropic standard deviation of each mode
    center:      gaussian: its mean
    """

    name: str = "bimodal"
    separation: float = 3.0
    mode_std: float = 0.3
    center: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self):
        if self.name not in TARGETS:
            raise ValueError(f"target name={self.name!r}; expected one of {TARGETS}")
        if self.mode_std <= 0 or self.separation < 0:
            raise ValueError(f"target needs mode_std > 0 and separation >= 0; got mode_std={self.mode_std}, "
                             f"separation={self.separation}")

    @property
    def modes(self) -> Tensor:
        """[M, 2] centres of the modes that ``mode_masses`` checks (bimodal: 2, gaussian: 1)."""
        if self.name == "bimodal":
            return torch.tensor([[-self.separation, 0.0], [self.separation, 0.0]])
        if self.name == "gaussian":
            return torch.tensor([list(self.center)])
        raise ValueError(f"target {self.name!r} has no discrete modes; mode_masses needs bimodal or gaussian")


def sample_target(spec: TargetSpec, n: int, generator: torch.Generator) -> Tensor:
    """[n, 2] samples of the target."""
    if spec.name == "bimodal":
        side = torch.randint(0, 2, (n,), generator=generator).float() * 2.0 - 1.0  # [n], +-1
        points = torch.randn(n, 2, generator=generator) * spec.mode_std
        points[:, 0] += side * spec.separation
        return points
    if spec.name == "gaussian":
        return torch.randn(n, 2, generator=generator) * spec.mode_std + torch.tensor(spec.center)
    if spec.name == "swiss_roll":
        return swiss_roll(n, generator)
    return checkerboard(n, generator)


def swiss_roll(n: int, generator: torch.Generator, noise: float = 0.05) -> Tensor:
    """[n, 2] a 1.5-turn spiral of radius t / (1.5 pi) in [1, 3] for t in [1.5 pi, 4.5 pi], plus noise."""
    t = 1.5 * math.pi * (1.0 + 2.0 * torch.rand(n, generator=generator))  # [n]
    radius = t / (1.5 * math.pi)
    points = torch.stack([radius * torch.cos(t), radius * torch.sin(t)], dim=1)
    return points + noise * torch.randn(n, 2, generator=generator)


def checkerboard(n: int, generator: torch.Generator) -> Tensor:
    """[n, 2] uniform on the 8 'black' unit cells of a 4 x 4 board on [-2, 2]^2 (floor(x) + floor(y) even)."""
    x = 4.0 * torch.rand(n, generator=generator) - 2.0
    # y's cell row has the parity of x's column; pick one of the two such rows, then a uniform offset
    row = 2.0 * torch.randint(0, 2, (n,), generator=generator).float() - 2.0 + torch.floor(x).remainder(2.0)
    y = row + torch.rand(n, generator=generator)
    return torch.stack([x, y], dim=1)


def energy_distance(a: Tensor, b: Tensor) -> Tensor:
    """[] squared energy distance 2 E|a - b| - E|a - a'| - E|b - b'| (V-statistic, float64).

    a: [n, D], b: [m, D]. Exactly 0 for identical sample sets, >= 0 always, grows with a shift.
    """
    a, b = a.double(), b.double()
    return 2.0 * torch.cdist(a, b).mean() - torch.cdist(a, a).mean() - torch.cdist(b, b).mean()


def mode_masses(samples: Tensor, spec: TargetSpec) -> Tensor:
    """[M] fraction of samples within ``MODE_RADIUS_STDS`` mode std of each mode (bimodal: ~0.5 each)."""
    dist = torch.cdist(samples.float(), spec.modes)  # [n, M]
    return (dist < MODE_RADIUS_STDS * spec.mode_std).float().mean(dim=0)
