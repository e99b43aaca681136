"""Decode a .igs file to a stack: the file's own dequantised parameters and stored tile lists."""

from __future__ import annotations

import numpy as np
import torch

from .params import GaussianParams
from .torch_ref import render_with_lists


def decode_igs(igs) -> np.ndarray:
    """[H, W, C] float32 in the stack's normalised units, exactly as every decoder must see it.

    Uses the tile lists stored in the file (not rebuilt), so what is measured is what ships.
    """
    p = igs.params()
    params = GaussianParams(
        *(
            torch.from_numpy(np.ascontiguousarray(p[n], dtype=np.float32))
            for n in ("means", "theta", "inv_scale", "colour")
        )
    )
    offsets = torch.from_numpy(igs.tile_offsets.astype(np.int64))
    indices = torch.from_numpy(igs.tile_indices.astype(np.int64))
    with torch.no_grad():
        out = render_with_lists(params, igs.height, igs.width, igs.tile, igs.k, float(igs.eps), offsets, indices)
    return out.numpy()


def decode_stack(igs) -> np.ndarray:
    """decode_igs through the C++ reference decoder when it is built (about 30x faster at
    1024^2; equal within 1e-6, tests/test_decoder.py), else the torch reference itself."""
    from .native import native_available

    if not native_available() or not _native_reads(igs.version):
        return decode_igs(igs)
    from .. import _native

    # As many threads as the native render kernels (all processors unless set_cpu_threads).
    return _native.IgsDecoder(igs.to_bytes()).decode(threads=_native.num_threads())


def _native_reads(version: int) -> bool:
    from .. import _native

    return version in getattr(_native, "IGS_VERSIONS", (1,))
