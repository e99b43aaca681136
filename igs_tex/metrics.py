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


class SsimAgainst:
    """SSIM of images against one fixed [H, W, C] image b: the window (on b's device) and b's
    local means and variances are prepared once. The fitter's loss keeps one per fit, on the
    device it trains on."""

    C1, C2 = 0.01**2, 0.03**2

    def __init__(self, b: torch.Tensor):
        self.w = _window(b.dtype).to(b.device)
        # contiguous: convolutions on the permuted view run about 10x slower.
        self.y = b.permute(2, 0, 1)[None].contiguous()
        self.my = _blur(self.y, self.w)
        self.syy = _blur(self.y * self.y, self.w) - self.my * self.my

    def map(self, a: torch.Tensor) -> torch.Tensor:
        """Per-channel SSIM maps [C, H-10, W-10] of a against b (differentiable in a)."""
        x = a.permute(2, 0, 1)[None].contiguous()
        w, y, my = self.w, self.y, self.my
        mx = _blur(x, w)
        sxx = _blur(x * x, w) - mx * mx
        sxy = _blur(x * y, w) - mx * my
        s = ((2 * mx * my + self.C1) * (2 * sxy + self.C2)) / (
            (mx * mx + my * my + self.C1) * (sxx + self.syy + self.C2)
        )
        return s[0]


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-channel SSIM maps [C, H-10, W-10] of two [H, W, C] images (differentiable)."""
    return SsimAgainst(b).map(a)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ssim_map(a, b).mean()


def _psnr_from_mse(mse: float) -> float:
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def psnr(a, b) -> float:
    """PSNR in dB for data range 1; inf for identical inputs."""
    a = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a, dtype=torch.float64)
    b = torch.as_tensor(np.asarray(b) if not isinstance(b, torch.Tensor) else b, dtype=torch.float64)
    return _psnr_from_mse(float(((a - b) ** 2).mean()))


def group_metrics(decoded: np.ndarray, target: np.ndarray, groups: dict[str, list[int]], value_range=None) -> dict:
    """PSNR and SSIM per channel group and for the whole stack ('all').

    value_range [C, 2] (the stack's: real = lo + v * (hi - lo)): PSNR is measured on the values
    as the user gave them, with the group's real span (its highest hi less its lowest lo) as the
    peak, so a float map is not judged by its own min-max stretch. None: every channel in [0, 1]
    (8- and 16-bit maps), where the two agree. SSIM stays on the normalised channels.
    """
    d = torch.from_numpy(np.ascontiguousarray(decoded, dtype=np.float64))
    t = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float64))
    # Channels are independent in both metrics: one SSIM map and one squared error per channel,
    # then means over each group. Per group and again for 'all', the SSIM blurs were 7 of the
    # 48 s of a 1024^2 x 8 default bake.
    maps = ssim_map(d, t).mean(dim=(1, 2))
    sq = ((d - t) ** 2).mean(dim=(0, 1))
    vr = None if value_range is None else np.asarray(value_range, dtype=np.float64).reshape(-1, 2)
    out = {}
    for name, idx in list(groups.items()) + [("all", list(range(target.shape[2])))]:
        if not idx:
            continue
        mse = float(sq[idx].mean())
        if vr is not None and not np.all(vr[idx] == (0.0, 1.0)):
            scale = (vr[idx, 1] - vr[idx, 0]) ** 2
            span = float(vr[idx, 1].max() - vr[idx, 0].min())
            mse = float((sq[idx].numpy() * scale).mean()) / span**2 if span > 0 else 0.0
        out[name] = {"psnr": _psnr_from_mse(mse), "ssim": float(maps[idx].mean())}
    return out


# --------------------------------------------------------------------------- report-only metrics
# Heavier than PSNR/SSIM and not differentiable: used to score decoded results (ours and the
# BCn/ASTC baselines), never inside the fitting loop.

# Wang, Simoncelli & Bovik 2003, five scales.
_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _as_chw(x) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    t = t.detach().to(torch.float64)
    if t.ndim == 2:
        t = t[..., None]
    # contiguous: a permuted (channels-last) view makes the grouped convolutions ~10x slower.
    return t.permute(2, 0, 1)[None].contiguous()  # [1, C, H, W]


def _ssim_and_cs(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean SSIM and mean contrast-structure term, [C] each."""
    c1, c2 = 0.01**2, 0.03**2
    mx, my = _blur(x, w), _blur(y, w)
    sxx = _blur(x * x, w) - mx * mx
    syy = _blur(y * y, w) - my * my
    sxy = _blur(x * y, w) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return (lum * cs).mean(dim=(0, 2, 3)), cs.mean(dim=(0, 2, 3))


def ms_ssim_scales(height: int, width: int) -> int:
    """How many of the five MS-SSIM scales fit: the coarsest must still hold one 11x11 window."""
    n = 0
    h, w = height, width
    while n < len(_MS_SSIM_WEIGHTS) and min(h, w) >= _WINDOW:
        n += 1
        h, w = h // 2, w // 2
    return n


def ms_ssim(a, b) -> float:
    """Multi-scale SSIM of two [H, W, C] images in [0, 1], averaged over channels.

    Same window and constants as :func:`ssim`; 2x2 mean pooling between scales. Images
    under 176 px on a side get fewer than five scales, with the weights of the scales kept
    renormalised to sum to 1 (so a value is only comparable between equal sizes). Negative
    contrast-structure terms are clamped to 0 before the fractional powers.
    """
    x, y = _as_chw(a), _as_chw(b)
    if x.shape != y.shape:
        raise ValueError(f"ms_ssim: shapes differ {tuple(x.shape)} vs {tuple(y.shape)}")
    n = ms_ssim_scales(x.shape[2], x.shape[3])
    if n == 0:
        raise ValueError(f"ms_ssim: image {x.shape[3]}x{x.shape[2]} is smaller than the {_WINDOW}x{_WINDOW} window")
    weights = torch.tensor(_MS_SSIM_WEIGHTS[:n], dtype=torch.float64)
    weights = weights / weights.sum()
    w = _window(torch.float64)
    value = torch.ones(x.shape[1], dtype=torch.float64)
    for j in range(n):
        s, cs = _ssim_and_cs(x, y, w)
        term = s if j == n - 1 else cs
        value = value * term.clamp_min(0.0) ** weights[j]
        if j < n - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return float(value.mean())


def flip(decoded, target, ppd: float = 67.0) -> float:
    """Mean LDR-FLIP error (NVIDIA, flip-evaluator) of a colour image against its reference.

    Both [H, W, 3] (or [H, W, 1], shown as grey) sRGB-encoded values in [0, 1]; 0 means
    identical, 1 the largest difference. ``ppd``: pixels per degree of visual angle (FLIP's
    default, a 0.7 m view of a 24" 4K monitor).
    """
    import flip_evaluator

    def rgb(x):
        x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float32)
        if x.ndim == 2:
            x = x[..., None]
        if x.shape[2] == 1:
            x = np.repeat(x, 3, axis=2)
        if x.shape[2] != 3:
            raise ValueError(f"flip: expected 1 or 3 channels, got {x.shape[2]}")
        return np.ascontiguousarray(np.clip(x, 0.0, 1.0))

    test, ref = rgb(decoded), rgb(target)
    if test.shape != ref.shape:
        raise ValueError(f"flip: shapes differ {test.shape} vs {ref.shape}")
    _, mean_error, _ = flip_evaluator.evaluate(
        ref, test, "LDR", inputsRGB=True, applyMagma=False, computeMeanError=True, parameters={"ppd": float(ppd)}
    )
    return float(mean_error)


