"""Least-squares colours after training (fit/colour_solve.py) on real texels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import MATERIALS

from igs_tex import _native
from igs_tex.bakes.material import BakeOptions, bake_material
from igs_tex.fit import FitSettings, fit_stack
from igs_tex.fit.colour_solve import selection_matrix, solve_colours
from igs_tex.igsfile import read_igs
from igs_tex.material import load_material
from igs_tex.render.decode import decode_igs
from igs_tex.render.native import native_available
from igs_tex.render.tiles import build_tile_lists

pytestmark = pytest.mark.skipif(not native_available(), reason="igs_tex._native is not built")


@pytest.fixture(scope="module")
def fitted():
    target = np.ascontiguousarray(load_material(MATERIALS / "rock_cliff").data[200:240, 300:352])
    params = fit_stack(
        target, FitSettings(gaussians=40, steps=80, backend="native", grow_every=10), progress=False
    ).params
    m, th, a, c = (t.numpy() for t in (params.means, params.theta, params.inv_scale, params.colour))
    off, idx = build_tile_lists(params.means, params.inv_scale, 40, 52, 16)
    return target, m, th, a, c, off.numpy(), idx.numpy()


def test_selection_matrix_reproduces_the_render(fitted):
    target, m, th, a, c, off, idx = fitted
    h, w, _ = target.shape
    A = selection_matrix(m, th, a, h, w, 16, 10, 1e-7, off, idx)
    image, _ = _native.forward(m, th, a, c, h, w, 16, 10, 1e-7, off.astype(np.int64), idx.astype(np.int32))
    np.testing.assert_allclose(A @ c.astype(np.float64), image.reshape(h * w, -1), atol=2e-6)
    assert A.shape == (h * w, m.shape[0]) and A.nnz <= h * w * 10


def test_solved_colours_are_the_least_squares_optimum(fitted):
    target, m, th, a, c, off, idx = fitted
    h, w, ch = target.shape
    A = selection_matrix(m, th, a, h, w, 16, 10, 1e-7, off, idx).toarray()
    y = target.reshape(-1, ch).astype(np.float64)
    solved = solve_colours(m, th, a, c, target, 16, 10, 1e-7, off, idx).astype(np.float64)
    mse_trained = ((A @ c - y) ** 2).mean()
    mse_solved = ((A @ solved - y) ** 2).mean()
    assert mse_solved < 0.97 * mse_trained  # training (L1 + SSIM) leaves squared error on the table
    # Colours stay inside what the target and the trained colours span (the stored 16-bit range
    # must not be stretched by outliers), at little cost against the unconstrained optimum
    # (measured on this crop: 0.01085 against 0.01019, trained 0.01126).
    lo = np.minimum(y.min(axis=0), c.min(axis=0))
    hi = np.maximum(y.max(axis=0), c.max(axis=0))
    assert np.all(solved >= lo - 1e-6) and np.all(solved <= hi + 1e-6)
    used = np.abs(A).sum(axis=0) > 0
    best = np.linalg.lstsq(A[:, used], y, rcond=None)[0]
    assert mse_solved <= ((A[:, used] @ best - y) ** 2).mean() * 1.08
    # Columns no texel uses keep the trained colour (the ridge pulls towards it).
    np.testing.assert_array_equal(solved[~used], c[~used].astype(np.float32))


def test_bake_with_colour_solve_beats_bake_without(tmp_path):
    from conftest import crop_material

    src = crop_material(MATERIALS / "walnut_wood", tmp_path / "walnut", 64, 500, 300)
    with_solve = bake_material(src, tmp_path / "a", BakeOptions(gaussians=48, steps=60), progress=False)
    without = bake_material(
        src, tmp_path / "b", BakeOptions(gaussians=48, steps=60, colour_solve=False), progress=False
    )
    assert with_solve["metrics"]["all"]["psnr"] > without["metrics"]["all"]["psnr"] + 0.05
    # The stored colours are the solved ones and decode to the reported quality.
    igs = read_igs(tmp_path / "a" / "walnut.igs")
    assert abs(decode_igs(igs).shape[0] - 64) == 0
    summary = json.loads((tmp_path / "a" / "walnut.json").read_text())
    assert summary["colour_solve_seconds"] is not None and without["colour_solve_seconds"] is None
    # Geometry is untouched by the solve: same words for everything but the colours.
    other = read_igs(tmp_path / "b" / "walnut.igs")
    assert igs.version == other.version == 2
    for field in range(5):  # means, theta, inverse scales: the codes before the colours
        np.testing.assert_array_equal(igs.codes[field], other.codes[field])
    np.testing.assert_array_equal(igs.offsets, other.offsets)
    np.testing.assert_array_equal(igs.tile_indices, other.tile_indices)
