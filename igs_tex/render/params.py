"""The Gaussian parameter set every renderer takes (see DESIGN.md, rendering contract)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class GaussianParams:
    means: torch.Tensor  # [N, 2] pixels (x, y), origin top-left of the base level
    theta: torch.Tensor  # [N] radians, contract range [0, pi)
    inv_scale: torch.Tensor  # [N, 2] 1/pixels along the rotated u, v axes
    colour: torch.Tensor  # [N, C]

    @property
    def count(self) -> int:
        return int(self.means.shape[0])

    @property
    def channels(self) -> int:
        return int(self.colour.shape[1])

    def detach(self) -> "GaussianParams":
        return GaussianParams(self.means.detach(), self.theta.detach(), self.inv_scale.detach(), self.colour.detach())

    def to(self, dtype: torch.dtype) -> "GaussianParams":
        return GaussianParams(
            self.means.to(dtype), self.theta.to(dtype), self.inv_scale.to(dtype), self.colour.to(dtype)
        )
