"""Image-quality metrics on [0, 1]-normalised stacks, shared by the fitter's loss and the reports.

SSIM follows Wang et al. 2004: 11-tap Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, data
range 1, 'valid' windows only (no padding artefacts at the border), averaged over channels.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

_WINDOW = 11
_SIGMA = 1.5


def _window(dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(_WINDOW, dtype=torch.float64) - (_WINDOW - 1) / 2
    w = torch.exp(-0.5 * (x / _SIGMA) ** 2)
    return (w / w.sum()).to(dtype)


def _blur(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    # Separable: two 1-D passes cost 2*11 taps per texel instead of 121.
    c = x.shape[1]
    x = F.conv2d(x, w.view(1, 1, 1, -1).expand(c, 1, 1, _WINDOW), groups=c)
    return F.conv2d(x, w.view(1, 1, -1, 1).expand(c, 1, _WINDOW, 1), groups=c)


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-channel SSIM maps [C, H-10, W-10] of two [H, W, C] images (differentiable)."""
    x = a.permute(2, 0, 1)[None]
    y = b.permute(2, 0, 1)[None]
    w = _window(a.dtype)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mx, my = _blur(x, w), _blur(y, w)
    sxx = _blur(x * x, w) - mx * mx
    syy = _blur(y * y, w) - my * my
    sxy = _blur(x * y, w) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s[0]


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ssim_map(a, b).mean()


def psnr(a, b) -> float:
    """PSNR in dB for data range 1; inf for identical inputs."""
    a = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a, dtype=torch.float64)
    b = torch.as_tensor(np.asarray(b) if not isinstance(b, torch.Tensor) else b, dtype=torch.float64)
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def group_metrics(decoded: np.ndarray, target: np.ndarray, groups: dict[str, list[int]]) -> dict:
    """PSNR and SSIM per channel group and for the whole stack ('all')."""
    d = torch.from_numpy(np.ascontiguousarray(decoded, dtype=np.float64))
    t = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float64))
    out = {}
    for name, idx in list(groups.items()) + [("all", list(range(target.shape[2])))]:
        if not idx:
            continue
        out[name] = {"psnr": psnr(d[..., idx], t[..., idx]), "ssim": float(ssim(d[..., idx], t[..., idx]))}
    return out
