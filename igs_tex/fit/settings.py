"""Fitting settings (DESIGN.md "Fitting": the paper's defaults) and the budget -> count rule."""
from __future__ import annotations

from dataclasses import dataclass, field

from .. import IgsError

# Measured on walnut_wood 512 px at 0.059 bppc: 600 steps reach 35.68 dB against 35.75 dB at
# 2000, so 1000 keeps the fit within a few hundredths of a dB for half the time.
DEFAULT_STEPS = 1000

# 16 bits for each of mean x, mean y, theta, inverse scale x, y, and one per channel.
GEOMETRY_VALUES = 5


def bits_per_gaussian(channels: int) -> int:
    return 16 * (GEOMETRY_VALUES + channels)


def gaussians_for_budget(width: int, height: int, channels: int, *, bppc: float | None = None,
                         kib: float | None = None, gaussians: int | None = None) -> int:
    """Gaussian count for exactly one of: bits per pixel per channel, file KiB, or a count.

    bppc counts only the stored Gaussian parameters (DESIGN.md "Bitrate"); --kib does too, so the
    tile index and header come on top (inspect reports both).
    """
    given = [v is not None for v in (bppc, kib, gaussians)]
    if sum(given) != 1:
        raise IgsError("give exactly one budget: --bppc, --kib or --gaussians")
    if gaussians is not None:
        n = int(gaussians)
    elif bppc is not None:
        if not bppc > 0:
            raise IgsError(f"--bppc must be > 0, got {bppc}")
        n = int(bppc * width * height * channels // bits_per_gaussian(channels))
    else:
        if not kib > 0:
            raise IgsError(f"--kib must be > 0, got {kib}")
        n = int(kib * 1024 * 8 // bits_per_gaussian(channels))
    if n < 16:
        raise IgsError(f"budget gives {n} Gaussians for {width}x{height}x{channels}; need at least 16")
    if n > 4_000_000:
        raise IgsError(f"budget gives {n} Gaussians; the format and the renderers stop at 4,000,000")
    return n


# Tile size (texels per side) by how sparse the Gaussians are. The tile index lists every
# Gaussian in every tile its 3-sigma circle meets, so where Gaussians are large next to a
# 16-texel tile, most of the file is index: walnut_wood 512 px at 0.03 bppc stores 0.030 bppc
# of parameters in a 0.118 bppc file. Larger tiles list each Gaussian fewer times and also cut
# fewer of the blend's seams (a texel only sees its own tile's Gaussians). Measured (512 px,
# 1000 steps, trained and shipped at that T; PSNR all, file bppc, mean list length):
#   pipes_trak 0.03  T=16 21.46 dB 0.118 6.1   T=32 21.87 dB 0.063 8.9    T=64 22.12 dB 0.045 15.6
#   pipes_trak 0.12  T=16 27.99 dB 0.314 15.5  T=32 28.15 dB 0.198 23.3   T=64 28.43 dB 0.163 44.6
#   pipes_trak 0.25  T=16 31.66 dB 0.536 23.2  T=32 32.00 dB 0.379 38.5   T=64 32.16 dB 0.328 81.3
#   walnut_wood 0.03 T=16 35.41 dB 0.115 -     T=32 35.50 dB 0.061 -
#   walnut_wood 0.25 T=16 36.38 dB 0.523 30.4  T=32 36.40 dB 0.373 50.4   T=64 36.41 dB 0.319 98.1
#   rock_cliff 0.06  T=16 16.35 dB 0.200 -     T=32 16.42 dB 0.112 -
# The list length is the per-texel work of every decoder and of training (+20% step time at
# T=32), so 32 is used only where Gaussians are sparse (mean spacing sqrt(HW/N) >= 12 texels);
# there its lists stay as short as 16's are at 0.25 bppc. Training at 16 and shipping at 32 kept
# the smaller file but only a quarter of the PSNR gain (pipes_trak 0.03: 21.56 dB).
SPARSE_SPACING_PX = 12.0


def auto_tile(width: int, height: int, gaussians: int) -> int:
    """The default tile size T for this many Gaussians on this image (see SPARSE_SPACING_PX)."""
    spacing = (width * height / max(1, gaussians)) ** 0.5
    return 32 if spacing >= SPARSE_SPACING_PX else 16


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
    init_fraction: float = 0.5       # start with N/2 Gaussians
    grow_fraction: float = 0.125     # add N/8 ...
    grow_every: int = 500            # ... every 500 steps until N is reached
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
    grad_mix: float = 0.3            # lambda of the gradient-magnitude init
    # Beyond the paper: at each growth interval after growth, every tile with texels no Gaussian
    # reaches (the contract renders them 0) gets the weakest Gaussian moved in (fit/coverage.py).
    # Measured on pipes_trak 512 px at 0.03 bppc: 20.83 -> 21.46 dB, four black tiles -> none;
    # fits without holes are unchanged.
    repair_holes: bool = True
    ssim_weight: float = 0.1
    pixel_loss: str = "l1"           # "l1" (paper) or "l2"
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
        if not 1 <= self.k <= 32:
            raise IgsError(f"k must be in 1..32, got {self.k}")
        if not 1 <= self.tile <= 256:
            raise IgsError(f"tile must be in 1..256, got {self.tile}")
        if not 0.0 <= self.coarse_fraction < 1.0:
            raise IgsError(f"coarse_fraction must be in [0, 1), got {self.coarse_fraction}")
        if self.channel_weights is not None and len(self.channel_weights) != channels:
            raise IgsError(f"channel_weights has {len(self.channel_weights)} entries, material has {channels} channels")
