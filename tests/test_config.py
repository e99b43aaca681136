"""Project bakes: pipeline.toml parsing and validation, presets, up-to-date stamps, worker
processes and --device. Bakes use 32 px crops, 40 Gaussians and 20 steps."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MATERIALS, REPO, crop_material
from PIL import Image

from igs_tex import IgsError
from igs_tex.bakes import project as project_mod
from igs_tex.bakes.project import bake_all, exit_status, resolve_backend, stamp_key
from igs_tex.config import PRESETS, cli_layer, load_project, merge_settings
from igs_tex.render.cuda import cuda_available, cuda_unavailable_reason
from igs_tex.render.native import native_available

TINY = "gaussians = 40\nsteps = 20\n"
CPU_BACKEND = "native" if native_available() else "torch"


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "igs_tex.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def one_line_error(r, *needles, code=2):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def proj(tmp_path) -> Path:
    """Two tiny real materials under mats/ (rock: 2 maps, wood: 4 maps)."""
    crop_material(MATERIALS / "walnut_wood", tmp_path / "mats" / "wood", 32, 300, 200)
    crop_material(MATERIALS / "rock_cliff", tmp_path / "mats" / "rock", 32, 100, 100)
    return tmp_path


# --------------------------------------------------------------------------- parsing


def test_example_pipeline_toml_at_repo_root_is_valid():
    p = load_project(REPO / "pipeline.toml")
    assert {m.source.name for m in p.materials} == {"walnut_wood", "rock_cliff", "boombox_atlas", "pipes_trak"}
    assert p.jobs == 1
    small = [m for m in p.materials if m.output_dir.name == "small"]
    assert len(small) == 1 and small[0].settings.budget_key == "kib"


def test_defaults_materials_and_overrides(proj):
    t = write(
        proj / "pipeline.toml",
        """
[defaults]
bppc = 0.1
steps = 500
seed = 3
k = 8
max_scale = 0
tile = 8
device = "auto"
output = "baked"
jobs = 3

[[material]]
path = "mats/*"

[[material]]
path = ["mats/wood"]
output = "hero"
name = "hero_wood"
kib = 6.5
steps = 700
backend = "torch"
""",
    )
    p = load_project(t)
    assert p.jobs == 3 and p.path == t
    by_out = {m.igs_path: m for m in p.materials}
    assert set(by_out) == {proj / "baked" / "rock.igs", proj / "baked" / "wood.igs", proj / "hero" / "hero_wood.igs"}
    rock = by_out[proj / "baked" / "rock.igs"].settings
    assert (rock.budget_key, rock.budget, rock.steps, rock.seed, rock.k, rock.max_scale) == (
        "bppc",
        0.1,
        500,
        3,
        8,
        0.0,
    )
    assert (rock.renderer_key, rock.renderer, rock.tile) == ("device", "auto", 8)
    hero = by_out[proj / "hero" / "hero_wood.igs"]
    assert hero.settings.budget_kwargs() == {"bppc": None, "kib": 6.5, "gaussians": None}
    assert (hero.settings.steps, hero.settings.seed, hero.settings.renderer) == (700, 3, "torch")
    assert hero.stem == "hero_wood" and hero.origin == "[[material]] #2"


def test_builtin_defaults_without_defaults_table(proj):
    p = load_project(write(proj / "pipeline.toml", '[[material]]\npath = "mats/rock"\n'))
    (m,) = p.materials
    s = m.settings
    assert (s.budget_key, s.budget, s.steps, s.seed, s.k, s.max_scale) == ("bppc", 0.059, 1000, 0, 10, 21.0)
    assert s.format == 2
    assert (s.renderer_key, s.renderer, s.preset, s.tile) == ("device", "cpu", "default", 0)
    assert m.output_dir == proj / "out" and p.jobs == 1


def test_paths_are_relative_to_the_toml_not_the_working_directory(proj, monkeypatch):
    t = write(proj / "sub" / "pipeline.toml", '[[material]]\npath = "../mats/wood"\n')
    monkeypatch.chdir("/")
    (m,) = load_project(t).materials
    assert m.source.resolve() == (proj / "mats" / "wood").resolve()
    assert m.output_dir == proj / "sub" / "out"


def test_glob_matches_folders_only(proj):
    (proj / "mats" / "notes.txt").write_text("not a material")
    p = load_project(write(proj / "pipeline.toml", '[[material]]\npath = "mats/*"\n'))
    assert [m.source.name for m in p.materials] == ["rock", "wood"]


def test_later_entry_for_the_same_folder_wins(proj):
    p = load_project(
        write(
            proj / "pipeline.toml",
            """
