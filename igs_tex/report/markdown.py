"""Markdown tables for the comparison report (report.md) and baselines/RESULTS.md."""

from __future__ import annotations

import math

from igs_tex.report.comparison import IGS, TIE_DB, Comparison, compare

COMPARE_NOTE = (
    "Rates: igs-tex is placed at the bppc of its stored Gaussian parameters (the paper's "
    "convention; the whole file, tile index and header included, is the second number); "
    "baselines at their nominal rate, bits per texel / 4^mip / channels (lower rates are a lower "
    "mip level upsampled bilinearly to full size). Because the rates never coincide, each "
    "igs-tex bake is compared with (a) the baseline's *next-up* RD point, the closest one at an "
    "equal or higher rate, so the baseline gets at least as many bits, and (b) the baseline's "
    "PSNR *interpolated* linearly in log(rate) between the two RD points around the igs-tex "
    "rate (n/a outside the baseline's range, never extrapolated). The last column repeats (b) "
    f"at the igs-tex whole-file rate. Verdict: 'at' means within {TIE_DB:g} dB."
)


def fmt_db(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f"{v:.2f}"


def fmt_delta(v) -> str:
    if v is None:
        return "n/a"
    return f"{v:+.2f}"


def fmt_rate(v: float) -> str:
    return f"{v:.4f}" if v < 1 else f"{v:.3f}"


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header: list[str], rows: list[list], align: str | None = None) -> str:
    align = align or ("l" + "r" * (len(header) - 1))
    sep = ["---:" if a == "r" else ":---" for a in align]
    return "\n".join([_row(header), _row(sep)] + [_row(r) for r in rows])


def settings_lines(c: Comparison) -> list[str]:
    s, v, m = c.settings, c.versions, c.machine
    codecs = v.get("codecs", {})
    pkgs = ", ".join(f"{k} {val}" for k, val in codecs.items() if k != "settings")
    enc = ", ".join(f"{k}={val}" for k, val in codecs.get("settings", {}).items())
    shown = {"gaussians", "steps", "seed", "backend", "k", "tile"}
    fit = ", ".join(f"{k}={val}" for k, val in (s.get("fit") or {}).items() if k not in shown)
    return [
        f"- material: `{c.name}` ({c.width}x{c.height}, {len(c.channels)} channels: {', '.join(c.channels)})",
        f"- igs-tex {v.get('igs_tex')} (git {v.get('git') or 'unknown'}): {s['steps']} steps, seed {s['seed']}, "
        f"backend {s['backend']} (used: {', '.join(s.get('backend_used') or []) or 'n/a'}), K={s['k']}, "
        f"tile {s['tile']}, target rates {', '.join(f'{r:g}' for r in s['rates'])} bppc",
        *([f"- fitter settings: {fit}"] if fit else []),
        f"- baselines: {', '.join(s['codecs'])} at mip levels {', '.join(str(x) for x in s['mips'])}",
        f"- codec packages: {pkgs}; encoder settings: {enc}",
        f"- torch {v.get('torch')}, numpy {v.get('numpy')}, native extension "
        f"{'built' if v.get('native') else 'not built'}",
        f"- machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('os')}, Python {m.get('python')}",
        f"- wall time: igs-tex bakes {c.seconds.get('igs_bakes', 0):.0f} s, baselines "
        f"{c.seconds.get('baselines', 0):.0f} s",
    ]


def verdict_table(c: Comparison, codecs=None, group: str = "all") -> str:
    header = [
        "target",
        "igs-tex bppc (params / file)",
        "igs-tex PSNR",
        "baseline",
        "next-up point",
        "its PSNR",
        "Δ dB",
        "verdict",
        "interp. PSNR",
        "Δ dB",
        "verdict",
        "Δ at file rate",
    ]
    rows = []
    for e in compare(c, codecs, group=group):
        up = e["next_up"]
        point = "none at or above" if up is None else f"mip {up['mip']}, {fmt_rate(up['bppc'])}"
        rows.append(
            [
                f"{e['target_bppc']:g}",
                f"{fmt_rate(e['igs_bppc'])} / {fmt_rate(e['igs_bppc_total'])}",
                fmt_db(e["igs"]),
                e["codec"],
                point,
                fmt_db(up["value"] if up else None),
                fmt_delta(e["delta_next_up"]),
                e["verdict_next_up"],
                fmt_db(e["interp"]),
                fmt_delta(e["delta_interp"]),
                e["verdict_interp"],
                fmt_delta(e["delta_interp_at_total"]),
            ]
        )
    return _table(header, rows, "llrllrrlrrlr")


