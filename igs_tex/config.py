"""Bake settings and the project file, pipeline.toml: schema, validation, presets.

    [defaults]                  # optional; every key below may also appear in a [[material]]
    preset = "default"          # fast | default | high (see PRESETS)
    bppc = 0.059                # budget: one of bppc, kib, gaussians
    steps = 1000
    seed = 0
    k = 10
    max_scale = 21.0            # px; 0 = no cap
    format = 2                  # .igs version: 2 (default) or 1
    tile = 0                    # texels per tile side; 0 = from the budget (16 or 32)
    device = "cpu"              # cpu | cuda | auto   (or backend = auto|torch|native|cuda)
    output = "out"              # folder, relative to pipeline.toml
    jobs = 1                    # [defaults] only: materials baked at once

    [[material]]
    path = "assets/*/"          # a folder, a glob of folders, or an array of those
    name = "wood"               # optional output base name (default: the folder name)
    steps = 2000                # any override

Later levels win: built-in defaults < [defaults] preset < [defaults] keys < the material's
preset < the material's keys < command-line flags. A preset only fills in values; a key set
next to it (or on the command line) beats it. A budget (bppc / kib / gaussians) is one slot: a
material that gives kib replaces a bppc from [defaults]; device and backend are one slot too.

Nothing here bakes or imports torch: the file is checked whole before any material is touched,
so a typo in the last entry costs seconds, not the bakes before it.
"""

from __future__ import annotations

import difflib
import glob
import json
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from . import IgsError
from .budget import DEFAULT_BPPC, MAX_GAUSSIANS, MAX_K, MAX_TILE, MIN_GAUSSIANS
from .fit.settings import DEFAULT_STEPS

# The built-in value of every bake setting, here (or, for the budget and the steps, in budget.py
# and fit/settings.py) and nowhere else: BUILTIN below, the command line's help and
# bakes.material.BakeOptions read them.
DEFAULT_SEED = 0
DEFAULT_K = 10
DEFAULT_MAX_SCALE = 21.0  # px; 0 (None in BakeOptions) = no cap (docs/RESULTS.md, version 2)
DEFAULT_FORMAT = 2  # .igs version written (docs/FORMAT-v2.md; 1: docs/FORMAT.md)
DEFAULT_TILE = 0  # 0 (None in BakeOptions) = from the budget
DEFAULT_OUTPUT = "out"
DEVICES = ("cpu", "cuda", "auto")
BACKENDS = ("auto", "torch", "native", "cuda")
BUDGET_KEYS = ("bppc", "kib", "gaussians")
RENDERER_KEYS = ("device", "backend")

# Presets trade bake time for quality and never touch the budget: file size stays the user's
# call. Measured on walnut_wood 512 px at 0.059 bppc (fit/settings.py): 600 steps reach
# 35.68 dB, 2000 steps 35.75 dB, so 1000 is within a few hundredths of the plateau.
PRESETS: dict[str, dict[str, object]] = {
    "fast": {"steps": 300},  # previews and iteration: about a third of the default time
    "default": {"steps": DEFAULT_STEPS},
    "high": {"steps": 5000},  # the paper's full schedule (growth every 500 steps)
}
PRESET_HELP = (
    "fast: 300 steps (previews, about a third of the time); default: "
    f"{DEFAULT_STEPS} steps; high: 5000 steps (the paper's schedule, 5x the time, "
    "last few hundredths of a dB)"
)

# Built-in values, the bottom layer. The budget and renderer slots hold (key, value) pairs.
BUILTIN: dict[str, object] = {
    "budget": ("bppc", DEFAULT_BPPC),
    "steps": DEFAULT_STEPS,
    "seed": DEFAULT_SEED,
    "k": DEFAULT_K,
    "max_scale": DEFAULT_MAX_SCALE,
    "tile": DEFAULT_TILE,
    "format": DEFAULT_FORMAT,
    "renderer": ("device", "cpu"),
    "preset": "default",
}


