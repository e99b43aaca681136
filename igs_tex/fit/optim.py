"""Adam with a step counter per Gaussian.

Gaussians added by growth start with empty moments; with a shared step counter their first
bias-corrected updates would be about 3x the learning rate. Counting steps per row gives every
Gaussian the textbook Adam warm-up, whenever it was born.

All state lives on the device of the parameters; rows and values given from elsewhere (the
host, where growth samples) are moved there.
"""

from __future__ import annotations

import torch


class RowAdam:
    def __init__(self, tensors: list[torch.Tensor], lrs: list[float], betas=(0.9, 0.999), eps=1e-8):
        self.tensors = tensors
        self.lrs = lrs
        self.b1, self.b2 = betas
        self.eps = eps
        self.m = [torch.zeros_like(t) for t in tensors]
        self.v = [torch.zeros_like(t) for t in tensors]
        self.t = torch.zeros(tensors[0].shape[0], dtype=torch.float64, device=tensors[0].device)

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        c1 = (1 - self.b1**self.t).to(self.tensors[0].dtype)
        c2 = (1 - self.b2**self.t).to(self.tensors[0].dtype)
        for p, m, v, lr in zip(self.tensors, self.m, self.v, self.lrs):
            if p.grad is None:
                continue
            g = p.grad
            m.mul_(self.b1).add_(g, alpha=1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            shape = (-1,) + (1,) * (p.dim() - 1)
            p.sub_(lr * (m / c1.view(shape)) / ((v / c2.view(shape)).sqrt() + self.eps))

    def zero_grad(self) -> None:
        for p in self.tensors:
            p.grad = None

    @torch.no_grad()
    def replace_rows(self, rows: torch.Tensor, values: list[torch.Tensor]) -> None:
        """Re-initialise the given rows in place (fresh moments, step 0)."""
        rows = rows.to(self.t.device)
        for i, (p, v) in enumerate(zip(self.tensors, values)):
            p[rows] = v.to(device=p.device, dtype=p.dtype)
            self.m[i][rows] = 0
            self.v[i][rows] = 0
        self.t[rows] = 0

    @torch.no_grad()
    def append_rows(self, new_rows: list[torch.Tensor]) -> list[torch.Tensor]:
        """Grow every tensor by new rows (fresh moments, step 0); returns the new leaf tensors."""
        grown = []
        for i, (p, rows) in enumerate(zip(self.tensors, new_rows)):
            rows = rows.to(device=p.device, dtype=p.dtype)
            q = torch.cat([p.detach(), rows]).requires_grad_(True)
            self.m[i] = torch.cat([self.m[i], torch.zeros_like(rows)])
            self.v[i] = torch.cat([self.v[i], torch.zeros_like(rows)])
            grown.append(q)
        self.t = torch.cat([self.t, self.t.new_zeros(new_rows[0].shape[0])])
        self.tensors = grown
        return grown
