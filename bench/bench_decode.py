"""Throughput of the C reference decoder (native/include/igs_decoder.h) on a real bake.

    python bench/bench_decode.py [FILE.igs] [--reps 5] [--samples 200000] [--steps 200]

Without FILE, bakes tests/data/materials/walnut_wood (1024 x 1024, the default 0.059 bppc) with
--steps optimisation steps into --cache once and reuses it. Every row goes through the C API via
igs_tex._native.IgsDecoder: full-image decode single-threaded and with all cores, and scattered
single-texel / uv / footprint calls (one C call per sample, single-threaded). Times are the
median of --reps runs after a warm-up; CPU time is reported next to wall clock because other
processes may share the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from igs_tex.render.native import native_available  # noqa: E402

DEFAULT_MATERIAL = REPO / "tests" / "data" / "materials" / "walnut_wood"

# Per listed Gaussian, as counted in shaders/README.md ("Cost per texel"): decode 3 mul, p - m 2,
# rotate 4, scale 2, square-sum 2, x(-1/2) 1. The CPU decoder dequantises once at creation, so
# its own per-texel count leaves the 3 decode multiplies out.
MACS_PER_LISTED_SHADER = 14
MACS_PER_LISTED_CPU = 11


def timed(fn, reps: int) -> tuple[float, float]:
    """Median (wall s, process CPU s) over reps runs after one warm-up."""
    fn()
    runs = []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        runs.append((time.perf_counter() - t0, time.process_time() - c0))
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def _package_digest() -> str:
    # The cached bake is only valid for the code that made it (a fitting change moves the tile
    # size, the lists and so the decode cost), so its folder is named by the package sources.
    import hashlib

    h = hashlib.sha256()
    for f in sorted((REPO / "igs_tex").rglob("*.py")):
        h.update(f.relative_to(REPO).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def bake_default(cache: Path, steps: int) -> Path:
    out = cache / f"walnut_wood_{steps}steps_{_package_digest()}"
    path = out / "walnut_wood.igs"
    if path.exists():
        return path
    from igs_tex.bakes.material import BakeOptions, bake_material

    print(f"baking {DEFAULT_MATERIAL} ({steps} steps, default rate) into {out} ...", flush=True)
    bake_material(DEFAULT_MATERIAL, out, BakeOptions(steps=steps), progress=False)
    return path


def list_stats(igs) -> tuple[float, int, float]:
    """(mean list length over texels, max list length, mean min(L, K) over texels)."""
    off = igs.tile_offsets.astype(np.int64)
    lengths = np.diff(off)
    t = np.arange(igs.tile_count)
    tx, ty = t % igs.tiles_x, t // igs.tiles_x
    w = np.minimum((tx + 1) * igs.tile, igs.width) - tx * igs.tile
    h = np.minimum((ty + 1) * igs.tile, igs.height) - ty * igs.tile
    texels = (w * h).astype(np.float64)
    total = texels.sum()
    return (
        float((lengths * texels).sum() / total),
        int(lengths.max()),
        float((np.minimum(lengths, igs.k) * texels).sum() / total),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", type=Path, help=".igs file (default: bake the walnut)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--samples", type=int, default=200_000, help="scattered samples per row")
    ap.add_argument("--steps", type=int, default=200, help="bake steps when no file is given")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/igs_bench_decode"))
    ap.add_argument("--no-reference", action="store_true", help="skip the torch decode_igs row")
    args = ap.parse_args()
    if not native_available():
        print("igs_tex._native is not built (python setup.py build_ext --inplace)")
        return 1
    from igs_tex import _native
    from igs_tex.igsfile import from_bytes

    if not hasattr(_native, "IgsDecoder"):
        print("igs_tex._native predates the C decoder: rebuild it")
        return 1

    path = args.file or bake_default(args.cache, args.steps)
    data = path.read_bytes()
    igs = from_bytes(data, str(path))
    t0 = time.perf_counter()
    dec = _native.IgsDecoder(data)
    create_s = time.perf_counter() - t0
    W, H, C, K = igs.width, igs.height, igs.channel_count, igs.k
    texels = W * H
    mean_l, max_l, mean_kept = list_stats(igs)
    cores = os.cpu_count() or 1
    load0 = os.getloadavg()[0]

    print(
        f"{path.name}: {W}x{H}x{C}, N={igs.gaussian_count}, K={K}, T={igs.tile}, "
        f"{len(data) / 1024:.1f} KiB, mean list length L={mean_l:.2f} (max {max_l})"
    )
    print(
        f"{platform.processor() or platform.machine()}, {cores} CPUs, load average {load0:.2f} at "
        f"start; median of {args.reps} runs; decoder creation (validate + dequantise) "
        f"{create_s * 1e3:.2f} ms"
    )

    rows = []  # (operation, threads, wall s per op, cpu s per op, items per op)
    for threads, label in ((1, "1"), (0, f"{cores} (all)")):
        wall, cpu = timed(lambda t=threads: dec.decode(threads=t), args.reps)
        rows.append(("full image, igs_decode_image", label, wall, cpu, texels))
    rng = np.random.default_rng(0)
    n = args.samples
    xy = np.stack([rng.integers(0, W, n), rng.integers(0, H, n)], axis=1).astype(np.int64)
    uv = rng.uniform(-1, 2, (n, 2)).astype(np.float32)
    wall, cpu = timed(lambda: dec.texels(xy), args.reps)
    rows.append(("random texel, igs_decode_texel", "1", wall, cpu, n))
    wall, cpu = timed(lambda: dec.sample_uv(uv, mode=0), args.reps)
    rows.append(("random uv (wrap), igs_sample_uv", "1", wall, cpu, n))
    F = np.float32(_native.IgsDecoder.footprint_for_mip_level(2.0))
    wall, cpu = timed(lambda: dec.sample_footprint(uv, F, mode=0), args.reps)
    rows.append(("random uv, footprint mip 2", "1", wall, cpu, n))
    err = None
    if not args.no_reference:
        import torch

        from igs_tex.render.decode import decode_igs

        t0, c0 = time.perf_counter(), time.process_time()
        ref = decode_igs(igs)
        rows.append(
            (
                "torch reference, decode_igs (1 run)",
                str(torch.get_num_threads()),
                time.perf_counter() - t0,
                time.process_time() - c0,
                texels,
            )
        )
        err = float(np.abs(dec.decode() - ref).max())

    print()
    header = (
        f"| {'operation':<38} | {'threads':>9} | {'wall ms':>9} | {'CPU ms':>9} | {'Mtexels/s':>9} | {'ns/texel':>8} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for op, threads, wall, cpu, items in rows:
        print(
            f"| {op:<38} | {threads:>9} | {wall * 1e3:9.2f} | {cpu * 1e3:9.2f} | "
            f"{items / wall / 1e6:9.2f} | {wall / items * 1e9:8.1f} |"
        )
    print()
    blend_k = K * (C + 1) + C
    blend_exact = mean_kept * (C + 1) + C
    print(
        f"MACs per texel, shaders/README.md rule: {MACS_PER_LISTED_SHADER} x L + K (C + 1) + C = "
        f"{MACS_PER_LISTED_SHADER} x {mean_l:.2f} + {K} x {C + 1} + {C} = "
        f"{MACS_PER_LISTED_SHADER * mean_l + blend_k:.0f}"
    )
    print(
        "  (L = the texel's tile-list length averaged over texels; per listed Gaussian: decode 3 mul, "
        "p - m 2, rotate 4, scale 2, square-sum 2, x(-1/2) 1; blend: K weights x (C colour MACs + 1 sum) "
        "+ C divides; exp/sin/cos not counted as MACs)"
    )
    print(
        f"MACs per texel, this CPU decoder (parameters dequantised once, blend over min(L, K) = "
        f"{mean_kept:.2f} kept): {MACS_PER_LISTED_CPU} x {mean_l:.2f} + {mean_kept:.2f} x {C + 1} + {C} "
        f"= {MACS_PER_LISTED_CPU * mean_l + blend_exact:.0f}, plus one exp per listed Gaussian"
    )
    if err is not None:
        print(f"max |C decoder - decode_igs| = {err:.2e}")
    load1 = os.getloadavg()[0]
    if max(load0, load1) > 0.5:
        print(
            f"note: load average {load0:.2f} -> {load1:.2f}: other processes shared the CPUs, so "
            f"wall-clock rates are pessimistic (all-core rows most of all)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
