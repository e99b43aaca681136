#!/usr/bin/env bash
# Installs everything igs-tex and its tests need on a fresh Debian machine with Python 3.11.
# Idempotent: safe to run again; pip skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Pinned: this exact CPU build is available offline; an open range pulls a multi-GB CUDA build.
"$PY" -m pip install -q --disable-pip-version-check torch==2.13.0
# Editable install builds the native C++ extension (igs_tex._native) when a compiler is present.
"$PY" -m pip install -q --disable-pip-version-check -e ".[test]"
# Shader compilers and Mesa's CPU OpenGL/Vulkan drivers for the shader tests (apt + pip).
bash tools/install_shader_deps.sh
# Headless Chromium: the report test renders index.html and takes a screenshot.
bash tools/install_report_deps.sh
hash -r 2>/dev/null || true
command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
# An independent KTX2 implementation (npm) that the KTX2 interoperability test reads and writes with.
if command -v npm >/dev/null 2>&1 && ! npm ls -g ktx-parse >/dev/null 2>&1; then
    npm install -g --silent ktx-parse@2.0.0 >/dev/null 2>&1 || echo "setup: ktx-parse not installed; KTX2 interop test will skip" >&2
fi