[[material]]
path = "mats/*"
[[material]]
path = "mats/wood"
steps = 77
""",
        )
    )
    steps = {m.source.name: m.settings.steps for m in p.materials}
    assert steps == {"rock": 1000, "wood": 77}


def test_same_folder_into_two_outputs_is_two_bakes(proj):
    p = load_project(
        write(
            proj / "pipeline.toml",
            """
[[material]]
path = "mats/wood"
[[material]]
path = "mats/wood"
output = "small"
kib = 2
""",
        )
    )
    assert [m.igs_path for m in p.materials] == [proj / "out" / "wood.igs", proj / "small" / "wood.igs"]


# Presets fill in values at their own level; explicit keys there and every later level win.
@pytest.mark.parametrize(
    "defaults,material,cli,steps",
    [
        ({}, {}, {}, 1000),
        ({"preset": '"fast"'}, {}, {}, PRESETS["fast"]["steps"]),
        ({"preset": '"high"'}, {}, {}, PRESETS["high"]["steps"]),
        ({"preset": '"fast"', "steps": "400"}, {}, {}, 400),  # key beats its own preset
        ({"steps": "400"}, {"preset": '"high"'}, {}, 5000),  # material preset beats defaults
        ({"preset": '"high"'}, {"preset": '"fast"', "steps": "60"}, {}, 60),
        ({"preset": '"high"'}, {}, {"preset": "fast"}, 300),  # command line beats the file
        ({"steps": "400"}, {"preset": '"high"'}, {"steps": 9}, 9),
    ],
)
def test_preset_precedence(proj, defaults, material, cli, steps):
    d = "".join(f"{k} = {v}\n" for k, v in defaults.items())
    m = "".join(f"{k} = {v}\n" for k, v in material.items())
    t = write(proj / "pipeline.toml", f'[defaults]\n{d}[[material]]\npath = "mats/wood"\n{m}')
    (job,) = load_project(t, cli).materials
    assert job.settings.steps == steps


def test_every_preset_is_documented_and_valid():
    assert set(PRESETS) == {"fast", "default", "high"}
    for values in PRESETS.values():
        assert set(values) <= {"steps", "seed", "k", "max_scale"}
        merge_settings(cli_layer(dict(values)))


def test_budget_and_renderer_are_single_slots(proj):
    t = write(
        proj / "pipeline.toml",
        """
