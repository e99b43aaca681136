"""The C++ code under AddressSanitizer + UndefinedBehaviorSanitizer.

Builds with `-fsanitize=address,undefined -fno-sanitize-recover=all -g -O1`:
- the C decoder (native/decoder/*.cpp) with tests/c/fuzz_decoder.cpp, which decodes a real
  baked file and then 12,000 deterministic mutations and truncations of it, and the same bake as
  two version 2 files (FORMAT-v2.md; reach 1 and 2, 8- and 5-bit colours) with 12,000 each,
  among them offset-entry, record-mean and inverse-scale rewrites of the bit streams;
- the training kernels (native/cpu: binning, forward, backward, selection, simd, ssim) with
  tests/c/kernels_driver.cpp, which runs them on random inputs (every tile-width instance, top-K
  helper, SIMD variant and thread count) and checks the paths that must agree.

Any sanitizer report fails the test (non-zero exit, and the report text is searched for too).
The first test plants an overflow, undefined behaviour and a leak in a probe built with the same
flags and requires each to be reported, so a toolchain that silently ignores the flags cannot
pass. Skipped when g++ or the sanitizer runtimes are missing; IGS_REQUIRE_NATIVE=1 (CI) turns
that skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from baking import bake_crop
from conftest import MATERIALS

from igs_tex.format_v2 import build_igs_v2
from igs_tex.igsfile import as_version_1

REPO = Path(__file__).resolve().parents[1]
NATIVE = REPO / "native"
REQUIRE = os.environ.get("IGS_REQUIRE_NATIVE") == "1"
GXX = shutil.which("g++")

FLAGS = [
    "-std=c++17",
    "-g",
    "-O1",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
    "-ffp-contract=off",
    f"-I{NATIVE / 'include'}",
    f"-I{NATIVE / 'cpu'}",
]
KERNEL_SOURCES = ["binning", "forward", "backward", "selection", "simd", "ssim"]
REPORT_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "UndefinedBehaviorSanitizer",
    "AddressSanitizer:DEADLYSIGNAL",
)
FUZZ_ITERATIONS = 12000
FUZZ_ITERATIONS_V2 = 12000
DECODER_SOURCES = sorted((NATIVE / "decoder").glob("*.cpp"))

PROBE = r"""
#include <climits>
#include <cstdlib>
#include <cstring>
int main(int argc, char** argv) {
    volatile int big = INT_MAX;
    if (std::strcmp(argv[1], "overflow") == 0) {
        int* p = new int[4];
        volatile int i = 4;
        p[i] = 1;
        delete[] p;
    } else if (std::strcmp(argv[1], "ub") == 0) {
        return big + argc;  // signed overflow
    } else if (std::strcmp(argv[1], "leak") == 0) {
        void* volatile leaked = std::malloc(1234);
        leaked = nullptr;
    }
    return 0;
}
"""

REPORT: dict[str, object] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_report():
    yield
    if REPORT:
        print("\n--- sanitizer runs ---")
        for k in sorted(REPORT):
            print(f"{k}: {REPORT[k]}")


def _skip_or_fail(reason: str):
    if REQUIRE:
        pytest.fail(reason)
    pytest.skip(reason)


def _compile(args: list) -> tuple[list, subprocess.CompletedProcess]:
    return args, subprocess.run([str(a) for a in args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    if GXX is None:
        _skip_or_fail(
            "g++ not found: the sanitizer builds need g++ with libasan/libubsan (Debian: g++, which pulls in both)"
        )
    out = tmp_path_factory.mktemp("sanitized")
    probe = out / "probe.cpp"
    probe.write_text(PROBE)
    t0 = time.perf_counter()
    _, r = _compile([GXX, *FLAGS, probe, "-o", out / "probe"])
    if r.returncode != 0:
        _skip_or_fail(
            f"g++ cannot build with -fsanitize=address,undefined (libasan/libubsan missing?):\n{r.stderr[-2000:]}"
        )
    omp = ["-fopenmp"]
    jobs = [[GXX, *FLAGS, "-c", src, "-o", out / f"decoder_{src.stem}.o"] for src in DECODER_SOURCES]
    jobs += [
        [GXX, *FLAGS, "-c", REPO / "tests/c/fuzz_decoder.cpp", "-o", out / "fuzz_decoder.o"],
        [GXX, *FLAGS, *omp, "-c", REPO / "tests/c/kernels_driver.cpp", "-o", out / "kernels_driver.o"],
    ]
    jobs += [
        [GXX, *FLAGS, *omp, "-c", NATIVE / "cpu" / f"{name}.cpp", "-o", out / f"{name}.o"] for name in KERNEL_SOURCES
    ]
    # Largest first so the two long compiles (backward, forward) start at once.
    jobs.sort(key=lambda j: -Path(j[-3]).stat().st_size)
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        for args, r in pool.map(_compile, jobs):
            assert r.returncode == 0, f"{' '.join(map(str, args))}:\n{r.stderr}"
    links = [
        [
            GXX,
            *FLAGS,
            *(out / f"decoder_{src.stem}.o" for src in DECODER_SOURCES),
            out / "fuzz_decoder.o",
            "-o",
            out / "fuzz_decoder",
        ],
        [
            GXX,
            *FLAGS,
            *omp,
            *(out / f"{n}.o" for n in KERNEL_SOURCES),
            out / "kernels_driver.o",
            "-o",
            out / "kernels_driver",
        ],
    ]
    for args in links:
        _, r = _compile(args)
        assert r.returncode == 0, f"{' '.join(map(str, args))}:\n{r.stderr}"
    REPORT[f"build ({len(jobs)} sources, ASan+UBSan -O1)"] = f"{time.perf_counter() - t0:.1f} s"
    return {"probe": out / "probe", "fuzz": out / "fuzz_decoder", "kernels": out / "kernels_driver", "dir": out}


def sanitizer_env(leaks: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = (
        f"detect_leaks={int(leaks)}:halt_on_error=1:abort_on_error=0:"
        "detect_stack_use_after_return=1:check_initialization_order=1:"
        "strict_init_order=1"
    )
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    env.pop("LD_PRELOAD", None)
    return env


@pytest.fixture(scope="module")
def leaks_detectable(built) -> bool:
    """LeakSanitizer needs ptrace-like access some containers deny; use it where it works."""
    r = subprocess.run([built["probe"], "leak"], capture_output=True, text=True, env=sanitizer_env(True))
    if "LeakSanitizer has encountered a fatal error" in r.stderr:
        REPORT["leak checking"] = "off: LeakSanitizer cannot run in this environment"
        return False
    assert r.returncode != 0 and "ERROR: LeakSanitizer" in r.stderr, r.stderr[-2000:]
    REPORT["leak checking"] = "on"
    return True


def run_clean(cmd: list, leaks: bool, timeout: float = 240) -> subprocess.CompletedProcess:
    t0 = time.perf_counter()
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, env=sanitizer_env(leaks))
    found = [m for m in REPORT_MARKERS if m in r.stderr or m in r.stdout]
    assert r.returncode == 0 and not found, (
        f"{Path(str(cmd[0])).name} failed (exit {r.returncode}, sanitizer markers {found}):\n"
        f"{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    )
    label = " ".join(Path(str(c)).name for c in cmd[:2])
    REPORT[f"run {label}"] = f"{time.perf_counter() - t0:.1f} s: {r.stdout.strip()[:400]}"
    return r


def test_sanitizers_report_planted_bugs(built, leaks_detectable):
    # UBSan's object-size check may see the overflow before ASan does; either report counts.
    for mode, markers in (
        ("overflow", ("heap-buffer-overflow", "insufficient space for an object")),
        ("ub", ("runtime error: signed integer overflow",)),
    ):
        r = subprocess.run([built["probe"], mode], capture_output=True, text=True, env=sanitizer_env(False))
        assert r.returncode != 0 and any(m in r.stderr for m in markers), (mode, r.returncode, r.stderr[-2000:])
    r = subprocess.run([built["probe"], "none"], capture_output=True, text=True, env=sanitizer_env(leaks_detectable))
    assert r.returncode == 0 and r.stderr == "", r.stderr


@pytest.fixture(scope="module")
def small_bake(tmp_path_factory):
    """A small real bake as a version 1 file (whatever version the baker writes by default)."""
    igs, data = bake_crop(
        MATERIALS / "walnut_wood", tmp_path_factory.mktemp("small_bake"), (120, 340, 163, 377), gaussians=48, steps=20
    )
    if igs.version == 1:
        return igs, data
    v1 = as_version_1(igs, tile=16)
    return v1, v1.to_bytes()


def test_decoder_fuzz_under_sanitizers(built, leaks_detectable, small_bake, tmp_path):
    _, data = small_bake
    src = tmp_path / "small.igs"
    src.write_bytes(data)
    r = run_clean([built["fuzz"], src, FUZZ_ITERATIONS, 7], leaks_detectable)
    assert r.stdout.startswith(f"version 1 | iterations {FUZZ_ITERATIONS}") and "IGS_SUCCESS" in r.stdout


@pytest.mark.parametrize("options", [dict(tile=16), dict(tile=8, reach=2, colour_bits=5)], ids=["t16", "t8_r2_bits5"])
def test_decoder_fuzz_v2_under_sanitizers(built, leaks_detectable, small_bake, tmp_path, options):
    igs, _ = small_bake
    p = igs.params()
    v2 = build_igs_v2(
        p["means"],
        p["theta"],
        p["inv_scale"],
        p["colour"],
        igs.width,
        igs.height,
        igs.channels,
        igs.value_range,
        metadata=igs.metadata,
        k=igs.k,
        **options,
    )
    src = tmp_path / ("small_v2_" + "_".join(f"{k}{v}" for k, v in options.items()) + ".igs")
    src.write_bytes(v2.to_bytes())
    r = run_clean([built["fuzz"], src, FUZZ_ITERATIONS_V2, 11], leaks_detectable)
    assert r.stdout.startswith(f"version 2 | iterations {FUZZ_ITERATIONS_V2}"), r.stdout
    # A quarter of the mutations rewrite tile offsets or record fields; all paths are reached.
    semantic = int(r.stdout.split("offset and record-field mutations ")[1].split()[0])
    assert semantic >= FUZZ_ITERATIONS_V2 // 5, r.stdout
    for code in ("IGS_SUCCESS", "IGS_ERR_BAD_GAUSSIAN", "IGS_ERR_BAD_TILE_LIST", "IGS_ERR_BAD_HEADER"):
        assert code in r.stdout, (code, r.stdout)


def test_training_kernels_under_sanitizers(built, leaks_detectable):
    r = run_clean([built["kernels"]], leaks_detectable)
    assert "0 failures" in r.stdout
