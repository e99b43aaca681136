"""The CUDA kernels on the CPU emulator (native/cuda/emu), in CI, where there is no GPU.

1. tests/gpu/run_device_checks.sh as a dry run (IGS_CUDA_EMULATE=1): the GPU test suite
   (forward to 1e-5, gradients to 1e-4 against the float64 torch reference, the golden renders
   and the CPU kernels) runs the real kernel sources, and the script's plumbing is exercised.
2. The emulator is shown to fail on kernel bugs: altered copies of native/ (a missing barrier,
   a short warp reduction, lanes leaving before a warp shuffle, blocks that are not whole
   warps, unwritten tile offsets) must make that suite fail, and the unaltered copy must pass.
3. The emulator built with AddressSanitizer, what compute-sanitizer's memcheck is on a GPU:
   the kernels read and write no byte outside their buffers (device buffers are torch's host
   allocations here), and a one-past-the-row write is reported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from igs_tex.render import cuda as igs_cuda

REPO = Path(__file__).resolve().parents[1]
GPU_TESTS = REPO / "tests" / "gpu" / "test_cuda.py"


def emulator_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("IGS_CUDA_LIBRARY", None)
    env.update(
        IGS_CUDA_EMULATE="1",
        IGS_CUDA_BUILD_DIR=str(tmp_path / "build"),
        PYTHONPATH=f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}".rstrip(os.pathsep),
        PYTHON=sys.executable,
        **extra,
    )
    return env


def test_device_checks_dry_run(tmp_path):
    out = tmp_path / "out"
    env = emulator_env(
        tmp_path,
        OUT=str(out),
        IGS_BENCH_ARGS=("--size 96 --counts 60 --steps 3 --reps 1 --cpu-size 48 --cpu-steps 1 --budget-s 5"),
        IGS_BAKE_ARGS="--bake-size 48 --bake-steps 20 --bake-bppc 0.5",
    )
    proc = subprocess.run(
        ["bash", str(REPO / "tests" / "gpu" / "run_device_checks.sh")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    suite = ET.parse(out / "test_cuda.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k)) for k in ("tests", "failures", "errors", "skipped")}
    # Every test ran, the 1024^2 x 9-channel comparison with the CPU kernels included.
    assert counts["tests"] >= 45 and counts["failures"] == counts["errors"] == counts["skipped"] == 0, counts
    names = {case.get("name") for case in suite.iter("testcase")}
    assert {"test_large_against_native", "test_real_material_against_torch_reference"} <= names
    bench = (out / "bench_cuda.md").read_text()
    assert bench.count("| cuda | CPU emulator") == 2 and "| native |" in bench, bench
    bake = (out / "bake_cuda.md").read_text().splitlines()[-1].split("|")
    assert bake[1].strip() == "bake (cuda)" and bake[5].strip() == "20" and float(bake[8]) > 15, bake


# (file under native/, text, replacement, what the failure output must contain or None)
MUTANTS = {
    "none": None,
    "missing_barrier": (
        "cuda/forward.cu",
        "chunk[threadIdx.x] = table[list[base + threadIdx.x]];\n        __syncthreads();",
        "chunk[threadIdx.x] = table[list[base + threadIdx.x]];",
        None,
    ),
    "short_warp_sum": (
        "cuda/launch.cuh",
        "for (int offset = 16; offset > 0;",
        "for (int offset = 8; offset > 0;",
        None,
    ),
    "padding_lanes_leave": (
        "cuda/backward.cu",
        "const bool lane0 = (threadIdx.x & 31) == 0;",
        "const bool lane0 = (threadIdx.x & 31) == 0;\n    if (!ts.inside) return;",
        # early leavers strand the others at a barrier or a shuffle
        "unspecified launch failure (CPU emulator: block",
    ),
    "partial_warps": (
        "cuda/launch.cuh",
        "return (tile * tile + 31) / 32 * 32;",
        "return tile * tile;",
        "not a multiple of 32",
    ),
    "tile_ranges_off_by_one": (
        "cuda/binning.cu",
        "for (int64_t t = before + 1; t <= here; ++t)",
        "for (int64_t t = before + 1; t < here; ++t)",
        None,
    ),
    # the barrier before a block restages the chunk others may still be reading
    "missing_reuse_barrier": (
        "cuda/forward.cu",
        "__syncthreads();  // the previous chunk is no longer being read",
        "",
        None,
    ),
}

ASAN_MUTANT = ("cuda/forward.cu", "for (int q = n; q < k; ++q) row[q]", "for (int q = n; q <= k; ++q) row[q]")


@pytest.mark.parametrize("name", ["clean", "topk_row_overflow"])
def test_kernels_under_address_sanitizer(tmp_path, name):
    runtime = subprocess.run([CXX, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    assert os.path.isabs(runtime) and os.path.exists(runtime), f"{CXX} has no libasan ({runtime!r})"
    lib = build_variant(
        tmp_path,
        ASAN_MUTANT if name != "clean" else None,
        extra=("-fsanitize=address", "-fno-omit-frame-pointer", "-g", "-O1"),
    )
    logs = tmp_path / "asan"
    # Python itself is not instrumented: the runtime is preloaded, leak checks are off (the
    # interpreter's own allocations are not ours), reports go to files pytest cannot swallow.
    proc = run_subset(tmp_path, lib, LD_PRELOAD=runtime, ASAN_OPTIONS=f"detect_leaks=0:log_path={logs}")
    reports = "".join(p.read_text() for p in tmp_path.glob("asan*"))
    # The emulator announces its fiber switches to ASan; without that it would warn that it
    # ignores the jumps between stacks and that false reports may follow.
    assert "False positive error reports may follow" not in reports, reports[-3000:]
    if name == "clean":
        assert proc.returncode == 0 and "ERROR: AddressSanitizer" not in reports, reports[-3000:] + proc.stdout[-2000:]
    else:
        assert proc.returncode != 0
        assert "heap-buffer-overflow" in reports and "forward_kernel" in reports, reports[-3000:]


CXX = os.environ.get("CXX") or "g++"
SUBSET = "tile_lists_equal_python or forward_random or gradients_random or tile_sizes or several_chunks"


def build_variant(tmp_path: Path, mutant, extra=()) -> Path:
    """The emulator library from a copy of native/ with `mutant` (file, old, new, ...) applied."""
    native = tmp_path / "native"
    for part in ("include", "cuda"):
        shutil.copytree(REPO / "native" / part, native / part)
    if mutant:
        rel, old, new = mutant[:3]
        path = native / rel
        text = path.read_text()
        assert text.count(old) == 1, f"{rel} changed: update the mutant {old!r}"
        path.write_text(text.replace(old, new))
    lib = tmp_path / "libigs_cuda_emu.so"
    build = subprocess.run(igs_cuda.emulator_command(CXX, lib, native, tuple(extra)), capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    return lib


def run_subset(tmp_path: Path, lib: Path, **extra_env: str) -> subprocess.CompletedProcess:
    env = emulator_env(tmp_path, IGS_CUDA_LIBRARY=str(lib), IGS_REQUIRE_CUDA="1", **extra_env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--noconftest", "-p", "no:cacheprovider", str(GPU_TESTS), "-k", SUBSET],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.parametrize("name", list(MUTANTS))
def test_emulator_catches_kernel_bugs(tmp_path, name):
    mutant = MUTANTS[name]
    proc = run_subset(tmp_path, build_variant(tmp_path, mutant))
    log = proc.stdout + proc.stderr
    if mutant is None:
        assert proc.returncode == 0, log[-4000:]
        return
    assert proc.returncode == 1, f"the GPU suite did not fail on the mutant {name!r}:\n{log[-3000:]}"
    assert " failed" in log
    must_say = mutant[3]
    if must_say:
        assert must_say in log, log[-3000:]
