"""Bake one material end to end: load -> fit -> quantise -> .igs -> decode -> measure.

Everything that goes into the .igs is a function of the inputs and settings only (no clock, no
host name), so two bakes with the same seed give the same bytes. Timings go to the JSON summary.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import IgsError, __version__
from ..atomic import atomic_write_text
from ..fit import DEFAULT_STEPS, FitSettings, auto_tile, fit_stack, gaussians_for_budget
from ..fit.colour_solve import solve_colours
from ..igsfile import build_igs, write_igs
from ..material import load_material
from ..render.decode import decode_stack
from ..render.native import native_available
from ..metrics import group_metrics


def auto_grow_every(steps: int) -> int:
    # Paper: +N/8 every 500 steps over a 5000-step fit. Short CPU schedules keep the same four
    # growth rounds but finish them by 40% of the run so the last Gaussians still get trained.
    return max(1, min(500, steps // 10))


def bake_fit_settings(width: int, height: int, gaussians: int, *, steps: int = DEFAULT_STEPS,
                      seed: int = 0, backend: str = "auto", k: int = 10, tile: int | None = None,
                      max_scale_px: float | None = 16.0) -> FitSettings:
    """The fitter settings of a bake of this many Gaussians (tile None: from the budget), so that
    scripts that fit outside bake_material (baselines/compact_params.py) fit exactly as it does."""
    if tile is None:
        tile = auto_tile(width, height, gaussians)
    return FitSettings(gaussians=gaussians, steps=steps, seed=seed, backend=backend, k=k, tile=tile,
                       grow_every=auto_grow_every(steps), max_scale_px=max_scale_px)


def bake_material(src: Path, out_dir: Path, *, bppc: float | None = None, kib: float | None = None,
                  gaussians: int | None = None, steps: int = DEFAULT_STEPS, seed: int = 0,
                  backend: str = "auto", k: int = 10, tile: int | None = None, progress: bool = True,
                  name: str | None = None, max_scale_px: float | None = 16.0,
                  stamp: str | None = None, colour_solve: bool = True) -> dict:
    """Bake `src` into out_dir/<name>.igs and out_dir/<name>.json; returns the summary dict.

    stamp: bakes.project.stamp_key of this bake, recorded in the JSON with the .igs hash so a later
    project bake can tell the output is up to date.
    tile: texels per tile side; None picks it from the budget (fit/settings.py auto_tile).
    colour_solve: after training, replace the colours with the least-squares ones for the
    quantised geometry (fit/colour_solve.py, on the CPU: it reads the native top-K). Native
    and cuda bakes (when the C++ extension is built); the torch backend stays pure PyTorch.
    """
    t_start = time.perf_counter()
    stack = load_material(src)
    if out_dir.exists() and not out_dir.is_dir():
        raise IgsError(f"{out_dir}: output path exists and is not a folder")
    if bppc is None and kib is None and gaussians is None:
        bppc = 0.059
    n = gaussians_for_budget(stack.width, stack.height, stack.channel_count,
                             bppc=bppc, kib=kib, gaussians=gaussians)
    settings = bake_fit_settings(stack.width, stack.height, n, steps=steps, seed=seed, backend=backend,
                                 k=k, tile=tile, max_scale_px=max_scale_px)
    tile = settings.tile
    fit = fit_stack(stack.data, settings, progress=progress)

    p = fit.params
    metadata = {
        "name": name or stack.name,
        "maps": [m.to_dict() for m in stack.maps],
        "bake": {"gaussians": n, "steps": steps, "seed": seed, "backend": fit.backend,
                 "max_scale_px": max_scale_px,
                 "budget": {"bppc": bppc, "kib": kib, "gaussians": gaussians},
                 "igs_tex": __version__},
    }
    geometry = (p.means.numpy(), p.theta.numpy(), p.inv_scale.numpy())
    igs = build_igs(*geometry, p.colour.numpy(), stack.width, stack.height, stack.channels,
                    stack.value_range, metadata, tile=tile, k=k, eps=settings.eps)
    # Quality is measured on what ships: dequantised parameters and the stored tile index.
    decoded = decode_stack(igs)
    if colour_solve and fit.backend in ("native", "cuda") and native_available():
        # Colours re-solved on the geometry as it ships (dequantised, with the stored lists);
        # quantising the same float geometry again gives the same words and tile lists. Kept
        # only if the decoded file is closer to the target: quantisation has the last word.
        q = igs.params()
        t_solve = time.perf_counter()
        colour = solve_colours(q["means"], q["theta"], q["inv_scale"], p.colour.numpy(), stack.data,
                               tile, k, settings.eps, igs.tile_offsets, igs.tile_indices)
        solved = build_igs(*geometry, colour, stack.width, stack.height, stack.channels,
                           stack.value_range, metadata, tile=tile, k=k, eps=settings.eps)
        decoded_solved = decode_stack(solved)
        if _sq_error(decoded_solved, stack.data) < _sq_error(decoded, stack.data):
            igs, decoded = solved, decoded_solved
        colour_solve_seconds = time.perf_counter() - t_solve
    else:
        colour_solve_seconds = None
    metrics = group_metrics(decoded, stack.data, stack.group_slices())

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = name or stack.name
    igs_path = out_dir / f"{stem}.igs"
    write_igs(igs_path, igs)
    igs_sha256 = hashlib.sha256(igs.to_bytes()).hexdigest()
    sizes = igs.size_report()
    summary = {
        "material": str(src), "output": str(igs_path), "name": stem,
        "width": stack.width, "height": stack.height, "channels": stack.channels,
        "gaussians": n, "steps": steps, "seed": seed, "backend": fit.backend,
        "size": sizes, "metrics": metrics,
        "psnr_before_quantisation": {str(k_): v for k_, v in fit.psnr_history.items()},
        "fit_seconds": round(fit.seconds, 2),
        "colour_solve_seconds": None if colour_solve_seconds is None else round(colour_solve_seconds, 2),
        "total_seconds": round(time.perf_counter() - t_start, 2),
        "settings": {k_: v for k_, v in asdict(settings).items() if k_ != "history_steps"},
    }
    if stamp is not None:
        # Written after the .igs, so a crash in between leaves a stamp that no longer matches.
        summary["stamp"] = {"key": stamp, "igs_sha256": igs_sha256}
    atomic_write_text(out_dir / f"{stem}.json", json.dumps(summary, indent=2, default=_json_default) + "\n")
    return summary


def _sq_error(decoded: np.ndarray, target: np.ndarray) -> float:
    d = decoded.astype(np.float64) - target
    return float(np.vdot(d.ravel(), d.ravel()))


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)
