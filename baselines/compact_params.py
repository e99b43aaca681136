"""What the same bit budget buys with fewer bits per Gaussian parameter (a format question).

    python baselines/compact_params.py [--layout compact|compact32|colour8] [--label NAME]
                                       [--materials a,b] [--steps N] [--render-only]

The .igs format stores every parameter in 16 bits (DESIGN.md "Quantization"), 16 (5 + C) bits a
Gaussian. Most of those bits buy precision no texel can show: a colour step of 1/65535 of the
channel's range sits 70-90 dB below the error of any fit here. This script measures what a leaner
layout would reach at the rates of baselines/RESULTS.md, without changing the format:

  compact   mean x, y in ceil(log2(max(W, H))) + 3 bits each (1/8 texel), theta in 8 bits over
            [0, pi), each inverse scale in 8 bits log-spaced over [1/64, 8] per texel (2.5% apart),
            colours in 8 bits over each channel's range. 6 channels: 96 bits instead of 176.
            Records are bit-packed (a GPU reads the two or three words a record spans).
  compact32 the same, each record padded to whole 32-bit words (8 channels: 128 bits, not 112).
  colour8   16-bit geometry as now, 8-bit colours: 80 + 8 C bits.

For each material and rate of the committed results (baselines/results/<material>.json) it fits
N = rate * W * H * C / bits Gaussians exactly as `igs-tex bake` does (same settings, seed and
auto tile), rounds the geometry onto the layout's grid, solves the colours for that geometry
(fit/colour_solve.py, as the bake does), rounds them to 8 bits and decodes with the reference
decoder (the rounded values are held exactly enough by the 16-bit file). The table puts the
result next to the 16-bit bake and to BC1, BC7 and ASTC 12x12 interpolated at the same rate
from the same JSON. Writes baselines/LEAN-LAYOUT.md and .json (LEAN-LAYOUT-LABEL.* with --label).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from run import result_paths, select_named  # noqa: E402  (baselines/run.py, beside this script)

from igs_tex import IgsError  # noqa: E402
from igs_tex.fit.settings import DEFAULT_STEPS  # noqa: E402
from igs_tex.report.comparison import Comparison, interpolate_log_rate, next_up, verdict  # noqa: E402
from igs_tex.report.markdown import fmt_rate  # noqa: E402

JUDGED = ("bc1", "bc7", "astc12x12")
# Inverse scales (1/texel) the 8-bit log code spans: 64 texels down to 1/8 texel of deviation.
INV_SCALE_RANGE = (1.0 / 64.0, 8.0)


def position_bits(width: int, height: int) -> int:
    return int(math.ceil(math.log2(max(width, height)))) + 3


def layout_bits(layout: str, width: int, height: int, channels: int) -> int:
    if layout in ("compact", "compact32"):
        bits = 2 * position_bits(width, height) + 8 + 2 * 8 + 8 * channels
        return bits if layout == "compact" else -(-bits // 32) * 32
    if layout == "colour8":
        return 16 * 5 + 8 * channels
    raise IgsError(f"--layout must be compact, compact32 or colour8, got {layout!r}")


def round_to_grid(x: np.ndarray, lo: float, hi: float, bits: int) -> np.ndarray:
    """x clamped to [lo, hi] and rounded to the nearest of 2^bits evenly spaced levels."""
    levels = 2**bits - 1
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return lo + np.rint(t * levels) / levels * (hi - lo)


def compact_geometry(means, theta, inv_scale, width: int, height: int):
    pb = position_bits(width, height)
    means = np.stack([round_to_grid(means[:, 0], 0.0, width, pb), round_to_grid(means[:, 1], 0.0, height, pb)], axis=1)
    # theta has period pi: code 256 is code 0.
    theta = np.remainder(np.rint(np.remainder(theta, math.pi) / math.pi * 256.0), 256.0) / 256.0 * math.pi
    lo, hi = (math.log(v) for v in INV_SCALE_RANGE)
    inv_scale = np.exp(round_to_grid(np.log(np.clip(inv_scale, *INV_SCALE_RANGE)), lo, hi, 8))
    return means, theta, inv_scale


def colours_8bit(colour: np.ndarray) -> np.ndarray:
    lo = colour.min(axis=0)
    hi = np.maximum(colour.max(axis=0), lo + 1e-6)
    return np.stack([round_to_grid(colour[:, c], lo[c], hi[c], 8) for c in range(colour.shape[1])], axis=1)


def file_bits_with_records(igs, record_bits: int) -> int:
    """The file's size in bits with its Gaussian records replaced by bit-packed ones of
    record_bits each (in whole words): its header, tile offsets and index stay."""
    size = igs.size_report()
    other_bytes = size["total_bytes"] - size["gaussian_bytes"]
    return 8 * other_bytes + 32 * -(-igs.gaussian_count * record_bits // 32)


def measure(material: Path, rate: float, layout: str, steps: int, seed: int) -> dict:
    """Fit, round onto the layout, solve colours, round them, decode; PSNR per group."""
    from igs_tex.bakes.material import bake_fit_settings
    from igs_tex.fit.colour_solve import solve_colours
    from igs_tex.fit.trainer import fit_stack
    from igs_tex.igsfile import build_igs
    from igs_tex.material import load_material
    from igs_tex.metrics import group_metrics
    from igs_tex.render.decode import decode_stack

    st = load_material(material)
    w, h, c = st.width, st.height, st.channel_count
    bits = layout_bits(layout, w, h, c)
    n = int(rate * w * h * c // bits)
    # The bake's settings, so only the bits differ.
    s = bake_fit_settings(w, h, n, steps=steps, seed=seed)
    tile = s.tile
    t0 = time.perf_counter()
    p = fit_stack(st.data, s, progress=False).params
    means, theta, inv_scale = (x.numpy().astype(np.float64) for x in (p.means, p.theta, p.inv_scale))
    if layout != "colour8":
        means, theta, inv_scale = compact_geometry(means, theta, inv_scale, w, h)
    geometry = tuple(x.astype(np.float32) for x in (means, theta, inv_scale))

    def pack(colour):
        return build_igs(
            *geometry, colour.astype(np.float32), w, h, st.channels, st.value_range, {}, tile=tile, k=s.k, eps=s.eps
        )

    igs = pack(p.colour.numpy())
    q = igs.params()
    colour = solve_colours(
        q["means"],
        q["theta"],
        q["inv_scale"],
        p.colour.numpy(),
        st.data,
        tile,
        s.k,
        s.eps,
        igs.tile_offsets,
        igs.tile_indices,
    )
    lean = pack(colours_8bit(colour.astype(np.float64)))
    metrics = group_metrics(decode_stack(lean), st.data, st.group_slices())
    file_bits = file_bits_with_records(lean, bits)
    return {
        "gaussians": n,
        "bits_per_gaussian": bits,
        "bppc": n * bits / (w * h * c),
        "bppc_file": file_bits / (w * h * c),
        "psnr": {g: v["psnr"] for g, v in metrics.items()},
        "seconds": round(time.perf_counter() - t0, 1),
    }


def baseline_at(c: Comparison, codec: str, rate: float) -> tuple[float | None, str]:
    """The codec's PSNR (all) at this rate: interpolated in log(rate), or below its lowest point
    its next-up point (at least as many bits), as RESULTS.md does."""
    pts = c.codec_rows(codec)
    v = interpolate_log_rate([(p["bppc"], p["metrics"]["all"]["psnr"]) for p in pts], rate)
    if v is not None:
        return v, ""
    up = next_up(pts, rate)
    return (None, "") if up is None else (up["metrics"]["all"]["psnr"], f" (next-up, mip {up['mip']})")


def table(comps: list[Comparison], measured: list[dict], layout: str) -> list[str]:
    by_name = {c.name: c for c in comps}
    head = (
        f"| material | rate | 16-bit: Gaussians, PSNR all | {layout}: Gaussians x bits, PSNR all | gain dB | "
        + " | ".join(f"Δ vs {codec}" for codec in JUDGED)
        + " | above BC1 & BC7, ≥ ASTC 12x12 | "
        "whole file bppc, 16-bit / " + layout + " | Δ vs astc12x12 at the file's rate, 16-bit / " + layout + " |"
    )
    lines = [head, "|" + "|".join([":---"] + ["---:"] * (4 + len(JUDGED)) + [":---"] + ["---:"] * 2) + "|"]
    for row in measured:
        c, m = by_name[row["material"]], row["measured"]
        ig = next(r for r in c.igs_rows() if r["target_bppc"] == row["rate"])
        mine, before = m["psnr"]["all"], ig["metrics"]["all"]["psnr"]
        cells, verdicts = [], {}
        for codec in JUDGED:
            value, how = baseline_at(c, codec, m["bppc"])
            verdicts[codec] = verdict(None if value is None else mine - value)
            cells.append("n/a" if value is None else f"{mine - value:+.2f}{how}")
        ok = verdicts["bc1"] == verdicts["bc7"] == "above" and verdicts["astc12x12"] in ("above", "at")
        files, at_file = [fmt_rate(ig["bppc_total"])], []
        for rate_file, psnr_all in ((ig["bppc_total"], before), (m.get("bppc_file"), mine)):
            value = None if rate_file is None else baseline_at(c, "astc12x12", rate_file)[0]
            at_file.append("n/a" if value is None else f"{psnr_all - value:+.2f}")
        files.append("n/a" if m.get("bppc_file") is None else fmt_rate(m["bppc_file"]))
        lines.append(
            f"| {c.name} | {row['rate']:g} | {ig['gaussians']}, {before:.2f} | "
            f"{m['gaussians']} x {m['bits_per_gaussian']}, {mine:.2f} | {mine - before:+.2f} | "
            + " | ".join(cells)
            + f" | {'yes' if ok else 'no'} | {' / '.join(files)} | {' / '.join(at_file)} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layout", default="compact", help="compact (default), compact32 or colour8")
    ap.add_argument("--label", default=None, help="use baselines/results-LABEL/ and write LEAN-LAYOUT-LABEL.*")
    ap.add_argument("--materials", default=None, help="comma-separated material names (default: all)")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--render-only", action="store_true", help="rewrite the Markdown from the saved measurements without fitting"
    )
    a = ap.parse_args(argv)
    command = "python baselines/compact_params.py" + "".join(
        f" {shlex.quote(x)}" for x in (argv if argv is not None else sys.argv[1:])
    )
    try:
        _, res_dir = result_paths(a.label)
        layout_bits(a.layout, 1, 1, 1)  # validates --layout before any work
        stem = REPO / "baselines" / (f"LEAN-{a.layout}" + (f"-{a.label}" if a.label else ""))
        files = sorted(res_dir.glob("*.json"))
        if not files:
            raise IgsError(f"{res_dir}: no results; run baselines/run.py first")
        comps = select_named([Comparison.from_json(json.loads(f.read_text())) for f in files], a.materials, res_dir)
        if a.render_only:
            if not stem.with_suffix(".json").exists():
                raise IgsError(f"{stem.with_suffix('.json')}: no measurements; run without --render-only first")
            saved = json.loads(stem.with_suffix(".json").read_text())
            command, measured = saved["command"], saved["rows"]
        else:
            measured = []
            for c in comps:
                for ig in sorted(c.igs_rows(), key=lambda r: r["bppc"]):
                    rate = ig["target_bppc"]
                    print(f"{c.name} at {rate:g} bppc ({a.layout}) ...", file=sys.stderr, flush=True)
                    m = measure((REPO / c.source).resolve(), rate, a.layout, a.steps, a.seed)
                    measured.append({"material": c.name, "rate": rate, "measured": m})
                    print(
                        f"    {m['gaussians']} Gaussians x {m['bits_per_gaussian']} bits: "
                        f"{m['psnr']['all']:.2f} dB (16-bit bake {ig['metrics']['all']['psnr']:.2f}), "
                        f"{m['seconds']} s",
                        file=sys.stderr,
                        flush=True,
                    )
            stem.with_suffix(".json").write_text(
                json.dumps(
                    {
                        "command": command,
                        "date": time.strftime("%Y-%m-%d"),
                        "layout": a.layout,
                        "steps": a.steps,
                        "seed": a.seed,
                        "rows": measured,
                    },
                    indent=1,
                )
                + "\n"
            )
    except IgsError as e:
        print(f"baselines/compact_params.py: error: {e}", file=sys.stderr)
        return 2
    text = "\n".join(
        [
            f"# Fewer bits per parameter at the same rate ({a.layout})",
            "",
            f"Written by `{command}`; {a.steps} steps, seed {a.seed}; raw numbers in `{stem.name}.json`. "
            "Not a format: the .igs still stores 16 bits a parameter. The layout is simulated by "
            "rounding onto its grid (see the script's docstring). Baselines are interpolated in log(rate) "
            f"at the layout's exact rate from `{res_dir.relative_to(REPO)}/`, or where that rate is below "
            "their lowest point, taken at their next-up point (more bits than igs-tex); 'at' = within "
            "0.1 dB, as in RESULTS.md. The last two columns judge at the whole file's rate instead (tile "
            "index and header included: what a runtime sampler keeps in memory); the layout's file is "
            "counted as its tile lists, the header without the bake's metadata text, and the records "
            "bit-packed into whole words.",
            "",
            *table(comps, measured, a.layout),
            "",
        ]
    )
    stem.with_suffix(".md").write_text(text)
    print(stem.with_suffix(".md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
