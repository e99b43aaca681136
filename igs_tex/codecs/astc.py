"""ASTC LDR encode and decode through astc-encoder-py (ARM's astcenc).

Channel layouts follow astcenc's command line: 1 channel as luminance (rrr1), 2 as
luminance+alpha (rrrg), 3 as RGB (rgb1), 4 as RGBA; a normal map is 2 channels (X, Y)
stored X in RGB and Y in A with the encoder's normal-map mode, like ``astcenc -normal``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from igs_tex import IgsError
from igs_tex.codecs.formats import ASTC_BLOCKS, Encoded, astc_name, check_image, get_format, pad_to_blocks

# astcenc's "-thorough" preset: what a studio ships with when quality is judged (the brief's
# comparisons are against it); "-medium" is about 2x faster and up to 0.2 dB lower.
QUALITY_PRESET = "thorough"
_THREADS = 2

_COMPRESS_SWIZZLE = {1: "rrr1", 2: "rrrg", 3: "rgb1", 4: "rgba"}
# Where each input channel comes back after a plain rgba decode.
_READ_BACK = {1: [0], 2: [0, 3], 3: [0, 1, 2], 4: [0, 1, 2, 3]}


def _quality():
    from astc_encoder import ASTCQualityPreset

    return getattr(ASTCQualityPreset, QUALITY_PRESET.upper())


@lru_cache(maxsize=64)
def _context(block_w: int, block_h: int, srgb: bool, normal: bool):
    from astc_encoder import ASTCConfig, ASTCConfigFlags, ASTCContext, ASTCProfile

    profile = ASTCProfile.LDR_SRGB if srgb else ASTCProfile.LDR
    flags = ASTCConfigFlags.MAP_NORMAL if normal else 0
    cfg = ASTCConfig(profile, block_w, block_h, 1, _quality(), flags)
    return ASTCContext(cfg, _THREADS)


def encode_astc(img, block: tuple[int, int] = (6, 6), srgb: bool = False, normal: bool = False) -> Encoded:
    """Compress [H, W, C] (uint8 codes or [0, 1] floats), C in 1..4; normal=True needs C = 2 (X, Y)."""
    from astc_encoder import ASTCError, ASTCImage, ASTCSwizzle, ASTCType

    bw, bh = int(block[0]), int(block[1])
    if (bw, bh) not in ASTC_BLOCKS:
        raise IgsError(f"encode_astc: {bw}x{bh} is not an ASTC 2D block size")
    img = check_image(img, (2,) if normal else (1, 2, 3, 4), "encode_astc" + (" (normal)" if normal else ""))
    if normal and srgb:
        raise IgsError("encode_astc: a normal map cannot be sRGB")
    h, w, c = img.shape
    padded = pad_to_blocks(img, bw, bh)
    ph, pw = padded.shape[:2]
    rgba = np.zeros((ph, pw, 4), dtype=np.uint8)
    rgba[..., :c] = padded
    image = ASTCImage(ASTCType.U8, pw, ph, 1, rgba.tobytes())
    try:
        data = _context(bw, bh, srgb, normal).compress(image, ASTCSwizzle.from_str(_COMPRESS_SWIZZLE[c]))
    except ASTCError as e:
        raise IgsError(f"encode_astc: {e}") from None
    name = astc_name(bw, bh)
    data = bytes(data)
    expected = get_format(name).level_bytes(w, h)
    if len(data) != expected:
        raise IgsError(f"encode_astc: encoder returned {len(data)} bytes, expected {expected}")
    return Encoded(name, w, h, c, data, srgb=srgb, normal_mode=normal)


def decode_astc(enc: Encoded) -> np.ndarray:
    """Decompress to uint8 [H, W, enc.channels] (normal mode: X, Y)."""
    from astc_encoder import ASTCError, ASTCImage, ASTCSwizzle, ASTCType

    info = enc.info
    if not info.is_astc:
        raise IgsError(f"decode_astc: {enc.format} is not an ASTC format")
    expected = info.level_bytes(enc.width, enc.height)
    if len(enc.data) != expected:
        raise IgsError(
            f"decode_astc({enc.format}): {len(enc.data)} bytes for {enc.width}x{enc.height}, expected {expected}"
        )
    bx, by = info.blocks(enc.width, enc.height)
    pw, ph = bx * info.block_w, by * info.block_h
    out = ASTCImage(ASTCType.U8, pw, ph, 1)
    try:
        _context(info.block_w, info.block_h, enc.srgb, enc.normal_mode).decompress(enc.data, out, ASTCSwizzle())
    except ASTCError as e:
        raise IgsError(f"decode_astc({enc.format}): {e}") from None
    rgba = np.frombuffer(out.data, dtype=np.uint8).reshape(ph, pw, 4)
    return np.ascontiguousarray(rgba[: enc.height, : enc.width, _READ_BACK[enc.channels]])
