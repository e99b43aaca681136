"""The CUDA kernels on the CPU emulator (native/cuda/emu), in CI, where there is no GPU.

1. tests/gpu/run_device_checks.sh as a dry run (IGS_CUDA_EMULATE=1): the GPU test suite
   (forward to 1e-5, gradients to 1e-4 against the float64 torch reference, the golden renders
   and the CPU kernels) runs the real kernel sources, and the script's plumbing is exercised.
2. The emulator is shown to fail on kernel bugs: altered copies of native/ (a missing barrier,
   a short warp reduction, lanes leaving before a warp shuffle, blocks that are not whole
   warps, unwritten tile offsets) must make that suite fail, and the unaltered copy must pass.
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
    env.update(IGS_CUDA_EMULATE="1", IGS_CUDA_BUILD_DIR=str(tmp_path / "build"),
               PYTHONPATH=f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}".rstrip(os.pathsep),
               PYTHON=sys.executable, **extra)
    return env


def test_device_checks_dry_run(tmp_path):
    out = tmp_path / "out"
    env = emulator_env(tmp_path, OUT=str(out), IGS_BENCH_ARGS=(
        "--size 96 --counts 60 --steps 3 --reps 1 --cpu-size 48 --cpu-steps 1 --budget-s 5"),
        IGS_BAKE_ARGS="--bake-size 48 --bake-steps 20 --bake-bppc 0.5")
    proc = subprocess.run(["bash", str(REPO / "tests" / "gpu" / "run_device_checks.sh")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=1500)
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
    "missing_barrier": ("cuda/forward.cu",
                        "chunk[threadIdx.x] = table[list[base + threadIdx.x]];\n        __syncthreads();",
                        "chunk[threadIdx.x] = table[list[base + threadIdx.x]];", None),
    "short_warp_sum": ("cuda/launch.cuh", "for (int offset = 16; offset > 0;",
                       "for (int offset = 8; offset > 0;", None),
    "padding_lanes_leave": ("cuda/backward.cu", "const bool lane0 = (threadIdx.x & 31) == 0;",
                            "const bool lane0 = (threadIdx.x & 31) == 0;\n    if (!ts.inside) return;",
                            # early leavers strand the others at a barrier or a shuffle
                            "unspecified launch failure (CPU emulator: block"),
    "partial_warps": ("cuda/launch.cuh", "return (tile * tile + 31) / 32 * 32;", "return tile * tile;",
                      "not a multiple of 32"),
    "tile_ranges_off_by_one": ("cuda/binning.cu", "for (int64_t t = before + 1; t <= here; ++t)",
                               "for (int64_t t = before + 1; t < here; ++t)", None),
}


@pytest.mark.parametrize("name", list(MUTANTS))
def test_emulator_catches_kernel_bugs(tmp_path, name):
    native = tmp_path / "native"
    for part in ("include", "cuda"):
        shutil.copytree(REPO / "native" / part, native / part)
    mutant = MUTANTS[name]
    if mutant:
        rel, old, new, _ = mutant
        path = native / rel
        text = path.read_text()
        assert text.count(old) == 1, f"{rel} changed: update the mutant {name!r}"
        path.write_text(text.replace(old, new))
    lib = tmp_path / "libigs_cuda_emu.so"
    cxx = os.environ.get("CXX") or "g++"
    build = subprocess.run(igs_cuda.emulator_command(cxx, lib, native), capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    env = emulator_env(tmp_path, IGS_CUDA_LIBRARY=str(lib), IGS_REQUIRE_CUDA="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--noconftest", "-p", "no:cacheprovider", str(GPU_TESTS),
         "-k", "tile_lists_equal_python or forward_random or gradients_random or tile_sizes"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    if mutant is None:
        assert proc.returncode == 0, log[-4000:]
        return
    assert proc.returncode == 1, f"the GPU suite did not fail on the mutant {name!r}:\n{log[-3000:]}"
    assert " failed" in log
    must_say = mutant[3]
    if must_say:
        assert must_say in log, log[-3000:]
