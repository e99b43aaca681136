#!/usr/bin/env bash
# The formatters and linters CI enforces (configs: pyproject.toml [tool.ruff], .clang-format).
# Fails on any violation; `bash tools/lint.sh --fix` rewrites the tree instead.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t CFILES < <(git ls-files 'native/*.cpp' 'native/*.h' 'native/*.cu' 'native/*.cuh' 'native/*.inc' \
                                   'tests/c/*.cpp' 'tests/c/*.c')
if [ "${1:-}" = "--fix" ]; then
    ruff check --fix .
    ruff format .
    clang-format -i "${CFILES[@]}"
    exit 0
fi
ruff check .
ruff format --check .
clang-format --dry-run -Werror "${CFILES[@]}"
echo "lint: ruff and clang-format clean (${#CFILES[@]} C/C++/CUDA files)"
