"""Format version 1 against version 2 and the block codecs, all at the whole file's rate.

    python baselines/versions.py --source DIR --label NAME [--rates 0.03,0.059,0.12] [--materials a,b]

For each material and rate: `igs-tex bake --bppc RATE` as version 2 (the default settings) and as
version 1 (`--format 1 --max-scale 16`, the version 1 default before version 2: its tile index
estimated into the budget), each judged at the rate of its whole file (less the metadata text);
BC1, BC7 and ASTC 6x6 / 8x8 / 12x12 (igs_tex.codecs, ASTC at codecs.astc.QUALITY_PRESET) at mip
levels 0..3, their PSNR interpolated in log(rate) at each igs-tex file's rate (the comparison rule
of report/comparison.py; none outside a codec's range). Writes baselines/VERSIONS-NAME.md and the
raw rows to baselines/versions-NAME.json. Normals are also given as the mean angle in degrees.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from igs_tex import IgsError  # noqa: E402
from igs_tex.bakes.comparison import parse_list  # noqa: E402
from igs_tex.bakes.material import BakeOptions, bake_material  # noqa: E402
from igs_tex.codecs import astc  # noqa: E402
from igs_tex.codecs.isobitrate import rd_points  # noqa: E402
from igs_tex.igsfile import read_igs  # noqa: E402
from igs_tex.material import load_material  # noqa: E402
from igs_tex.metrics import report_metrics  # noqa: E402
from igs_tex.render.decode import decode_stack  # noqa: E402
from igs_tex.report.comparison import interpolate_log_rate  # noqa: E402

CODECS = ("bc1", "bc7", "astc6x6", "astc8x8", "astc12x12")
MIPS = (0, 1, 2, 3)
VERSIONS = {2: BakeOptions, 1: lambda **kw: BakeOptions(format=1, max_scale_px=16.0, **kw)}


def measure(material: Path, rates: list[float], work: Path, versions=(2, 1)) -> dict:
    stack = load_material(material)
    groups = stack.group_slices()
    out = {
        "material": material.name,
        "size": [stack.width, stack.height],
        "channels": stack.channels,
        "igs": [],
        "codecs": [],
    }
    for rate in rates:
        for version in versions:
            make = VERSIONS[version]
            t0 = time.perf_counter()
            s = bake_material(material, work / f"v{version}_{rate:g}", make(bppc=rate), progress=False)
            decoded = decode_stack(read_igs(s["output"]))
            m = report_metrics(decoded, stack.data, groups, stack.value_range)
            out["igs"].append(
                {
                    "version": version,
                    "target": rate,
                    "bppc": s["size"]["bppc"],
                    "kib": s["size"]["total_bytes"] / 1024,
                    "gaussians": s["gaussians"],
                    "metrics": m,
                    "seconds": round(time.perf_counter() - t0, 1),
                }
            )
            print(
                f"  v{version} {rate:g}: {s['gaussians']} Gaussians, {s['size']['bppc']:.4f} bppc, "
                f"{m['all']['psnr']:.2f} dB",
                file=sys.stderr,
                flush=True,
            )
    for row in rd_points(stack, CODECS, MIPS, keep_decoded=False):
        out["codecs"].append({k: row[k] for k in ("codec", "mip", "bppc", "bppc_stored", "metrics")})
    return out


def strict(o):
    """JSON-safe copy: infinite PSNR (an exact constant map) as the string "inf"."""
    if isinstance(o, dict):
        return {k: strict(v) for k, v in o.items()}
    if isinstance(o, list):
        return [strict(v) for v in o]
    if isinstance(o, float) and o == float("inf"):
        return "inf"
    return o


def loose(o):
    if isinstance(o, dict):
        return {k: loose(v) for k, v in o.items()}
    if isinstance(o, list):
        return [loose(v) for v in o]
    return float("inf") if o == "inf" else o


def codec_at(result: dict, codec: str, rate: float, group: str = "all") -> float | None:
    pts = sorted((r["bppc_stored"], r["metrics"][group]["psnr"]) for r in result["codecs"] if r["codec"] == codec)
    return interpolate_log_rate(pts, rate)


def fmt(v) -> str:
    return "-" if v is None else ("inf" if v == float("inf") else f"{v:.2f}")


def markdown(results: list[dict], command: str) -> str:
    lines = [
        "# Format version 1 against version 2 and the block codecs, at the whole file's rate",
        "",
        f"`{command}`; ASTC at the `{astc.QUALITY_PRESET}` preset. Each igs-tex row is judged at its own",
        "file's rate (less the metadata text): the codecs' PSNR is interpolated in log(rate) between their",
        "RD points (mip levels 0-3, stored bytes), '-' where the rate is outside a codec's points.",
        "",
        "| material | target | version | bppc (file) | KiB | Gaussians | PSNR all | base colour | normal | normal deg "
        "| BC1 | BC7 | ASTC 6x6 | ASTC 8x8 | ASTC 12x12 | vs best codec |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for ig in r["igs"]:
            m = ig["metrics"]
            at = [codec_at(r, c, ig["bppc"]) for c in CODECS]
            best = max((v for v in at if v is not None), default=None)
            delta = None if best is None else m["all"]["psnr"] - best
            lines.append(
                "| "
                + " | ".join(
                    [
                        r["material"],
                        f"{ig['target']:g}",
                        str(ig["version"]),
                        f"{ig['bppc']:.4f}",
                        f"{ig['kib']:.1f}",
                        str(ig["gaussians"]),
                        fmt(m["all"]["psnr"]),
                        fmt(m.get("basecolor", {}).get("psnr")),
                        fmt(m.get("normal", {}).get("psnr")),
                        fmt(m.get("normal", {}).get("angular_error_deg")),
                        *[fmt(v) for v in at],
                        "-" if delta is None else f"{delta:+.2f}",
                    ]
                )
                + " |"
            )
    lines += [
        "",
        "Summary: mean PSNR (all channels) of version 2 minus version 1 at equal target rate, and "
        "version 2 minus ASTC 12x12 at version 2's file rate:",
        "",
        "| target | materials | v2 - v1 (dB) | v2 - ASTC 12x12 (dB) | v2 at or above ASTC 12x12 | "
        "v2 - best codec (dB) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for rate in sorted({ig["target"] for r in results for ig in r["igs"]}):
        d21, d2a, dbest, n_at = [], [], [], 0
        for r in results:
            by = {ig["version"]: ig for ig in r["igs"] if ig["target"] == rate}
            if 1 in by and 2 in by:
                d21.append(by[2]["metrics"]["all"]["psnr"] - by[1]["metrics"]["all"]["psnr"])
            if 2 in by:
                a = codec_at(r, "astc12x12", by[2]["bppc"])
                if a is not None:
                    d2a.append(by[2]["metrics"]["all"]["psnr"] - a)
                    n_at += by[2]["metrics"]["all"]["psnr"] >= a - 0.1
                at = [v for v in (codec_at(r, c, by[2]["bppc"]) for c in CODECS) if v is not None]
                if at:
                    dbest.append(by[2]["metrics"]["all"]["psnr"] - max(at))
        mean = lambda v: "-" if not v else f"{sum(v) / len(v):+.2f}"  # noqa: E731
        lines.append(
            f"| {rate:g} | {len(results)} | {mean(d21)} | {mean(d2a)} | {n_at} of {len(d2a)} | {mean(dbest)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=REPO / "assets")
    ap.add_argument("--label", default="assets")
    ap.add_argument("--rates", default="0.03,0.059,0.12")
    ap.add_argument("--materials", default=None)
    ap.add_argument("--versions", default="2,1", help="format versions baked (default both)")
    ap.add_argument("--render-only", action="store_true")
    a = ap.parse_args(argv)
    command = "python baselines/versions.py " + " ".join(argv if argv is not None else sys.argv[1:])
    js = REPO / "baselines" / f"versions-{a.label}.json"
    md = REPO / "baselines" / f"VERSIONS-{a.label}.md"
    try:
        if a.render_only:
            saved = loose(json.loads(js.read_text()))
            results, command = saved["results"], saved["command"]
        else:
            rates = parse_list("--rates", a.rates, float)
            mats = sorted(p for p in a.source.iterdir() if p.is_dir() and any(p.glob("*.png")))
            if a.materials:
                wanted = a.materials.split(",")
                mats = [m for m in mats if m.name in wanted]
            results = []
            with tempfile.TemporaryDirectory(prefix="igs-versions-") as tmp:
                for m in mats:
                    print(f"{m.name}:", file=sys.stderr, flush=True)
                    versions = parse_list("--versions", a.versions, int)
                    results.append(measure(m, rates, Path(tmp) / m.name, versions))
                    js.write_text(
                        json.dumps(
                            strict({"command": command, "results": results}), indent=1, allow_nan=False, default=float
                        )
                        + "\n"
                    )
        md.write_text(markdown(results, command))
    except IgsError as e:
        print(f"baselines/versions.py: error: {e}", file=sys.stderr)
        return 2
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
