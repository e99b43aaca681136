"""Native CPU renderer: the C++ kernels of igs_tex._native behind the renderer interface.

    NativeRenderer().render(params, height, width, tile=16, k=10, eps=1e-7) -> Tensor [H, W, C]

The forward and backward run in C++ (OpenMP over tiles, float32). Parameters of any dtype or
device are accepted and converted to contiguous float32 CPU arrays; the image comes back as
float32 on the device of `params.colour`, gradients in each parameter's own dtype and device.
Results are bit-identical from run to run and for any thread count (see native/cpu/kernels.h).
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from .params import GaussianParams

try:
    from .. import _native

    _IMPORT_ERROR: Exception | None = None
except Exception as exc:  # not built, or built for another interpreter: report, never raise
    _native = None
    _IMPORT_ERROR = exc


def native_available() -> bool:
    """True when the C++ extension igs_tex._native is importable."""
    return _native is not None


def native_unavailable_reason() -> str:
    return "" if _native is not None else f"igs_tex._native could not be imported: {_IMPORT_ERROR!r}"


def set_cpu_threads(n: int) -> None:
    """Use n CPU threads in this process (igs-tex bake --threads): torch's intra-op pool and
    the native kernels (render, loss, SSIM, colour-solve selection; the decoder follows them,
    render/decode.py). OMP_NUM_THREADS would not do: the kernels size their OpenMP teams from
    the processor count unless told (native/cpu/tile_data.h), and OpenMP has read the variable
    by the time igs-tex parses its arguments. The native kernels give the same bytes for any
    count; torch's reductions (the torch backend) are not promised to."""
    torch.set_num_threads(n)
    if _native is not None:
        _native.set_num_threads(n)


def cpu_threads() -> dict[str, int | None]:
    """Threads this process computes with: torch's pool and the native kernels (None: not built)."""
    return {"torch": torch.get_num_threads(), "native": None if _native is None else int(_native.num_threads())}


class _ImagePool:
    """Output images recycled across training steps.

    A fresh 1024^2 x 9 float32 image is ~9000 pages that the kernel must fault in and zero on
    first touch, which costs about as much as rendering it. An array is handed out again only
    once nothing but this pool refers to it (every tensor and view made from it is gone), so a
    caller never sees an image it still holds change under it.
    """

    def __init__(self, per_shape: int = 4):
        self.per_shape = per_shape
        self.arrays: dict[tuple[int, ...], list[np.ndarray]] = {}

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        pool = self.arrays.setdefault(shape, [])
        for a in pool:
            # References: the pool's list, the loop variable, getrefcount's argument.
            if sys.getrefcount(a) == 3:
                return a
        a = np.empty(shape, dtype=np.float32)
        if len(pool) < self.per_shape:
            pool.append(a)
        return a


_IMAGES = _ImagePool()


def _as_f32(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()


class _NativeRender(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, theta, inv_scale, colour, height, width, tile, k, eps):
        m, th, s, c = (_as_f32(t) for t in (means, theta, inv_scale, colour))
        offsets, indices = _native.bin_tiles(m, s, height, width, tile)
        image, selection = _native.forward(
            m,
            th,
            s,
            c,
            height,
            width,
            tile,
            k,
            eps,
            offsets,
            indices,
            image_out=_IMAGES.take((height, width, c.shape[1])),
        )
        # Saved through autograd so an in-place edit of a parameter before backward() raises
        # instead of silently giving wrong gradients. The image itself is not needed.
        ctx.save_for_backward(means, theta, inv_scale, colour)
        ctx.native = (offsets, indices, selection, height, width, tile, k, eps)
        return torch.from_numpy(image).to(colour.device)

    @staticmethod
    def backward(ctx, grad_image):
        params = ctx.saved_tensors
        offsets, indices, selection, height, width, tile, k, eps = ctx.native
        m, th, s, c = (_as_f32(t) for t in params)
        grads = _native.backward(
            _as_f32(grad_image), selection, m, th, s, c, height, width, tile, k, eps, offsets, indices
        )
        out = [
            torch.from_numpy(g).to(device=p.device, dtype=p.dtype) if need else None
            for need, g, p in zip(ctx.needs_input_grad[:4], grads, params)
        ]
        return (*out, None, None, None, None, None)


class NativeRenderer:
    name = "native"

    def render(
        self, params: GaussianParams, height: int, width: int, tile: int = 16, k: int = 10, eps: float = 1e-7
    ) -> torch.Tensor:
        if _native is None:
            raise RuntimeError(native_unavailable_reason())
        return _NativeRender.apply(
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
