"""The training loop: init at N/2, Adam, grow by N/8 every 500 steps where the error is."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..render import GaussianParams, get_renderer
from ..report.metrics import psnr
from .init import initial_positions, new_gaussians, sample_texels
from .losses import fit_loss
from .optim import RowAdam
from .settings import FitSettings


@dataclass
class FitResult:
    params: GaussianParams            # float32, detached, in contract units (pixels, radians, 1/px)
    psnr_history: dict[int, float]    # PSNR (float32 params, before quantisation) at settings.history_steps
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
    if getattr(renderer, "name", "") == "native":
        torch.set_num_threads(1)
    try:
        return _fit(target_np, settings, renderer, progress)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(threads)


def _fit(target_np: np.ndarray, settings: FitSettings, renderer, progress: bool) -> FitResult:
    h, w, c = target_np.shape
    settings.validate(c)
    # The loss follows the renderer: the torch backend stays pure PyTorch end to end.
    use_native = getattr(renderer, "name", "") == "native"
    gen = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    target = torch.from_numpy(np.ascontiguousarray(target_np, dtype=np.float32))
    wh = torch.tensor([float(w), float(h)])
    cw = None if settings.channel_weights is None else torch.tensor(settings.channel_weights, dtype=torch.float32)
    # Largest radius (3 s) the whole image, smallest s a quarter texel: keeps tile lists bounded.
    a_min, a_max = 3.0 / max(w, h), 4.0
    if settings.max_scale_px is not None:
        a_min = max(a_min, 1.0 / settings.max_scale_px)

    n_total = settings.gaussians
    n0 = max(1, int(math.ceil(n_total * settings.init_fraction)))
    means, theta, inv_scale, colour = new_gaussians(
        target, initial_positions(target, n0, settings.grad_mix, gen), settings.init_scale_px)
    leaves = [t.clone().requires_grad_(True) for t in (means / wh, theta, inv_scale, colour)]
    opt = RowAdam(leaves, [settings.lr_mean, settings.lr_theta, settings.lr_inv_scale, settings.lr_colour])
    grow_n = max(1, int(math.ceil(n_total * settings.grow_fraction)))

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=settings.steps, desc="fit", unit="step", dynamic_ncols=True, leave=False)
    history: dict[int, float] = {}
    log = []
    t0 = time.perf_counter()
    loss_v = float("nan")
    for step in range(1, settings.steps + 1):
        mean_n, th, inv, col = opt.tensors
        params = GaussianParams(mean_n * wh, th, inv, col)
        out = renderer.render(params, h, w, settings.tile, settings.k, settings.eps)
        loss = fit_loss(out, target, settings.ssim_weight, cw, use_native)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            mean_n.clamp_(0.0, 1.0)
            th.remainder_(math.pi)
            inv.clamp_(a_min, a_max)
        loss_v = float(loss.detach())
        if step in settings.history_steps or step % settings.log_every == 0 or step == settings.steps:
            p = psnr(out.detach(), target)
            if step in settings.history_steps:
                history[step] = p
            log.append((step, loss_v, p))
            if bar is not None:
                bar.set_postfix(loss=f"{loss_v:.4f}", psnr=f"{p:.2f}dB", n=mean_n.shape[0])
        if bar is not None:
            bar.update(1)
        count = opt.tensors[0].shape[0]
        if step % settings.grow_every == 0 and count < n_total and step < settings.steps:
            add = min(grow_n, n_total - count)
            err = (out.detach() - target).abs().sum(dim=2)
            m, t_, a, cc = new_gaussians(target, sample_texels(err, add, gen), settings.init_scale_px)
            opt.append_rows([m / wh, t_, a, cc])
    if bar is not None:
        bar.close()
    mean_n, th, inv, col = (t.detach() for t in opt.tensors)
    final = GaussianParams((mean_n * wh).contiguous(), th.contiguous(), inv.contiguous(), col.contiguous())
    return FitResult(final, history, loss_v, time.perf_counter() - t0, getattr(renderer, "name", "?"), log)
