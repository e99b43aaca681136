from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# Real materials (crops of these, or whole maps) and the contract's golden renders, kept in the
# repository so that a plain clone tests itself (tests/data/README.md: sources and licences).
DATA = REPO / "tests" / "data"
MATERIALS = DATA / "materials"
GOLDEN = DATA / "golden"


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
