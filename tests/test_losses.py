"""The native training loss (L1 + SSIM, fused in C++) against the PyTorch definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import MATERIALS

from igs_tex import _native
from igs_tex.fit.losses import NativeLoss, fit_loss, make_loss
from igs_tex.material import load_material
from igs_tex.metrics import ssim_map
from igs_tex.render.native import native_available

pytestmark = pytest.mark.skipif(not native_available(), reason="igs_tex._native is not built")


def _pair(shape, seed):
    g = torch.Generator().manual_seed(seed)
    target = load_material(MATERIALS / "walnut_wood").data[: shape[0], 100 : 100 + shape[1], : shape[2]]
    target = torch.from_numpy(np.ascontiguousarray(target))
    noisy = (target + 0.1 * torch.randn(shape, generator=g)).clamp(0, 1)
    return target, noisy, g


@pytest.mark.parametrize("shape", [(11, 11, 1), (37, 50, 3), (64, 48, 8), (300, 21, 2)])
def test_native_ssim_value_and_gradient(shape):
    target, noisy, g = _pair(shape, sum(shape))
    w = torch.rand(shape[2], generator=g, dtype=torch.float64) - 0.3

    a = noisy.double().requires_grad_(True)
    ref = ssim_map(a, target.double()).mean(dim=(1, 2))
    (ref * w).sum().backward()

    s, grad = _native.ssim(noisy.numpy(), target.numpy(), True)
    got_grad = (torch.from_numpy(grad).double() * w).numpy()
    np.testing.assert_allclose(s, ref.detach().numpy(), atol=1e-5)  # float32 maps vs float64
    np.testing.assert_allclose(got_grad, a.grad.numpy(), atol=1e-7 + 1e-4 * a.grad.abs().max().item())
    assert ref.min() < 0.95  # the noise is visible to SSIM, so the check has teeth


@pytest.mark.parametrize("pixel_loss", ["l1", "l2"])
@pytest.mark.parametrize("weights", [None, [1.0, 0.0, 3.0]])
@pytest.mark.parametrize("ssim_weight", [0.0, 0.1, 1.0])
def test_fused_loss_matches_torch_definition(weights, ssim_weight, pixel_loss):
    shape = (45, 70, 3)
    target, noisy, _ = _pair(shape, 7)
    noisy[3:9, 5:20] = target[3:9, 5:20]  # exact matches: the L1 subgradient there is 0 in both

    a = noisy.double().requires_grad_(True)
    cw = None if weights is None else torch.tensor(weights, dtype=torch.float64)
    ref = fit_loss(a, target.double(), ssim_weight, cw, pixel_loss)
    ref.backward()

    loss = make_loss(target, ssim_weight, weights, use_native=True, pixel_loss=pixel_loss)
    assert isinstance(loss, NativeLoss)
    b = noisy.clone().requires_grad_(True)
    got = loss(b)
    (2.0 * got).backward()  # the upstream gradient is applied
    assert abs(float(got.detach()) - float(ref.detach())) < 1e-6
    np.testing.assert_allclose(b.grad.numpy(), 2.0 * a.grad.numpy(), atol=1e-9 + 1e-4 * a.grad.abs().max().item())


def test_fused_loss_is_deterministic_across_thread_counts():
    target, noisy, _ = _pair((70, 90, 8), 3)
    loss = NativeLoss(target, 0.1)
    before = _native.num_threads()
    try:
        outs = []
        for threads in (1, 2, 3):
            _native.set_num_threads(threads)
            l1, l2, s, g = loss.terms(noisy, want_grad=True)
            outs.append((l1.tobytes(), l2.tobytes(), s.tobytes(), g.tobytes()))
    finally:
        _native.set_num_threads(before)
    assert outs[0] == outs[1] == outs[2]


def test_loss_target_rejects_bad_shapes():
    with pytest.raises(ValueError, match="at least 11x11"):
        _native.LossTarget(np.zeros((10, 40, 3), np.float32))
    t = _native.LossTarget(np.zeros((20, 30, 2), np.float32))
    assert t.shape == (20, 30, 2)
    with pytest.raises(ValueError, match="x: expected shape"):
        ones = np.ones(2, np.float32)
        _native.loss_terms(t, np.zeros((20, 30, 3), np.float32), ones, ones, ones)
