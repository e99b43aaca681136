"""CUDA renderer speed: ms per training step and the time of a 1000-step bake, plus CPU native.

    python bench/bench_cuda.py [--size 2048] [--channels 9] [--counts 10000 50000]
                               [--steps 1000] [--budget-s 60] [--cpu-size 512] [--cpu-steps 10]

Scenes are random and shaped like bench/bench_render.py's: means uniform over the image,
scales 2-8 px per axis, uniform rotation. A step is render + (out * g).sum().backward(), what
the fitter does per iteration (without the loss and the optimiser, which are not renderer
work). Rows:
  * cuda at --size for every --counts: fwd / bwd are medians of 20 synchronised runs; the
    1000-step column is the wall time of --steps back-to-back steps (one sync at the end), or
    an extrapolation, marked '~', when --budget-s ran out first;
  * cuda and native CPU at --cpu-size with the counts scaled to the same Gaussians per texel,
    so per-texel cost is comparable (native: median of --cpu-steps steps, 1000 extrapolated).
With --bake-only, instead: one `igs-tex bake --device cuda` (bakes.material.bake_material) of a real
material (--bake-material, default walnut_wood) resized to --bake-size (2048: the shared
materials are 1024^2, so this is a 2x Lanczos upscale, with 8 channels as shipped) for
--bake-steps steps at --bake-bppc, timed end to end (load, fit, quantise, colour solve, write).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench_bake import default_material  # beside this script

from igs_tex.render.cuda import CudaRenderer, cuda_available, cuda_unavailable_reason, emulated
from igs_tex.render.params import GaussianParams

try:
    from igs_tex.render.native import NativeRenderer, native_available
except ImportError:
    NativeRenderer, native_available = None, lambda: False

FIELDS = ("means", "theta", "inv_scale", "colour")
GPU = "cpu" if emulated() else "cuda"  # IGS_CUDA_EMULATE=1: a dry run on the CPU emulator


def scene(n: int, size: int, channels: int, device: str, seed: int = 0) -> GaussianParams:
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 2, generator=g) * size
    theta = torch.rand(n, generator=g) * torch.pi
    inv_scale = 1.0 / (2.0 + 6.0 * torch.rand(n, 2, generator=g))
    colour = torch.rand(n, channels, generator=g)
    p = GaussianParams(means, theta, inv_scale, colour)
    return GaussianParams(*(getattr(p, f).to(device).requires_grad_(True) for f in FIELDS))


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def one_step(renderer, leaves: GaussianParams, size: int, grad: torch.Tensor) -> None:
    for f in FIELDS:
        getattr(leaves, f).grad = None
    out = renderer.render(leaves, size, size, tile=16, k=10, eps=1e-7)
    (out * grad).sum().backward()


def split_ms(renderer, leaves, size, grad, device, reps) -> tuple[float, float]:
    """Median forward and backward ms, each synchronised."""
    fwd, bwd = [], []
    for _ in range(reps):
        for f in FIELDS:
            getattr(leaves, f).grad = None
        sync(device)
        t0 = time.perf_counter()
        out = renderer.render(leaves, size, size, tile=16, k=10, eps=1e-7)
        sync(device)
        t1 = time.perf_counter()
        (out * grad).sum().backward()
        sync(device)
        t2 = time.perf_counter()
        fwd.append((t1 - t0) * 1e3)
        bwd.append((t2 - t1) * 1e3)
    return statistics.median(fwd), statistics.median(bwd)


def run_steps(renderer, leaves, size, grad, device, steps, budget_s) -> tuple[float, int]:
    """Seconds for `steps` back-to-back steps, or extrapolated from those done in budget_s."""
    sync(device)
    t0 = time.perf_counter()
    done = 0
    while done < steps:
        one_step(renderer, leaves, size, grad)
        done += 1
        # A step already syncs once (the pair count of the tile binning), so checking the
        # clock here does not serialise anything extra.
        if time.perf_counter() - t0 > budget_s:
            break
    sync(device)
    return time.perf_counter() - t0, done


def row(backend, device_name, size, channels, n, fwd, bwd, total_s, done, steps) -> str:
    """total_s: wall seconds of `done` steps; extrapolated to `steps` (marked ~) if fewer."""
    step = fwd + bwd
    total = f"{total_s:.1f}" if done >= steps else f"~{total_s / done * steps:.1f}"
    ns_texel = step * 1e6 / (size * size)
    return (
        f"| {backend} | {device_name} | {size}x{size} | {channels} | {n} | {fwd:.2f} | {bwd:.2f} "
        f"| {step:.2f} | {total} | {ns_texel:.2f} |"
    )


def bake_row(material: Path, size: int, steps: int, bppc: float) -> None:
    from PIL import Image

    from igs_tex.bakes.material import BakeOptions, bake_material

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / material.name
        src.mkdir()
        for f in sorted(material.glob("*.png")):
            with Image.open(f) as im:
                im.resize((size, size), Image.LANCZOS).save(src / f.name)
        t0 = time.perf_counter()
        summary = bake_material(
            src, Path(tmp) / "out", BakeOptions(bppc=bppc, steps=steps, backend="cuda"), progress=False
        )
        wall = time.perf_counter() - t0
    psnr = summary["metrics"]["all"]["psnr"]
    channels = len(summary["channels"])
    print(
        f"| bake (cuda) | {material.name} {size}x{size} | {channels} | {summary['gaussians']} "
        f"| {steps} | {summary['fit_seconds']:.1f} | {wall:.1f} | {psnr:.2f} |"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--channels", type=int, default=9)
    ap.add_argument("--counts", type=int, nargs="+", default=[10000, 50000])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--budget-s", type=float, default=60.0, help="per configuration, cuda rows")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--cpu-size", type=int, default=512)
    ap.add_argument("--cpu-steps", type=int, default=10)
    ap.add_argument("--bake-only", action="store_true", help="only the real-material bake row")
    ap.add_argument("--bake-material", type=Path, default=default_material())
    ap.add_argument("--bake-size", type=int, default=2048)
    ap.add_argument("--bake-steps", type=int, default=5000)
    ap.add_argument("--bake-bppc", type=float, default=0.059)
    args = ap.parse_args()

    if not cuda_available():
        print(f"CUDA renderer unavailable: {cuda_unavailable_reason()}", file=sys.stderr)
        return 2
    gpu = "CPU emulator (timings meaningless)" if emulated() else torch.cuda.get_device_name()
    cpu = f"{platform.processor() or platform.machine()} x{os.cpu_count()}"
    if args.bake_only:
        print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), GPU {gpu}, CPU {cpu}")
        print()
        print("| run | material | C | N | steps | fit s | total s | PSNR all (dB, decoded .igs) |")
        print("|---|---|---|---|---|---|---|---|")
        bake_row(args.bake_material, args.bake_size, args.bake_steps, args.bake_bppc)
        return 0
    print(
        f"torch {torch.__version__} (CUDA {torch.version.cuda}), GPU {gpu}, CPU {cpu}; "
        "scales 2-8 px, tile 16, K 10; step = render + backward"
    )
    print()
    print(f"| backend | device | size | C | N | fwd ms | bwd ms | step ms | {args.steps} steps (s) | ns/texel/step |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    C = args.channels
    cuda = CudaRenderer()

    for n in args.counts:
        leaves = scene(n, args.size, C, GPU)
        grad = torch.randn(args.size, args.size, C, device=GPU)
        for _ in range(3):  # warm-up: allocator pools, first-launch module loading
            one_step(cuda, leaves, args.size, grad)
        fwd, bwd = split_ms(cuda, leaves, args.size, grad, GPU, args.reps)
        total_s, done = run_steps(cuda, leaves, args.size, grad, GPU, args.steps, args.budget_s)
        print(row("cuda", gpu, args.size, C, n, fwd, bwd, total_s, done, args.steps), flush=True)
        del leaves, grad
        if GPU == "cuda":
            torch.cuda.empty_cache()

    small = args.cpu_size
    scale = (small / args.size) ** 2
    for n_full in args.counts:
        n = max(1, round(n_full * scale))
        leaves = scene(n, small, C, GPU)
        grad = torch.randn(small, small, C, device=GPU)
        for _ in range(3):
            one_step(cuda, leaves, small, grad)
        fwd, bwd = split_ms(cuda, leaves, small, grad, GPU, args.reps)
        total_s, done = run_steps(cuda, leaves, small, grad, GPU, args.steps, args.budget_s / 4)
        print(row("cuda", gpu, small, C, n, fwd, bwd, total_s, done, args.steps), flush=True)
        if not native_available():
            print(f"| native | (not built) | {small}x{small} | {C} | {n} | - | - | - | - | - |")
            continue
        native = NativeRenderer()
        leaves = scene(n, small, C, "cpu")
        grad = torch.randn(small, small, C)
        one_step(native, leaves, small, grad)
        fwd, bwd = split_ms(native, leaves, small, grad, "cpu", args.cpu_steps)
        print(row("native", cpu, small, C, n, fwd, bwd, (fwd + bwd) / 1e3, 1, args.steps), flush=True)
    print()
    print("'~' = extrapolated from the steps that fit the time budget; native rows always are.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
