"""Random scenes shared by the CPU and GPU test suites. No Pillow and no pytest fixtures here:
tests/gpu/run_device_checks.sh runs tests/gpu without tests/conftest.py (--noconftest), on
machines that may lack Pillow."""

from __future__ import annotations


def params_on_texels(target, n, seed):
    """n random Gaussians over target [H, W, C] (means uniform, colour = the texel under the
    mean, theta uniform, s in 2..6 px), rounded to float32 and held in float64: the same scene
    for the native and CUDA tests against the float64 reference."""
    import torch

    from igs_tex.render.params import GaussianParams

    H, W, _ = target.shape
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 2, generator=g, dtype=torch.float64) * torch.tensor([W, H], dtype=torch.float64)
    xi = means[:, 0].long().clamp(0, W - 1)
    yi = means[:, 1].long().clamp(0, H - 1)
    colour = torch.from_numpy(target).double()[yi, xi]
    theta = torch.rand(n, generator=g, dtype=torch.float64) * torch.pi
    inv = 1.0 / (2.0 + 4.0 * torch.rand(n, 2, generator=g, dtype=torch.float64))
    return GaussianParams(means, theta, inv, colour).to(torch.float32).to(torch.float64)
