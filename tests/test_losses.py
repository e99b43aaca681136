"""The native SSIM used by the training loss against the PyTorch definition in report.metrics."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from igs_tex.fit.losses import channel_ssim
from igs_tex.material import load_material
from igs_tex.render.native import native_available
from igs_tex.report.metrics import ssim_map

from conftest import MATERIALS

pytestmark = pytest.mark.skipif(not native_available(), reason="igs_tex._native is not built")


@pytest.mark.parametrize("shape", [(11, 11, 1), (37, 50, 3), (64, 48, 8)])
def test_native_ssim_value_and_gradient(shape):
    g = torch.Generator().manual_seed(sum(shape))
    target = load_material(MATERIALS / "walnut_wood").data[:shape[0], 100:100 + shape[1], :shape[2]]
    target = torch.from_numpy(np.ascontiguousarray(target))
    noisy = (target + 0.1 * torch.randn(shape, generator=g)).clamp(0, 1)
    w = torch.rand(shape[2], generator=g, dtype=torch.float64) - 0.3

    a = noisy.double().requires_grad_(True)
    ref = ssim_map(a, target.double()).mean(dim=(1, 2))
    (ref * w).sum().backward()

    b = noisy.float().requires_grad_(True)
    got = channel_ssim(b, target.float(), use_native=True)
    (got * w.float()).sum().backward()
    np.testing.assert_allclose(got.detach().numpy(), ref.detach().numpy(), atol=1e-5)  # float32 vs float64
    np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), atol=1e-7 + 1e-4 * a.grad.abs().max().item())
    assert ref.min() < 0.95        # the noise is visible to SSIM, so the check has teeth
