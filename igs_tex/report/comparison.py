"""One material, igs-tex at several rates against the BCn / ASTC baselines, measured alike.

``run_comparison`` bakes igs-tex once per target rate, decodes what was written (the .igs
file, not the fitter's float parameters) and runs the block-compression baselines at every
requested mip level (``codecs.isobitrate``). Every reconstruction is scored by the same
``report_metrics`` against the same loaded stack, so the rows are comparable.

Rates on the x axis: igs-tex rows use the bppc of the stored Gaussian parameters (DESIGN.md
"Bitrate", the paper's convention) with the whole-file rate beside it in ``bppc_total``;
baseline rows use the codec's nominal rate (bits per texel / 4^mip / C), with the bytes
actually stored (partial edge blocks included) in ``bppc_total``.

Comparing at unequal rates (``compare``): igs-tex never lands exactly on a baseline's RD
point, so each igs-tex row is judged two ways against each baseline:

- *next-up*: the baseline point with the smallest rate >= the igs-tex rate. The baseline
  gets at least as many bits, so "above" there is a conservative claim.
- *interpolated*: the baseline's PSNR linearly interpolated in log(rate) between the two
  RD points that bracket the igs-tex rate (none outside the baseline's range; no
  extrapolation).
"""
from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from igs_tex import IgsError, __version__

DEFAULT_RATES = (0.03, 0.06, 0.12, 0.25)
DEFAULT_CODECS = ("bc1", "bc7", "astc4x4", "astc6x6", "astc8x8", "astc12x12")
DEFAULT_MIPS = (0, 1, 2, 3)
IGS = "igs-tex"
# PSNR differences inside this band are called "at" rather than above/below: smaller than
# what a change of seed moves a bake by, so not worth a verdict either way.
TIE_DB = 0.1

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Comparison:
    """Everything a report needs; ``rows`` hold the decoded stacks unless dropped."""

    name: str
    source: str
    width: int
    height: int
    channels: list[str]
    groups: dict[str, list[int]]
    target: np.ndarray | None  # [H, W, C] float32 scored against; None when loaded from JSON
    rows: list[dict]
    settings: dict
    versions: dict
    machine: dict
    seconds: dict = field(default_factory=dict)

    def igs_rows(self) -> list[dict]:
        return [r for r in self.rows if r["method"] == IGS]

    def codec_rows(self, codec: str) -> list[dict]:
        """A baseline's RD points, lowest rate first."""
        return sorted((r for r in self.rows if r["method"] == codec), key=lambda r: r["bppc"])

    def codecs(self) -> list[str]:
        seen: list[str] = []
        for r in self.rows:
            if r["method"] != IGS and r["method"] not in seen:
                seen.append(r["method"])
        return seen

    def metric_groups(self) -> list[str]:
        return list(self.groups) + ["all"]

    def to_json(self) -> dict:
        """JSON-safe summary (no image data); infinite PSNR written as the string 'inf'."""
        rows = [{k: v for k, v in r.items() if k != "decoded"} for r in self.rows]
        return _json_safe({
            "name": self.name, "source": self.source, "width": self.width, "height": self.height,
            "channels": self.channels, "groups": self.groups, "rows": rows,
            "settings": self.settings, "versions": self.versions, "machine": self.machine,
            "seconds": self.seconds,
        })


    @staticmethod
    def from_json(d: dict) -> "Comparison":
        """Inverse of :meth:`to_json` for the tables (rows come back without image data)."""
        d = _json_floats(d)
        return Comparison(name=d["name"], source=d["source"], width=d["width"], height=d["height"],
                          channels=d["channels"], groups=d["groups"], target=None, rows=d["rows"],
                          settings=d["settings"], versions=d["versions"], machine=d["machine"],
                          seconds=d.get("seconds", {}))


