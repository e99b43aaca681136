"""Write a comparison as a folder: index.html, report.md, results.json, SVG plots and PNGs.

The HTML page is static and self-contained apart from the image files beside it: no web
fonts, no CDN, one small inline script (sortable table). It logs "igs-report: ready" to the
console once the script has run, which the headless-browser test looks for.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

import numpy as np

from igs_tex.atomic import atomic_write_text, json_text
from igs_tex.report import images
from igs_tex.report.comparison import IGS, TIE_DB, Comparison, compare, rate_tag
from igs_tex.report.markdown import COMPARE_NOTE, fmt_db, fmt_delta, fmt_rate, report_markdown
from igs_tex.report.svgplot import PALETTE, Series, rd_plot

# The codecs the error-map rows show beside igs-tex when they were run (all of them would
# mean dozens of full-size maps per rate); the plots and tables always show every codec.
SHOWN_CODECS = ("bc1", "bc7", "astc12x12")
# Largest on-page size of a zoomed crop, in CSS pixels.
ZOOM_TARGET = 192

_CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 24px; color: #111; max-width: 1400px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; } h3 { font-size: 15px; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; cursor: pointer; } td.l, th.l { text-align: left; }
tr.igs td { font-weight: bold; background: #fffbe6; }
.scroll { overflow-x: auto; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.fig-row { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; margin-bottom: 18px; }
figure { margin: 0; font-size: 11px; text-align: center; }
figure img { display: block; image-rendering: pixelated; border: 1px solid #999; }
.note { color: #555; font-size: 12px; max-width: 1000px; }
.above { color: #087f23; } .below { color: #b00020; } .at { color: #555; }
ul.settings { font-size: 13px; }
"""

_JS = """
(function () {
  function key(td) {
    var v = td.getAttribute('data-v');
    if (v === null) return td.textContent;
    return v === 'inf' ? Infinity : parseFloat(v);
  }
  var tables = document.querySelectorAll('table.sortable');
  for (var t = 0; t < tables.length; t++) {
    (function (table) {
      var heads = table.tHead.rows[0].cells;
      for (var i = 0; i < heads.length; i++) {
        (function (col) {
          heads[col].addEventListener('click', function () {
            var body = table.tBodies[0];
            var rows = Array.prototype.slice.call(body.rows);
            var dir = heads[col].getAttribute('data-dir') === 'asc' ? -1 : 1;
            rows.sort(function (a, b) {
              var x = key(a.cells[col]), y = key(b.cells[col]);
              return (x > y ? 1 : x < y ? -1 : 0) * dir;
            });
            heads[col].setAttribute('data-dir', dir === 1 ? 'asc' : 'desc');
            rows.forEach(function (r) { body.appendChild(r); });
          });
        })(i);
      }
    })(tables[t]);
  }
  console.log('igs-report: ready');
})();
"""


def _series(c: Comparison, group: str, metric: str) -> list[Series]:
    out = []
    igs = sorted(c.igs_rows(), key=lambda r: r["bppc"])
    out.append(
        Series(
            IGS,
            [
                (
                    r["bppc"],
                    r["metrics"][group][metric],
                    f"{IGS} {r['bppc']:.4f} bppc: {_val(r['metrics'][group][metric], metric)}",
                )
                for r in igs
            ],
            colour=PALETTE[0],
            width=2.2,
        )
    )
    for i, codec in enumerate(c.codecs()):
        pts = [
            (
                r["bppc"],
                r["metrics"][group][metric],
                f"{codec} mip {r['mip']} {r['bppc']:.4f} bppc: {_val(r['metrics'][group][metric], metric)}",
            )
            for r in c.codec_rows(codec)
        ]
        out.append(
            Series(
                codec, pts, colour=PALETTE[1 + i % (len(PALETTE) - 1)], dashed=codec.startswith("astc"), marker="square"
            )
        )
    return out


def _val(v: float, metric: str) -> str:
    if metric == "psnr":
        return f"{fmt_db(v)} dB"
    return f"{v:.4f}"


def _plots(c: Comparison, out_dir: Path) -> dict[str, tuple[str, str]]:
    """Writes rd_<group>_<metric>.svg; returns title -> (file name, svg text)."""
    made = {}
    for group in c.metric_groups():
        for metric, label in (("psnr", "PSNR (dB)"), ("ssim", "SSIM")):
            series = _series(c, group, metric)
            dropped = sum(1 for s in series for _, y, _ in s.points if not math.isfinite(y))
            note = f"{dropped} exact (infinite PSNR) points not drawn" if dropped else None
            title = f"{c.name}: {group} {label.split(' ')[0]}"
            svg = rd_plot(
                series,
                title=title,
                xlabel="bits per pixel per channel (log)",
                ylabel=label,
                vlines=c.settings["rates"],
                note=note,
                y_max=1.0 if metric == "ssim" else None,
            )
            name = f"rd_{group}_{metric}.svg"
            atomic_write_text(out_dir / name, svg + "\n")
            made[title] = (name, svg)
    return made


