"""The igs-tex command line end to end on real (cropped) materials."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import MATERIALS, REPO, crop_material
from PIL import Image

from igs_tex.igsfile import read_igs
from igs_tex.material import load_material
from igs_tex.metrics import psnr
from igs_tex.render.decode import decode_igs
from igs_tex.render.native import native_available

BAKE_FAST = ["--steps", "30", "--backend", "torch", "--gaussians", "64"]
TINY = ["--steps", "5", "--gaussians", "32"]
# This checkout first on the path, so that a run from another folder (cwd=...) runs it too.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}


def run(*args, cwd=None, **kw):
    return subprocess.run(
        [sys.executable, "-m", "igs_tex.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=ENV, **kw
    )


@pytest.fixture(scope="module")
def baked(tmp_path_factory):
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
        # float(): an infinite PSNR is stored as "inf" (strict JSON has no Infinity).
        got, baked_psnr = psnr(decoded[..., idx], stack.data[..., idx]), float(summary["metrics"][group]["psnr"])
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
    src = crop_material(MATERIALS / "walnut_wood", tmp_path / "bad", 32)
    Image.open(src / "normal.png").resize((16, 16)).save(src / "normal.png")
    r = run("bake", src, "-o", tmp_path / "out", *BAKE_FAST)
    _assert_one_line_error(r, "normal.png")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_broken_map_exit_2(tmp_path):
    src = crop_material(MATERIALS / "walnut_wood", tmp_path / "broken", 32)
    (src / "roughness.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    r = run("bake", src, "-o", tmp_path / "out", *BAKE_FAST)
    _assert_one_line_error(r, "roughness.png")
    assert not (tmp_path / "out" / "broken.igs").exists()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["bake", "/no/such/folder"], "/no/such/folder"),
        (["decode", "/no/such/file.igs"], "/no/such/file.igs"),
        (["inspect", "/no/such/file.igs"], "/no/such/file.igs"),
    ],
)
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
    assert [p.name for p in (tmp_path / "dec").iterdir()] == ["wood_albedo.png"]  # JPEG source -> PNG


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
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
        capture_output=True,
        text=True,
        check=True,
    )
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


# --------------------------------------------------------------------------- robust CLI (issue 23)


def _fit_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("fit: ")]


@pytest.mark.parametrize("where", ["under_a_file", "existing_file", "name_too_long", "igs_is_a_folder"])
def test_unwritable_output_is_one_line_before_the_fit(small_walnut, tmp_path, where):
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "taken.igs").mkdir()
    out, needle = {
        "under_a_file": (tmp_path / "file" / "out", "is not a folder"),
        "existing_file": (tmp_path / "file", "exists and is not a folder"),
        "name_too_long": (tmp_path / ("x" * 300) / "out", "cannot create the output folder"),
        "igs_is_a_folder": (tmp_path / "taken.igs", "exists and is a folder"),
    }[where]
    # 100000 steps would take minutes: an error after the fit would time out here.
    r = run("bake", small_walnut, "-o", out, "--steps", "100000", "--gaussians", "32", timeout=120)
    line = r.stderr.strip()
    _assert_one_line_error(r, needle)
    assert line.startswith("igs-tex bake: error: ") and "Traceback" not in r.stderr
    assert str(out) in line, line
    assert not _fit_lines(r.stderr)


def test_read_only_output_folder_is_one_line_before_the_fit(small_walnut, tmp_path):
    # Root writes into a chmod 555 folder, so as root the read-only folder is /proc/self, which
    # nobody can create files in.
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    ro = Path("/proc/self") if root else tmp_path / "ro"
    if not root:
        ro.mkdir()
        ro.chmod(0o555)
    try:
        for out in (ro, ro / "sub"):
            r = run("bake", small_walnut, "-o", out, "--steps", "100000", "--gaussians", "32", timeout=120)
            _assert_one_line_error(r, str(out))
    finally:
        if not root:
            ro.chmod(0o755)


def test_output_file_name_writes_that_file_and_its_json(baked, tmp_path):
    src, out, _ = baked
    target = tmp_path / "new" / "deeper" / "custom.IGS"
    r = run("bake", src, "-o", target, *BAKE_FAST)
    assert r.returncode == 0, r.stderr
    assert target.is_file() and (tmp_path / "new" / "deeper" / "custom.json").is_file()
    assert sorted(p.name for p in target.parent.iterdir()) == ["custom.IGS", "custom.json"]
    # Only the file's place differs: the material keeps its name, the bytes are the folder bake's.
    assert target.read_bytes() == (out / "walnut_wood.igs").read_bytes()
    summary = json.loads((target.parent / "custom.json").read_text())
    assert summary["output"] == str(target) and summary["name"] == "walnut_wood"
    assert f"wrote {target}:" in r.stdout
    # A folder output is unchanged: -o DIR still gives DIR/<name>.igs.
    r = run("bake", src, "-o", tmp_path / "dir", *BAKE_FAST, "--name", "x")
    assert r.returncode == 0 and (tmp_path / "dir" / "x.igs").is_file() and (tmp_path / "dir" / "x.json").is_file()


def _project(root, entries: str):
    crop_material(MATERIALS / "walnut_wood", root / "a" / "wood", 32, 300, 200)
    crop_material(MATERIALS / "rock_cliff", root / "b" / "wood", 32, 100, 100)
    toml = root / "pipeline.toml"
    toml.write_text("[defaults]\ngaussians = 32\nsteps = 5\n" + entries)
    return toml


def test_project_materials_with_one_output_name_are_an_error_before_baking(tmp_path):
    toml = _project(
        tmp_path, '[[material]]\npath = "a/wood"\noutput = "oa"\n[[material]]\npath = "b/wood"\noutput = "ob"\n'
    )
    from igs_tex.config import load_project

    assert len(load_project(toml).materials) == 2  # apart, they go to two folders
    r = run("bake", "--config", toml, "-o", tmp_path / "all")
    _assert_one_line_error(r, str(tmp_path / "a" / "wood"), str(tmp_path / "b" / "wood"), "would both write", "-o")
    assert not (tmp_path / "all").exists() and not (tmp_path / "oa").exists()
    # A file name is not a project's output.
    _assert_one_line_error(run("bake", "--config", toml, "-o", tmp_path / "x.igs"), "x.igs", "give a folder")


def _parse_with_node(path):
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is not on PATH: the strict-JSON check must run in CI")
        pytest.skip("node is not on PATH")
    return subprocess.run(
        [node, "-e", "JSON.parse(require('fs').readFileSync(process.argv[1]))", str(path)],
        capture_output=True,
        text=True,
    )


def test_sidecar_is_strict_json_with_infinite_psnr_as_a_string(baked):
    _, out, _ = baked
    path = out / "walnut_wood.json"
    text = path.read_text()
    # The crop's metalness map is constant: decoded exactly, its PSNR is infinite.
    assert json.loads(text)["metrics"]["metalness"]["psnr"] == "inf"
    assert "Infinity" not in text and "NaN" not in text
    r = _parse_with_node(path)
    assert r.returncode == 0, r.stderr
    # ... and the check itself sees Python's default output, which JSON.parse rejects.
    loose = out.parent / "loose.json"
    loose.write_text(json.dumps({"psnr": float("inf")}))
    assert _parse_with_node(loose).returncode != 0


def test_json_text_refuses_non_finite_numbers():
    from igs_tex.atomic import json_text

    assert json.loads(json_text({"a": np.float32(1.5), "b": np.arange(2), "c": np.int64(3)})) == {
        "a": 1.5,
        "b": [0, 1],
        "c": 3,
    }
    for bad in (float("inf"), float("nan"), np.float32("inf"), np.array([1.0, np.nan])):
        with pytest.raises(ValueError):
            json_text({"x": bad})


def test_no_progress_bar_off_a_terminal(small_walnut, tmp_path):
    r = run("bake", small_walnut, "-o", tmp_path, "--steps", "40", "--gaussians", "32")
    assert r.returncode == 0, r.stderr
    lines = _fit_lines(r.stderr)
    assert [ln.split()[1] for ln in lines] == ["10/40", "20/40", "30/40", "40/40"], r.stderr
    assert "\r" not in r.stderr and "\x1b" not in r.stderr and "%|" not in r.stderr


def test_progress_bar_on_a_terminal(small_walnut, tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    # A terminal has a size (a fresh pty is 0x0, where tqdm draws nothing).
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        p = subprocess.Popen(
            [sys.executable, "-m", "igs_tex.cli", "bake", str(small_walnut), "-o", str(tmp_path), *TINY],
            stdout=subprocess.PIPE,
            stderr=slave,
            env=ENV,
        )
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            seen += chunk
        assert p.wait(timeout=120) == 0
    finally:
        os.close(master)
    text = seen.decode(errors="replace")
    assert "fit:" in text and "\r" in text and "%|" in text, text  # a tqdm bar, redrawn in place
    assert "steps (" not in text, text  # and no plain lines


def test_quiet_prints_only_errors(small_walnut, tmp_path):
    r = run("bake", small_walnut, "-o", tmp_path / "o", *TINY, "-q")
    assert r.returncode == 0 and (r.stdout, r.stderr) == ("", ""), (r.stdout, r.stderr)
    assert (tmp_path / "o" / "walnut_wood.igs").is_file()
    loud = run("bake", small_walnut, "-o", tmp_path / "o", *TINY)
    assert "wrote " in loud.stdout and _fit_lines(loud.stderr)
    # Errors still show.
    r = run("bake", small_walnut, "-o", tmp_path / "o" / "walnut_wood.igs" / "x", *TINY, "-q")
    _assert_one_line_error(r, "is not a folder")
    # A project: only the failing material's line.
    proj = tmp_path / "proj"
    crop_material(MATERIALS / "walnut_wood", proj / "mats" / "wood", 32, 300, 200)
    broken = crop_material(MATERIALS / "walnut_wood", proj / "mats" / "broken", 32)
    (broken / "roughness.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (proj / "pipeline.toml").write_text('[defaults]\ngaussians = 32\nsteps = 5\n[[material]]\npath = "mats/*"\n')
    r = run("bake", "-q", cwd=proj)
    assert r.returncode == 2 and r.stderr == "", r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and "mats/broken: failed: " in lines[0] and "roughness.png" in lines[0], r.stdout
    assert (proj / "out" / "wood.igs").is_file()


def test_threads_flag(small_walnut, tmp_path):
    for n in (1, 3):
        r = run("bake", small_walnut, "-o", tmp_path / str(n), *TINY, "--threads", n)
        assert r.returncode == 0, r.stderr
        threads = json.loads((tmp_path / str(n) / "walnut_wood.json").read_text())["threads"]
        assert threads == {"torch": n, "native": n if native_available() else None}
    assert (tmp_path / "1" / "walnut_wood.igs").read_bytes() == (tmp_path / "3" / "walnut_wood.igs").read_bytes()
    _assert_one_line_error(run("bake", small_walnut, "-o", tmp_path / "0", "--threads", "0"), "--threads")
    assert not (tmp_path / "0").exists()


@pytest.mark.skipif(not native_available(), reason="per-worker threads are the native kernels'")
def test_threads_are_shared_among_workers(tmp_path):
    crop_material(MATERIALS / "walnut_wood", tmp_path / "mats" / "wood", 32, 300, 200)
    crop_material(MATERIALS / "rock_cliff", tmp_path / "mats" / "rock", 32, 100, 100)
    (tmp_path / "pipeline.toml").write_text('[defaults]\ngaussians = 32\nsteps = 5\n[[material]]\npath = "mats/*"\n')
    r = run("bake", "-j", "2", "--threads", "6", "-q", cwd=tmp_path)
    assert r.returncode == 0, (r.stdout, r.stderr)
    for name in ("wood", "rock"):
        threads = json.loads((tmp_path / "out" / f"{name}.json").read_text())["threads"]
        assert threads == {"torch": 6, "native": 3}, (name, threads)


def test_exit_codes_are_documented_and_kept(small_walnut, tmp_path):
    from igs_tex.cli import EXIT_CODES

    help_text = run("--help").stdout
    assert "exit codes:" in help_text and "exit codes:" in run("bake", "--help").stdout
    readme = (REPO / "README.md").read_text()
    for code in ("0", "1", "2", "130"):
        assert f"\n  {code} " in EXIT_CODES and f"  {code} " in help_text
        assert f"`{code}`" in readme, code
    # 1: a bug (an exception that is not bad input) shows its traceback; 130: Ctrl-C.
    for exc, code in (("RuntimeError('kaboom')", 1), ("KeyboardInterrupt()", 130)):
        script = (
            "import sys, igs_tex.bakes.material as m\n"
            f"def boom(*a, **k):\n    raise {exc}\n"
            "m.bake_material = boom\n"
            "from igs_tex.cli import main\n"
            f"sys.exit(main(['bake', {str(small_walnut)!r}, '-o', {str(tmp_path)!r}]))\n"
        )
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV)
        assert r.returncode == code, (exc, r.returncode, r.stderr)
        assert (
            ("Traceback" in r.stderr and "kaboom" in r.stderr)
            if code == 1
            else r.stderr.strip() == "igs-tex bake: interrupted"
        )
