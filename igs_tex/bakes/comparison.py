"""The comparison report's bakes: igs-tex once per target rate, the block-compression baselines
at every requested mip level, every reconstruction scored by the same ``report_metrics``
against the same loaded stack, so the rows are comparable.

igs-tex rows decode what was written (the .igs file, not the fitter's float parameters).
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .. import IgsError, __version__
from ..config import DEFAULT_K, DEFAULT_SEED
from ..fit.settings import DEFAULT_STEPS
from ..report.comparison import DEFAULT_CODECS, DEFAULT_MIPS, DEFAULT_RATES, IGS, Comparison, rate_tag
from ..report.markdown import fmt_db

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- environment


def machine_info() -> dict:
    """Where the numbers were measured: quality does not depend on it, timings do."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"cpu": cpu, "cores": usable, "os": platform.platform(), "python": platform.python_version()}


def software_versions() -> dict:
    import torch

    from ..codecs import codec_versions

    out = {
        "igs_tex": __version__,
        "git": _git_describe(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "codecs": codec_versions(),
    }
    try:
        from .. import _native  # noqa: F401

        out["native"] = True
    except ImportError:
        out["native"] = False
    return out


def _git_describe() -> str | None:
    repo = Path(__file__).resolve().parents[2]
    if not (repo / ".git").exists():
        return None
    try:
        r = subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() or None


# --------------------------------------------------------------------------- running


def _check_options(stack, rates: list[float], codecs: list[str], mips: list[int]) -> None:
    """Reject every bad option before the first bake, which can take minutes."""
    from ..budget import gaussians_for_budget
    from ..codecs.packing import get_scheme

    if not rates:
        raise IgsError("--rates: give at least one rate")
    for r in rates:
        if not (isinstance(r, (int, float)) and math.isfinite(r) and r > 0):
            raise IgsError(f"--rates: {r!r} is not a positive number")
        try:
            gaussians_for_budget(stack.width, stack.height, stack.channel_count, bppc=r)
        except IgsError as e:
            raise IgsError(f"--rates {r:g}: {e}") from None
    if len(set(rates)) != len(rates):
        raise IgsError("--rates: a rate is given twice")
    for c in codecs:
        get_scheme(c)
    if len(set(codecs)) != len(codecs):
        raise IgsError("--codecs: a codec is given twice")
    largest = max(stack.width, stack.height)
    for m in mips:
        if not isinstance(m, int) or m < 0 or (1 << m) > largest:
            raise IgsError(
                f"--mips: level {m!r} is outside 0..{largest.bit_length() - 1} for {stack.width}x{stack.height}"
            )
    if len(set(mips)) != len(mips):
        raise IgsError("--mips: a level is given twice")


def parse_list(option: str, text: str, convert) -> list:
    """'0.03, 0.06' -> [0.03, 0.06]; a bad item is one IgsError line naming the option."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise IgsError(f"{option}: empty list")
    out = []
    for t in items:
        try:
            out.append(convert(t))
        except ValueError:
            raise IgsError(f"{option}: {t!r} is not a valid value") from None
    return out


def run_comparison(
    material,
    out_dir: Path,
    *,
    rates: Iterable[float] = DEFAULT_RATES,
    steps: int | None = None,
    codecs: Iterable[str] = DEFAULT_CODECS,
    mips: Iterable[int] = DEFAULT_MIPS,
    seed: int = DEFAULT_SEED,
    backend: str = "auto",
    k: int = DEFAULT_K,
    log: Log | None = _stderr,
) -> Comparison:
    """Bake igs-tex at each rate into out_dir/igs/ and run the baselines; returns all rows.

    ``steps`` None: the bake's default. Raises IgsError for a bad material or option before
    any work starts.
    """
    from ..codecs.isobitrate import rd_points
    from ..igsfile import read_igs
    from ..material import load_material
    from ..metrics import report_metrics
    from ..render.decode import decode_stack
    from .material import BakeOptions, bake_material

    log = log or (lambda _msg: None)
    rates, codecs, mips = list(rates), list(codecs), list(mips)
    out_dir = Path(out_dir)
    steps = DEFAULT_STEPS if steps is None else steps
    if out_dir.exists() and not out_dir.is_dir():
        raise IgsError(f"{out_dir}: output path exists and is not a folder")
    if not isinstance(steps, int) or steps < 1:
        raise IgsError(f"--steps must be >= 1, got {steps!r}")
    stack = load_material(material)
    _check_options(stack, rates, codecs, mips)
    groups = stack.group_slices()

    t_all = time.perf_counter()
    rows: list[dict] = []
    n_jobs = len(rates) + len(codecs) * len(mips)
    job = 0
    bake_dir = out_dir / "igs"
    t_bakes = time.perf_counter()
    for rate in sorted(rates):
        job += 1
        log(f"[{job}/{n_jobs}] {stack.name}: igs-tex at {rate:g} bppc, {steps} steps ...")
        t0 = time.perf_counter()
        name = f"{stack.name}_{rate_tag(rate)}bppc"
        s = bake_material(
            Path(material),
            bake_dir,
            BakeOptions(bppc=rate, steps=steps, seed=seed, backend=backend, k=k, name=name),
            progress=False,
        )
        igs_path = Path(s["output"])
        decoded = decode_stack(read_igs(igs_path))
        metrics = report_metrics(decoded, stack.data, groups, stack.value_range)
        rows.append(
            {
                "method": IGS,
                "label": f"{IGS} {rate:g}",
                "mip": None,
                "target_bppc": rate,
                "bppc": s["size"]["bppc"],
                "bppc_total": s["size"]["bppc_total"],
                "gaussians": s["gaussians"],
                "backend": s["backend"],
                "file": str(igs_path),
                "bake_seconds": s["total_seconds"],
                "fit": s.get("settings", {}),
                "metrics": metrics,
                "decoded": decoded,
            }
        )
        log(
            f"    {s['gaussians']} Gaussians, {s['size']['bppc']:.4f} bppc, "
            f"PSNR {fmt_db(metrics['all']['psnr'])} dB, {time.perf_counter() - t0:.0f} s"
        )
    t_bakes = time.perf_counter() - t_bakes

    t_codecs = time.perf_counter()
    for codec in codecs:
        for m in mips:
            job += 1
            log(f"[{job}/{n_jobs}] {stack.name}: {codec} at mip {m} ...")
            (row,) = rd_points(stack, [codec], mips=[m], keep_decoded=True)
            rows.append(
                {
                    "method": codec,
                    "label": f"{codec} mip{m}",
                    "mip": m,
                    "block": row["block"],
                    "bppc": row["bppc"],
                    "bppc_total": row["bppc_stored"],
                    "formats": row["formats"],
                    "metrics": row["metrics"],
                    "decoded": row["decoded"],
                }
            )
    t_codecs = time.perf_counter() - t_codecs

    settings = {
        "rates": sorted(rates),
        "steps": steps,
        "seed": seed,
        "backend": backend,
        "backend_used": sorted({r["backend"] for r in rows if r["method"] == IGS}),
        "k": k,
        "tile": _tiles(rows),
        "codecs": codecs,
        "mips": mips,
        "fit": _common_fit_settings(rows),
    }
    return Comparison(
        name=stack.name,
        source=str(material),
        width=stack.width,
        height=stack.height,
        channels=list(stack.channels),
        groups=groups,
        target=stack.data,
        rows=rows,
        settings=settings,
        versions=software_versions(),
        machine=machine_info(),
        seconds={
            "igs_bakes": round(t_bakes, 1),
            "baselines": round(t_codecs, 1),
            "total": round(time.perf_counter() - t_all, 1),
        },
    )


def _tiles(rows: list[dict]) -> str:
    """The tile size each bake chose from its budget, e.g. 'auto: 32 at 0.03, 16 at 0.25'."""
    per = [f"{r['fit'].get('tile', '?')} at {r['target_bppc']:g}" for r in rows if r["method"] == IGS and r.get("fit")]
    return "auto: " + ", ".join(per) if per else "auto"


def _common_fit_settings(rows: list[dict]) -> dict:
    """The fitter settings every bake shared (the Gaussian count varies with the rate)."""
    fits = [r.get("fit") or {} for r in rows if r["method"] == IGS]
    if not fits:
        return {}
    return {k: v for k, v in fits[0].items() if all(f.get(k) == v for f in fits[1:])}
