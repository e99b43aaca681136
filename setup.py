"""Builds the optional native extension igs_tex._native; metadata lives in pyproject.toml.

The extension is optional on purpose: a machine without a C++17 compiler still gets a working
package (the torch renderer), so a failed compile prints a warning instead of failing the
install, and igs_tex.render.native.native_available() then returns False.

Environment:
  IGS_NATIVE=0              skip the extension entirely
  IGS_NATIVE_SIMD=avx2      add -mavx2 -mfma (faster, but the wheel then needs an AVX2 CPU)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
SOURCES = [
    f"native/cpu/{name}.cpp"
    for name in ("bindings", "binning", "forward", "backward", "selection", "simd", "ssim", "decoder_bindings")
]
# The C reference decoder (also built alone by native/CMakeLists.txt): every source of native/decoder.
DECODER_SOURCES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "native" / "decoder").glob("*.cpp"))
SOURCES += DECODER_SOURCES
HEADERS = sorted(str(p.relative_to(ROOT)) for ext in ("*.h", "*.inc") for p in (ROOT / "native").rglob(ext))


def _warn(message: str) -> None:
    bar = "=" * 78
    print(
        f"\n{bar}\nWARNING: igs_tex._native (C++ renderer) was NOT built.\n{message}\n"
        f"igs-tex still works with --backend torch (slow).\n{bar}\n",
        file=sys.stderr,
    )


class OptionalBuildExt(build_ext):
    """build_ext that adds platform flags, probes OpenMP, and never fails the install."""

    def _compiles(self, flags: list[str]) -> bool:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "probe.cpp"
            src.write_text("#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n")
            try:
                objs = self.compiler.compile([str(src)], output_dir=tmp, extra_postargs=flags)
                self.compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=flags)
            except Exception:
                return False
        return True

    def _flags(self) -> tuple[list[str], list[str]]:
        if self.compiler.compiler_type == "msvc":
            return ["/O2", "/std:c++17", "/openmp", "/fp:precise"], []
        # -ffp-contract=off: no fused multiply-add, so every build rounds like the torch
        # reference op for op (the tile test and top-K ties depend on exact roundings). The
        # one exception is the AVX2 backward, which fuses on purpose (native/cpu/backward.cpp).
        cflags = ["-O3", "-std=c++17", "-ffp-contract=off", "-fno-trapping-math", "-fvisibility=hidden"]
        if os.environ.get("IGS_NATIVE_SIMD", "").lower() == "avx2":
            cflags += ["-mavx2", "-mfma"]
        if self._compiles(["-fopenmp"]):
            return cflags + ["-fopenmp"], ["-fopenmp"]
        print(
            "WARNING: OpenMP not found: igs_tex._native is built single-threaded "
            "(install libomp, or a gcc with OpenMP, for multi-core rendering).",
            file=sys.stderr,
        )
        return cflags, []

    def build_extensions(self) -> None:
        try:
            import pybind11
        except ImportError:
            _warn(
                "pybind11 is not importable at build time (it is a build requirement in "
                "pyproject.toml; with --no-build-isolation install it first)."
            )
            return
        try:
            cflags, lflags = self._flags()
            for ext in self.extensions:
                ext.include_dirs += [
                    pybind11.get_include(),
                    str(ROOT / "native" / "include"),
                    str(ROOT / "native" / "cpu"),
                ]
                ext.extra_compile_args = cflags
                ext.extra_link_args = lflags
            super().build_extensions()
        except Exception as exc:  # compiler missing or failing: install the pure-Python package
            _warn(f"Reason: {exc!r}")

    def run(self) -> None:
        if os.environ.get("IGS_NATIVE", "1") == "0":
            print("IGS_NATIVE=0: skipping igs_tex._native", file=sys.stderr)
            return
        try:
            super().run()
        except Exception as exc:
            _warn(f"Reason: {exc!r}")

    def get_outputs(self):  # a skipped extension must not be reported as an output
        return [p for p in super().get_outputs() if os.path.exists(p)]


setup(
    ext_modules=[Extension("igs_tex._native", sources=SOURCES, depends=HEADERS, language="c++")],
    cmdclass={"build_ext": OptionalBuildExt},
)
