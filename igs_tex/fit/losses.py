"""Training loss: L1 + 0.1 (1 - SSIM) over all channels (paper), optional per-channel weights
and an L2 pixel term in place of L1.

make_loss() prepares the loss once per fit. With the native backend the whole loss (L1, SSIM,
their weighted gradient) is one C++ pass (native/cpu/ssim.h) against target statistics computed
once: in PyTorch the loss and its autograd took about ten times longer than rendering on a
2-core CPU. The torch path stays plain PyTorch end to end and is the definition tests hold the
native one to, and runs on whatever device the target is on.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..metrics import SsimAgainst


def _channel_weights(channels: int, channel_weights) -> np.ndarray:
    if channel_weights is None:
        return np.full(channels, 1.0 / channels)
    w = np.asarray(channel_weights, dtype=np.float64)
    return w / w.sum()


class _FusedLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, render, loss):
        value, grad = loss.evaluate(render)
        ctx.save_for_backward(grad)
        return torch.tensor(value, dtype=torch.float32)

    @staticmethod
    def backward(ctx, grad_value):
        (g,) = ctx.saved_tensors
        # The training loop calls backward() on the loss itself (upstream gradient exactly 1):
        # hand the buffer on instead of copying 32 MB per step at 1024^2 x 8.
        if float(grad_value) == 1.0:
            return g, None
        return g * grad_value.to(g.dtype), None


class NativeLoss:
    """sum_c w_c (L1_c + ssim_weight (1 - SSIM_c)) with sum w_c = 1, through _native.loss_terms.

    Holds one gradient buffer that every call overwrites: the tensor a call returns must be used
    (backward()) before the next call, as the training loop does.
    """

    def __init__(self, target: torch.Tensor, ssim_weight: float, channel_weights=None, pixel_loss: str = "l1"):
        from .. import _native

        self._native = _native
        h, w, c = target.shape
        self.target = _native.LossTarget(np.ascontiguousarray(target.detach().numpy(), dtype=np.float32))
        self.weights = _channel_weights(c, channel_weights)
        self.ssim_weight = float(ssim_weight)
        self.pixel_loss = pixel_loss
        pixel_scale = (self.weights / (h * w)).astype(np.float32)
        zero = np.zeros(c, dtype=np.float32)
        self.l1_scale = pixel_scale if pixel_loss == "l1" else zero
        self.l2_scale = pixel_scale if pixel_loss == "l2" else zero
        self.ssim_scale = (-self.ssim_weight * self.weights).astype(np.float32)
        self._grad = np.empty((h, w, c), dtype=np.float32)

    def terms(self, render: torch.Tensor, want_grad: bool = False):
        x = np.ascontiguousarray(render.detach().numpy(), dtype=np.float32)
        return self._native.loss_terms(
            self.target, x, self.l1_scale, self.l2_scale, self.ssim_scale, want_grad, self._grad if want_grad else None
        )

    def evaluate(self, render: torch.Tensor) -> tuple[float, torch.Tensor]:
        l1, l2, s, g = self.terms(render, want_grad=True)
        pixel = l1 if self.pixel_loss == "l1" else l2
        value = float((self.weights * (pixel + self.ssim_weight * (1.0 - s))).sum())
        return value, torch.from_numpy(g)

    def __call__(self, render: torch.Tensor) -> torch.Tensor:
        return _FusedLoss.apply(render, self)


def channel_ssim(render: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean SSIM per channel [C], differentiable with respect to render (PyTorch, any device)."""
    return SsimAgainst(target).map(render).mean(dim=(1, 2))


def _torch_loss(
    render: torch.Tensor,
    target: torch.Tensor,
    ssim: SsimAgainst,
    ssim_weight: float,
    channel_weights: torch.Tensor | None,
    pixel_loss: str,
) -> torch.Tensor:
    d = render - target
    pixel = (d.abs() if pixel_loss == "l1" else d * d).mean(dim=(0, 1))  # [C]
    dssim = 1.0 - ssim.map(render).mean(dim=(1, 2))  # [C]
    per_channel = pixel + ssim_weight * dssim
    if channel_weights is None:
        return per_channel.mean()
    return (per_channel * channel_weights).sum() / channel_weights.sum()


def fit_loss(
    render: torch.Tensor,
    target: torch.Tensor,
    ssim_weight: float,
    channel_weights: torch.Tensor | None,
    pixel_loss: str = "l1",
) -> torch.Tensor:
    """The loss in plain PyTorch (the torch backend, and the reference for NativeLoss)."""
    return _torch_loss(render, target, SsimAgainst(target), ssim_weight, channel_weights, pixel_loss)


def make_loss(
    target: torch.Tensor, ssim_weight: float, channel_weights=None, use_native: bool = False, pixel_loss: str = "l1"
) -> Callable[[torch.Tensor], torch.Tensor]:
    """render [H, W, C] -> scalar loss tensor, prepared once for this target.

    pixel_loss: "l1" (paper) or "l2" (mean squared error, the quantity PSNR measures).
    """
    if pixel_loss not in ("l1", "l2"):
        raise ValueError(f"pixel_loss must be 'l1' or 'l2', got {pixel_loss!r}")
    if use_native and min(target.shape[:2]) >= 11:
        return NativeLoss(target, ssim_weight, channel_weights, pixel_loss)
    # The torch path runs on the target's device (a GPU fit keeps its loss there).
    cw = None if channel_weights is None else torch.tensor(channel_weights, dtype=target.dtype, device=target.device)
    ssim = SsimAgainst(target)
    return lambda render: _torch_loss(render, target, ssim, ssim_weight, cw, pixel_loss)
