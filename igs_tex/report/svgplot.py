"""Rate-distortion line plots as standalone SVG text (no plotting library needed).

The SVG is self-contained (inline styles, no scripts, no external fonts) so it renders the same
inlined in the HTML report, opened on its own, or linked from Markdown. Each point carries a
<title> so a browser shows its exact value on hover.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

# Distinguishable on white and for the common colour-vision deficiencies (Okabe-Ito), igs-tex
# first so it always gets the strongest colour.
PALETTE = ("#000000", "#e69f00", "#56b4e9", "#009e73", "#d55e00", "#0072b2", "#cc79a7", "#999999", "#f0e442")


@dataclass
class Series:
    name: str
    points: list[tuple[float, float, str]]  # (x, y, hover label)
    colour: str = "#000000"
    width: float = 1.5
    dashed: bool = False
    marker: str = "circle"  # 'circle' or 'square'
    extra: dict = field(default_factory=dict)


def _log_ticks(lo: float, hi: float) -> list[float]:
    # 1-2-5 steps per decade label the usual 0.005..3 bppc span; wider spans thin out to 1-3, then 1.
    decades = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
    for mantissas in ((1, 2, 5), (1, 3), (1,)):
        ticks = [
            m * 10.0**e
            for e in decades
            for m in mantissas
            if lo <= m * 10.0**e * (1 + 1e-9) and m * 10.0**e <= hi * (1 + 1e-9)
        ]
        if len(ticks) <= 9:
            break
    return ticks


def _lin_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    span = hi - lo
    raw = span / max(1, target)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    out = []
    v = first
    while v <= hi + 1e-9 * step:
        out.append(round(v, 10))
        v += step
    return out


def _fmt_tick(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1:
        return f"{v:g}"
    return f"{v:.3g}"


def rd_plot(
    series: list[Series],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = True,
    vlines: list[float] = (),
    width: int = 600,
    height: int = 380,
    note: str | None = None,
    y_max: float | None = None,
) -> str:
    """An SVG line plot of the series; non-finite points are left out (and said so in ``note``).

    ``y_max``: a bound the values cannot exceed (1 for SSIM), so the padding stops there.
    """
    finite = [
        (x, y) for s in series for x, y, _ in s.points if math.isfinite(x) and math.isfinite(y) and (x > 0 or not logx)
    ]
    left, right, top, bottom = 62, 150, 34, 48
    pw, ph = width - left - right, height - top - bottom
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        f'font-family="DejaVu Sans, Arial, sans-serif" font-size="11">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left + pw / 2:.1f}" y="18" text-anchor="middle" font-size="13" '
        f'font-weight="bold">{escape(title)}</text>',
    ]
    if not finite:
        parts.append(
            f'<text x="{left + pw / 2:.1f}" y="{top + ph / 2:.1f}" text-anchor="middle" fill="#555">'
            f"{escape(note or 'no finite values to plot')}</text></svg>"
        )
        return "\n".join(parts)

    xs = [x for x, _ in finite] + [v for v in vlines if v > 0 or not logx]
    ys = [y for _, y in finite]
    if logx:
        x_lo, x_hi = math.log10(min(xs)), math.log10(max(xs))
        pad = max(0.05, (x_hi - x_lo) * 0.04)
        x_lo, x_hi = x_lo - pad, x_hi + pad
    else:
        x_lo, x_hi = min(xs), max(xs)
        pad = max(1e-6, (x_hi - x_lo) * 0.04)
        x_lo, x_hi = x_lo - pad, x_hi + pad
    y_lo, y_hi = min(ys), max(ys)
    ypad = max(0.25, (y_hi - y_lo) * 0.06)
    y_lo, y_hi = y_lo - ypad, y_hi + ypad
    if y_max is not None and y_hi > y_max >= max(ys):
        y_hi = y_max

    def px(x: float) -> float:
        v = math.log10(x) if logx else x
        return left + (v - x_lo) / (x_hi - x_lo) * pw

    def py(y: float) -> float:
        return top + (1 - (y - y_lo) / (y_hi - y_lo)) * ph

    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
    xticks = _log_ticks(10**x_lo, 10**x_hi) if logx else _lin_ticks(x_lo, x_hi)
    for t in xticks:
        x = px(t)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" stroke="#e4e4e4"/>')
        parts.append(f'<text x="{x:.1f}" y="{top + ph + 15}" text-anchor="middle">{_fmt_tick(t)}</text>')
    for t in _lin_ticks(y_lo, y_hi):
        y = py(t)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#e4e4e4"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt_tick(t)}</text>')
    for v in vlines:
        if v > 0 or not logx:
            x = px(v)
            parts.append(
                f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" stroke="#bbb" '
                f'stroke-dasharray="3,3"><title>target {v:g} bppc</title></line>'
            )
    parts.append(f'<text x="{left + pw / 2:.1f}" y="{height - 10}" text-anchor="middle">{escape(xlabel)}</text>')
    parts.append(
        f'<text transform="translate(16 {top + ph / 2:.1f}) rotate(-90)" text-anchor="middle">{escape(ylabel)}</text>'
    )

    for i, s in enumerate(series):
        pts = [
            (x, y, lab)
            for x, y, lab in sorted(s.points)
            if math.isfinite(x) and math.isfinite(y) and (x > 0 or not logx)
        ]
        ly = top + 8 + i * 17
        dash = ' stroke-dasharray="5,3"' if s.dashed else ""
        parts.append(f'<g class="series" data-series="{escape(s.name)}">')
        if len(pts) > 1:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y, _ in pts)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{s.colour}" stroke-width="{s.width}"{dash}/>')
        for x, y, lab in pts:
            parts.append(_marker(s, px(x), py(y), lab))
        lx = left + pw + 12
        parts.append(
            f'<line x1="{lx}" y1="{ly:.1f}" x2="{lx + 22}" y2="{ly:.1f}" stroke="{s.colour}" '
            f'stroke-width="{s.width}"{dash}/>'
        )
        parts.append(_marker(s, lx + 11, ly, s.name))
        parts.append(f'<text x="{lx + 28}" y="{ly + 4:.1f}">{escape(s.name)}</text></g>')
    if note:
        parts.append(f'<text x="{left + 4}" y="{top + ph - 6}" fill="#666" font-size="10">{escape(note)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _marker(s: Series, x: float, y: float, label: str) -> str:
    tip = f"<title>{escape(label)}</title>"
    if s.marker == "square":
        return f'<rect x="{x - 3:.1f}" y="{y - 3:.1f}" width="6" height="6" fill="{s.colour}">{tip}</rect>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.2" fill="{s.colour}">{tip}</circle>'