@dataclass(frozen=True)
class BakeSettings:
    """Everything that decides a material's bake, after all layers are merged."""

    budget_key: str  # bppc | kib | gaussians
    budget: float | int
    steps: int
    seed: int
    k: int
    max_scale: float  # 0: no cap
    tile: int  # 0: from the budget (budget.auto_tile)
    format: int  # .igs version written: 2 (default) or 1
    renderer_key: str  # device | backend
    renderer: str  # cpu|cuda|auto, or auto|torch|native|cuda
    preset: str
    # Where each value came from ("--steps", "pipeline.toml: [[material]] #2 'device'"), so a
    # problem found later (an unavailable device) names the line to fix.
    origins: dict[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def budget_kwargs(self) -> dict:
        return {k: (self.budget if k == self.budget_key else None) for k in BUDGET_KEYS}


@dataclass(frozen=True)
class MaterialJob:
    source: Path  # as written in pipeline.toml, joined to its folder
    output_dir: Path
    name: str | None  # None: the folder name
    settings: BakeSettings
    origin: str  # "[[material]] #2", for messages

    @property
    def stem(self) -> str:
        if self.name:
            return self.name
        return self.source.resolve().name if self.source.is_dir() else self.source.stem

    @property
    def igs_path(self) -> Path:
        return self.output_dir / f"{self.stem}.igs"


@dataclass(frozen=True)
class Project:
    path: Path
    jobs: int
    materials: list[MaterialJob]


# --------------------------------------------------------------------------- value checks
# Each check returns the value or raises _Bad with the "expected ..." half of the message;
# the caller adds the file and key so every message has the same shape.


class _Bad(Exception):
    pass


def _show(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, dict):
        return "a table"
    if isinstance(v, list):
        return "an array"
    return f"a {type(v).__name__}"


def _int(lo: int, hi: int | None = None):
    want = f"an integer >= {lo}" if hi is None else f"an integer in {lo}..{hi}"

    def check(v):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
            raise _Bad(f"expected {want}, got {_show(v)}")
        return v

    return check


def _number(lo: float, *, inclusive: bool):
    want = f"a number {'>=' if inclusive else '>'} {lo:g}"

    def check(v):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not ok or (v < lo if inclusive else v <= lo):
            raise _Bad(f"expected {want}, got {_show(v)}")
        return float(v)

    return check


def _choice(choices):
    def check(v):
        if not isinstance(v, str) or v not in choices:
            raise _Bad(f"expected one of {', '.join(map(json.dumps, choices))}, got {_show(v)}")
        return v

    return check


def _text(v):
    if not isinstance(v, str) or not v.strip():
        raise _Bad(f"expected a non-empty string, got {_show(v)}")
    return v


def _base_name(v):
    _text(v)
    if "/" in v or "\\" in v or v in (".", ".."):
        raise _Bad(f"expected a file base name without folders, got {_show(v)}")
    return v


def _paths(v):
    items = v if isinstance(v, list) else [v]
    if isinstance(v, list) and not v:
        raise _Bad("expected a folder, a glob or an array of them, got an empty array")
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise _Bad(f"expected a folder, a glob or an array of them, got {_show(item)}")
    return list(items)


# Gaussian-count limits match budget.gaussians_for_budget, so a count that passes here
# never fails there.
CHECKS = {
    "preset": _choice(tuple(PRESETS)),
    "bppc": _number(0, inclusive=False),
    "kib": _number(0, inclusive=False),
    "gaussians": _int(MIN_GAUSSIANS, MAX_GAUSSIANS),
    "steps": _int(1),
    "seed": _int(0, 2**63 - 1),
    "k": _int(1, MAX_K),
    "max_scale": _number(0, inclusive=True),
    "tile": _int(0, MAX_TILE),  # 0: from the budget
    "format": _int(1, 2),
    "device": _choice(DEVICES),
    "backend": _choice(BACKENDS),
    "output": _text,
    "jobs": _int(1, 256),
    "path": _paths,
    "name": _base_name,
    "threads": _int(1, 4096),  # igs-tex bake --threads only; not a pipeline.toml key
}
SETTING_KEYS = ("preset", *BUDGET_KEYS, "steps", "seed", "k", "max_scale", "tile", "format", *RENDERER_KEYS)
DEFAULTS_KEYS = (*SETTING_KEYS, "output", "jobs")
MATERIAL_KEYS = ("path", "name", "output", *SETTING_KEYS)


def check_value(key: str, value, where: str):
    """Validate one setting; `where` prefixes the message ("--steps", "f.toml: [defaults] 'k'")."""
    try:
        return CHECKS[key](value)
    except _Bad as e:
        raise IgsError(f"{where}: {e}") from None


# --------------------------------------------------------------------------- layering


def _layer(table: dict, origin) -> dict[str, tuple[object, str]]:
    """One level's checked keys -> slots of (value, origin(key)); its preset goes in first so
    the level's own keys beat it."""
    slots: dict[str, tuple[object, str]] = {}
    if "preset" in table:
        for key, value in PRESETS[table["preset"]].items():
            slots[key] = (value, origin("preset"))
        slots["preset"] = (table["preset"], origin("preset"))
    for group, slot in ((BUDGET_KEYS, "budget"), (RENDERER_KEYS, "renderer")):
        given = [k for k in table if k in group]  # file order: blame the second one written
        if len(given) > 1:
            raise IgsError(f"{origin(given[1])}: '{given[0]}' is set too; give one of {', '.join(group)} per table")
        if given:
            slots[slot] = ((given[0], table[given[0]]), origin(given[0]))
    for key in ("steps", "seed", "k", "max_scale", "tile", "format"):
        if key in table:
            slots[key] = (table[key], origin(key))
    return slots


def _in_table(where: str):
    return lambda key: f"{where} '{key}'"


def merge_settings(*layers: dict[str, tuple[object, str]]) -> BakeSettings:
    merged: dict[str, tuple[object, str]] = {k: (v, "built-in default") for k, v in BUILTIN.items()}
    for layer in layers:
        merged.update(layer)
    (budget_key, budget), _ = merged["budget"]
    (renderer_key, renderer), _ = merged["renderer"]
    return BakeSettings(
        budget_key=budget_key,
        budget=budget,
        steps=merged["steps"][0],
        seed=merged["seed"][0],
        k=merged["k"][0],
        max_scale=merged["max_scale"][0],
        tile=merged["tile"][0],
        format=merged["format"][0],
        renderer_key=renderer_key,
        renderer=renderer,
        preset=merged["preset"][0],
        origins={k: origin for k, (_, origin) in merged.items()},
    )


def cli_layer(values: dict[str, object]) -> dict[str, tuple[object, str]]:
    """The command line as the top layer. values: setting key -> value (None: not given)."""

    def flag(key: str) -> str:
        return "-k/--topk" if key == "k" else "--" + key.replace("_", "-")

    given = {k: check_value(k, v, flag(k)) for k, v in values.items() if v is not None}
    return _layer(given, flag)


# --------------------------------------------------------------------------- pipeline.toml


def _check_table(table, allowed: tuple[str, ...], toml: str, where: str) -> dict:
    if not isinstance(table, dict):
        raise IgsError(f"{toml}: {where}: expected a table, got {_show(table)}")
    out = {}
    for key, value in table.items():
        if key not in allowed:
            near = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean '{near[0]}'? " if near else ""
            only = " ([defaults] only)" if key == "jobs" else ""
            raise IgsError(f"{toml}: {where} '{key}': unknown key{only}; {hint}known: {', '.join(allowed)}")
        out[key] = check_value(key, value, f"{toml}: {where} '{key}'")
    return out


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _expand(pattern: str, base: Path, toml: str, where: str) -> list[Path]:
    # Relative to pipeline.toml, so a project bakes the same from any working directory.
    joined = Path(os.path.expanduser(pattern))
    joined = joined if joined.is_absolute() else base / joined
    if _is_glob(pattern):
        found = [Path(p) for p in sorted(glob.glob(str(joined), recursive=True)) if os.path.isdir(p)]
        if not found:
            raise IgsError(f"{toml}: {where} 'path': no material folder matches {json.dumps(pattern)}")
        return found
    if not joined.exists():
        raise IgsError(f"{toml}: {where} 'path': {joined}: no such material folder")
    return [joined]


def load_project(
    toml_path: Path, cli: dict[str, object] | None = None, cli_output: Path | None = None, cli_jobs: int | None = None
) -> Project:
    """Read and check pipeline.toml whole; every problem is one IgsError line naming the key.

    cli: command-line settings (see cli_layer); cli_output / cli_jobs replace every output
    folder / the jobs value when given.
    """
    toml = str(toml_path)
    top = cli_layer(cli or {})
    if cli_jobs is not None:
        check_value("jobs", cli_jobs, "-j/--jobs")
    try:
        raw = toml_path.read_bytes()
    except FileNotFoundError:
        raise IgsError(f"{toml}: no such file") from None
    except OSError as e:
        raise IgsError(f"{toml}: cannot read ({e.strerror or e})") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise IgsError(f"{toml}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise IgsError(f"{toml}: invalid TOML: {e}") from None

    for key in doc:
        if key not in ("defaults", "material"):
            raise IgsError(f"{toml}: '{key}': unknown top-level key; expected [defaults] and [[material]] tables")
    defaults = _check_table(doc.get("defaults", {}), DEFAULTS_KEYS, toml, "[defaults]")
    base_layer = _layer(defaults, _in_table(f"{toml}: [defaults]"))
    entries = doc.get("material")
    if entries is None:
        raise IgsError(f"{toml}: no [[material]] entries; add at least one with a 'path'")
    if not isinstance(entries, list):
        raise IgsError(f"{toml}: 'material': expected [[material]] entries (an array of tables), got {_show(entries)}")
    if not entries:
        raise IgsError(f"{toml}: no [[material]] entries; add at least one with a 'path'")

    base = toml_path.parent
    jobs_by_output: dict[Path, MaterialJob] = {}
    for i, entry in enumerate(entries, 1):
        where = f"[[material]] #{i}"
        table = _check_table(entry, MATERIAL_KEYS, toml, where)
        if "path" not in table:
            raise IgsError(f"{toml}: {where} 'path': missing; every material needs a folder or glob")
        settings = merge_settings(base_layer, _layer(table, _in_table(f"{toml}: {where}")), top)
        if cli_output is not None:
            out_dir = cli_output
        else:
            out_dir = Path(os.path.expanduser(table.get("output", defaults.get("output", DEFAULT_OUTPUT))))
            out_dir = out_dir if out_dir.is_absolute() else base / out_dir
        for pattern in table["path"]:
            for src in _expand(pattern, base, toml, where):
                job = MaterialJob(src, out_dir, table.get("name"), settings, where)
                target = _key_path(job.igs_path)
                prev = jobs_by_output.get(target)
                # The same folder matched again (a glob, then one folder with overrides): the
                # later entry wins. Two different folders into one file is a mistake.
                if prev is not None and _key_path(prev.source) != _key_path(src):
                    fix = (
                        "-o puts every material in that folder; set 'name'"
                        if cli_output is not None
                        else "set 'name' or 'output'"
                    )
                    raise IgsError(
                        f"{toml}: {where} 'path': {src} and {prev.source} ({prev.origin}) "
                        f"would both write {job.igs_path}; {fix}"
                    )
                jobs_by_output[target] = job

    jobs = cli_jobs if cli_jobs is not None else defaults.get("jobs", 1)
    return Project(toml_path, jobs, list(jobs_by_output.values()))


def _key_path(p: Path) -> Path:
    try:
        return p.resolve()
    except OSError:
        return p.absolute()
