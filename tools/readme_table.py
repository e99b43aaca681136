"""Rewrite README.md's "How good, how fast" table from baselines/versions-assets.json.

    python tools/readme_table.py

The table sits between the README's `<!-- results:begin -->` and `<!-- results:end -->` lines;
everything else in the README is left as it is.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "baselines"))

from versions import CODECS, codec_at, loose  # noqa: E402  (baselines/versions.py)

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
NAMES = {"bc1": "BC1", "bc7": "BC7", "astc6x6": "ASTC 6x6", "astc8x8": "ASTC 8x8", "astc12x12": "ASTC 12x12"}


def table(results: list[dict]) -> str:
    rows = [
        "| sample (512 px) | budget bppc | file KiB | Gaussians | PSNR all / base colour / normal dB "
        "| best block codec at that size | igs-tex vs it | bake s |",
        "|---|---:|---:|---:|---|---|---:|---:|",
    ]
    for r in results:
        for ig in (g for g in r["igs"] if g["version"] == 2):
            m = ig["metrics"]
            at = {c: codec_at(r, c, ig["bppc"]) for c in CODECS}
            at = {c: v for c, v in at.items() if v is not None}
            best = max(at, key=at.get) if at else None
            psnr = " / ".join(f"{m[g]['psnr']:.2f}" for g in ("all", "basecolor", "normal") if g in m)
            vs = f"{m['all']['psnr'] - at[best]:+.2f} dB" if best else "-"
            best_s = f"{NAMES[best]} {at[best]:.2f} dB" if best else "none at this rate"
            rows.append(
                f"| {r['material']} | {ig['target']:g} | {ig['kib']:.1f} | {ig['gaussians']} | {psnr} | "
                f"{best_s} | {vs} | {ig['seconds']:.0f} |"
            )
    return "\n".join(rows)


def main() -> int:
    data = loose(json.loads((REPO / "baselines" / "versions-assets.json").read_text()))
    readme = REPO / "README.md"
    text = readme.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + BEGIN + "\n" + table(data["results"]) + "\n" + END + tail)
    print(f"{readme}: table of {len(data['results'])} materials rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
