"""baselines/compact_params.py: the bit counts of the layouts it simulates, and that its rounding
costs next to nothing on a real bake (the premise of the measurement)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from baking import bake_crop
from conftest import MATERIALS

from igs_tex.igsfile import build_igs
from igs_tex.material import load_material
from igs_tex.metrics import psnr
from igs_tex.render.decode import decode_stack

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "baselines"))

import compact_params as cp  # noqa: E402


def test_layout_bits():
    assert cp.layout_bits("compact", 512, 512, 6) == 2 * 12 + 8 + 16 + 48 == 96
    assert cp.layout_bits("compact", 1024, 1000, 8) == 2 * 13 + 8 + 16 + 64
    assert cp.layout_bits("colour8", 512, 512, 9) == 80 + 72
    assert cp.layout_bits("compact32", 512, 512, 6) == 96
    assert cp.layout_bits("compact32", 512, 512, 8) == 128
    with pytest.raises(Exception, match="--layout"):
        cp.layout_bits("fp8", 512, 512, 6)


def test_round_to_grid_hits_the_levels_and_the_ends():
    x = np.linspace(-0.5, 1.5, 1001)
    r = cp.round_to_grid(x, 0.0, 1.0, 3)
    assert set(np.round(r * 7, 9)) == set(range(8))
    inside = (x >= 0) & (x <= 1)
    assert np.abs(r - x)[inside].max() <= 0.5 / 7 + 1e-12


@pytest.fixture(scope="module")
def real_bake(tmp_path_factory):
    src = MATERIALS / "pipes_trak"
    out = tmp_path_factory.mktemp("compact")
    # The simulation replaces version 1 records: bake one.
    igs, _ = bake_crop(src, out, (300, 200, 396, 296), gaussians=90, steps=60, format=1)
    target = load_material(out / src.name).data
    return igs, target


def test_compact_rounding_is_within_its_grid_and_costs_little_on_a_real_bake(real_bake):
    igs, target = real_bake
    p = igs.params()
    w, h = igs.width, igs.height
    m, t, s = (np.asarray(p[k], dtype=np.float64) for k in ("means", "theta", "inv_scale"))
    m2, t2, s2 = cp.compact_geometry(m, t, s, w, h)
    step = w / (2 ** cp.position_bits(w, h) - 1)
    assert np.abs(m2 - m).max() <= 0.5 * step + 1e-9 and step < 1 / 8 + 1e-3
    dt = np.abs(np.remainder(t2 - t + math.pi / 2, math.pi) - math.pi / 2)
    assert dt.max() <= math.pi / 512 + 1e-9
    lo, hi = (math.log(v) for v in cp.INV_SCALE_RANGE)
    assert np.abs(np.log(s2 / np.clip(s, *cp.INV_SCALE_RANGE))).max() <= 0.5 * (hi - lo) / 255 + 1e-9
    colour = cp.colours_8bit(np.asarray(p["colour"], dtype=np.float64))
    assert all(len(np.unique(colour[:, c])) <= 256 for c in range(colour.shape[1]))
    lean = build_igs(
        *(x.astype(np.float32) for x in (m2, t2, s2)),
        colour.astype(np.float32),
        w,
        h,
        igs.channels,
        igs.value_range,
        {},
        tile=igs.tile,
        k=igs.k,
        eps=igs.eps,
    )
    full_db, lean_db = psnr(decode_stack(igs), target), psnr(decode_stack(lean), target)
    # Measured 32.576 dB with 16 bits, 32.581 with the compact rounding: the dropped bits
    # carry no precision a texel shows.
    assert abs(full_db - lean_db) < 0.1, (full_db, lean_db)
    assert full_db > 15.0


def test_baselines_below_their_lowest_rate_are_taken_at_the_next_up_point():
    import json

    from igs_tex.report.comparison import Comparison

    c = Comparison.from_json(json.loads((REPO / "baselines" / "results" / "pipes_trak.json").read_text()))
    bc1 = c.codec_rows("bc1")
    lowest = bc1[0]
    value, how = cp.baseline_at(c, "bc1", lowest["bppc"] * 0.9)
    assert value == lowest["metrics"]["all"]["psnr"] and f"mip {lowest['mip']}" in how
    mid = (bc1[0]["bppc"] * bc1[1]["bppc"]) ** 0.5  # halfway in log(rate)
    value, how = cp.baseline_at(c, "bc1", mid)
    assert how == "" and value == pytest.approx(
        0.5 * (bc1[0]["metrics"]["all"]["psnr"] + bc1[1]["metrics"]["all"]["psnr"])
    )
    assert cp.baseline_at(c, "bc1", bc1[-1]["bppc"] * 2) == (None, "")


def test_file_size_with_records_replaced_matches_the_real_file_for_its_own_records(real_bake):
    from igs_tex.igsfile import words_per_gaussian

    igs, _ = real_bake
    own = 32 * words_per_gaussian(igs.channel_count)
    assert cp.file_bits_with_records(igs, own) == 8 * len(igs.to_bytes())
    lean = cp.file_bits_with_records(igs, cp.layout_bits("compact", igs.width, igs.height, igs.channel_count))
    assert 8 * len(igs.to_bytes()) - lean >= igs.gaussian_count * (own - 96) - 32
