"""BC1 / BC4 / BC5 / BC7 encode (etcpak) and decode (texture2ddecoder).

Channel counts in and out: BC1 and BC7 carry RGB (BC7 also RGBA), BC4 one channel,
BC5 two. Images are padded to whole 4x4 blocks by edge replication and cropped after decode.
"""

from __future__ import annotations

import numpy as np

from igs_tex import IgsError
from igs_tex.codecs.formats import Encoded, check_image, get_format, pad_to_blocks

BC_FORMATS = ("bc1", "bc4", "bc5", "bc7")
_CHANNELS = {"bc1": (3,), "bc4": (1,), "bc5": (2,), "bc7": (3, 4)}

# bc7enc inside etcpak: uber level 2 of 0..4 gains ~0.3 dB over 0 on real textures at about
# twice the time, and past 2 the gain is under 0.05 dB. Linear (not perceptual YCbCr)
# weights because the baselines are scored by per-channel PSNR; perceptual weights cost
# ~1 dB of RGB PSNR on walnut_wood.
BC7_UBER_LEVEL = 2
BC7_MAX_PARTITIONS = 64


def _bc7_params():
    import etcpak

    p = etcpak.BC7CompressBlockParams()
    p.init_linear_weights()
    p.m_uber_level = BC7_UBER_LEVEL
    p.m_max_partitions = BC7_MAX_PARTITIONS
    return p


def encode_bcn(fmt: str, img, srgb: bool = False) -> Encoded:
    """Compress [H, W, C] (uint8 codes or [0, 1] floats) to one BCn level.

    ``srgb`` only labels the result (the bits are the same; it picks the KTX2 format).
    """
    import etcpak

    if fmt not in BC_FORMATS:
        raise IgsError(f"encode_bcn: unknown format {fmt!r} (expected one of {', '.join(BC_FORMATS)})")
    info = get_format(fmt)
    if srgb and info.vk_srgb is None:
        raise IgsError(f"encode_bcn: {fmt} has no sRGB variant")
    img = check_image(img, _CHANNELS[fmt], f"encode_bcn({fmt})")
    h, w, c = img.shape
    padded = pad_to_blocks(img, 4, 4)
    ph, pw = padded.shape[:2]
    # etcpak reads RGBA8 and takes BC4 from R and BC5 from R, G; unused slots are don't-care.
    rgba = np.zeros((ph, pw, 4), dtype=np.uint8)
    rgba[..., :c] = padded
    if c < 4:
        rgba[..., 3] = 255
    raw = rgba.tobytes()
    if fmt == "bc1":
        data = etcpak.compress_bc1(raw, pw, ph)
    elif fmt == "bc4":
        data = etcpak.compress_bc4(raw, pw, ph)
    elif fmt == "bc5":
        data = etcpak.compress_bc5(raw, pw, ph)
    else:
        data = etcpak.compress_bc7(raw, pw, ph, _bc7_params())
    data = bytes(data)
    if len(data) != info.level_bytes(w, h):
        raise IgsError(f"encode_bcn({fmt}): encoder returned {len(data)} bytes, expected {info.level_bytes(w, h)}")
    return Encoded(fmt, w, h, c, data, srgb=srgb)


def decode_bcn(enc: Encoded) -> np.ndarray:
    """Decompress to uint8 [H, W, enc.channels] in RGBA order."""
    import texture2ddecoder

    if enc.format not in BC_FORMATS:
        raise IgsError(f"decode_bcn: {enc.format} is not a BC format")
    info = enc.info
    expected = info.level_bytes(enc.width, enc.height)
    if len(enc.data) != expected:
        raise IgsError(
            f"decode_bcn({enc.format}): {len(enc.data)} bytes for {enc.width}x{enc.height}, expected {expected}"
        )
    bx, by = info.blocks(enc.width, enc.height)
    pw, ph = 4 * bx, 4 * by
    fn = getattr(texture2ddecoder, f"decode_{enc.format}")
    out = np.frombuffer(fn(enc.data, pw, ph), dtype=np.uint8).reshape(ph, pw, 4)
    # texture2ddecoder writes BGRA; BC4 lands in B's slot (shown as R after the swap) and
    # BC5's R, G likewise, so one swap serves every format.
    rgba = out[: enc.height, : enc.width, [2, 1, 0, 3]]
    return np.ascontiguousarray(rgba[..., : enc.channels])