def _json_floats(o):
    if isinstance(o, dict):
        return {k: _json_floats(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_json_floats(v) for v in o]
    if o in ("inf", "-inf", "nan"):
        return float(o)
    return o


def _json_safe(o):
    if isinstance(o, dict):
        return {str(k): _json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_json_safe(v) for v in o]
    if isinstance(o, (np.floating, np.integer)):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return "inf" if o > 0 else ("-inf" if o < 0 else "nan")
    return o


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

    from igs_tex.codecs import codec_versions
    out = {"igs_tex": __version__, "git": _git_describe(), "torch": torch.__version__,
           "numpy": np.__version__, "codecs": codec_versions()}
    try:
        from igs_tex import _native  # noqa: F401
        out["native"] = True
    except ImportError:
        out["native"] = False
    return out


def _git_describe() -> str | None:
    repo = Path(__file__).resolve().parents[2]
    if not (repo / ".git").exists():
        return None
    try:
        r = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty"],
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() or None


# --------------------------------------------------------------------------- running


def _check_options(stack, rates: list[float], codecs: list[str], mips: list[int]) -> None:
    """Reject every bad option before the first bake, which can take minutes."""
    from igs_tex.codecs.packing import get_scheme
    from igs_tex.fit import gaussians_for_budget

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
            raise IgsError(f"--mips: level {m!r} is outside 0..{largest.bit_length() - 1} "
                           f"for {stack.width}x{stack.height}")
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


def rate_tag(rate: float) -> str:
    """'0.06' -> '0p06': safe in file names and HTML ids."""
    return f"{rate:g}".replace(".", "p").replace("-", "m")


def default_steps() -> int:
    """The bake's own default schedule, so a report measures what `igs-tex bake` ships."""
    import inspect

    from igs_tex.pipeline import bake_material
    return int(inspect.signature(bake_material).parameters["steps"].default)


def run_comparison(material, out_dir: Path, *, rates: Iterable[float] = DEFAULT_RATES,
                   steps: int | None = None, codecs: Iterable[str] = DEFAULT_CODECS,
                   mips: Iterable[int] = DEFAULT_MIPS, seed: int = 0, backend: str = "auto",
                   k: int = 10, log: Log | None = _stderr) -> Comparison:
    """Bake igs-tex at each rate into out_dir/igs/ and run the baselines; returns all rows.

    ``steps`` None: the bake's default. Raises IgsError for a bad material or option before
    any work starts.
    """
    from igs_tex.codecs.isobitrate import rd_points
    from igs_tex.igsfile import read_igs
    from igs_tex.material import load_material
    from igs_tex.pipeline import bake_material
    from igs_tex.render.decode import decode_stack
    from igs_tex.report.metrics import report_metrics

    log = log or (lambda _msg: None)
    rates, codecs, mips = list(rates), list(codecs), list(mips)
    out_dir = Path(out_dir)
    steps = default_steps() if steps is None else steps
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
        s = bake_material(Path(material), bake_dir, bppc=rate, steps=steps, seed=seed,
                          backend=backend, k=k, progress=False, name=name)
        igs_path = Path(s["output"])
        decoded = decode_stack(read_igs(igs_path))
        metrics = report_metrics(decoded, stack.data, groups)
        rows.append({
            "method": IGS, "label": f"{IGS} {rate:g}", "mip": None, "target_bppc": rate,
            "bppc": s["size"]["bppc"], "bppc_total": s["size"]["bppc_total"],
            "gaussians": s["gaussians"], "backend": s["backend"], "file": str(igs_path),
            "bake_seconds": s["total_seconds"], "fit": s.get("settings", {}),
            "metrics": metrics, "decoded": decoded,
        })
        log(f"    {s['gaussians']} Gaussians, {s['size']['bppc']:.4f} bppc, "
            f"PSNR {_fmt(metrics['all']['psnr'])} dB, {time.perf_counter() - t0:.0f} s")
    t_bakes = time.perf_counter() - t_bakes

    t_codecs = time.perf_counter()
    for codec in codecs:
        for m in mips:
            job += 1
            log(f"[{job}/{n_jobs}] {stack.name}: {codec} at mip {m} ...")
            (row,) = rd_points(stack, [codec], mips=[m], keep_decoded=True)
            rows.append({
                "method": codec, "label": f"{codec} mip{m}", "mip": m, "block": row["block"],
                "bppc": row["bppc"], "bppc_total": row["bppc_stored"], "formats": row["formats"],
                "metrics": row["metrics"], "decoded": row["decoded"],
            })
    t_codecs = time.perf_counter() - t_codecs

    settings = {"rates": sorted(rates), "steps": steps, "seed": seed, "backend": backend,
                "backend_used": sorted({r["backend"] for r in rows if r["method"] == IGS}),
                "k": k, "tile": _tiles(rows), "codecs": codecs, "mips": mips, "fit": _common_fit_settings(rows)}
    return Comparison(
        name=stack.name, source=str(material), width=stack.width, height=stack.height,
        channels=list(stack.channels), groups=groups, target=stack.data, rows=rows,
        settings=settings, versions=software_versions(), machine=machine_info(),
        seconds={"igs_bakes": round(t_bakes, 1), "baselines": round(t_codecs, 1),
                 "total": round(time.perf_counter() - t_all, 1)},
    )


def _tiles(rows: list[dict]) -> str:
    """The tile size each bake chose from its budget, e.g. 'auto: 32 at 0.03, 16 at 0.25'."""
    per = [f"{r['fit'].get('tile', '?')} at {r['target_bppc']:g}" for r in rows
           if r["method"] == IGS and r.get("fit")]
    return "auto: " + ", ".join(per) if per else "auto"


def _common_fit_settings(rows: list[dict]) -> dict:
    """The fitter settings every bake shared (the Gaussian count varies with the rate)."""
    fits = [r.get("fit") or {} for r in rows if r["method"] == IGS]
    if not fits:
        return {}
    return {k: v for k, v in fits[0].items() if all(f.get(k) == v for f in fits[1:])}


def _fmt(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.2f}"


# --------------------------------------------------------------------------- comparing


def interpolate_log_rate(points: list[tuple[float, float]], rate: float) -> float | None:
    """PSNR at ``rate`` on the piecewise-linear curve through (rate, psnr) in log(rate).

    None outside the points' rate range. An infinite end (a lossless reconstruction) makes
    the segment's value that of the other end, or inf when both are.
    """
    pts = sorted(points)
    if not pts or rate < pts[0][0] or rate > pts[-1][0]:
        return None
    for (r0, p0), (r1, p1) in zip(pts, pts[1:]):
        if r0 <= rate <= r1:
            break
    else:
        return pts[0][1]  # a single point at exactly this rate
    if rate == r0:
        return p0
    if rate == r1:
        return p1
    if math.isinf(p0) or math.isinf(p1):
        return p0 if math.isinf(p1) else p1
    t = (math.log(rate) - math.log(r0)) / (math.log(r1) - math.log(r0))
    return p0 + t * (p1 - p0)


def next_up(points: list[dict], rate: float) -> dict | None:
    """The baseline point with the smallest rate >= rate (points lowest rate first, as
    Comparison.codec_rows gives them), or None above the highest."""
    return next((p for p in points if p["bppc"] >= rate), None)


def verdict(delta: float | None) -> str:
    if delta is None or math.isnan(delta):
        return "n/a"
    if abs(delta) <= TIE_DB:
        return "at"
    return "above" if delta > 0 else "below"


def _delta(a: float, b: float | None) -> float | None:
    if b is None:
        return None
    if math.isinf(a) and math.isinf(b):
        return 0.0
    return a - b


def compare(c: Comparison, codecs: Iterable[str] | None = None, group: str = "all",
            metric: str = "psnr") -> list[dict]:
    """One entry per (igs-tex rate, baseline codec): the igs-tex value, the baseline's next-up
    point and its log-rate interpolation, and the verdicts (``TIE_DB`` band = 'at')."""
    codecs = list(codecs) if codecs is not None else c.codecs()
    out = []
    for ig in sorted(c.igs_rows(), key=lambda r: r["bppc"]):
        mine = ig["metrics"][group][metric]
        for codec in codecs:
            pts = c.codec_rows(codec)
            if not pts:
                continue
            up = next_up(pts, ig["bppc"])
            curve = [(p["bppc"], p["metrics"][group][metric]) for p in pts]
            interp = interpolate_log_rate(curve, ig["bppc"])
            interp_total = interpolate_log_rate(curve, ig["bppc_total"])
            up_value = up["metrics"][group][metric] if up else None
            d_up, d_interp, d_total = _delta(mine, up_value), _delta(mine, interp), _delta(mine, interp_total)
            out.append({
                "target_bppc": ig["target_bppc"], "igs_bppc": ig["bppc"], "igs_bppc_total": ig["bppc_total"],
                "igs": mine, "codec": codec,
                "next_up": None if up is None else {"mip": up["mip"], "bppc": up["bppc"], "value": up_value},
                "delta_next_up": d_up, "verdict_next_up": verdict(d_up),
                "interp": interp, "delta_interp": d_interp, "verdict_interp": verdict(d_interp),
                "interp_at_total": interp_total, "delta_interp_at_total": d_total,
                "verdict_interp_at_total": verdict(d_total),
            })
    return out