def group_delta_table(c: Comparison, codecs=None) -> str:
    """PSNR difference igs-tex minus baseline (next-up point) for every channel group."""
    codecs = list(codecs) if codecs is not None else c.codecs()
    groups = c.metric_groups()
    header = ["target", "baseline"] + [f"Δ {g}" for g in groups]
    per = {g: compare(c, codecs, group=g) for g in groups}
    rows = []
    for i, e in enumerate(per["all"]):
        rows.append([f"{e['target_bppc']:g}", e["codec"]] + [fmt_delta(per[g][i]["delta_next_up"]) for g in groups])
    return _table(header, rows, "ll" + "r" * len(groups))


def rd_table(c: Comparison, lo: float | None = None, hi: float | None = None) -> str:
    """Every RD point sorted by rate (igs-tex rows in bold): PSNR per group, SSIM of all channels."""
    groups = c.metric_groups()
    header = ["method", "mip", "bppc", "bppc file/stored"] + [f"PSNR {g}" for g in groups] + ["SSIM all"]
    extra = []
    if "basecolor" in c.groups and "flip" in c.rows[0]["metrics"].get("basecolor", {}):
        extra.append(("basecolor", "flip", "FLIP basecolor", "{:.4f}"))
    if "normal" in c.groups and "angular_error_deg" in c.rows[0]["metrics"].get("normal", {}):
        extra.append(("normal", "angular_error_deg", "normal error °", "{:.2f}"))
    header += [e[2] for e in extra]
    rows = []
    for r in sorted(c.rows, key=lambda r: (r["bppc"], r["method"] != IGS)):
        if (lo is not None and r["bppc"] < lo) or (hi is not None and r["bppc"] > hi):
            continue
        bold = r["method"] == IGS
        name = f"**{r['method']}**" if bold else r["method"]
        cells = [name, "" if r["mip"] is None else r["mip"], fmt_rate(r["bppc"]), fmt_rate(r["bppc_total"])]
        cells += [fmt_db(r["metrics"][g]["psnr"]) for g in groups]
        cells.append(f"{r['metrics']['all']['ssim']:.4f}")
        cells += [fmt.format(r["metrics"][g][k]) for g, k, _, fmt in extra]
        rows.append(cells)
    return _table(header, rows, "lr" + "r" * (len(header) - 2))


def report_markdown(c: Comparison, plots: dict[str, str]) -> str:
    """report.md: settings, verdicts, the full RD table, links to the plots and the HTML page."""
    lines = [
        f"# igs-tex vs BCn / ASTC: {c.name}",
        "",
        "Open `index.html` for the plots, error maps and zoomed crops.",
        "",
        *settings_lines(c),
        "",
        "## igs-tex against each baseline (PSNR of all channels)",
        "",
        COMPARE_NOTE,
        "",
        verdict_table(c),
        "",
        "## PSNR difference per channel group (igs-tex minus next-up baseline point)",
        "",
        group_delta_table(c),
        "",
        "## Rate-distortion points",
        "",
        "PSNR in dB over the stored values (sRGB codes for base colour, [0, 1]-encoded normals); "
        "'inf' means exact. SSIM: 11x11 Gaussian window, valid region.",
        "",
        rd_table(c),
        "",
        "## Plots",
        "",
    ]
    for title, path in plots.items():
        lines.append(f"![{title}]({path})")
    lines.append("")
    return "\n".join(lines)
