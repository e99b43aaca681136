#!/usr/bin/env bash
# Installs what tests/test_shaders.py needs: glslang + SPIRV-Tools to compile and validate the
# shaders, Mesa's CPU drivers (llvmpipe for OpenGL over EGL, lavapipe for Vulkan) to run them with
# no GPU, and the two Python hosts (moderngl, wgpu-py).
#
# Idempotent and non-interactive: apt is only touched when a package is missing, pip skips what is
# already installed. Debian 12 (bookworm) names; they are the same on Debian 13.
set -euo pipefail

PY=${PYTHON:-python3}

APT_PACKAGES=(
    glslang-tools        # glslangValidator: GLSL and HLSL to SPIR-V
    spirv-tools          # spirv-val, spirv-dis
    libegl1              # EGL loader (glvnd) that moderngl's standalone context opens
    libegl-mesa0         # Mesa's EGL vendor: surfaceless/headless contexts
    libgl1               # libGL.so.1 (glvnd)
    libglx-mesa0
    libgl1-mesa-dri      # llvmpipe, the OpenGL 4.5 software rasteriser
    libgbm1
    libvulkan1           # Vulkan loader
    mesa-vulkan-drivers  # lavapipe, the Vulkan software driver (ICD lvp_icd.x86_64.json)
)

# Pinned to the versions the tests were written against: wgpu-py's API still moves between minor
# releases (the shader-module and adapter calls used by tests/shader_host.py).
PIP_PACKAGES=(
    "moderngl==5.13.0"
    "wgpu==0.32.0"
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if ((${#missing[@]})); then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

"$PY" -m pip install -q --disable-pip-version-check "${PIP_PACKAGES[@]}"

# Fail here, with a clear message, rather than in the middle of the test run.
command -v glslangValidator >/dev/null
command -v spirv-val >/dev/null
"$PY" - <<'EOF'
import moderngl
import wgpu  # noqa: F401

ctx = moderngl.create_standalone_context(backend="egl", require=430)
print("shader deps ok:", ctx.info["GL_RENDERER"], "| wgpu", wgpu.__version__)
ctx.release()
EOF
