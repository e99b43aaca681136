"""Where Gaussians are placed: gradient-magnitude initialisation and error-guided growth.

Sampling always runs on the host with the fit's CPU generator, whatever device the fit runs on,
so a seed picks the same texels from the same weights everywhere.
"""

from __future__ import annotations

import torch


def gradient_magnitude(target: torch.Tensor) -> torch.Tensor:
    """|grad I| per texel [H, W], summed over channels (central differences, edges replicated)."""
    img = target.permute(2, 0, 1)  # [C, H, W]
    pad = torch.nn.functional.pad(img[None], (1, 1, 1, 1), mode="replicate")[0]
    gx = (pad[:, 1:-1, 2:] - pad[:, 1:-1, :-2]) * 0.5
    gy = (pad[:, 2:, 1:-1] - pad[:, :-2, 1:-1]) * 0.5
    return torch.sqrt(gx * gx + gy * gy).sum(dim=0)


def sample_texels(weight: torch.Tensor, count: int, gen: torch.Generator) -> torch.Tensor:
    """Draw `count` distinct texel indices (flat, CPU) with probability proportional to weight
    [H, W] (any device)."""
    # To the host first, then widen: half the bytes cross the bus.
    w = weight.detach().flatten().to("cpu").to(torch.float64).clamp(min=0)
    if float(w.sum()) <= 0:
        w = torch.ones_like(w)
    count = min(count, int((w > 0).sum()))
    return torch.multinomial(w, count, replacement=False, generator=gen)


def new_gaussians(target: torch.Tensor, flat_idx: torch.Tensor, scale_px: float):
    """Gaussians centred on the chosen texels, coloured with the target there, isotropic, theta 0."""
    h, w, c = target.shape
    y = torch.div(flat_idx, w, rounding_mode="floor")
    x = flat_idx % w
    means = torch.stack([x.to(target.dtype) + 0.5, y.to(target.dtype) + 0.5], dim=1)
    n = flat_idx.shape[0]
    theta = torch.zeros(n, dtype=target.dtype, device=target.device)
    inv_scale = torch.full((n, 2), 1.0 / scale_px, dtype=target.dtype, device=target.device)
    colour = target.reshape(-1, c)[flat_idx].clone()
    return means, theta, inv_scale, colour


def initial_positions(target: torch.Tensor, count: int, grad_mix: float, gen: torch.Generator):
    """Paper init: p = (1 - l) |grad I| / sum + l / (HW)."""
    g = gradient_magnitude(target)
    total = float(g.sum())
    prob = (1.0 - grad_mix) * (g / total if total > 0 else torch.zeros_like(g)) + grad_mix / g.numel()
    return sample_texels(prob, count, gen)
