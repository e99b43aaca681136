"""Fitting settings (DESIGN.md "Fitting": the paper's defaults). The budget -> count rule and the
automatic tile size are igs_tex/budget.py's."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import IgsError
from ..budget import check_k, check_tile

# Measured on walnut_wood 512 px at 0.059 bppc: 600 steps reach 35.68 dB against 35.75 dB at
# 2000, so 1000 keeps the fit within a few hundredths of a dB for half the time.
DEFAULT_STEPS = 1000


@dataclass
class FitSettings:
    gaussians: int
    steps: int = DEFAULT_STEPS
    seed: int = 0
    tile: int = 16
    k: int = 10
    eps: float = 1e-7
    backend: str = "auto"
    # Adam learning rates, paper values. Means are optimised in normalised [0, 1] image units,
    # inverse scales in 1/pixels, rotation in radians.
    lr_mean: float = 5e-4
    lr_colour: float = 5e-3
    lr_inv_scale: float = 2e-3
    lr_theta: float = 2e-3
    init_fraction: float = 0.5  # start with N/2 Gaussians
    grow_fraction: float = 0.125  # add N/8 ...
    grow_every: int = 500  # ... every 500 steps until N is reached
    # Standard deviation of new Gaussians in pixels. None: the paper's 5 px, or more where the
    # budget is sparse: half the mean spacing sqrt(HW / N), capped at max_scale_px (beyond the
    # paper). At 5 px a Gaussian spaced 21 px from its neighbours leaves most texels of its tile
    # uncovered (rendered 0, no gradient) until growth reaches them. Measured at 0.059 bppc,
    # 1000 steps (PSNR of the .igs before the colour solve): rock_cliff 512 px 16.15 -> 16.24 dB,
    # walnut_wood 35.65 -> 35.68 dB (12.6 px), walnut_wood 1024 px 31.82 -> 31.84 dB after the
    # solve, step 100 at 34.8 dB instead of 21.0 (walnut); at 0.25 bppc it stays near 5 px.
    init_scale_px: float | None = None
    # Longest allowed standard deviation (pixels); None: up to a third of the image. Beyond the
    # paper: every Gaussian is listed in every tile its 3-sigma circle meets, so the longest axis
    # sets the tile-index size and the per-texel list length (decode cost). Measured on
    # walnut_wood 512 px, 594 Gaussians, 600 steps: no cap 35.68 dB with a 61.5K-entry index
    # (0.55 bppc in all); 32 px 35.66 dB, 23.5K (0.26); 16 px 35.61 dB, 12.3K (0.17);
    # 8 px 35.47 dB, 6.6K (0.13).
    max_scale_px: float | None = 16.0
    # Coarse-to-fine (beyond the paper): this fraction of the steps fits a half-size target
    # first (a quarter of the cost per step), when both sides are at least 2 * coarse_min_side.
    # Measured at 1000 steps, 0.059 bppc (PSNR of the .igs): walnut_wood 1024 px 31.714 dB
    # against 31.723 without, in 30% of the fitting time; at 512 px it cost 0.07-0.11 dB
    # (walnut_wood, rock_cliff), so it starts at 1024 px, where the time matters.
    # At most coarse_max_steps of them: past a few hundred steps the half-size fit only overfits
    # the smaller target (full-size PSNR measured falling from 30.7 dB at step 250 to 28.2 at
    # 2000 in a 5000-step run with 3750 coarse steps).
    coarse_fraction: float = 0.75
    coarse_min_side: int = 512
    coarse_max_steps: int = 750
    grad_mix: float = 0.3  # lambda of the gradient-magnitude init
    # Beyond the paper: at each growth interval after growth, every tile with texels no Gaussian
    # reaches (the contract renders them 0) gets the weakest Gaussian moved in (fit/coverage.py).
    # Measured on pipes_trak 512 px at 0.03 bppc: 20.83 -> 21.46 dB, four black tiles -> none;
    # fits without holes are unchanged.
    repair_holes: bool = True
    ssim_weight: float = 0.1
    pixel_loss: str = "l1"  # "l1" (paper) or "l2"
    channel_weights: list[float] | None = None
    log_every: int = 50
    history_steps: tuple[int, ...] = field(default=(100, 250, 500, 1000, 2000, 5000))

    def initial_scale(self, height: int, width: int) -> float:
        if self.init_scale_px is not None:
            return float(self.init_scale_px)
        s = max(5.0, 0.5 * (height * width / max(1, self.gaussians)) ** 0.5)
        return s if self.max_scale_px is None else min(s, float(self.max_scale_px))

    def validate(self, channels: int) -> None:
        if self.steps < 1:
            raise IgsError(f"--steps must be >= 1, got {self.steps}")
        check_k(self.k)
        check_tile(self.tile)
        if not 0.0 <= self.coarse_fraction < 1.0:
            raise IgsError(f"coarse_fraction must be in [0, 1), got {self.coarse_fraction}")
        if self.channel_weights is not None and len(self.channel_weights) != channels:
            raise IgsError(f"channel_weights has {len(self.channel_weights)} entries, material has {channels} channels")
