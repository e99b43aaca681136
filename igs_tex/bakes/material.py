"""Bake one material end to end: load -> fit -> quantise -> .igs -> decode -> measure.

Everything that goes into the .igs is a function of the inputs and settings only (no clock, no
host name), so two bakes with the same seed give the same bytes. Timings go to the JSON summary.
BakeOptions holds those settings; the command line and the project driver (bakes/project.py)
build one from their merged config.BakeSettings and pass it to bake_material.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import IgsError, __version__
from ..atomic import atomic_write_text, json_text
from ..budget import DEFAULT_BPPC, auto_tile, plan_bake, reach_for, reach_scale_cap
from ..config import DEFAULT_FORMAT, DEFAULT_K, DEFAULT_MAX_SCALE, DEFAULT_SEED, BakeSettings
from ..fit import DEFAULT_STEPS, FitSettings, fit_stack
from ..fit.colour_solve import solve_colours
from ..format_v2 import build_igs_v2
from ..igsfile import build_igs, write_igs
from ..material import load_material
from ..metrics import group_metrics
from ..render.decode import decode_stack
from ..render.native import cpu_threads, native_available


def auto_grow_every(steps: int) -> int:
    # Paper: +N/8 every 500 steps over a 5000-step fit. Short CPU schedules keep the same four
    # growth rounds but finish them by 40% of the run so the last Gaussians still get trained.
    return max(1, min(500, steps // 10))


def bake_fit_settings(
    width: int,
    height: int,
    gaussians: int,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = DEFAULT_SEED,
    backend: str = "auto",
    k: int = DEFAULT_K,
    tile: int | None = None,
    max_scale_px: float | None = DEFAULT_MAX_SCALE,
) -> FitSettings:
    """The fitter settings of a bake of this many Gaussians (tile None: from the budget), so that
    scripts that fit outside bake_material (baselines/compact_params.py) fit exactly as it does."""
    if tile is None:
        tile = auto_tile(width, height, gaussians)
    return FitSettings(
        gaussians=gaussians,
        steps=steps,
        seed=seed,
        backend=backend,
        k=k,
        tile=tile,
        grow_every=auto_grow_every(steps),
        max_scale_px=max_scale_px,
    )


@dataclass(frozen=True)
class BakeOptions:
    """What decides one material's bake, and so its .igs bytes; the defaults are config.py's.

    The budget is one of bppc, kib and gaussians (none given: DEFAULT_BPPC). backend names a
    renderer as get_renderer does (bakes.project.resolve_backend turns --device into one).
    tile None: from the budget (budget.auto_tile); max_scale_px None: no cap. name: the
    material's name in the file and the output file's base name (default: the folder's name).
    colour_solve: after training, replace the colours with the least-squares ones for the
    quantised geometry (fit/colour_solve.py, on the CPU: it reads the native top-K); native and
    cuda bakes when the C++ extension is built, the torch backend stays pure PyTorch.
    """

    bppc: float | None = None
    kib: float | None = None
    gaussians: int | None = None
    steps: int = DEFAULT_STEPS
    seed: int = DEFAULT_SEED
    backend: str = "auto"
    k: int = DEFAULT_K
    tile: int | None = None
    max_scale_px: float | None = DEFAULT_MAX_SCALE
    name: str | None = None
    colour_solve: bool = True
    format: int = DEFAULT_FORMAT

    @classmethod
    def from_settings(cls, settings: BakeSettings, backend: str, name: str | None = None) -> BakeOptions:
        """The options of a merged config.BakeSettings (0 for tile and max_scale: auto, no cap),
        with the renderer already resolved to `backend`."""
        return cls(
            **settings.budget_kwargs(),
            steps=settings.steps,
            seed=settings.seed,
            backend=backend,
            k=settings.k,
            tile=settings.tile or None,
            max_scale_px=settings.max_scale or None,
            name=name,
            format=settings.format,
        )

    def budget(self) -> dict:
        """bppc / kib / gaussians as budget.plan_bake takes them, DEFAULT_BPPC if none is set."""
        if self.bppc is None and self.kib is None and self.gaussians is None:
            return {"bppc": DEFAULT_BPPC, "kib": None, "gaussians": None}
        return {"bppc": self.bppc, "kib": self.kib, "gaussians": self.gaussians}


def output_paths(out: Path, stem: str) -> tuple[Path, Path]:
    """The .igs and .json a bake writes for `out`: a path ending in .igs names the file itself
    (the .json goes beside it); any other path is a folder, given <stem>.igs and <stem>.json."""
    out = Path(out)
    igs = out if out.suffix.lower() == ".igs" else out / f"{stem}.igs"
    return igs, igs.with_suffix(".json")


def prepare_output(igs_path: Path, json_path: Path) -> None:
    """Create the outputs' folder and check that files can be written in it, so that a bad output
    location is one IgsError naming it before the fit, not an OSError after it."""
    folder = igs_path.parent
    try:
        for p in (igs_path, json_path):
            if p.is_dir():
                raise IgsError(f"{p}: output path exists and is a folder")
        if folder.exists() and not folder.is_dir():
            raise IgsError(f"{folder}: output path exists and is not a folder")
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file where a folder should be, no permission, a name too long ...
        blocker = next((p for p in folder.parents if _is_file(p)), None)
        why = f"{blocker} is not a folder" if blocker is not None else (e.strerror or str(e))
        raise IgsError(f"{folder}: cannot create the output folder: {why}") from None
    # Both files are written as a temporary file in that folder, then renamed (atomic.py).
    try:
        fd, probe = tempfile.mkstemp(prefix=".igs-tex-", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise IgsError(f"{folder}: cannot write to the output folder: {e.strerror or e}") from None


def _is_file(p: Path) -> bool:
    try:
        return p.exists() and not p.is_dir()
    except OSError:
        return False


def bake_material(
    src: Path, out: Path, options: BakeOptions = BakeOptions(), *, progress: bool = True, stamp: str | None = None
) -> dict:
    """Bake `src` into `out` (see output_paths: a folder, or a file name ending in .igs) and the
    JSON summary beside it; returns the summary dict.

    options: the settings (BakeOptions). progress: show the fit's progress on stderr (a bar on
    a terminal, a few plain lines elsewhere). stamp: bakes.project.stamp_key of this bake,
    recorded in the JSON with the .igs hash so a later project bake can tell the output is up
    to date. Neither changes the .igs.

    The JSON is strict (no NaN or Infinity, which JSON.parse rejects): an infinite PSNR (an
    exact reconstruction, e.g. a constant metalness map) is written as the string "inf", as in
    the report's results.json; float() reads it back.
    """
    o = options
    t_start = time.perf_counter()
    stack = load_material(src)
    budget = o.budget()
    if o.format not in (1, 2):
        raise IgsError(f"--format must be 1 or 2, got {o.format}")
    n, tile = plan_bake(
        stack.width,
        stack.height,
        stack.channel_count,
        **budget,
        version=o.format,
        tile=o.tile,
        max_scale_px=o.max_scale_px,
    )
    max_scale, reach = o.max_scale_px, None
    if o.format == 2:
        # Version 2 keeps every radius below reach * T, so the fit's cap is the reach's.
        reach = reach_for(tile, o.max_scale_px)
        max_scale = (
            reach_scale_cap(tile, reach) if not o.max_scale_px else min(o.max_scale_px, reach_scale_cap(tile, reach))
        )
    settings = bake_fit_settings(
        stack.width,
        stack.height,
        n,
        steps=o.steps,
        seed=o.seed,
        backend=o.backend,
        k=o.k,
        tile=tile,
        max_scale_px=max_scale,
    )
    settings.validate(stack.channel_count)

    def build(means, theta, inv_scale, colour, metadata):
        writer, extra = (build_igs, {}) if o.format == 1 else (build_igs_v2, {"reach": reach})
        return writer(
            means,
            theta,
            inv_scale,
            colour,
            stack.width,
            stack.height,
            stack.channels,
            stack.value_range,
            metadata,
            tile=tile,
            k=k,
            eps=settings.eps,
            **extra,
        )

    tile, k = settings.tile, settings.k
    stem = o.name or stack.name
    igs_path, json_path = output_paths(out, stem)
    prepare_output(igs_path, json_path)
    fit = fit_stack(stack.data, settings, progress=progress)

    p = fit.params
    metadata = {
        "name": stem,
        "maps": [m.to_dict() for m in stack.maps],
        "bake": {
            "gaussians": n,
            "steps": o.steps,
            "seed": o.seed,
            "backend": fit.backend,
            "max_scale_px": max_scale,
            "reach": reach,
            "format": o.format,
            "budget": budget,
            "igs_tex": __version__,
        },
    }
    igs = build(p.means.numpy(), p.theta.numpy(), p.inv_scale.numpy(), p.colour.numpy(), metadata)
    # Quality is measured on what ships: dequantised parameters and the stored tile index.
    decoded = decode_stack(igs)
    if o.colour_solve and fit.backend in ("native", "cuda") and native_available():
        # Colours re-solved on the geometry as it ships (dequantised, in the file's order, with
        # the lists every decoder computes); quantising that geometry again gives the same codes,
        # order and lists. Kept only if the decoded file is closer to the target: quantisation
        # has the last word.
        q = igs.params()
        t_solve = time.perf_counter()
        # Version 1 keeps the training order; version 2 stores its own (by home tile).
        start = p.colour.numpy() if o.format == 1 else q["colour"]
        colour = solve_colours(
            q["means"],
            q["theta"],
            q["inv_scale"],
            start,
            stack.data,
            tile,
            k,
            settings.eps,
            igs.tile_offsets,
            igs.tile_indices,
        )
        geometry = (
            (p.means.numpy(), p.theta.numpy(), p.inv_scale.numpy())
            if o.format == 1
            else (q["means"], q["theta"], q["inv_scale"])
        )
        solved = build(*geometry, colour, metadata)
        decoded_solved = decode_stack(solved)
        if _sq_error(decoded_solved, stack.data) < _sq_error(decoded, stack.data):
            igs, decoded = solved, decoded_solved
        colour_solve_seconds = time.perf_counter() - t_solve
    else:
        colour_solve_seconds = None
    # Measured on the values as loaded (a float map in its own units, not its min-max stretch).
    metrics = group_metrics(decoded, stack.data, stack.group_slices(), stack.value_range)

    data = igs.to_bytes()
    summary = {
        "material": str(src),
        "output": str(igs_path),
        "name": stem,
        "width": stack.width,
        "height": stack.height,
        "channels": stack.channels,
        "gaussians": n,
        "steps": o.steps,
        "seed": o.seed,
        "backend": fit.backend,
        "size": igs.size_report(),
        "metrics": metrics,
        "psnr_before_quantisation": {str(k_): v for k_, v in fit.psnr_history.items()},
        "fit_seconds": round(fit.seconds, 2),
        "colour_solve_seconds": None if colour_solve_seconds is None else round(colour_solve_seconds, 2),
        "total_seconds": round(time.perf_counter() - t_start, 2),
        "settings": {k_: v for k_, v in asdict(settings).items() if k_ != "history_steps"},
        "threads": cpu_threads(),
    }
    if stamp is not None:
        # Written after the .igs, so a crash in between leaves a stamp that no longer matches.
        summary["stamp"] = {"key": stamp, "igs_sha256": hashlib.sha256(data).hexdigest()}
    # Made before anything is written: a value JSON cannot hold fails here, not half-way.
    text = json_text(_json_psnr(summary)) + "\n"
    write_igs(igs_path, igs)
    atomic_write_text(json_path, text)
    return summary


def _json_psnr(summary: dict) -> dict:
    """The summary as the JSON file holds it: an infinite PSNR as "inf" (JSON has no infinity).
    Any other non-finite number is left for json_text to reject."""

    def db(v):
        return "inf" if isinstance(v, float) and math.isinf(v) and v > 0 else v

    out = dict(summary)
    out["metrics"] = {g: {**m, "psnr": db(m["psnr"])} for g, m in summary["metrics"].items()}
    out["psnr_before_quantisation"] = {s: db(v) for s, v in summary["psnr_before_quantisation"].items()}
    return out


def _sq_error(decoded: np.ndarray, target: np.ndarray) -> float:
    d = decoded.astype(np.float64) - target
    return float(np.vdot(d.ravel(), d.ravel()))
