from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MATERIALS = SHARED / "materials"
GOLDEN = SHARED / "golden"


def crop_material(src: Path, dst: Path, size: int, x0: int = 0, y0: int = 0) -> Path:
    """A real material cut down to size x size texels, files named as in the source."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("*.png")):
        im = Image.open(f)
        im.crop((x0, y0, x0 + size, y0 + size)).save(dst / f.name)
    return dst


@pytest.fixture
def small_walnut(tmp_path) -> Path:
    return crop_material(MATERIALS / "walnut_wood", tmp_path / "walnut_wood", 48, 300, 200)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# tests/gpu needs an NVIDIA GPU and a CUDA build of torch; tests/gpu/run_device_checks.sh runs it
# on such a machine (with IGS_REQUIRE_CUDA=1, where a missing GPU fails instead of skipping).
# Elsewhere it is not collected at all, so the CPU suite reports no skips for hardware it lacks.
collect_ignore = [] if os.environ.get("IGS_REQUIRE_CUDA") == "1" else ["gpu"]


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
