#!/usr/bin/env bash
# Installs everything the test suite needs: what baking needs (tools/setup.sh), pytest, the
# linters CI runs, shader compilers and Mesa's CPU drivers, headless Chromium for the report
# test, and an independent KTX2 implementation (npm) for the interoperability test.
# Idempotent: safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash tools/setup.sh
"$PY" -m pip install -q --disable-pip-version-check -e ".[test]"
# The linters tools/lint.sh runs (pinned: a newer ruff may format differently).
"$PY" -m pip install -q --disable-pip-version-check "ruff==0.17.6"
if ! command -v clang-format >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends clang-format
fi
bash tools/install_shader_deps.sh
bash tools/install_report_deps.sh
if command -v npm >/dev/null 2>&1 && ! npm ls -g ktx-parse >/dev/null 2>&1; then
    npm install -g --silent ktx-parse@2.0.0 >/dev/null 2>&1 || echo "setup: ktx-parse not installed; KTX2 interop test will skip" >&2
fi
hash -r 2>/dev/null || true
command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