def _shown_points(c: Comparison, igs_row: dict, codecs: list[str]) -> list[dict]:
    """The next-up RD point of each shown codec for one igs-tex bake (same rule as the verdicts)."""
    out = []
    for codec in codecs:
        up = next((p for p in c.codec_rows(codec) if p["bppc"] >= igs_row["bppc"]), None)
        if up is not None:
            out.append(up)
    return out


def _figures(c: Comparison, out_dir: Path) -> str:
    """Writes the reference / crop / error-map PNGs; returns the HTML of the image section."""
    codecs = [x for x in SHOWN_CODECS if x in c.codecs()] or c.codecs()[:3]
    size = images.crop_size_for(c.height, c.width)
    x0, y0 = images.choose_crop(c.target, size)
    factor = max(1, ZOOM_TARGET // size)
    px = size * factor
    html = [
        f'<p class="note">Crop: {size}x{size} texels at ({x0}, {y0}), the window with the most '
        f"detail (largest summed gradient), shown {factor}x with nearest-neighbour filtering and outlined "
        f"in red on the error maps. Error maps: mean absolute error over the group's channels, one "
        f"colour scale per row (dark = 0, yellow = the row's 99.5th percentile, value in the caption). "
        f"Baselines shown: {', '.join(codecs)}, each at its next-up RD point (the same point the "
        f"verdict table uses).</p>"
    ]
    for group, idx in c.groups.items():
        ref = c.target[..., idx]
        if float(np.ptp(ref)) == 0.0:
            html.append(f'<p class="note">{escape(group)}: constant map, no images.</p>')
            continue
        rgb = images.to_rgb8(ref)
        images.save_png(out_dir / f"ref_{group}.png", images.outline(rgb, x0, y0, size))
        crop = images.zoom(rgb[y0 : y0 + size, x0 : x0 + size], factor)
        images.save_png(out_dir / f"ref_{group}_crop.png", crop)

    for ig in sorted(c.igs_rows(), key=lambda r: r["bppc"]):
        tag = rate_tag(ig["target_bppc"])
        html.append(
            f'<h3 id="rate-{tag}">{IGS} at {ig["target_bppc"]:g} bppc '
            f"({ig['bppc']:.4f} params, {ig['bppc_total']:.4f} file, {ig['gaussians']} Gaussians)</h3>"
        )
        methods = [ig] + _shown_points(c, ig, codecs)
        for group, idx in c.groups.items():
            ref = c.target[..., idx]
            if float(np.ptp(ref)) == 0.0:
                continue
            errs = [images.abs_error(r["decoded"][..., idx], ref) for r in methods]
            scale = images.error_scale(errs)
            cells = [
                f'<figure style="width:{px}px"><img src="ref_{group}_crop.png" width="{px}" height="{px}" '
                f'alt="reference {escape(group)} crop"><figcaption>reference ({escape(group)})</figcaption>'
                f'<a href="ref_{group}.png"><img src="ref_{group}.png" width="{px}" '
                f'alt="reference {escape(group)}"></a></figure>'
            ]
            for r, err in zip(methods, errs):
                key = "igs" if r["method"] == IGS else f"{r['method']}_mip{r['mip']}"
                crop_name = f"r{tag}_{group}_{key}_crop.png"
                err_name = f"r{tag}_{group}_{key}_err.png"
                dec = images.to_rgb8(r["decoded"][..., idx])
                images.save_png(out_dir / crop_name, images.zoom(dec[y0 : y0 + size, x0 : x0 + size], factor))
                small, shrink = images.max_pool_to(err)
                images.save_png(
                    out_dir / err_name, images.outline(images.heat(small, scale), x0, y0, size, scale=shrink)
                )
                label = r["label"] if r["method"] == IGS else f"{r['method']} mip {r['mip']}"
                psnr = r["metrics"][group]["psnr"]
                # Error maps are shown shrunk to the crop's width; the link opens them texel for texel.
                cells.append(
                    f'<figure style="width:{px}px"><img src="{crop_name}" width="{px}" height="{px}" '
                    f'alt="{escape(label)} {escape(group)} crop"><figcaption>{escape(label)}: '
                    f"{r['bppc']:.4f} bppc, {fmt_db(psnr)} dB</figcaption>"
                    f'<a href="{err_name}"><img src="{err_name}" width="{px}" '
                    f'alt="{escape(label)} {escape(group)} error"></a></figure>'
                )
            html.append(f'<p class="note"><b>{escape(group)}</b>: error scale 0 to {scale:.4f}</p>')
            html.append('<div class="fig-row">' + "".join(cells) + "</div>")
    return "\n".join(html)


def _td(v: float | None, text: str | None = None, cls: str = "") -> str:
    data = "" if v is None else f' data-v="{"inf" if isinstance(v, float) and math.isinf(v) else v}"'
    c = f' class="{cls}"' if cls else ""
    return f"<td{c}{data}>{escape(text if text is not None else fmt_db(v))}</td>"


def _rd_table_html(c: Comparison) -> str:
    groups = c.metric_groups()
    cols = ["method", "mip", "bppc", "bppc file/stored"]
    for g in groups:
        cols += [f"PSNR {g}", f"SSIM {g}"] + (["MS-SSIM " + g] if "ms_ssim" in c.rows[0]["metrics"][g] else [])
    if "flip" in c.rows[0]["metrics"].get("basecolor", {}):
        cols.append("FLIP basecolor")
    if "angular_error_deg" in c.rows[0]["metrics"].get("normal", {}):
        cols.append("normal error °")
    head = "".join(f'<th class="{"l" if i == 0 else ""}">{escape(x)}</th>' for i, x in enumerate(cols))
    body = []
    for r in sorted(c.rows, key=lambda r: (r["bppc"], r["method"] != IGS)):
        m = r["metrics"]
        cells = [
            f'<td class="l">{escape(r["method"])}</td>',
            _td(-1 if r["mip"] is None else r["mip"], "" if r["mip"] is None else str(r["mip"])),
            _td(r["bppc"], fmt_rate(r["bppc"])),
            _td(r["bppc_total"], fmt_rate(r["bppc_total"])),
        ]
        for g in groups:
            cells.append(_td(m[g]["psnr"]))
            cells.append(_td(m[g]["ssim"], f"{m[g]['ssim']:.4f}"))
            if "ms_ssim" in m[g]:
                cells.append(_td(m[g]["ms_ssim"], f"{m[g]['ms_ssim']:.4f}"))
        if "flip" in m.get("basecolor", {}):
            cells.append(_td(m["basecolor"]["flip"], f"{m['basecolor']['flip']:.4f}"))
        if "angular_error_deg" in m.get("normal", {}):
            cells.append(_td(m["normal"]["angular_error_deg"], f"{m['normal']['angular_error_deg']:.2f}"))
        cls = ' class="igs"' if r["method"] == IGS else ""
        body.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    return (
        f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _verdict_table_html(c: Comparison) -> str:
    cols = [
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
    head = "".join(f"<th>{escape(x)}</th>" for x in cols)
    body = []
    for e in compare(c):
        up = e["next_up"]
        point = "none at or above" if up is None else f"mip {up['mip']}, {fmt_rate(up['bppc'])}"
        body.append(
            "<tr>"
            + "".join(
                [
                    _td(e["target_bppc"], f"{e['target_bppc']:g}"),
                    _td(e["igs_bppc"], f"{fmt_rate(e['igs_bppc'])} / {fmt_rate(e['igs_bppc_total'])}"),
                    _td(e["igs"]),
                    f'<td class="l">{escape(e["codec"])}</td>',
                    f'<td class="l">{escape(point)}</td>',
                    _td(up["value"] if up else None),
                    _td(e["delta_next_up"], fmt_delta(e["delta_next_up"])),
                    _td(None, e["verdict_next_up"], e["verdict_next_up"]),
                    _td(e["interp"]),
                    _td(e["delta_interp"], fmt_delta(e["delta_interp"])),
                    _td(None, e["verdict_interp"], e["verdict_interp"]),
                    _td(e["delta_interp_at_total"], fmt_delta(e["delta_interp_at_total"])),
                ]
            )
            + "</tr>"
        )
    return (
        f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def write_report(c: Comparison, out_dir: Path) -> Path:
    """Write the whole report into out_dir (created); returns the path of index.html."""
    from igs_tex.report.markdown import settings_lines

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # A rerun with other rates or codecs would otherwise leave the old pictures beside the new
    # page; only names this module writes are removed, never anything else in the folder.
    for pattern in ("rd_*.svg", "ref_*.png", "r*_*_crop.png", "r*_*_err.png"):
        for old in out_dir.glob(pattern):
            old.unlink()
    plots = _plots(c, out_dir)
    figures = _figures(c, out_dir)
    atomic_write_text(out_dir / "results.json", json_text(c.to_json(), indent=1) + "\n")
    atomic_write_text(out_dir / "report.md", report_markdown(c, {title: name for title, (name, _) in plots.items()}))

    settings = "".join(f"<li>{escape(line[2:]).replace('`', '')}</li>" for line in settings_lines(c))
    plot_html = "".join(f'<div class="plot">{svg}</div>' for _, svg in plots.values())
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>igs-tex report: {escape(c.name)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>igs-tex vs BCn / ASTC: {escape(c.name)}</h1>
<ul class="settings">{settings}</ul>
<p class="note">Also written: <a href="report.md">report.md</a>, <a href="results.json">results.json</a>,
the baked files in <code>igs/</code>.</p>
<h2>Verdicts (PSNR of all channels)</h2>
<p class="note">{escape(COMPARE_NOTE.replace("*", ""))}</p>
{_verdict_table_html(c)}
<h2>Rate-distortion</h2>
<p class="note">Dashed vertical lines: the target rates. Hover a point for its value. PSNR over the
stored values (sRGB codes for base colour, [0, 1]-encoded normals); 'at' = within {TIE_DB:g} dB.</p>
<div class="plots">{plot_html}</div>
<h2>All points</h2>
<p class="note">Click a column heading to sort. igs-tex rows highlighted.</p>
{_rd_table_html(c)}
<h2>Error maps and zoomed crops</h2>
{figures}
<script>{_JS}</script>
</body>
</html>
"""
    index = out_dir / "index.html"
    atomic_write_text(index, page)
    return index
