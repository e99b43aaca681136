"""igs::TopKFixed<K> (registers on a GPU) makes the same selections as igs::TopKSorted, bit for
bit, on random candidate streams with ties and NaN (tests/c/topk_check.cpp). The CUDA forward
uses one or the other by K, so this is what lets the choice change no result."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_fixed_k_topk_matches_sorted(tmp_path):
    gxx = shutil.which("g++")
    assert gxx, "g++ is required (tools/setup_tests.sh installs it)"
    exe = tmp_path / "topk_check"
    build = subprocess.run(
        [
            gxx,
            "-std=c++17",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
            str(REPO / "native" / "include"),
            str(REPO / "tests" / "c" / "topk_check.cpp"),
            "-o",
            str(exe),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok 28000", run.stdout + run.stderr
