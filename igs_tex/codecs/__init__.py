"""BCn / ASTC baselines: encode, decode, iso-bitrate mips, KTX2 io.

The encoder packages are imported lazily, so ``import igs_tex`` works (and bakes run) on a
machine that lacks them; only using a baseline needs them.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np

from igs_tex.codecs.formats import Encoded, get_format

# Distribution names, as pip knows them, of everything that touches the baseline numbers.
CODEC_PACKAGES = ("etcpak", "texture2ddecoder", "astc-encoder-py", "flip-evaluator")


def codec_versions() -> dict:
    """Installed versions of the codec packages and the encoder settings in force.

    A baseline number is only reproducible with these; reports store them beside results.
    """
    from igs_tex.codecs import astc, bcn

    out: dict = {}
    for dist in CODEC_PACKAGES:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    out["settings"] = {
        "bc7_uber_level": bcn.BC7_UBER_LEVEL,
        "bc7_max_partitions": bcn.BC7_MAX_PARTITIONS,
        "bc7_weights": "linear",
        "astc_quality_preset": astc.QUALITY_PRESET,
    }
    return out


def encode(fmt: str, img, srgb: bool = False, normal: bool = False) -> Encoded:
    """Encode [H, W, C] to one level of ``fmt`` ('bc1', 'bc4', 'bc5', 'bc7', 'astc6x6', ...)."""
    info = get_format(fmt)
    if info.is_astc:
        from igs_tex.codecs.astc import encode_astc

        return encode_astc(img, (info.block_w, info.block_h), srgb=srgb, normal=normal)
    from igs_tex import IgsError
    from igs_tex.codecs.bcn import encode_bcn

    if normal:
        raise IgsError(f"encode: normal-map mode is ASTC only (use bc5 for normals), got {fmt}")
    return encode_bcn(fmt, img, srgb=srgb)


def decode(enc: Encoded) -> np.ndarray:
    """uint8 [H, W, enc.channels]."""
    if enc.info.is_astc:
        from igs_tex.codecs.astc import decode_astc

        return decode_astc(enc)
    from igs_tex.codecs.bcn import decode_bcn

    return decode_bcn(enc)


__all__ = ["Encoded", "codec_versions", "decode", "encode", "get_format"]
