"""The training loop: init at N/2, Adam, grow by N/8 every 500 steps where the error is, then
move the weakest Gaussians into any tile left without one (coverage.py).

The fit runs on the renderer's device (`renderer.device`, the CPU when it has none): targets,
parameters, optimiser state, loss and error maps stay there, so a GPU step reads back only the
loss value (and the PSNR on logged steps). The random draws run on the host with the fit's CPU
generator (init.py), so a seed means the same on every device; the result comes back on the CPU.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import IgsError
from ..metrics import psnr
from ..render import GaussianParams, get_renderer
from .coverage import coverage, holes, weakest
from .init import initial_positions, new_gaussians, sample_texels
from .losses import make_loss
from .optim import RowAdam
from .settings import FitSettings


@dataclass
class FitResult:
    params: GaussianParams  # float32, detached, in contract units (pixels, radians, 1/px)
    psnr_history: dict[int, float]  # PSNR (float32 params, before quantisation) at settings.history_steps
    final_loss: float
    seconds: float
    backend: str
    log: list[tuple[int, float, float]] = field(default_factory=list)  # (step, loss, psnr)


def fit_stack(target_np: np.ndarray, settings: FitSettings, progress: bool = True) -> FitResult:
    """Fit settings.gaussians Gaussians to target [H, W, C] (float32 in [0, 1])."""
    # CPU scatter-adds (the backward of gathers) otherwise sum in thread-dependent order, and a
    # 1e-10 difference grows into different bytes after a few hundred Adam steps.
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    # The heavy kernels (native render, SSIM) run their own OpenMP threads; torch's pool on top
    # only spins against them on small machines (measured 2.5x slower per step on 2 cores).
    renderer = get_renderer(settings.backend)
    if getattr(renderer, "name", "") == "cuda":
        from ..render.cuda import MAX_TILE

        if settings.tile > MAX_TILE:
            # A clear error before any work, not a ValueError from the first launch.
            raise IgsError(
                f"tile size {settings.tile}: the CUDA trainer takes tiles of at most "
                f"{MAX_TILE} texels (one thread block per tile); use --tile {MAX_TILE} "
                "or less, or --device cpu"
            )
    if getattr(renderer, "name", "") == "native":
        torch.set_num_threads(1)
    try:
        return _fit(target_np, settings, renderer, progress)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(threads)


class Progress:
    """A fit's progress on stderr. On a terminal, a tqdm bar redrawn in place; anywhere else (a
    log file, a pipe, CI) a redrawn bar would leave every redraw in the log, so instead one plain
    line at each quarter of the steps: "fit: 250/1000 steps (25%), loss 0.0321, 4.2 s"."""

    LINES = 4

    def __init__(self, total: int, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.total = total
        self.t0 = time.perf_counter()
        self.printed = 0  # quarters reported so far (plain lines)
        self.bar = None
        if _isatty(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="fit", unit="step", dynamic_ncols=True, leave=False, file=self.stream)

    def set_postfix(self, **values) -> None:
        if self.bar is not None:
            self.bar.set_postfix(**values)

    def update(self, step: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            return
        reached = step * self.LINES // self.total
        if reached > self.printed:
            self.printed = reached
            print(
                f"fit: {step}/{self.total} steps ({100 * step // self.total}%), loss {loss:.4f}, "
                f"{time.perf_counter() - self.t0:.1f} s",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class _Level:
    """One training resolution: the target, its loss, and how its pixels relate to the base's.

    Coarse-to-fine fitting (beyond the paper) spends the first steps on a half-size target,
    where a step costs a quarter: Gaussians find their places and colours cheaply, and the
    full-size steps only refine. Means are optimised in normalised [0, 1] coordinates, so they
    carry over unchanged; inverse scales are in 1/pixel of the level and are divided by the size
    ratio at the switch.
    """

    def __init__(
        self, target: torch.Tensor, factor: float, settings: FitSettings, use_native: bool, device: torch.device
    ):
        self.target_cpu = target  # new Gaussians are sampled and coloured on the host
        self.target = target.to(device)
        self.device = device
        self.h, self.w = target.shape[:2]
        self.factor = factor  # base pixels per level pixel
        self.wh = torch.tensor([float(self.w), float(self.h)], device=device)
        self.loss = make_loss(
            self.target, settings.ssim_weight, settings.channel_weights, use_native, settings.pixel_loss
        )
        # Largest radius (3 s) the whole image, smallest s a quarter texel: keeps tile lists
        # bounded. The cap on s is in base pixels.
        self.a_min, self.a_max = 3.0 / max(self.w, self.h), 4.0
        if settings.max_scale_px is not None:
            self.a_min = max(self.a_min, factor / settings.max_scale_px)


def _coarse_target(target: torch.Tensor, min_side: int) -> tuple[torch.Tensor, float] | None:
    h, w = target.shape[:2]
    if min(h, w) < 2 * min_side:
        return None
    h2, w2 = h // 2, w // 2
    # 'area' averages the texels each coarse texel covers, so the coarse grid spans exactly the
    # base image (odd sizes included) and normalised coordinates mean the same on both.
    small = torch.nn.functional.interpolate(target.permute(2, 0, 1)[None], size=(h2, w2), mode="area")
    return small[0].permute(1, 2, 0).contiguous(), 0.5 * (w / w2 + h / h2)


def _gaussians_at(level: _Level, texels: torch.Tensor, init_scale: float) -> list[torch.Tensor]:
    """New Gaussians on these texels (flat indices at the level) in the optimiser's units:
    normalised means, inverse scales in 1/level-pixel, on the level's device. Init, growth and
    the hole repair share it."""
    made = new_gaussians(level.target_cpu, texels.cpu(), init_scale / level.factor)
    means, theta, inv_scale, colour = (t.to(level.device) for t in made)
    return [means / level.wh, theta, inv_scale, colour]


def _repair_holes(
    renderer, opt: RowAdam, level: _Level, settings: FitSettings, err: torch.Tensor, init_scale: float
) -> None:
    """Move the weakest Gaussians into tiles no Gaussian reaches (fit/coverage.py)."""
    mean_n, th, inv, col = opt.tensors
    params = GaussianParams(mean_n.detach() * level.wh, th.detach(), inv.detach(), col.detach())
    texel_cover, weight = coverage(renderer, params, level.h, level.w, settings.tile, settings.k, settings.eps)
    spots = holes(texel_cover, err, settings.tile)
    if spots.numel() == 0:
        return
    rows = weakest(weight, spots.numel())
    opt.replace_rows(rows, _gaussians_at(level, spots[: rows.numel()], init_scale))


def _fit(target_np: np.ndarray, settings: FitSettings, renderer, progress: bool) -> FitResult:
    h, w, c = target_np.shape
    settings.validate(c)
    device = torch.device(getattr(renderer, "device", None) or "cpu")
    # The loss follows the renderer: the torch backend stays pure PyTorch end to end. The fused
    # C++ loss reads host memory, so a fit on another device takes the torch loss there.
    use_native = getattr(renderer, "name", "") == "native" and device.type == "cpu"
    gen = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    target = torch.from_numpy(np.ascontiguousarray(target_np, dtype=np.float32))
    base = _Level(target, 1.0, settings, use_native, device)
    coarse_steps = min(int(settings.steps * settings.coarse_fraction), settings.coarse_max_steps)
    # Downsampled on the host: CPU and GPU fits start from the same coarse target.
    coarse = _coarse_target(target, settings.coarse_min_side) if coarse_steps > 0 else None
    level = base if coarse is None else _Level(coarse[0], coarse[1], settings, use_native, device)
    if coarse is None:
        coarse_steps = 0

    n_total = settings.gaussians
    init_scale = settings.initial_scale(h, w)
    n0 = max(1, int(math.ceil(n_total * settings.init_fraction)))
    first = _gaussians_at(level, initial_positions(level.target_cpu, n0, settings.grad_mix, gen), init_scale)
    leaves = [t.clone().requires_grad_(True) for t in first]
    opt = RowAdam(leaves, [settings.lr_mean, settings.lr_theta, settings.lr_inv_scale, settings.lr_colour])
    grow_n = max(1, int(math.ceil(n_total * settings.grow_fraction)))

    def base_params() -> GaussianParams:
        mean_n, th, inv, col = (t.detach() for t in opt.tensors)
        return GaussianParams(mean_n * base.wh, th, inv / level.factor, col)

    bar = Progress(settings.steps) if progress else None
    history: dict[int, float] = {}
    log = []
    t0 = time.perf_counter()
    loss_v = float("nan")
    best_loss, best = math.inf, None
    for step in range(1, settings.steps + 1):
        if level is not base and step > coarse_steps:
            with torch.no_grad():
                opt.tensors[2].div_(level.factor)
            level = base
        mean_n, th, inv, col = opt.tensors
        params = GaussianParams(mean_n * level.wh, th, inv, col)
        out = renderer.render(params, level.h, level.w, settings.tile, settings.k, settings.eps)
        loss = level.loss(out)
        opt.zero_grad()
        loss.backward()
        loss_v = float(loss.detach())
        # The parameters that rendered the lowest loss at full size and full count are what the
        # fit returns, not simply the last ones: a Gaussian that drifts past the 3-sigma tile
        # test can leave a tile with an empty list, whose texels then render 0 (measured:
        # walnut_wood at 0.03 bppc lost 1.05 dB PSNR in the very last of 1000 steps, the loss up
        # 0.6%, recovered two steps later). A copy of the parameters is a few KiB.
        if level is base and opt.tensors[0].shape[0] == n_total and loss_v < best_loss:
            best_loss = loss_v
            best = [t.detach().clone() for t in opt.tensors]
        opt.step()
        with torch.no_grad():
            mean_n.clamp_(0.0, 1.0)
            th.remainder_(math.pi)
            inv.clamp_(level.a_min, level.a_max)
        if step in settings.history_steps or step % settings.log_every == 0 or step == settings.steps:
            p = psnr(out.detach(), level.target)
            if step in settings.history_steps:
                # History is always measured at full size, also during the coarse steps.
                if level is not base:
                    with torch.no_grad():
                        full = renderer.render(base_params(), h, w, settings.tile, settings.k, settings.eps)
                    history[step] = psnr(full, base.target)
                else:
                    history[step] = p
            log.append((step, loss_v, p))
            if bar is not None:
                bar.set_postfix(loss=f"{loss_v:.4f}", psnr=f"{p:.2f}dB", n=mean_n.shape[0], size=f"{level.w}x{level.h}")
        if bar is not None:
            bar.update(step, loss_v)
        count = opt.tensors[0].shape[0]
        if step % settings.grow_every == 0 and step < settings.steps:
            err = (out.detach() - level.target).abs().sum(dim=2)
            if count < n_total:
                add = min(grow_n, n_total - count)
                opt.append_rows(_gaussians_at(level, sample_texels(err, add, gen), init_scale))
            elif settings.repair_holes:
                _repair_holes(renderer, opt, level, settings, err, init_scale)
    if bar is not None:
        bar.close()
    if best is not None:
        opt.tensors = best
        level = base
    final = base_params()
    # Callers quantise and write files on the host.
    final = GaussianParams(
        *(t.to("cpu").contiguous() for t in (final.means, final.theta, final.inv_scale, final.colour))
    )
    return FitResult(final, history, loss_v, time.perf_counter() - t0, getattr(renderer, "name", "?"), log)
