"""The block formats the baselines use: block geometry, bit cost and Vulkan format numbers.

One table shared by the encoders, the KTX2 container and the bitrate arithmetic, so a format
name means the same block size and VkFormat everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from igs_tex import IgsError


@dataclass(frozen=True)
class BlockFormat:
    name: str  # 'bc1', 'bc4', 'bc5', 'bc7', 'astc6x6', ...
    block_w: int
    block_h: int
    block_bytes: int
    vk_unorm: int
    vk_srgb: int | None  # None: the format has no sRGB variant (BC4, BC5)

    @property
    def bits_per_texel(self) -> float:
        return 8.0 * self.block_bytes / (self.block_w * self.block_h)

    @property
    def is_astc(self) -> bool:
        return self.name.startswith("astc")

    def vk_format(self, srgb: bool) -> int:
        if srgb:
            if self.vk_srgb is None:
                raise IgsError(f"{self.name} has no sRGB variant")
            return self.vk_srgb
        return self.vk_unorm

    def blocks(self, width: int, height: int) -> tuple[int, int]:
        return -(-width // self.block_w), -(-height // self.block_h)

    def level_bytes(self, width: int, height: int) -> int:
        bx, by = self.blocks(width, height)
        return bx * by * self.block_bytes


# VkFormat numbers from the Vulkan registry (vk.xml / vulkan_core.h). BC1 is listed as its
# RGB variant: the baselines encode opaque colour, and the RGB variant tells a loader not to
# treat the 1-bit punch-through alpha as transparency.
_TABLE: list[BlockFormat] = [
    BlockFormat("bc1", 4, 4, 8, 131, 132),
    BlockFormat("bc4", 4, 4, 8, 139, None),
    BlockFormat("bc5", 4, 4, 16, 141, None),
    BlockFormat("bc7", 4, 4, 16, 145, 146),
]
# ASTC LDR blocks: UNORM/SRGB pairs are consecutive, starting at 157 for 4x4, in this order.
_ASTC_BLOCKS = [
    (4, 4),
    (5, 4),
    (5, 5),
    (6, 5),
    (6, 6),
    (8, 5),
    (8, 6),
    (8, 8),
    (10, 5),
    (10, 6),
    (10, 8),
    (10, 10),
    (12, 10),
    (12, 12),
]
for _i, (_w, _h) in enumerate(_ASTC_BLOCKS):
    _TABLE.append(BlockFormat(f"astc{_w}x{_h}", _w, _h, 16, 157 + 2 * _i, 158 + 2 * _i))

FORMATS: dict[str, BlockFormat] = {f.name: f for f in _TABLE}
ASTC_BLOCKS: list[tuple[int, int]] = list(_ASTC_BLOCKS)

# vkFormat -> (format, is_srgb), for the KTX2 reader.
BY_VK_FORMAT: dict[int, tuple[BlockFormat, bool]] = {}
for _f in _TABLE:
    BY_VK_FORMAT[_f.vk_unorm] = (_f, False)
    if _f.vk_srgb is not None:
        BY_VK_FORMAT[_f.vk_srgb] = (_f, True)


def get_format(name: str) -> BlockFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise IgsError(f"unknown block format {name!r} (known: {', '.join(FORMATS)})") from None


def astc_name(block_w: int, block_h: int) -> str:
    name = f"astc{block_w}x{block_h}"
    get_format(name)
    return name


@dataclass(frozen=True)
class Encoded:
    """One compressed image (one mip level) and what is needed to decode it."""

    format: str
    width: int
    height: int
    channels: int  # meaningful channels the encoder was given and the decoder returns
    data: bytes
    srgb: bool = False
    normal_mode: bool = False  # ASTC: X in RGB, Y in A, encoded for angular error

    @property
    def info(self) -> BlockFormat:
        return get_format(self.format)

    @property
    def bits(self) -> int:
        return 8 * len(self.data)


def to_u8(values) -> np.ndarray:
    """[0, 1] floats to 8-bit codes, round to nearest (how the source PNGs were quantised)."""
    v = np.asarray(values)
    if v.dtype == np.uint8:
        return v
    return np.clip(np.rint(np.asarray(v, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def pad_to_blocks(img: np.ndarray, block_w: int, block_h: int) -> np.ndarray:
    """Edge-replicate [H, W, C] up to whole blocks.

    Replicating the edge (not zero fill) keeps the padded texels inside the block's colour
    range, so they cost the real texels no endpoint precision.
    """
    h, w = img.shape[:2]
    ph, pw = (-h) % block_h, (-w) % block_w
    if ph == 0 and pw == 0:
        return np.ascontiguousarray(img)
    return np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="edge")


def check_image(img: np.ndarray, allowed_channels: tuple[int, ...], what: str) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in allowed_channels:
        raise IgsError(f"{what}: expected [H, W, C] with C in {allowed_channels}, got shape {tuple(img.shape)}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise IgsError(f"{what}: empty image {tuple(img.shape)}")
    return to_u8(img)
