"""Rate-distortion points for the block-compression baselines.

A block format has one fixed rate. To reach lower rates the Image-GS paper encodes a lower
mip level and upsamples the decoded result back to full size; we do the same: mip m is a
2^m x 2^m box filter of the stack, its bitrate is the codec's bits per texel / 4^m, and the
decoded level is upsampled bilinearly (texel centres aligned, edges clamped, as a GPU
sampler magnifies) before it is scored against the full-size stack.

Filtering works on the stored values (sRGB codes for base colour, [0, 1] encoded normals),
the same values the metrics compare; upsampled normals are not renormalised, so the normal
PSNR sees the shortening a sampler causes, while the angular error normalises both sides.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import numpy as np

from igs_tex import IgsError
from igs_tex.codecs.packing import SCHEMES, get_scheme, pack_material, unpack_material
from igs_tex.material import MaterialStack

DEFAULT_MIPS = (0, 1, 2, 3)


def box_downsample(data: np.ndarray, mip: int) -> np.ndarray:
    """[H, W, C] -> [ceil(H / 2^m), ceil(W / 2^m), C], each texel the mean of its 2^m x 2^m footprint.

    Sizes that do not divide are edge-replicated first, so border texels average real
    texels only and never a zero fill.
    """
    if mip == 0:
        return np.asarray(data, dtype=np.float32)
    s = 1 << mip
    h, w, c = data.shape
    padded = np.pad(np.asarray(data, dtype=np.float64), ((0, (-h) % s), (0, (-w) % s), (0, 0)), mode="edge")
    hh, ww = padded.shape[0] // s, padded.shape[1] // s
    return padded.reshape(hh, s, ww, s, c).mean(axis=(1, 3)).astype(np.float32)


def _axis_weights(n_out: int, n_in: int, scale: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Output texel centre x + 0.5 lands at (x + 0.5) / scale in low-res units; low-res texel
    # centres are at i + 0.5, hence the - 0.5.
    u = (np.arange(n_out, dtype=np.float64) + 0.5) / scale - 0.5
    u = np.clip(u, 0.0, n_in - 1)
    i0 = np.floor(u).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (u - i0)


def bilinear_upsample(data: np.ndarray, mip: int, height: int, width: int) -> np.ndarray:
    """Magnify a mip-m level back to [height, width, C] with bilinear filtering."""
    if mip == 0:
        return np.asarray(data, dtype=np.float32)[:height, :width]
    s = 1 << mip
    d = np.asarray(data, dtype=np.float64)
    y0, y1, fy = _axis_weights(height, d.shape[0], s)
    x0, x1, fx = _axis_weights(width, d.shape[1], s)
    rows = d[y0] * (1.0 - fy)[:, None, None] + d[y1] * fy[:, None, None]  # [height, w_m, C]
    out = rows[:, x0] * (1.0 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]
    return out.astype(np.float32)


def _default_metrics(decoded: np.ndarray, target: np.ndarray, groups: dict, value_range=None) -> dict:
    from igs_tex.metrics import report_metrics

    return report_metrics(decoded, target, groups, value_range)


def rd_points(
    stack: MaterialStack,
    codecs: Iterable[str] | None = None,
    mips: Iterable[int] = DEFAULT_MIPS,
    metrics=None,
    keep_decoded: bool = True,
) -> list[dict]:
    """One row per (codec, mip level): the bitrate and the quality of the full-size reconstruction.

    Row keys: ``codec`` (scheme name, see ``packing.SCHEMES``), ``block`` ('4x4', '6x6', ...),
    ``mip``, ``bppc`` (nominal: sum of the textures' bits per texel / 4^mip / C),
    ``bppc_stored`` (bytes actually stored, partial edge blocks included, / (W * H * C)),
    ``bits`` (stored), ``formats`` (role -> format), ``metrics`` (per group, from
    ``metrics(decoded, target, groups)``; default ``report.metrics.report_metrics``) and
    ``decoded`` (float32 [H, W, C], omitted when keep_decoded is False).
    """
    codecs = list(codecs) if codecs is not None else list(SCHEMES)
    mips = list(mips)
    if metrics is None:

        def metrics(d, t, g):
            return _default_metrics(d, t, g, stack.value_range)

    h, w, c = stack.data.shape
    largest = max(h, w)
    for m in mips:
        if not isinstance(m, (int, np.integer)) or m < 0 or (1 << m) > largest:
            raise IgsError(f"{stack.name}: mip level {m!r} is outside 0..{largest.bit_length() - 1} for {w}x{h}")
    groups = stack.group_slices()
    schemes = [get_scheme(name) for name in codecs]
    rows: list[dict] = []
    for m in mips:
        level = dataclasses.replace(stack, data=box_downsample(stack.data, m))
        for scheme in schemes:
            packed = pack_material(level, scheme)
            decoded = bilinear_upsample(unpack_material(packed), m, h, w)
            row = {
                "codec": scheme.name,
                "block": scheme.block,
                "mip": int(m),
                "bppc": packed.bits_per_texel / (4**m) / c,
                "bppc_stored": packed.stored_bits / (w * h * c),
                "bits": packed.stored_bits,
                "formats": {t.role: t.encoded.format for t in packed.textures},
                "metrics": metrics(decoded, stack.data, groups),
            }
            if keep_decoded:
                row["decoded"] = decoded
            rows.append(row)
    return rows
