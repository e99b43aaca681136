"""Quality regression suite (in the spirit of astc-encoder's): re-bake the sample materials at
small fixed settings and compare PSNR per channel group with tests/quality/reference.csv.

- a drop of more than TOLERANCE_DB in any group fails;
- a gain of more than TOLERANCE_DB passes with a warning asking for the CSV to be updated,
  so the next regression is measured from the new level rather than hidden under the gain;
- ``IGS_UPDATE_QUALITY=1 pytest tests/quality`` rewrites the CSV from this machine's bakes
  (review the diff and commit it with the change that moved the numbers).

Bakes are deterministic for a given build and machine; the tolerance absorbs the small
differences between CPUs (vector widths) and between the native and torch backends.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from pathlib import Path

import pytest
from PIL import Image

from igs_tex.bakes.material import BakeOptions, bake_material

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
REFERENCE = HERE / "reference.csv"
MATERIALS = ("walnut_wood", "rock_cliff", "boombox_atlas", "pipes_trak")
# 128 x 128 from the middle of the 512 x 512 assets: all have detail there, and four tiles by
# four keeps a 150-step bake to a few seconds on two cores.
CROP_X, CROP_Y, CROP = 192, 192, 128
STEPS, BPPC, SEED = 150, 0.25, 0
TOLERANCE_DB = 0.2
FIELDS = ["material", "group", "psnr_db", "ssim", "crop", "steps", "bppc", "seed", "backend"]


class QualityImproved(UserWarning):
    pass


def _settings() -> dict:
    return {"crop": f"{CROP}@{CROP_X},{CROP_Y}", "steps": str(STEPS), "bppc": f"{BPPC:g}", "seed": str(SEED)}


def _crop(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("*.png")):
        Image.open(f).crop((CROP_X, CROP_Y, CROP_X + CROP, CROP_Y + CROP)).save(dst / f.name)
    return dst


def _bake(material: str, tmp: Path) -> tuple[dict, str]:
    src = _crop(REPO / "assets" / material, tmp / material)
    s = bake_material(src, tmp / "out", BakeOptions(bppc=BPPC, steps=STEPS, seed=SEED), progress=False)
    return s["metrics"], s["backend"]


def _read_reference() -> dict[tuple[str, str], dict]:
    if not REFERENCE.exists():
        return {}
    with REFERENCE.open(newline="") as f:
        return {(r["material"], r["group"]): r for r in csv.DictReader(f)}


def _write_reference(material: str, metrics: dict, backend: str) -> None:
    rows = {k: v for k, v in _read_reference().items() if k[0] != material}
    for group, m in metrics.items():
        rows[(material, group)] = {
            "material": material,
            "group": group,
            "psnr_db": _num(m["psnr"]),
            "ssim": f"{m['ssim']:.5f}",
            **_settings(),
            "backend": backend,
        }
    order = {name: i for i, name in enumerate(MATERIALS)}
    with REFERENCE.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n")
        w.writeheader()
        for key in sorted(rows, key=lambda k: (order.get(k[0], len(order)), k[0])):
            w.writerow(rows[key])


def _num(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.4f}"


@pytest.fixture(scope="module")
def bakes(tmp_path_factory):
    cache: dict[str, tuple[dict, str]] = {}

    def get(material: str) -> tuple[dict, str]:
        if material not in cache:
            cache[material] = _bake(material, tmp_path_factory.mktemp(material))
        return cache[material]

    return get


@pytest.fixture
def update() -> bool:
    # An environment variable, not a pytest option: an option needs a conftest.py here, and a
    # second package-less conftest module would shadow tests/conftest.py for `from conftest import`.
    return os.environ.get("IGS_UPDATE_QUALITY", "") not in ("", "0")


@pytest.mark.parametrize("material", MATERIALS)
def test_psnr_per_group_matches_reference(material, bakes, update):
    metrics, backend = bakes(material)
    if update:
        _write_reference(material, metrics, backend)
        print(f"\nquality: wrote {material} to {REFERENCE}")
        return
    ref = {g: r for (m, g), r in _read_reference().items() if m == material}
    assert ref, f"{REFERENCE} has no rows for {material}; run IGS_UPDATE_QUALITY=1 pytest tests/quality"
    some = next(iter(ref.values()))
    stale = {k: (some[k], v) for k, v in _settings().items() if some[k] != v}
    assert not stale, f"{REFERENCE} was made with other settings {stale} (csv, test); rerun with IGS_UPDATE_QUALITY=1"
    assert set(ref) == set(metrics), (
        f"{material}: groups {sorted(metrics)} vs reference {sorted(ref)}; rerun with IGS_UPDATE_QUALITY=1"
    )

    drops, gains = [], []
    for group, m in metrics.items():
        want, got = float(ref[group]["psnr_db"]), float(m["psnr"])
        if math.isinf(want) and math.isinf(got):
            continue
        delta = got - want
        line = f"{material}/{group}: {got:.3f} dB vs reference {want:.3f} dB ({delta:+.3f})"
        if delta < -TOLERANCE_DB or math.isnan(delta):
            drops.append(line)
        elif delta > TOLERANCE_DB:
            gains.append(line)
    if gains:
        note = (
            "quality improved by more than %.1f dB; update the reference with "
            "IGS_UPDATE_QUALITY=1 pytest tests/quality:\n  " % TOLERANCE_DB
        ) + "\n  ".join(gains)
        print("\n" + note)
        warnings.warn(note, QualityImproved, stacklevel=1)
    assert not drops, f"PSNR dropped by more than {TOLERANCE_DB} dB (backend {backend}):\n  " + "\n  ".join(drops)
