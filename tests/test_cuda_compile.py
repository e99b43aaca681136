"""CUDA kernels on machines without a GPU: they compile, link, load, and share the CPU's math.

Every native/cuda/*.cu is compiled with exactly the nvcc line the runtime build uses
(igs_tex.render.cuda.compile_command: -std=c++17 -O3 --fmad=false -arch=sm_90 -I native/include),
the objects are linked into the shared library and that library is opened with ctypes. Running
the kernels needs a GPU: tests/gpu/run_device_checks.sh does that.

Skipped (with the reason) only when nvcc is not installed; set IGS_REQUIRE_NVCC=1 to make a
missing nvcc a failure instead.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from igs_tex.render import cuda as igs_cuda

REPO = Path(__file__).resolve().parents[1]
ARCH = "sm_90"  # H100; any arch nvcc supports would do for a compile check
SOURCES = igs_cuda.sources()
NVCC = igs_cuda.find_nvcc()
NO_NVCC = "nvcc not found on PATH, in $CUDA_HOME/bin or /usr/local/cuda/bin: the CUDA kernels were NOT compile-checked"
needs_nvcc = pytest.mark.skipif(NVCC is None and os.environ.get("IGS_REQUIRE_NVCC") != "1", reason=NO_NVCC)


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    """Compiles every .cu once (in parallel): {source: (returncode, log, object path)}."""
    if NVCC is None:
        pytest.fail(NO_NVCC)
    out = tmp_path_factory.mktemp("cuda_objects")

    def build(src: Path):
        obj = out / (src.stem + ".o")
        proc = subprocess.run(
            igs_cuda.compile_command(NVCC, src, obj, ARCH), capture_output=True, text=True, cwd=REPO, check=False
        )
        return src, (proc.returncode, proc.stdout + proc.stderr, obj)

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        return dict(pool.map(build, SOURCES))


def test_sources_present():
    names = {p.name for p in SOURCES}
    assert {"binning.cu", "forward.cu", "backward.cu", "api.cu"} <= names, names
    assert (igs_cuda.CUDA_DIR / "igs_cuda.cuh").exists()


def test_compile_command_shape():
    cmd = igs_cuda.compile_command("nvcc", Path("x.cu"), Path("x.o"), ARCH)
    for flag in ("-c", "-std=c++17", f"-arch={ARCH}", "--fmad=false"):
        assert flag in cmd, f"{flag} missing from {cmd}"
    assert str(igs_cuda.INCLUDE_DIR) in cmd
    # Fast math would replace the exact-rounding code paths the tie rules depend on.
    assert not any("fast_math" in c or "fast-math" in c for c in cmd)


@needs_nvcc
@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.name)
def test_compiles(src, objects):
    rc, log, obj = objects[src]
    assert rc == 0, f"nvcc failed on {src.name}:\n{log}"
    assert obj.exists() and obj.stat().st_size > 0
    # Warnings in our own files are treated as errors (those of CUDA's headers are not ours).
    ours = [
        line
        for line in log.splitlines()
        if "warning" in line.lower() and ("native/cuda" in line or "native/include" in line)
    ]
    assert not ours, "\n".join(ours)


@needs_nvcc
def test_links_and_loads(objects, tmp_path):
    """The objects link into one library whose C API resolves and answers without a device."""
    for src, (rc, log, _) in objects.items():
        assert rc == 0, f"{src.name} did not compile:\n{log}"
    lib_path = tmp_path / "libigs_cuda.so"
    cmd = igs_cuda.link_command(NVCC, [obj for _, _, obj in objects.values()], lib_path, ARCH)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lib = igs_cuda.load_library(lib_path)  # declares every signature: a missing symbol raises
    assert lib.igs_cuda_abi_version() == igs_cuda.ABI_VERSION
    assert lib.igs_cuda_status_string(0) == b"ok"
    assert b"tile" in lib.igs_cuda_status_string(-2)
    # Argument checks run before any CUDA call, so they answer on a machine without a GPU.
    bad_tile = lib.igs_cuda_forward(None, None, 0, 3, 16, 16, 64, 10, 1e-7, None, None, None, None, None)
    bad_k = lib.igs_cuda_forward(None, None, 0, 3, 16, 16, 16, 33, 1e-7, None, None, None, None, None)
    assert (bad_tile, bad_k) == (-2, -3)
    count = lib.igs_cuda_device_count()
    if count < 0:  # no driver here: the status must still be a readable CUDA error
        assert lib.igs_cuda_status_string(-count)


def _code(path: Path) -> str:
    """Source text without comments, so a mention in a comment does not count."""
    text = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.DOTALL)
    return re.sub(r"//[^\n]*", "", text)


# Header functions each kernel file must call: the per-texel math lives in native/include/igs.
REQUIRED_CALLS = {
    "binning.cu": ["for_each_tile_of("],
    "forward.cu": ["eval(", ".push(", "blend(", "texel_centre("],
    "backward.cu": ["eval(", "blend_backward(", "texel_geom_backward(", "moments_to_grad(", "texel_centre("],
}


@pytest.mark.parametrize("name", sorted(REQUIRED_CALLS))
def test_kernels_use_shared_header(name):
    code = _code(igs_cuda.CUDA_DIR / name)
    includes = re.findall(r'#include\s+"igs/(\w+\.h)"', code)
    assert includes or '#include "launch.cuh"' in code, f"{name} includes no native/include/igs header"
    headers = set(includes)
    if '#include "launch.cuh"' in code:
        headers |= set(re.findall(r'#include\s+"igs/(\w+\.h)"', _code(igs_cuda.CUDA_DIR / "launch.cuh")))
    assert headers & {"texel.h", "tiles.h", "gaussian.h"}, f"{name}: shared header not included"
    for call in REQUIRED_CALLS[name]:
        assert call in code, f"{name} does not call {call}: per-texel math must come from native/include/igs"


def test_no_math_reimplemented_in_kernels():
    """exp, the quadratic form and the top-K compare belong to the header, not to the kernels."""
    for path in [*SOURCES, *igs_cuda.CUDA_DIR.glob("*.cuh")]:
        code = _code(path)
        for pattern, what in [
            (r"\b(__)?exp[f2]?\s*\(", "an exp"),
            (r"\bexp10f?\s*\(", "an exp"),
            (r"\bsincosf?\s*\(|\b__(sin|cos)f\s*\(", "a fast sin/cos"),
            (r"ranks_before\s*\(|>\s*g\[worst\]", "a top-K compare"),
        ]:
            assert not re.search(pattern, code), f"{path.name} contains {what}; call native/include/igs"


def test_cpu_tests_of_shared_header_exist():
    """The header the GPU runs is exercised on the CPU by tests/test_native.py."""
    path = REPO / "tests" / "test_native.py"
    assert path.exists(), "tests/test_native.py (CPU tests of native/include/igs) is missing"
    names = {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)}
    # The "simple" path is the per-texel header functions exactly as a CUDA thread calls them.
    for test in (
        "test_golden_forward",
        "test_forward_random",
        "test_gradients_vs_float64_autograd",
        "test_fast_and_simple_paths_agree",
        "test_tile_lists_equal_python",
        "test_exp_accuracy",
    ):
        assert test in names, f"tests/test_native.py lost {test}"
    assert '"simple"' in path.read_text(), "test_native.py no longer runs the header's simple path"


def test_import_without_cuda_reports_a_reason():
    available = igs_cuda.cuda_available()
    reason = igs_cuda.cuda_unavailable_reason()
    assert isinstance(available, bool) and isinstance(reason, str)
    if not available:
        assert reason, "cuda_available() is False but no reason was given"
    if torch.version.cuda is None:
        assert not available and "CPU-only" in reason
        with pytest.raises(RuntimeError, match="CUDA renderer unavailable"):
            igs_cuda.CudaRenderer().render(_tiny_params(), 8, 8)


def _tiny_params():
    from igs_tex.render.params import GaussianParams

    return GaussianParams(torch.zeros(1, 2), torch.zeros(1), torch.ones(1, 2), torch.ones(1, 3))
