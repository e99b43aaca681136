"""Milliseconds per forward+backward step: torch reference vs native, side by side.

    python bench/bench_render.py [--reps 5] [--sizes 512 1024] [--counts 2500 10000]

Scenes are random but shaped like a bake in progress: means uniform over the image, scales
2-8 px per axis, uniform rotation, 9 channels. A step is render + out.backward(g) with a
fixed random g = dL/dout: the renderer's share of a fitter iteration, without the loss.
After one warm-up run each, --reps torch steps are timed, each followed by --native-per-rep
native steps, so that both renderers run through the same spells of load on a shared machine
(a VM's speed drifts by 20-40% over seconds); each column is the median of its runs. The torch
reference is timed once only when a single run exceeds --torch-budget seconds. The native
CPU column (process CPU time over all threads) stays meaningful when other processes load
the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from igs_tex.render.native import NativeRenderer, native_available  # noqa: E402
from igs_tex.render.params import GaussianParams  # noqa: E402

try:
    from igs_tex.render.torch_ref import TorchRenderer  # noqa: E402
except ImportError:
    TorchRenderer = None


def scene(n: int, size: int, channels: int, seed: int = 0) -> GaussianParams:
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 2, generator=g) * size
    theta = torch.rand(n, generator=g) * torch.pi
    inv_scale = 1.0 / (2.0 + 6.0 * torch.rand(n, 2, generator=g))
    colour = torch.rand(n, channels, generator=g)
    return GaussianParams(means, theta, inv_scale, colour)


def step_ms(renderer, params: GaussianParams, size: int, grad: torch.Tensor) -> tuple[float, float]:
    """(wall ms, process CPU ms summed over threads) of one forward+backward."""
    leaves = GaussianParams(
        *(t.clone().requires_grad_(True) for t in (params.means, params.theta, params.inv_scale, params.colour))
    )
    t0, c0 = time.perf_counter(), time.process_time()
    out = renderer.render(leaves, size, size, tile=16, k=10, eps=1e-7)
    out.backward(grad)  # dL/dout given: the renderer alone, no loss arithmetic
    return (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3


def interleaved_ms(native, reference, params, size, grad, reps: int, per_rep: int, budget_s: float):
    """((wall ms, CPU ms) of native, the same of the reference or None without one, number of
    reference runs): medians."""
    step_ms(native, params, size, grad)  # warm-up (allocator, thread pools)
    ref_runs, nat_runs = [], []
    time_ref = reference is not None
    if time_ref:
        first = step_ms(reference, params, size, grad)  # warm-up
        if first[0] > budget_s * 1e3:
            ref_runs, time_ref = [first], False
    for _ in range(reps):
        if time_ref:
            ref_runs.append(step_ms(reference, params, size, grad))
        for _ in range(per_rep):
            nat_runs.append(step_ms(native, params, size, grad))

    def med(runs):
        return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)

    return med(nat_runs), (med(ref_runs) if ref_runs else None), len(ref_runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5, help="timed torch steps")
    ap.add_argument("--native-per-rep", type=int, default=4, help="native steps timed after each torch step")
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--counts", type=int, nargs="+", default=[2500, 10000])
    ap.add_argument("--channels", type=int, default=9)
    ap.add_argument(
        "--torch-budget",
        type=float,
        default=20.0,
        help="seconds; a slower torch warm-up run is reported as a single run",
    )
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()

    if not native_available():
        print("igs_tex._native is not built: nothing to compare (pip install -e .)")
        return 1
    from igs_tex import _native

    load = os.getloadavg()[0]
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{load:.2f} at start; torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"native {_native.build_info()} ({_native.num_threads()} threads)"
    )
    print(
        f"median of {args.reps} torch and {args.reps * args.native_per_rep} native steps, "
        f"interleaved; ms per forward+backward (wall clock, and CPU time "
        f"summed over threads for native)"
    )
    header = (
        f"{'size':>9} {'gaussians':>9} {'C':>2} {'torch ms':>10} {'native ms':>10} {'native CPU':>10} {'speedup':>8}"
    )
    print(header)
    print("-" * len(header))
    use_torch = TorchRenderer is not None and not args.no_torch
    single_runs = False
    for size in args.sizes:
        for n in args.counts:
            params = scene(n, size, args.channels)
            grad = torch.randn(size, size, args.channels, generator=torch.Generator().manual_seed(1))
            reference = TorchRenderer() if use_torch else None
            (nat, nat_cpu), ref, runs = interleaved_ms(
                NativeRenderer(), reference, params, size, grad, args.reps, args.native_per_rep, args.torch_budget
            )
            if ref is not None:
                single_runs |= runs == 1
                ref_s = f"{ref[0]:10.1f}" + ("*" if runs == 1 else "")
                speed = f"{ref[0] / nat:7.1f}x"
            else:
                ref_s, speed = f"{'n/a':>10}", f"{'':>8}"
            print(f"{size:>4}x{size:<4} {n:>9} {args.channels:>2} {ref_s} {nat:10.1f} {nat_cpu:10.1f} {speed}")
    if single_runs:
        print("* single run (warm-up exceeded --torch-budget)")
    end_load = os.getloadavg()[0]
    if max(load, end_load) > 0.5:
        print(
            f"note: load average {load:.2f} -> {end_load:.2f}: other processes shared the CPUs, "
            f"so wall-clock times are inflated; compare CPU times"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
