"""The tree is formatted and lint-clean (tools/lint.sh: ruff check, ruff format, clang-format), so
a violation fails the suite and CI."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_lint_is_clean():
    missing = [t for t in ("ruff", "clang-format") if shutil.which(t) is None]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing} not installed (tools/setup_tests.sh installs them)")
        pytest.skip(f"{missing} not installed (tools/setup_tests.sh installs them)")
    r = subprocess.run(["bash", str(REPO / "tools" / "lint.sh")], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