def normal_angular_error(decoded, target) -> float:
    """Mean angle in degrees between two normal maps stored as [H, W, 3] in [0, 1].

    Each texel is decoded to [-1, 1] and both vectors are normalised, so a map whose
    vectors are not unit length (or a shortened, filtered one) is judged by direction only.
    atan2(|a x b|, a . b) keeps small angles accurate where acos loses them to rounding.
    A zero vector has no direction and counts as 0 degrees.
    """
    a = np.asarray(decoded, dtype=np.float64) * 2.0 - 1.0
    b = np.asarray(target, dtype=np.float64) * 2.0 - 1.0
    if a.shape != b.shape or a.shape[-1] != 3:
        raise ValueError(f"normal_angular_error: expected two [..., 3] arrays, got {a.shape} and {b.shape}")
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    cross = np.linalg.norm(np.cross(a, b), axis=-1)
    dot = np.sum(a * b, axis=-1)
    return float(np.degrees(np.arctan2(cross, dot)).mean())


def _as_encoded_normals(d, t, value_range, idx):
    """Normals in the [0, 1] encoding normal_angular_error takes, from the values as loaded (real =
    lo + v (hi - lo)): 8/16-bit maps hold that encoding; a float map with negative values holds the
    vectors themselves, encoded here as (n + 1) / 2."""
    if value_range is None:
        return d, t
    vr = np.asarray(value_range, dtype=np.float64).reshape(-1, 2)[idx]
    if np.all(vr == (0.0, 1.0)):
        return d, t
    lo, span = vr[:, 0], vr[:, 1] - vr[:, 0]
    real = [lo + np.asarray(x, dtype=np.float64) * span for x in (d, t)]
    return tuple((r + 1.0) / 2.0 for r in real) if (lo < 0).any() else tuple(real)


def report_metrics(decoded: np.ndarray, target: np.ndarray, groups: dict[str, list[int]], value_range=None) -> dict:
    """:func:`group_metrics` plus the report's extras: 'ms_ssim' for every group (when the
    image holds at least one window), 'flip' for a 3-channel 'basecolor' and
    'angular_error_deg' for a 3-channel 'normal'."""
    out = group_metrics(decoded, target, groups, value_range)
    fits = ms_ssim_scales(target.shape[0], target.shape[1]) > 0
    for name, idx in list(groups.items()) + [("all", list(range(target.shape[2])))]:
        if name not in out:
            continue
        d, t = decoded[..., idx], target[..., idx]
        if fits:
            out[name]["ms_ssim"] = ms_ssim(d, t)
        if name == "basecolor" and len(idx) == 3:
            out[name]["flip"] = flip(d, t)
        if name == "normal" and len(idx) == 3:
            out[name]["angular_error_deg"] = normal_angular_error(*_as_encoded_normals(d, t, value_range, idx))
    return out
