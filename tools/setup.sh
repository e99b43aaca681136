#!/usr/bin/env bash
# Installs what baking needs on a fresh Debian machine with Python 3.11: the pinned CPU build of
# PyTorch and igs-tex itself (editable; builds the native C++ extension when a compiler is
# present). Nothing that only the tests use: tools/setup_tests.sh adds that.
# Idempotent: safe to run again; pip skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Pinned: this exact CPU build is available offline; an open range pulls a multi-GB CUDA build.
"$PY" -m pip install -q --disable-pip-version-check torch==2.13.0
"$PY" -m pip install -q --disable-pip-version-check -e .
hash -r 2>/dev/null || true
command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