[defaults]
bppc = 0.2
backend = "torch"
[[material]]
path = "mats/wood"
gaussians = 100
device = "cpu"
""",
    )
    (m,) = load_project(t).materials
    assert m.settings.budget_kwargs() == {"bppc": None, "kib": None, "gaussians": 100}
    assert (m.settings.renderer_key, m.settings.renderer) == ("device", "cpu")
    (m,) = load_project(t, {"kib": 3.0, "backend": "torch"}).materials
    assert m.settings.budget_kwargs() == {"bppc": None, "kib": 3.0, "gaussians": None}
    assert m.settings.renderer == "torch" and m.settings.origins["renderer"] == "--backend"


def test_command_line_output_and_jobs_replace_the_file(proj, tmp_path):
    t = write(proj / "pipeline.toml", '[defaults]\njobs = 4\n[[material]]\npath = "mats/*"\noutput = "x"\n')
    p = load_project(t, cli_output=tmp_path / "o", cli_jobs=2)
    assert p.jobs == 2 and {m.output_dir for m in p.materials} == {tmp_path / "o"}


# --------------------------------------------------------------------------- validation
# Every message: "<toml>: <table> '<key>': ...", one line.

BAD = [
    # (file text, key fragment, message fragment)
    ("[defaults]\nstpes = 3\n", "[defaults] 'stpes'", "did you mean 'steps'"),
    ("[defaults]\nfoo = 3\n", "[defaults] 'foo'", "unknown key"),
    ('[[material]]\npath = "mats/wood"\njobs = 2\n', "[[material]] #1 'jobs'", "[defaults] only"),
    (
        '[[material]]\npath = "mats/wood"\n[[material]]\npath = "mats/rock"\nsteps = "x"\n',
        "[[material]] #2 'steps'",
        'expected an integer >= 1, got "x"',
    ),
    ("[defaults]\nsteps = 0\n", "[defaults] 'steps'", "expected an integer >= 1, got 0"),
    ("[defaults]\nsteps = 1.5\n", "[defaults] 'steps'", "got 1.5"),
    ("[defaults]\nsteps = true\n", "[defaults] 'steps'", "got true"),
    ("[defaults]\nsteps = [1]\n", "[defaults] 'steps'", "got an array"),
    ("[defaults]\nseed = -1\n", "[defaults] 'seed'", "expected an integer in 0.."),
    ("[defaults]\nk = 0\n", "[defaults] 'k'", "expected an integer in 1..32, got 0"),
    ("[defaults]\nk = 33\n", "[defaults] 'k'", "got 33"),
    ("[defaults]\nbppc = 0\n", "[defaults] 'bppc'", "expected a number > 0, got 0"),
    ("[defaults]\nbppc = -0.1\n", "[defaults] 'bppc'", "got -0.1"),
    ("[defaults]\nbppc = nan\n", "[defaults] 'bppc'", "got nan"),
    ("[defaults]\nbppc = inf\n", "[defaults] 'bppc'", "got inf"),
    ('[defaults]\nbppc = "0.05"\n', "[defaults] 'bppc'", 'got "0.05"'),
    ("[defaults]\nkib = 0\n", "[defaults] 'kib'", "expected a number > 0"),
    ("[defaults]\ngaussians = 8\n", "[defaults] 'gaussians'", "expected an integer in 16..67108864, got 8"),
    ("[defaults]\ngaussians = 70000000\n", "[defaults] 'gaussians'", "got 70000000"),
    ("[defaults]\nmax_scale = -1\n", "[defaults] 'max_scale'", "expected a number >= 0, got -1"),
    ("[defaults]\ntile = 300\n", "[defaults] 'tile'", "expected an integer in 0..256, got 300"),
    ('[defaults]\ndevice = "gpu"\n', "[defaults] 'device'", 'expected one of "cpu", "cuda", "auto", got "gpu"'),
    ('[defaults]\nbackend = "vulkan"\n', "[defaults] 'backend'", 'got "vulkan"'),
    ('[defaults]\npreset = "ultra"\n', "[defaults] 'preset'", 'expected one of "fast", "default", "high"'),
    ("[defaults]\noutput = 3\n", "[defaults] 'output'", "expected a non-empty string, got 3"),
    ('[defaults]\noutput = ""\n', "[defaults] 'output'", 'got ""'),
    ("[defaults]\njobs = 0\n", "[defaults] 'jobs'", "expected an integer in 1..256, got 0"),
    ("[defaults]\nbppc = 0.1\nkib = 4\n", "[defaults] 'kib'", "'bppc' is set too"),
    (
        '[[material]]\npath = "mats/wood"\ngaussians = 40\nbppc = 0.1\n',
        "[[material]] #1 'bppc'",
        "'gaussians' is set too",
    ),
    (
        '[[material]]\npath = "mats/wood"\ndevice = "cpu"\nbackend = "torch"\n',
        "[[material]] #1 'backend'",
        "'device' is set too",
    ),
    ("[[material]]\npath = 3\n", "[[material]] #1 'path'", "got 3"),
    ("[[material]]\npath = []\n", "[[material]] #1 'path'", "empty array"),
    ('[[material]]\npath = ["mats/wood", 1]\n', "[[material]] #1 'path'", "got 1"),
    ("[[material]]\nsteps = 3\n", "[[material]] #1 'path'", "missing"),
    ('[[material]]\npath = "mats/nope"\n', "[[material]] #1 'path'", "mats/nope: no such material folder"),
    (
        '[[material]]\npath = ["mats/wood", "mats/gone"]\n',
        "[[material]] #1 'path'",
        "mats/gone: no such material folder",
    ),
    ('[[material]]\npath = "nothing/*"\n', "[[material]] #1 'path'", 'no material folder matches "nothing/*"'),
    ('[[material]]\npath = "mats/*/*.png"\n', "[[material]] #1 'path'", "no material folder matches"),
    ('[[material]]\npath = "mats/wood"\nname = "a/b"\n', "[[material]] #1 'name'", "without folders"),
    ('[[material]]\npath = "mats/wood"\nname = ""\n', "[[material]] #1 'name'", 'got ""'),
    ('[[material]]\npath = "mats/*"\nname = "same"\n', "[[material]] #1 'path'", "would both write"),
    (
        '[[material]]\npath = "mats/wood"\noutput = "o"\nname = "x"\n'
        '[[material]]\npath = "mats/rock"\noutput = "o"\nname = "x"\n',
        "[[material]] #2 'path'",
        "([[material]] #1) would both write",
    ),
    ('defaults = 3\n[[material]]\npath = "mats/wood"\n', "[defaults]", "expected a table, got 3"),
    ('[[material]]\npath = "mats/wood"\n[extra]\nx = 1\n', "'extra'", "unknown top-level key"),
    ("[defaults]\nsteps = 3\n", "", "no [[material]] entries"),
    ("material = []\n", "", "no [[material]] entries"),
    (
        '[material]\npath = "mats/wood"\n',
        "'material'",
        "expected [[material]] entries (an array of tables), got a table",
    ),
    ("material = [3]\n", "[[material]] #1", "expected a table, got 3"),
    ("[defaults\nsteps = 3\n", "", "invalid TOML: "),
    ("[defaults]\nsteps = 3\nsteps = 4\n", "", "invalid TOML: "),
]


@pytest.mark.parametrize("text,key,msg", BAD, ids=[f"{i}" for i in range(len(BAD))])
def test_validation_errors_name_file_and_key(proj, text, key, msg):
    t = write(proj / "pipeline.toml", text)
    with pytest.raises(IgsError) as e:
        load_project(t)
    line = str(e.value)
    assert "\n" not in line
    assert line.startswith(f"{t}: "), line
    assert key in line and msg in line, line


def test_not_utf8_and_missing_file(proj):
    t = proj / "pipeline.toml"
    t.write_bytes(b'[defaults]\nsteps = "\xff"\n')
    with pytest.raises(IgsError, match=r"pipeline\.toml: not UTF-8"):
        load_project(t)
    with pytest.raises(IgsError, match=r"nope\.toml: no such file"):
        load_project(proj / "nope.toml")


@pytest.mark.parametrize(
    "cli,msg",
    [
        ({"steps": 0}, "--steps: expected an integer >= 1, got 0"),
        ({"k": 40}, "-k/--topk: expected an integer in 1..32, got 40"),
        ({"bppc": -1.0}, "--bppc: expected a number > 0, got -1.0"),
        ({"max_scale": -2.0}, "--max-scale: expected a number >= 0"),
        ({"seed": -1}, "--seed: expected an integer in 0.."),
    ],
)
def test_command_line_values_are_checked_like_the_file(proj, cli, msg):
    t = write(proj / "pipeline.toml", '[[material]]\npath = "mats/wood"\n')
    with pytest.raises(IgsError) as e:
        load_project(t, cli)
    assert str(e.value).startswith(msg), str(e.value)


def test_cli_validation_error_is_one_line_exit_2_and_bakes_nothing(proj):
    write(
        proj / "pipeline.toml",
        f'[defaults]\n{TINY}[[material]]\npath = "mats/wood"\n[[material]]\npath = "mats/rock"\nsteps = "x"\n',
    )
    line = one_line_error(run("bake", cwd=proj))
    assert line.endswith("pipeline.toml: [[material]] #2 'steps': expected an integer >= 1, got \"x\""), line
    assert not (proj / "out").exists()
    one_line_error(run("bake", "--config", proj / "pipeline.toml", "-j", "0"), "-j/--jobs", "got 0")
    one_line_error(run("bake", "--config", proj / "missing.toml"), "missing.toml: no such file")


def test_cli_without_folder_or_pipeline_toml(tmp_path):
    one_line_error(run("bake", cwd=tmp_path), "no pipeline.toml here")


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["-j", "2"], "-j/--jobs"),
        (["--force"], "--force"),
        (["--config", "x.toml"], "--config"),
    ],
)
def test_project_flags_with_one_folder_are_usage_errors(small_walnut, flags, needle):
    one_line_error(run("bake", small_walnut, *flags), needle)


def test_name_flag_in_project_mode_is_a_usage_error(proj):
    write(proj / "pipeline.toml", '[[material]]\npath = "mats/wood"\n')
    one_line_error(run("bake", "--name", "x", cwd=proj), "--name", "'name'")


# --------------------------------------------------------------------------- devices


def test_device_resolution_here():
    def backend(**cli):
        return resolve_backend(merge_settings(cli_layer(cli)))

    assert backend() == CPU_BACKEND
    assert backend(device="cpu") == CPU_BACKEND
    assert backend(backend="auto") == CPU_BACKEND
    assert backend(backend="torch") == "torch"
    assert backend(device="auto") == ("cuda" if cuda_available() else CPU_BACKEND)
    if not cuda_available():
        with pytest.raises(IgsError, match="^--device: cuda is unavailable: ") as e:
            backend(device="cuda")
        assert cuda_unavailable_reason() in str(e.value)
        with pytest.raises(IgsError, match="^--backend: cuda is unavailable: "):
            backend(backend="cuda")


def test_device_cpu_bakes_one_material(small_walnut, tmp_path):
    r = run("bake", small_walnut, "-o", tmp_path, "--device", "cpu", "--steps", "10", "--gaussians", "40")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "walnut_wood.json").read_text())["backend"] == CPU_BACKEND
    assert f"({CPU_BACKEND})" in r.stdout


@pytest.mark.skipif(cuda_available(), reason="a CUDA device is present: --device cuda would bake")
def test_device_cuda_without_gpu_is_one_line_exit_2(small_walnut, proj, tmp_path):
    r = run("bake", small_walnut, "-o", tmp_path / "o", "--device", "cuda", "-q")
    one_line_error(r, "--device: cuda is unavailable", cuda_unavailable_reason())
    assert not (tmp_path / "o").exists()
    write(proj / "pipeline.toml", '[defaults]\ndevice = "cuda"\n[[material]]\npath = "mats/wood"\n')
    one_line_error(run("bake", cwd=proj), "pipeline.toml: [defaults] 'device': cuda is unavailable")
    write(
        proj / "pipeline.toml", '[[material]]\npath = "mats/wood"\n[[material]]\npath = "mats/rock"\nbackend = "cuda"\n'
    )
    one_line_error(run("bake", cwd=proj), "pipeline.toml: [[material]] #2 'backend': cuda is unavailable")
    assert not (proj / "out").exists()


def test_device_and_backend_flags_exclude_each_other(small_walnut):
    r = run("bake", small_walnut, "--device", "cpu", "--backend", "torch")
    assert r.returncode == 2 and "not allowed with" in r.stderr


# --------------------------------------------------------------------------- incremental


def _project_jobs(root: Path, extra: str = "", cli=None):
    t = write(root / "pipeline.toml", f'[defaults]\n{TINY}[[material]]\npath = "mats/*"\n{extra}')
    return load_project(t, cli).materials


def _bake(jobs, **kw):
    out = list(bake_all(jobs, progress=False, **kw))
    return {o.job.source.name: o for o in out}, exit_status(out)


def test_incremental_skip_and_rebake(proj):
    jobs = _project_jobs(proj)
    res, code = _bake(jobs)
    assert code == 0 and {n: o.status for n, o in res.items()} == {"rock": "baked", "wood": "baked"}
    first = {n: (proj / "out" / f"{n}.igs").read_bytes() for n in res}
    stamp = json.loads((proj / "out" / "wood.json").read_text())["stamp"]
    assert stamp["igs_sha256"] == hashlib.sha256(first["wood"]).hexdigest()

    res, code = _bake(jobs)
    assert code == 0 and {o.status for o in res.values()} == {"up to date"}

    # A map's bytes change (same size, one pixel): only that material re-bakes.
    f = proj / "mats" / "rock" / "basecolor.png"
    im = Image.open(f).convert("RGB")
    im.putpixel((0, 0), tuple(255 - c for c in im.getpixel((0, 0))))
    im.save(f)
    res, _ = _bake(jobs)
    assert (res["rock"].status, res["wood"].status) == ("baked", "up to date")

    # A setting of one material changes: only that one re-bakes.
    jobs = _project_jobs(proj, '[[material]]\npath = "mats/wood"\nseed = 5\n')
    res, _ = _bake(jobs)
    assert (res["rock"].status, res["wood"].status) == ("up to date", "baked")
    assert (proj / "out" / "wood.igs").read_bytes() != first["wood"]
    # ... and back: the stamp holds the settings, not a history, so the old bytes come back.
    jobs = _project_jobs(proj)
    res, _ = _bake(jobs)
    assert res["wood"].status == "baked" and (proj / "out" / "wood.igs").read_bytes() == first["wood"]

    # Settings that do not reach the bytes (preset name, jobs) do not re-bake.
    t = write(proj / "pipeline.toml", f'[defaults]\njobs = 2\npreset = "high"\n{TINY}[[material]]\npath = "mats/*"\n')
    res, _ = _bake(load_project(t).materials)
    assert {o.status for o in res.values()} == {"up to date"}

    res, _ = _bake(jobs, force=True)
    assert {o.status for o in res.values()} == {"baked"}


def test_rebake_when_output_is_damaged_or_missing(proj):
    jobs = _project_jobs(proj)
    _bake(jobs)
    data = bytearray((proj / "out" / "wood.igs").read_bytes())
    data[-1] ^= 1
    (proj / "out" / "wood.igs").write_bytes(bytes(data))
    (proj / "out" / "rock.json").unlink()
    res, _ = _bake(jobs)
    assert {o.status for o in res.values()} == {"baked"}
    (proj / "out" / "rock.igs").unlink()
    res, _ = _bake(jobs)
    assert (res["rock"].status, res["wood"].status) == ("baked", "up to date")


def test_stamp_key_covers_maps_settings_renderer_and_version(proj, monkeypatch):
    (job,) = [j for j in _project_jobs(proj) if j.source.name == "wood"]
    key = stamp_key(job, "native")
    assert stamp_key(job, "native") == key
    assert stamp_key(job, "torch") != key
    (job2,) = [j for j in _project_jobs(proj, cli={"k": 9}) if j.source.name == "wood"]
    assert stamp_key(job2, "native") != key
    (proj / "mats" / "wood" / "notes.txt").write_text("not a map: ignored")
    assert stamp_key(job, "native") == key
    (proj / "mats" / "wood" / "ao.png").write_bytes((proj / "mats" / "wood" / "roughness.png").read_bytes())
    assert stamp_key(job, "native") != key
    (proj / "mats" / "wood" / "ao.png").unlink()
    monkeypatch.setattr(project_mod, "__version__", "99.0")
    assert stamp_key(job, "native") != key


# --------------------------------------------------------------------------- failures


def test_failing_material_does_not_stop_the_others(proj):
    broken = crop_material(MATERIALS / "walnut_wood", proj / "mats" / "broken", 32)
    (broken / "roughness.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    write(proj / "pipeline.toml", f'[defaults]\n{TINY}[[material]]\npath = "mats/*"\n')
    r = run("bake", cwd=proj)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    assert any("mats/broken: failed: " in ln and "roughness.png" in ln for ln in lines), r.stdout
    assert sum(": baked -> " in ln for ln in lines) == 2
    assert lines[-1] == "pipeline.toml: 3 materials: 2 baked, 0 up to date, 1 failed"
    assert sorted(p.name for p in (proj / "out").iterdir()) == ["rock.igs", "rock.json", "wood.igs", "wood.json"]
    # The next run: the good ones are up to date, the broken one fails again.
    r = run("bake", cwd=proj)
    assert r.returncode == 2 and r.stdout.splitlines()[-1].endswith("0 baked, 2 up to date, 1 failed")


def test_internal_error_is_reported_and_exits_1(proj, monkeypatch):
    import igs_tex.bakes.material as pipeline

    def boom(src, *a, **kw):
        if Path(src).name == "rock":
            raise RuntimeError("kaboom")
        return real(src, *a, **kw)

    real = pipeline.bake_material
    monkeypatch.setattr(pipeline, "bake_material", boom)
    res, code = _bake(_project_jobs(proj))
    assert code == 1 and res["wood"].status == "baked"
    assert res["rock"].error == "internal error: RuntimeError: kaboom" and "kaboom" in res["rock"].traceback


# --------------------------------------------------------------------------- end to end


def test_project_cli_end_to_end_and_parallel_bytes_match_serial(proj):
    """-j 1 then -j 2 --force (worker processes, 1 native thread each) give the same bytes."""
    write(proj / "pipeline.toml", f'[defaults]\n{TINY}output = "serial"\n[[material]]\npath = "mats/*"\n')
    r = run("bake", cwd=proj)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("[1/2] mats/rock: baked -> ") and f"({CPU_BACKEND})" in lines[0]
    assert lines[1].startswith("[2/2] mats/wood: baked -> ")
    assert lines[-1] == "pipeline.toml: 2 materials: 2 baked, 0 up to date, 0 failed"

    r = run("bake", "--config", proj / "pipeline.toml")
    assert r.returncode == 0 and r.stdout.count("up to date (") == 2, r.stdout

    r = run("bake", "-j", "2", "-o", "parallel", cwd=proj)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1].endswith("2 baked, 0 up to date, 0 failed")
    for name in ("rock", "wood"):
        serial = (proj / "serial" / f"{name}.igs").read_bytes()
        assert (proj / "parallel" / f"{name}.igs").read_bytes() == serial, name
        stamps = [json.loads((proj / d / f"{name}.json").read_text())["stamp"] for d in ("serial", "parallel")]
        assert stamps[0] == stamps[1]
    assert not [p for p in (proj / "parallel").iterdir() if p.name.startswith(".")]


def test_bake_help_explains_project_mode():
    h = run("bake", "--help")
    assert h.returncode == 0
    for needle in (
        "pipeline.toml",
        "[[material]]",
        "--config",
        "--force",
        "-j N",
        "up to date",
        "--device",
        "cuda",
        "auto",
        "fast",
        "high",
    ):
        assert needle in h.stdout, needle


def test_bare_bake_in_the_repo_reads_the_example_pipeline_toml():
    # A budget too small for any material: every entry is loaded and fails before writing.
    r = run("bake", "--bppc", "1e-9", cwd=REPO)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    assert lines[-1] == "pipeline.toml: 5 materials: 0 baked, 0 up to date, 5 failed"
    assert sum("need at least 16" in ln for ln in lines) == 5
