"""CUDA renderer: the kernels of native/cuda behind the renderer interface.

    CudaRenderer().render(params, height, width, tile=16, k=10, eps=1e-7) -> Tensor [H, W, C]

The kernels call the per-texel functions of native/include/igs, the same code the CPU tests
exercise (DESIGN.md, "Reference and fast paths"). They are compiled on first use with nvcc
into a shared library with a plain C API (native/cuda/igs_cuda.cuh) that this module calls
through ctypes with raw device pointers: the build needs nvcc and a host C++ compiler, but
no Python headers, pybind11 or ninja. The library is cached under
~/.cache/igs_tex/cuda/<hash of sources, flags, arch and nvcc version>.

Importing this module never fails. cuda_available() says whether the renderer can run here
and cuda_unavailable_reason() says why not.

With IGS_CUDA_EMULATE=1 the same kernel sources are built by the host C++ compiler against
native/cuda/emu, a CPU model of the CUDA execution model (one fiber per GPU thread, barriers,
warp shuffles, CUB's scan and sort), and "device" tensors are CPU tensors. That is how the
kernels' logic runs in CI on machines without a GPU (tests/test_cuda_emulated.py); it says
nothing about their speed.

Environment:
  IGS_CUDA_LIBRARY    a prebuilt libigs_cuda.so to load instead of building
  IGS_CUDA_BUILD_DIR  cache directory for builds (default ~/.cache/igs_tex/cuda)
  IGS_CUDA_ARCH       nvcc -arch value, e.g. sm_90 (default: the device's compute capability)
  IGS_NVCC            nvcc to use (default: $CUDA_HOME/bin, PATH, /usr/local/cuda/bin)
  IGS_NVCC_FLAGS      extra nvcc flags, e.g. "-ccbin g++-12" or "-allow-unsupported-compiler"
  IGS_CUDA_EMULATE    1: run the kernels on the CPU emulator instead (CXX picks the compiler)
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from .. import budget
from .params import GaussianParams

ROOT = Path(__file__).resolve().parents[2]
CUDA_DIR = ROOT / "native" / "cuda"
EMULATOR_DIR = CUDA_DIR / "emu"
INCLUDE_DIR = ROOT / "native" / "include"

ABI_VERSION = 1  # IGS_CUDA_ABI_VERSION in native/cuda/igs_cuda.cuh
MAX_K = 32  # igs::kMaxK
MAX_TILE = 32  # one thread per texel, 1024 threads per block

# --fmad=false: nvcc otherwise fuses a*b+c across statements, which changes roundings that
# the CPU build (-ffp-contract=off) and the tile/top-K tie rules depend on; with it, G values
# and tile lists match the CPU kernels bit for bit.
COMPILE_FLAGS = ["-std=c++17", "-O3", "--fmad=false", "-Xcompiler", "-fPIC,-fvisibility=hidden"]


# The emulator build: the kernels as C++ (-x c++), the shims of native/cuda/emu first on the
# include path. -ffp-contract=off for the reason --fmad=false is above; _FORTIFY_SOURCE off
# because its longjmp check rejects the switch between fiber stacks.
EMULATOR_FLAGS = [
    "-std=c++17",
    "-O2",
    "-fPIC",
    "-shared",
    "-ffp-contract=off",
    "-U_FORTIFY_SOURCE",
    "-Wall",
    "-Wno-unknown-pragmas",
    "-DIGS_CUDA_EMULATOR",
]


def emulated() -> bool:
    """True when IGS_CUDA_EMULATE=1: the kernels run on the CPU emulator (native/cuda/emu)."""
    return os.environ.get("IGS_CUDA_EMULATE") == "1"


def find_nvcc() -> str | None:
    """nvcc from IGS_NVCC, $CUDA_HOME/bin, $CUDA_PATH/bin, PATH, then /usr/local/cuda/bin."""
    explicit = os.environ.get("IGS_NVCC")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for var in ("CUDA_HOME", "CUDA_PATH"):
        home = os.environ.get(var)
        if home and (Path(home) / "bin" / "nvcc").exists():
            return str(Path(home) / "bin" / "nvcc")
    found = shutil.which("nvcc")
    if found:
        return found
    fallback = Path("/usr/local/cuda/bin/nvcc")
    return str(fallback) if fallback.exists() else None


def sources() -> list[Path]:
    return sorted(CUDA_DIR.glob("*.cu"))


def compile_command(nvcc: str, src: Path, obj: Path, arch: str) -> list[str]:
    """The nvcc -c line for one kernel file (tests/test_cuda_compile.py runs exactly this)."""
    extra = shlex.split(os.environ.get("IGS_NVCC_FLAGS", ""))
    return [
        nvcc,
        "-c",
        *COMPILE_FLAGS,
        f"-arch={arch}",
        "-I",
        str(INCLUDE_DIR),
        "-I",
        str(CUDA_DIR),
        *extra,
        str(src),
        "-o",
        str(obj),
    ]


def link_command(nvcc: str, objs: list[Path], out: Path, arch: str) -> list[str]:
    # Static cudart (nvcc's default): the library does not depend on which libcudart.so the
    # process (torch) happens to have loaded; both runtimes share the device's primary context,
    # so torch's streams and allocations are valid here.
    extra = shlex.split(os.environ.get("IGS_NVCC_FLAGS", ""))
    return [nvcc, "-shared", f"-arch={arch}", *extra, *map(str, objs), "-o", str(out)]


class BuildError(RuntimeError):
    pass


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        log = (proc.stdout + proc.stderr).strip()
        raise BuildError(f"command failed ({proc.returncode}): {shlex.join(cmd)}\n{log[-4000:]}")


def _device_arch() -> str:
    arch = os.environ.get("IGS_CUDA_ARCH")
    if arch:
        return arch
    major, minor = torch.cuda.get_device_capability()
    return f"sm_{major}{minor}"


def _build_key(compiler: str, *settings: str, emulator: bool = False) -> str:
    h = hashlib.sha256()
    extra = sorted(EMULATOR_DIR.rglob("*")) if emulator else []
    for path in [
        *sources(),
        *sorted(CUDA_DIR.glob("*.cuh")),
        *sorted((INCLUDE_DIR / "igs").glob("*.h")),
        *(p for p in extra if p.is_file()),
    ]:
        h.update(str(path.relative_to(CUDA_DIR.parent)).encode() + b"\0" + path.read_bytes() + b"\0")
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False).stdout
    h.update("\0".join([version, *settings]).encode())
    return h.hexdigest()[:16]


def _cache_dir(build_dir: Path | str | None) -> Path:
    return Path(
        build_dir
        or os.environ.get("IGS_CUDA_BUILD_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "igs_tex" / "cuda"
    )


def build_library(arch: str | None = None, build_dir: Path | str | None = None) -> Path:
    """Compile native/cuda/*.cu into libigs_cuda.so (cached) and return its path.

    Needs nvcc but no GPU, so CPU-only CI can check that the library links.
    """
    nvcc = find_nvcc()
    if nvcc is None:
        raise BuildError(
            "nvcc not found (looked at IGS_NVCC, $CUDA_HOME/bin, $CUDA_PATH/bin, PATH, /usr/local/cuda/bin)"
        )
    srcs = sources()
    if not srcs:
        raise BuildError(
            f"no CUDA sources under {CUDA_DIR} (the CUDA renderer runs from a source checkout or an editable install)"
        )
    arch = arch or _device_arch()
    out_dir = _cache_dir(build_dir) / _build_key(nvcc, arch, *COMPILE_FLAGS, os.environ.get("IGS_NVCC_FLAGS", ""))
    lib = out_dir / "libigs_cuda.so"
    if lib.exists():
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    # Build in a private directory and rename into place, so concurrent first uses (test
    # workers, several processes) never load a half-written library.
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        objs = [Path(tmp) / (src.stem + ".o") for src in srcs]
        with ThreadPoolExecutor(max_workers=max(1, min(len(srcs), os.cpu_count() or 1))) as pool:
            for fut in [pool.submit(_run, compile_command(nvcc, s, o, arch)) for s, o in zip(srcs, objs)]:
                fut.result()
        staged = Path(tmp) / lib.name
        _run(link_command(nvcc, objs, staged, arch))
        os.replace(staged, lib)
    return lib


def emulator_command(cxx: str, out: Path, native_dir: Path | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    """The one host-compiler line of the emulator build, over native_dir (default: this
    checkout's native/; tests point it at altered copies to see the emulator catch bugs), with
    extra flags after the defaults (tests add AddressSanitizer)."""
    native = Path(native_dir) if native_dir else CUDA_DIR.parent
    cuda_dir, emu_dir = native / "cuda", native / "cuda" / "emu"
    return [
        cxx,
        *EMULATOR_FLAGS,
        *extra,
        "-I",
        str(emu_dir),
        "-I",
        str(native / "include"),
        "-I",
        str(cuda_dir),
        "-x",
        "c++",
        *map(str, sorted(cuda_dir.glob("*.cu"))),
        "-x",
        "none",
        str(emu_dir / "emu_runtime.cpp"),
        "-o",
        str(out),
    ]


def build_emulator(build_dir: Path | str | None = None) -> Path:
    """Compile native/cuda/*.cu with the host compiler (CXX, default g++) against the CPU
    emulator into libigs_cuda_emu.so (cached like build_library) and return its path."""
    cxx = os.environ.get("CXX") or "g++"
    if shutil.which(cxx) is None:
        raise BuildError(f"C++ compiler {cxx!r} not found (set CXX)")
    out_dir = _cache_dir(build_dir) / ("emu-" + _build_key(cxx, *EMULATOR_FLAGS, emulator=True))
    lib = out_dir / "libigs_cuda_emu.so"
    if lib.exists():
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        staged = Path(tmp) / lib.name
        _run(emulator_command(cxx, staged))
        os.replace(staged, lib)
    return lib


# ---------------------------------------------------------------------------------------------
# loading

_P, _I, _I64, _SZ = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_size_t
_SIGNATURES = {
    "igs_cuda_abi_version": (_I, []),
    "igs_cuda_status_string": (ctypes.c_char_p, [_I]),
    "igs_cuda_device_count": (_I, []),
    "igs_cuda_set_device": (_I, [_I]),
    "igs_cuda_prepare": (_I, [_P, _P, _P, _I64, _P, _P]),
    "igs_cuda_bin_count_workspace": (_I, [_I64, ctypes.POINTER(_SZ)]),
    "igs_cuda_bin_count": (_I, [_P, _P, _I64, _I, _I, _I, _P, _P, _SZ, _P]),
    "igs_cuda_bin_fill_workspace": (_I, [_I64, _I, _I, _I, ctypes.POINTER(_SZ)]),
    "igs_cuda_bin_fill": (_I, [_P, _P, _I64, _I, _I, _I, _P, _I64, _P, _P, _P, _SZ, _P]),
    "igs_cuda_forward": (_I, [_P, _P, _I64, _I, _I, _I, _I, _I, ctypes.c_float, _P, _P, _P, _P, _P]),
    "igs_cuda_backward": (
        _I,
        [_P, _P, _I64, _I, _I, _I, _I, _I, ctypes.c_float, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P],
    ),
}


def load_library(path: Path | str) -> ctypes.CDLL:
    """Open a built library and declare the C API's signatures; checks the ABI version."""
    lib = ctypes.CDLL(str(path))
    for name, (res, args) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    got = lib.igs_cuda_abi_version()
    if got != ABI_VERSION:
        raise BuildError(f"{path}: ABI version {got}, this module needs {ABI_VERSION}")
    return lib


_LOCK = threading.Lock()
_STATE: tuple[ctypes.CDLL | None, str] | None = None


def _probe() -> tuple[ctypes.CDLL | None, str]:
    if emulated():
        try:
            path = Path(os.environ.get("IGS_CUDA_LIBRARY") or build_emulator())
            return load_library(path), ""
        except (BuildError, OSError, AttributeError) as exc:
            return None, f"building or loading the CUDA emulator failed: {exc}"
    if torch.version.cuda is None:
        return None, f"torch {torch.__version__} is a CPU-only build (torch.version.cuda is None)"
    if not torch.cuda.is_available():
        return None, "torch.cuda.is_available() is False (no CUDA device or driver visible)"
    prebuilt = os.environ.get("IGS_CUDA_LIBRARY")
    try:
        path = Path(prebuilt) if prebuilt else build_library()
    except BuildError as exc:
        return None, f"building the CUDA kernels failed: {exc}"
    except OSError as exc:
        return None, f"building the CUDA kernels failed: {exc!r}"
    try:
        lib = load_library(path)
    except (OSError, AttributeError, BuildError) as exc:
        return None, f"loading {path} failed: {exc}"
    count = lib.igs_cuda_device_count()
    if count <= 0:
        why = "no device" if count == 0 else lib.igs_cuda_status_string(-count).decode()
        return None, f"{path} sees no CUDA device ({why}); the driver may be older than nvcc"
    return lib, ""


def _state() -> tuple[ctypes.CDLL | None, str]:
    global _STATE
    with _LOCK:
        if _STATE is None:
            _STATE = _probe()
        return _STATE


def cuda_available() -> bool:
    """True when torch sees a CUDA device and the kernels built (or were found) and loaded.

    The first call on a CUDA machine compiles the kernels (about a minute, then cached).
    """
    return _state()[0] is not None


def cuda_unavailable_reason() -> str:
    return _state()[1]


def _library() -> ctypes.CDLL:
    lib, reason = _state()
    if lib is None:
        raise RuntimeError(f"CUDA renderer unavailable: {reason}")
    return lib


def _check(lib: ctypes.CDLL, what: str, status: int) -> None:
    if status != 0:
        raise RuntimeError(f"{what}: {lib.igs_cuda_status_string(status).decode()} (status {status})")


# ---------------------------------------------------------------------------------------------
# the launches, over contiguous float32 tensors on one device


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None or t.numel() == 0 else t.data_ptr()


def _stream(device: torch.device) -> int | None:
    return None if emulated() else torch.cuda.current_stream(device).cuda_stream


@contextlib.contextmanager
def _on(lib, device: torch.device):
    """Makes `device` current for torch and for the library (whose runtime is its own)."""
    if emulated():
        yield
        return
    with torch.cuda.device(device):
        _check(lib, "igs_cuda_set_device", lib.igs_cuda_set_device(device.index))
        yield


def _empty(*shape, dtype, device: torch.device) -> torch.Tensor:
    """torch.empty, except on the emulator, where outputs start as NaN / -7 so that an element
    no kernel writes shows in the results (on a GPU it would hold whatever was there)."""
    if not emulated():
        return torch.empty(*shape, dtype=dtype, device=device)
    return torch.full(shape, float("nan") if dtype.is_floating_point else -7, dtype=dtype, device=device)


def _workspace(lib, query, device: torch.device, *args) -> torch.Tensor:
    size = ctypes.c_size_t(0)
    _check(lib, query.__name__, query(*args, ctypes.byref(size)))
    return _empty(max(int(size.value), 1), dtype=torch.uint8, device=device)


def _prepare(lib, means, theta, inv_scale) -> torch.Tensor:
    """The per-step Gaussian table [N, 6]: mx, my, cos, sin, ax, ay."""
    table = _empty(means.shape[0], 6, dtype=torch.float32, device=means.device)
    _check(
        lib,
        "igs_cuda_prepare",
        lib.igs_cuda_prepare(
            _ptr(means), _ptr(theta), _ptr(inv_scale), means.shape[0], _ptr(table), _stream(means.device)
        ),
    )
    return table


def _bin(lib, means, inv_scale, height, width, tile) -> tuple[torch.Tensor, torch.Tensor]:
    dev, n = means.device, means.shape[0]
    stream = _stream(dev)
    tiles = budget.tile_count(width, height, tile)
    g_off = _empty(n + 1, dtype=torch.int64, device=dev)
    ws = _workspace(lib, lib.igs_cuda_bin_count_workspace, dev, n)
    _check(
        lib,
        "igs_cuda_bin_count",
        lib.igs_cuda_bin_count(
            _ptr(means), _ptr(inv_scale), n, height, width, tile, _ptr(g_off), _ptr(ws), ws.numel(), stream
        ),
    )
    pairs = int(g_off[n].item())  # the one host sync of a step: buffer sizes depend on it
    if pairs > 2**31 - 1:
        raise RuntimeError(
            f"{pairs} (tile, Gaussian) pairs: more than the CUDA binning handles "
            "(2^31 - 1); use fewer or smaller Gaussians"
        )
    offsets = _empty(tiles + 1, dtype=torch.int64, device=dev)
    indices = _empty(pairs, dtype=torch.int32, device=dev)
    ws = _workspace(lib, lib.igs_cuda_bin_fill_workspace, dev, pairs, height, width, tile)
    _check(
        lib,
        "igs_cuda_bin_fill",
        lib.igs_cuda_bin_fill(
            _ptr(means),
            _ptr(inv_scale),
            n,
            height,
            width,
            tile,
            _ptr(g_off),
            pairs,
            _ptr(offsets),
            _ptr(indices),
            _ptr(ws),
            ws.numel(),
            stream,
        ),
    )
    return offsets, indices


def _f32(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    return t.detach().to(device=device, dtype=torch.float32).contiguous()


def _compute_device(colour: torch.Tensor | None = None) -> torch.device:
    if emulated():
        return torch.device("cpu")
    if colour is not None and colour.is_cuda:
        return colour.device
    return torch.device("cuda", torch.cuda.current_device())


def _check_shapes(means, theta, inv_scale, colour, height, width, tile, k, eps) -> None:
    n = means.shape[0] if means.dim() == 2 else -1
    if (
        means.dim() != 2
        or means.shape[1] != 2
        or tuple(theta.shape) != (n,)
        or tuple(inv_scale.shape) != (n, 2)
        or colour.dim() != 2
        or colour.shape[0] != n
    ):
        raise ValueError(
            "expected means [N, 2], theta [N], inv_scale [N, 2], colour [N, C]; got "
            f"{list(means.shape)}, {list(theta.shape)}, {list(inv_scale.shape)}, "
            f"{list(colour.shape)}"
        )
    if colour.shape[1] < 1:
        raise ValueError("colour needs at least one channel")
    if height < 0 or width < 0:
        raise ValueError("height and width must be >= 0")
    if not 1 <= tile <= MAX_TILE:
        raise ValueError(f"the CUDA renderer needs tile in [1, {MAX_TILE}], got {tile}")
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be in [1, {MAX_K}], got {k}")
    if not eps >= 0:
        raise ValueError("eps must be >= 0")
    if n >= 2**31 - 1:
        raise ValueError("at most 2^31 - 2 Gaussians")


def bin_tiles(
    means: torch.Tensor, inv_scale: torch.Tensor, height: int, width: int, tile: int = 16
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tile lists on the device: (offsets [tiles+1] int64, indices [pairs] int32), CUDA tensors.

    Equal to igs_tex.render.tiles.build_tile_lists (which returns int64 indices on the CPU).
    """
    lib = _library()
    dev = _compute_device(means)
    if means.dim() != 2 or means.shape[1] != 2 or tuple(inv_scale.shape) != tuple(means.shape):
        raise ValueError("expected means [N, 2] and inv_scale [N, 2]")
    if not 1 <= tile <= MAX_TILE or height < 0 or width < 0:
        raise ValueError("bad image or tile size")
    with _on(lib, dev):
        return _bin(lib, _f32(means, dev), _f32(inv_scale, dev), int(height), int(width), int(tile))


def _forward(lib, m, th, s, c, height, width, tile, k, eps):
    """-> image [H, W, C], topk [H*W, K] int32, tile offsets, tile indices (all on m.device)."""
    dev, (n, ch) = m.device, c.shape
    table = _prepare(lib, m, th, s)
    offsets, indices = _bin(lib, m, s, height, width, tile)
    image = _empty(height, width, ch, dtype=torch.float32, device=dev)
    topk = _empty(height * width, k, dtype=torch.int32, device=dev)
    _check(
        lib,
        "igs_cuda_forward",
        lib.igs_cuda_forward(
            _ptr(table),
            _ptr(c),
            n,
            ch,
            height,
            width,
            tile,
            k,
            eps,
            _ptr(offsets),
            _ptr(indices),
            _ptr(image),
            _ptr(topk),
            _stream(dev),
        ),
    )
    return image, topk, offsets, indices


def render_with_selection(
    params: GaussianParams, height: int, width: int, tile: int = 16, k: int = 10, eps: float = 1e-7
):
    """Forward only, no autograd: (image [H,W,C], topk [H*W,K] int32, offsets, indices) on CUDA.

    topk holds each texel's kept Gaussians ascending, -1 padded, the layout of the CPU
    _native.selection_topk, so tests can compare selections directly.
    """
    lib = _library()
    _check_shapes(params.means, params.theta, params.inv_scale, params.colour, height, width, tile, k, eps)
    dev = _compute_device(params.colour)
    with _on(lib, dev):
        m, th, s, c = (_f32(t, dev) for t in (params.means, params.theta, params.inv_scale, params.colour))
        return _forward(lib, m, th, s, c, int(height), int(width), int(tile), int(k), float(eps))


class _CudaRender(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, theta, inv_scale, colour, height, width, tile, k, eps):
        lib = _library()
        dev = _compute_device(colour)
        with _on(lib, dev):
            m, th, s, c = (_f32(t, dev) for t in (means, theta, inv_scale, colour))
            image, topk, offsets, indices = _forward(lib, m, th, s, c, height, width, tile, k, eps)
        # Parameters go through save_for_backward so that an in-place edit before backward()
        # raises instead of silently giving wrong gradients; the image is the blend's `out`.
        ctx.save_for_backward(means, theta, inv_scale, colour, image)
        ctx.cuda = (dev, topk, offsets, indices, height, width, tile, k, eps)
        return image.to(colour.device)

    @staticmethod
    def backward(ctx, grad_image):
        means, theta, inv_scale, colour, image = ctx.saved_tensors
        dev, topk, offsets, indices, height, width, tile, k, eps = ctx.cuda
        lib = _library()
        n, ch = colour.shape
        with _on(lib, dev):
            m, th, s, c = (_f32(t, dev) for t in (means, theta, inv_scale, colour))
            g = _f32(grad_image, dev)
            table = _prepare(lib, m, th, s)  # bit-identical to the forward's: same inputs
            grads = [torch.zeros(shape, dtype=torch.float32, device=dev) for shape in ((n, 2), (n,), (n, 2), (n, ch))]
            _check(
                lib,
                "igs_cuda_backward",
                lib.igs_cuda_backward(
                    _ptr(table),
                    _ptr(c),
                    n,
                    ch,
                    height,
                    width,
                    tile,
                    k,
                    eps,
                    _ptr(offsets),
                    _ptr(indices),
                    _ptr(g),
                    _ptr(image),
                    _ptr(topk),
                    *map(_ptr, grads),
                    _stream(dev),
                ),
            )
        params = (means, theta, inv_scale, colour)
        out = [
            gr.to(device=p.device, dtype=p.dtype) if need else None
            for need, gr, p in zip(ctx.needs_input_grad[:4], grads, params)
        ]
        return (*out, None, None, None, None, None)


class CudaRenderer:
    """Renders on the GPU. Parameters may live on any device and have any float dtype: they are
    computed on as float32 on their CUDA device (or the current one when they are on the CPU);
    the image comes back float32 on the device of `params.colour`, gradients in each
    parameter's own dtype and device. The forward is deterministic; the backward sums with
    atomics, so gradients may differ in the last bits from run to run."""

    name = "cuda"

    @property
    def device(self) -> torch.device:
        """Where the kernels compute (the current CUDA device; the CPU on the emulator): the
        trainer keeps its tensors there."""
        return _compute_device()

    def render(
        self, params: GaussianParams, height: int, width: int, tile: int = 16, k: int = 10, eps: float = 1e-7
    ) -> torch.Tensor:
        _check_shapes(params.means, params.theta, params.inv_scale, params.colour, height, width, tile, k, eps)
        _library()
        return _CudaRender.apply(
            params.means,
            params.theta,
            params.inv_scale,
            params.colour,
            int(height),
            int(width),
            int(tile),
            int(k),
            float(eps),
        )


__all__ = [
    "CudaRenderer",
    "bin_tiles",
    "build_emulator",
    "build_library",
    "compile_command",
    "cuda_available",
    "cuda_unavailable_reason",
    "emulated",
    "find_nvcc",
    "render_with_selection",
]
