"""One material, igs-tex at several rates against the BCn / ASTC baselines: the results and the
comparison maths. The bakes that fill a Comparison are ``igs_tex.bakes.comparison``.

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
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

DEFAULT_RATES = (0.03, 0.06, 0.12, 0.25)
DEFAULT_CODECS = ("bc1", "bc7", "astc4x4", "astc6x6", "astc8x8", "astc12x12")
DEFAULT_MIPS = (0, 1, 2, 3)
IGS = "igs-tex"
# PSNR differences inside this band are called "at" rather than above/below: smaller than
# what a change of seed moves a bake by, so not worth a verdict either way.
TIE_DB = 0.1


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
        return _json_safe(
            {
                "name": self.name,
                "source": self.source,
                "width": self.width,
                "height": self.height,
                "channels": self.channels,
                "groups": self.groups,
                "rows": rows,
                "settings": self.settings,
                "versions": self.versions,
                "machine": self.machine,
                "seconds": self.seconds,
            }
        )

    @staticmethod
    def from_json(d: dict) -> "Comparison":
        """Inverse of :meth:`to_json` for the tables (rows come back without image data)."""
        d = _json_floats(d)
        return Comparison(
            name=d["name"],
            source=d["source"],
            width=d["width"],
            height=d["height"],
            channels=d["channels"],
            groups=d["groups"],
            target=None,
            rows=d["rows"],
            settings=d["settings"],
            versions=d["versions"],
            machine=d["machine"],
            seconds=d.get("seconds", {}),
        )


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


def rate_tag(rate: float) -> str:
    """'0.06' -> '0p06': safe in file names and HTML ids."""
    return f"{rate:g}".replace(".", "p").replace("-", "m")


# --------------------------------------------------------------------------- comparing


def interpolate_log_rate(points: list[tuple[float, float]], rate: float) -> float | None:
    """PSNR at ``rate`` on the piecewise-linear curve through (rate, psnr) in log(rate).

    None outside the points' rate range. An infinite end (a lossless reconstruction) makes
    the segment's value that of the other end, or inf when both are.
    """
    pts = sorted(points)
    if not pts or rate < pts[0][0] or rate > pts[-1][0]:
        return None
    for (r0, p0), (r1, p1) in zip(pts, pts[1:]):  # noqa: B007  (the pair found is used below)
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


def compare(c: Comparison, codecs: Iterable[str] | None = None, group: str = "all", metric: str = "psnr") -> list[dict]:
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
            out.append(
                {
                    "target_bppc": ig["target_bppc"],
                    "igs_bppc": ig["bppc"],
                    "igs_bppc_total": ig["bppc_total"],
                    "igs": mine,
                    "codec": codec,
                    "next_up": None if up is None else {"mip": up["mip"], "bppc": up["bppc"], "value": up_value},
                    "delta_next_up": d_up,
                    "verdict_next_up": verdict(d_up),
                    "interp": interp,
                    "delta_interp": d_interp,
                    "verdict_interp": verdict(d_interp),
                    "interp_at_total": interp_total,
                    "delta_interp_at_total": d_total,
                    "verdict_interp_at_total": verdict(d_total),
                }
            )
    return out
