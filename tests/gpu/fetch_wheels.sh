#!/usr/bin/env bash
# Downloads, on a machine with network, the Python packages run_device_checks.sh needs that the
# GPU machines' image lacks (they cannot fetch anything): pypng, which reads the materials'
# PNGs for the bake test and the bake benchmark. Pure Python, so one wheel fits any CPython 3.
# Then, on the GPU machine, with .whl carried along:
#     IGS_WHEELS=.whl bash tests/gpu/run_device_checks.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="${1:-$ROOT/.whl}"
mkdir -p "$DEST"
# Kept out of git: the wheels travel with the working tree, not with the history.
if [[ -d "$ROOT/.git" ]] && ! grep -qx '/.whl/' "$ROOT/.git/info/exclude" 2>/dev/null; then
    echo '/.whl/' >>"$ROOT/.git/info/exclude"
fi
python3 -m pip download -q --no-deps --only-binary=:all: -d "$DEST" "pypng>=0.20220715"
ls -1 "$DEST"
