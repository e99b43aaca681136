"""The igs-tex command line end to end on real (cropped) materials."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from igs_tex.igsfile import read_igs
from igs_tex.material import load_material
from igs_tex.render.decode import decode_igs
from igs_tex.metrics import psnr

BAKE_FAST = ["--steps", "30", "--backend", "torch", "-q", "--gaussians", "64"]


def run(*args):
    return subprocess.run([sys.executable, "-m", "igs_tex.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def baked(tmp_path_factory):
    from conftest import MATERIALS, crop_material
    root = tmp_path_factory.mktemp("bake")
    src = crop_material(MATERIALS / "walnut_wood", root / "walnut_wood", 48, 300, 200)
    out = root / "out"
    r = run("bake", src, "-o", out, *BAKE_FAST)
    assert r.returncode == 0, r.stderr
    return src, out, r


def test_bake_writes_igs_and_summary(baked):
    src, out, r = baked
    igs = read_igs(out / "walnut_wood.igs")
    assert igs.gaussian_count == 64 and igs.channels[:3] == ["basecolor.r", "basecolor.g", "basecolor.b"]
    assert len(igs.channels) == 8
    summary = json.loads((out / "walnut_wood.json").read_text())
    assert set(summary["metrics"]) >= {"basecolor", "normal", "roughness", "metalness", "all"}
    assert "wrote" in r.stdout and "PSNR" in r.stdout
    assert not list(out.glob(".*.tmp"))


def test_decode_reproduces_bake_quality(baked):
    src, out, _ = baked
    summary = json.loads((out / "walnut_wood.json").read_text())
    stack = load_material(src)
    decoded = decode_igs(read_igs(out / "walnut_wood.igs"))
    for group, idx in stack.group_slices().items():
        got, baked_psnr = psnr(decoded[..., idx], stack.data[..., idx]), summary["metrics"][group]["psnr"]
        assert got == baked_psnr or abs(got - baked_psnr) < 0.01, (group, got, baked_psnr)


def test_decode_cli_writes_maps_named_like_inputs(baked, tmp_path):
    src, out, _ = baked
    r = run("decode", out / "walnut_wood.igs", "-o", tmp_path / "dec")
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (tmp_path / "dec").iterdir())
    assert names == sorted(p.name for p in src.glob("*.png"))
    # 8-bit PNG output equals the float decode rounded to 8 bits.
    decoded = decode_igs(read_igs(out / "walnut_wood.igs"))
    rough = np.asarray(Image.open(tmp_path / "dec" / "roughness.png"), dtype=np.float64) / 255
    ch = load_material(src).channels.index("roughness")
    assert np.abs(rough - np.clip(decoded[..., ch], 0, 1)).max() <= 0.5 / 255 + 1e-6


def test_inspect(baked):
    _, out, _ = baked
    r = run("inspect", out / "walnut_wood.igs")
    assert r.returncode == 0, r.stderr
    assert "64 (" in r.stdout and "bppc" in r.stdout and "tiles" in r.stdout
    j = run("inspect", out / "walnut_wood.igs", "--json")
    assert json.loads(j.stdout)["gaussians"] == 64


def test_bake_is_byte_identical(baked, tmp_path):
    src, out, _ = baked
    r = run("bake", src, "-o", tmp_path, *BAKE_FAST)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "walnut_wood.igs").read_bytes() == (out / "walnut_wood.igs").read_bytes()


def _assert_one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_mismatched_maps_exit_2_without_output(tmp_path):
    from conftest import MATERIALS, crop_material
    src = crop_material(MATERIALS / "walnut_wood", tmp_path / "bad", 32)
    Image.open(src / "normal.png").resize((16, 16)).save(src / "normal.png")
    r = run("bake", src, "-o", tmp_path / "out", *BAKE_FAST)
    _assert_one_line_error(r, "normal.png")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_broken_map_exit_2(tmp_path):
    from conftest import MATERIALS, crop_material
    src = crop_material(MATERIALS / "walnut_wood", tmp_path / "broken", 32)
    (src / "roughness.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    r = run("bake", src, "-o", tmp_path / "out", *BAKE_FAST)
    _assert_one_line_error(r, "roughness.png")
    assert not (tmp_path / "out" / "broken.igs").exists()


@pytest.mark.parametrize("args,needle", [
    (["bake", "/no/such/folder"], "/no/such/folder"),
    (["decode", "/no/such/file.igs"], "/no/such/file.igs"),
    (["inspect", "/no/such/file.igs"], "/no/such/file.igs"),
])
def test_missing_inputs(args, needle):
    _assert_one_line_error(run(*args), needle)


def test_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("no maps here")
    _assert_one_line_error(run("bake", tmp_path, "-o", tmp_path / "o"), str(tmp_path))


def test_corrupt_igs(baked, tmp_path):
    _, out, _ = baked
    data = bytearray((out / "walnut_wood.igs").read_bytes())
    data[200] ^= 0xFF
    bad = tmp_path / "bad.igs"
    bad.write_bytes(bytes(data))
    _assert_one_line_error(run("decode", bad, "-o", tmp_path / "d"), "bad.igs")
    assert not (tmp_path / "d").exists()


def test_bad_budget(small_walnut, tmp_path):
    _assert_one_line_error(run("bake", small_walnut, "-o", tmp_path, "--bppc", "-1"), "--bppc")


def test_no_command_prints_help():
    r = run()
    assert r.returncode == 2 and "bake" in r.stdout
    h = run("bake", "--help")
    assert h.returncode == 0 and "--bppc" in h.stdout and "basecolor" in h.stdout


def test_albedo_only_jpeg_material_bakes_and_decodes(tmp_path):
    from conftest import MATERIALS
    src = tmp_path / "albedo_only"
    src.mkdir()
    Image.open(MATERIALS / "walnut_wood" / "basecolor.png").crop((0, 0, 64, 48)).save(src / "wood_albedo.jpg")
    r = run("bake", src, "-o", tmp_path / "out", "--steps", "20", "--backend", "torch", "-q", "--gaussians", "40")
    assert r.returncode == 0, r.stderr
    igs = read_igs(tmp_path / "out" / "albedo_only.igs")
    assert igs.channels == ["basecolor.r", "basecolor.g", "basecolor.b"] and (igs.width, igs.height) == (64, 48)
    d = run("decode", tmp_path / "out" / "albedo_only.igs", "-o", tmp_path / "dec")
    assert d.returncode == 0, d.stderr
    assert [p.name for p in (tmp_path / "dec").iterdir()] == ["wood_albedo.png"]   # JPEG source -> PNG


def test_tiny_budget_is_a_clear_error(tmp_path, small_walnut):
    r = run("bake", small_walnut, "-o", tmp_path / "o", "--bppc", "0.059")
    _assert_one_line_error(r, "need at least 16")
    assert not (tmp_path / "o").exists()


def test_openmp_threads_wait_passively_unless_the_user_says_otherwise():
    import os
    import subprocess
    import sys
    code = "import igs_tex, os; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"


def test_tile_flag_overrides_the_budget_choice(baked, tmp_path):
    src = baked[0]
    fast = ["--steps", "5", "--backend", "torch", "-q", "--gaussians", "16"]  # 12 texels apart
    auto = run("bake", src, "-o", tmp_path / "auto", *fast)
    fixed = run("bake", src, "-o", tmp_path / "fixed", *fast, "--tile", "16")
    assert auto.returncode == 0 and fixed.returncode == 0, (auto.stderr, fixed.stderr)
    assert read_igs(tmp_path / "auto" / "walnut_wood.igs").tile == 32
    assert read_igs(tmp_path / "fixed" / "walnut_wood.igs").tile == 16
    _assert_one_line_error(run("bake", src, "-o", tmp_path / "bad", *fast, "--tile", "300"), "--tile")
    assert not (tmp_path / "bad").exists()
