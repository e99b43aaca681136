"""The torch reference renderer against the golden renders, a naive loop, and autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import GOLDEN
from naive_render import naive_render

from igs_tex.render import GaussianParams
from igs_tex.render.tiles import tile_lists_numpy
from igs_tex.render.torch_ref import TorchRenderer

CASES = sorted(GOLDEN.glob("case_*.npz"))


def _params(d, dtype=torch.float32, grad=False):
    p = GaussianParams(
        *(torch.tensor(np.asarray(d[n]), dtype=dtype) for n in ("means", "theta", "inv_scale", "colour"))
    )
    if grad:
        for t in (p.means, p.theta, p.inv_scale, p.colour):
            t.requires_grad_(True)
    return p


def test_golden_cases_present():
    assert len(CASES) >= 4


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_golden_forward(case):
    d = np.load(case)
    h, w = int(d["height"]), int(d["width"])
    out = TorchRenderer().render(_params(d), h, w, int(d["tile"]), int(d["k"]), float(d["eps"]))
    assert out.shape == d["expected"].shape
    np.testing.assert_allclose(out.numpy(), d["expected"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_golden_tile_lists(case):
    d = np.load(case)
    off, idx = tile_lists_numpy(d["means"], d["inv_scale"], int(d["height"]), int(d["width"]), int(d["tile"]))
    np.testing.assert_array_equal(off, d["tile_offsets"])
    np.testing.assert_array_equal(idx, d["tile_indices"])


def _random_case(rng, n, c, h, w, spread=1.2):
    means = rng.uniform(-0.1, spread, size=(n, 2)) * [w, h]
    theta = rng.uniform(0, np.pi, size=n)
    inv = 1.0 / rng.uniform(0.7, 9.0, size=(n, 2))
    col = rng.uniform(-0.1, 1.1, size=(n, c))
    return {"means": means, "theta": theta, "inv_scale": inv, "colour": col}


@pytest.mark.parametrize(
    "c,k,tile,h,w", [(1, 1, 16, 21, 35), (3, 3, 8, 30, 17), (9, 10, 16, 33, 40), (4, 10, 5, 12, 13)]
)
def test_matches_naive_loop(rng, c, k, tile, h, w):
    d = _random_case(rng, 40, c, h, w)
    expected = naive_render(**d, height=h, width=w, tile=tile, k=k)
    out = TorchRenderer().render(_params(d), h, w, tile, k)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5, rtol=0)


def test_empty_tiles_render_zero():
    d = {
        "means": np.array([[3.0, 3.0]]),
        "theta": np.array([0.0]),
        "inv_scale": np.array([[1.0, 1.0]]),
        "colour": np.array([[0.5, 0.25]]),
    }
    out = TorchRenderer().render(_params(d), 40, 40, 16, 10).numpy()
    assert out[3, 3, 0] == pytest.approx(0.5, abs=1e-6)
    assert np.all(out[32:, 32:] == 0)


def test_gradcheck_float64(rng):
    d = _random_case(rng, 7, 2, 9, 11, spread=1.0)
    p = _params(d, torch.float64, grad=True)
    r = TorchRenderer()

    def f(m, t, a, c):
        return r.render(GaussianParams(m, t, a, c), 9, 11, tile=4, k=3)

    assert torch.autograd.gradcheck(f, (p.means, p.theta, p.inv_scale, p.colour), eps=1e-6, atol=1e-6)


def test_gradients_reach_every_field(rng):
    d = _random_case(rng, 30, 3, 32, 32, spread=1.0)
    p = _params(d, grad=True)
    TorchRenderer().render(p, 32, 32).square().sum().backward()
    for t in (p.means, p.theta, p.inv_scale, p.colour):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
