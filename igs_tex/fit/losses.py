"""Training loss: L1 + 0.1 (1 - SSIM) over all channels (paper), optional per-channel weights."""
from __future__ import annotations

import torch

from ..report.metrics import ssim_map


def fit_loss(render: torch.Tensor, target: torch.Tensor, ssim_weight: float,
             channel_weights: torch.Tensor | None) -> torch.Tensor:
    l1 = (render - target).abs().mean(dim=(0, 1))                 # [C]
    dssim = 1.0 - ssim_map(render, target).mean(dim=(1, 2))        # [C]
    per_channel = l1 + ssim_weight * dssim
    if channel_weights is None:
        return per_channel.mean()
    return (per_channel * channel_weights).sum() / channel_weights.sum()
