"""Per-texel cost of a runtime sampler: a version 2 file against version 1 at the same Gaussians.

    python bench/bench_sampler_cost.py [FILE.igs ...] [--material DIR] [--bppc 0.059] [--steps N]

Without files, bakes --material (default the 1024 px walnut_wood of tests/data) at --bppc with the
default settings, which write version 2. Each version 2 file is compared with the version 1 file
of exactly its Gaussians (its dequantised parameters written by igsfile.build_igs at the same
tile size), so the two differ only in how a texel finds its Gaussians. Counts, not timings: they
are the same on any machine.

Counting (shaders/README.md, "Cost per texel"; one MAC per multiply, add or subtract):
- version 1, per listed Gaussian: 3 record words + half a 16-bit (one 32-bit) index entry;
  14 MACs (decode 3, p - m 2, rotate 4, scale 2, square-sum 2, x(-1/2) 1).
- version 2, per candidate (a record in the 2R+1 scanned runs): the words its geometry bits span;
  11 MACs (mean decode 2, listing rule 9: four subtracts, two multiplies, u^2 + v^2);
  per listed Gaussian 12 more (theta decode 1, p - m 2, rotate 4, scale 2, square-sum 2, x(-1/2) 1)
  and nothing read (the geometry words are already in registers); offsets: the words 2 (2R+1)
  entries span.
- both, the blend: min(L, K) kept Gaussians; their colour words (version 1: floor(C/2) + 1 words
  of the record; version 2: the words their colour bits span), 2C MACs to decode their colours
  (a multiply and an add each, in both versions) plus K (C + 1) + C for the normalised sum;
  version 1 adds 2 offset words. Header words are uniform and left out of both.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from igs_tex.igsfile import as_version_1, read_igs  # noqa: E402

MACS_PER_LISTED_V1 = 14
MACS_PER_CANDIDATE_V2 = 11
MACS_PER_LISTED_V2 = 12


def texel_weights(igs) -> np.ndarray:
    """Texels per tile (edge tiles are cut), as weights for per-texel means."""
    t = np.arange(igs.tile_count)
    tx, ty = t % igs.tiles_x, t // igs.tiles_x
    w = np.minimum((tx + 1) * igs.tile, igs.width) - tx * igs.tile
    h = np.minimum((ty + 1) * igs.tile, igs.height) - ty * igs.tile
    return (w * h).astype(np.float64)


def words_spanned(first_bit: np.ndarray, bits: int) -> np.ndarray:
    return ((first_bit + bits - 1) >> 5) - (first_bit >> 5) + 1


def v2_cost(igs) -> dict:
    L = igs.layout
    tiles_x, tiles_y, R = igs.tiles_x, igs.tiles_y, igs.reach
    lengths = np.diff(igs.tile_offsets.astype(np.int64))
    kept = np.minimum(lengths, igs.k)
    geo_bits = 2 * L.mean_bits + L.theta_bits + 2 * L.scale_bits
    colour_bits = sum(L.colour_bits)
    n = igs.gaussian_count
    start = np.arange(n, dtype=np.int64) * L.record_bits
    geo_words = words_spanned(start, geo_bits)
    colour_words = words_spanned(start + geo_bits, colour_bits)
    geo_cum = np.concatenate([[0], np.cumsum(geo_words)])
    off = igs.offsets.astype(np.int64)
    ob = igs.offset_bits
    cand = np.zeros(igs.tile_count)
    reads = np.zeros(igs.tile_count)
    colour_mean = float(colour_words.mean()) if n else 0.0
    for t in range(igs.tile_count):
        tx, ty = t % tiles_x, t // tiles_x
        for hy in range(max(ty - R, 0), min(ty + R, tiles_y - 1) + 1):
            a = hy * tiles_x + max(tx - R, 0)
            b = hy * tiles_x + min(tx + R, tiles_x - 1) + 1
            cand[t] += off[b] - off[a]
            reads[t] += geo_cum[off[b]] - geo_cum[off[a]]
            reads[t] += words_spanned(np.array([a * ob]), ob)[0] + words_spanned(np.array([b * ob]), ob)[0]
    reads += kept * colour_mean
    c = igs.channel_count
    macs = MACS_PER_CANDIDATE_V2 * cand + MACS_PER_LISTED_V2 * lengths + kept * 2 * c + igs.k * (c + 1) + c
    return summarise(igs, cand, lengths, reads, macs)


def v1_cost(igs) -> dict:
    lengths = np.diff(igs.tile_offsets.astype(np.int64))
    kept = np.minimum(lengths, igs.k)
    c = igs.channel_count
    entry = 0.5 if igs.index_bits == 16 else 1.0
    reads = lengths * (3 + entry) + 2 + kept * (c // 2 + 1)
    macs = MACS_PER_LISTED_V1 * lengths + kept * 2 * c + igs.k * (c + 1) + c
    return summarise(igs, lengths, lengths, reads, macs)


def summarise(igs, cand, listed, reads, macs) -> dict:
    w = texel_weights(igs)
    mean = lambda v: float((np.asarray(v, np.float64) * w).sum() / w.sum())  # noqa: E731
    size = igs.size_report()
    return {
        "candidates": mean(cand),
        "listed": mean(listed),
        "reads": mean(reads),
        "macs": mean(macs),
        "kib": size["total_bytes"] / 1024,
        "bppc": size["bppc_file"],
    }


def bake(material: Path, bppc: float, steps: int | None, out: Path) -> Path:
    from igs_tex.bakes.material import BakeOptions, bake_material

    opts = BakeOptions(bppc=bppc) if steps is None else BakeOptions(bppc=bppc, steps=steps)
    summary = bake_material(material, out, opts, progress=False)
    return Path(summary["output"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path, help="version 2 .igs files (default: bake one)")
    ap.add_argument("--material", type=Path, default=REPO / "tests" / "data" / "materials" / "walnut_wood")
    ap.add_argument("--bppc", type=float, default=0.059)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("/tmp/igs_bench_sampler_cost"))
    args = ap.parse_args()
    files = args.files or [bake(args.material, args.bppc, args.steps, args.out)]
    print("| file | version | N | T | R | KiB | bppc (file) | candidates | listed | u32 reads | MACs |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for path in files:
        igs2 = read_igs(path)
        if igs2.version != 2:
            print(f"{path}: version {igs2.version}, expected a version 2 file")
            return 2
        rows = [("2", igs2, v2_cost(igs2)), ("1 (same Gaussians)", v1 := as_version_1(igs2), v1_cost(v1))]
        for version, igs, c in rows:
            print(
                f"| {path.name} | {version} | {igs.gaussian_count} | {igs.tile} | {getattr(igs, 'reach', '-')} | "
                f"{c['kib']:.1f} | {c['bppc']:.4f} | {c['candidates']:.1f} | {c['listed']:.1f} | "
                f"{c['reads']:.1f} | {c['macs']:.0f} |"
            )
        a, b = rows[0][2], rows[1][2]
        print(
            f"| {path.name} | ratio 2 / 1 | | | | {a['kib'] / b['kib']:.2f} | | | | "
            f"{a['reads'] / b['reads']:.2f} | {a['macs'] / b['macs']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
