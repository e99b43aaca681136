"""KTX 2.0 container io for the block formats in ``formats.py``, from the Khronos KTX 2.0 spec.

Scope: 2D textures (no arrays, cubes or 3D), one or more mip levels, no supercompression,
one Khronos basic data format descriptor block. Everything read is checked against that
scope and against the file size before any level is sliced, so a corrupt or truncated file
gives one IgsError that names it, never a wrong texture or an IndexError.

File layout (all little endian), as the spec orders it:
  identifier[12] | header (9 x u32) | index (4 x u32, 2 x u64) | level index (levelCount x 3 u64)
  | DFD | key/value data | (supercompression global data: none here) | levels, smallest first.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

from igs_tex import IgsError, __version__
from igs_tex.codecs.formats import BY_VK_FORMAT, Encoded, get_format

IDENTIFIER = bytes([0xAB, 0x4B, 0x54, 0x58, 0x20, 0x32, 0x30, 0xBB, 0x0D, 0x0A, 0x1A, 0x0A])
_HEADER = struct.Struct("<9I4I2Q")  # header + index, 68 bytes
_LEVEL = struct.Struct("<3Q")
_HEADER_END = len(IDENTIFIER) + _HEADER.size  # 80

# Khronos Data Format spec: colour models for the compressed formats, transfer functions.
_MODEL = {"bc1": 128, "bc4": 131, "bc5": 132, "bc7": 134}
_MODEL_ASTC = 162
_TRANSFER_LINEAR, _TRANSFER_SRGB = 1, 2
_PRIMARIES_BT709 = 1
_DFD_VERSION = 2  # KDF 1.3
# Per-sample channel ids: BC5 has two planes of BC4-like data (red, green); every other
# format here is one opaque 64- or 128-bit sample (channel 0).
_SAMPLES = {"bc5": [(0, 0), (64, 1)]}


@dataclass
class Ktx2Texture:
    format: str  # name in formats.FORMATS
    srgb: bool
    width: int
    height: int
    levels: list[bytes]  # level 0 is full size
    key_values: dict[str, bytes] = field(default_factory=dict)

    @property
    def vk_format(self) -> int:
        return get_format(self.format).vk_format(self.srgb)

    def level_size(self, level: int) -> tuple[int, int]:
        return max(1, self.width >> level), max(1, self.height >> level)

    def encoded(self, level: int = 0, channels: int | None = None) -> Encoded:
        """The level as an :class:`Encoded` for ``codecs.decode``.

        A container does not say how many channels the texture was packed with; by default
        BC1 -> 3, BC4 -> 1, BC5 -> 2, BC7 and ASTC -> 4. Pass 2 for an ASTC normal map
        (X from R, Y from A).
        """
        if channels is None:
            channels = {"bc1": 3, "bc4": 1, "bc5": 2}.get(self.format, 4)
        w, h = self.level_size(level)
        return Encoded(self.format, w, h, channels, self.levels[level], srgb=self.srgb)

    @staticmethod
    def from_encoded(levels: list[Encoded], key_values: dict[str, bytes] | None = None) -> "Ktx2Texture":
        if not levels:
            raise IgsError("KTX2: no levels to write")
        base = levels[0]
        tex = Ktx2Texture(
            base.format, base.srgb, base.width, base.height, [e.data for e in levels], dict(key_values or {})
        )
        for i, e in enumerate(levels):
            if e.format != base.format or e.srgb != base.srgb or (e.width, e.height) != tex.level_size(i):
                raise IgsError(
                    f"KTX2: level {i} is {e.format} {e.width}x{e.height}, expected {base.format} "
                    f"{tex.level_size(i)[0]}x{tex.level_size(i)[1]}"
                )
        return tex


def _max_levels(width: int, height: int) -> int:
    return int(math.floor(math.log2(max(width, height)))) + 1


def _level_alignment(block_bytes: int) -> int:
    # Spec: without supercompression each level starts at a multiple of lcm(texel block size, 4).
    return block_bytes * 4 // math.gcd(block_bytes, 4)


def _dfd(fmt: str, srgb: bool) -> bytes:
    info = get_format(fmt)
    model = _MODEL_ASTC if info.is_astc else _MODEL[fmt]
    sample_bits = info.block_bytes * 8
    samples = _SAMPLES.get(fmt, [(0, 0)])
    if len(samples) > 1:
        sample_bits //= len(samples)
    block_size = 24 + 16 * len(samples)
    out = bytearray()
    out += struct.pack("<I", 4 + block_size)
    out += struct.pack("<I", 0)  # vendorId 0 (Khronos, 17 bits) | descriptorType 0 (basic, 15 bits)
    out += struct.pack("<HH", _DFD_VERSION, block_size)
    transfer = _TRANSFER_SRGB if srgb else _TRANSFER_LINEAR
    out += struct.pack("<4B", model, _PRIMARIES_BT709, transfer, 0)
    out += struct.pack("<4B", info.block_w - 1, info.block_h - 1, 0, 0)
    out += struct.pack("<8B", info.block_bytes, 0, 0, 0, 0, 0, 0, 0)
    for bit_offset, channel in samples:
        out += struct.pack("<HBB", bit_offset, sample_bits - 1, channel)
        out += struct.pack("<4B", 0, 0, 0, 0)
        out += struct.pack("<II", 0, 0xFFFFFFFF)
    return bytes(out)


def _kvd(key_values: dict[str, bytes]) -> bytes:
    out = bytearray()
    for key in sorted(key_values, key=lambda k: k.encode("utf-8")):  # spec: sorted by code point
        if not key or "\0" in key:
            raise IgsError(f"KTX2: invalid key {key!r}")
        value = key_values[key]
        if isinstance(value, str):
            value = value.encode("utf-8") + b"\0"
        entry = key.encode("utf-8") + b"\0" + bytes(value)
        out += struct.pack("<I", len(entry)) + entry
        out += b"\0" * ((-len(entry)) % 4)
    return bytes(out)


def ktx2_bytes(tex: Ktx2Texture) -> bytes:
    """Serialise a texture; checks level sizes against the format first."""
    info = get_format(tex.format)
    vk = tex.vk_format
    if tex.width <= 0 or tex.height <= 0:
        raise IgsError(f"KTX2: invalid size {tex.width}x{tex.height}")
    n = len(tex.levels)
    if not 1 <= n <= _max_levels(tex.width, tex.height):
        raise IgsError(f"KTX2: {n} levels for {tex.width}x{tex.height} (1..{_max_levels(tex.width, tex.height)})")
    for i, data in enumerate(tex.levels):
        w, h = tex.level_size(i)
        if len(data) != info.level_bytes(w, h):
            raise IgsError(
                f"KTX2: level {i} has {len(data)} bytes, {tex.format} {w}x{h} needs {info.level_bytes(w, h)}"
            )
    kv = {"KTXwriter": f"igs-tex {__version__}", **tex.key_values}
    dfd = _dfd(tex.format, tex.srgb)
    kvd = _kvd(kv)
    dfd_off = _HEADER_END + _LEVEL.size * n
    kvd_off = dfd_off + len(dfd)
    pos = kvd_off + len(kvd)
    align = _level_alignment(info.block_bytes)
    body = bytearray()
    offsets = [0] * n
    for i in reversed(range(n)):  # smallest level first, so a streaming loader gets a preview early
        pad = (-pos) % align
        body += b"\0" * pad
        pos += pad
        offsets[i] = pos
        body += tex.levels[i]
        pos += len(tex.levels[i])
    header = _HEADER.pack(vk, 1, tex.width, tex.height, 0, 0, 1, n, 0, dfd_off, len(dfd), kvd_off, len(kvd), 0, 0)
    index = b"".join(_LEVEL.pack(offsets[i], len(tex.levels[i]), len(tex.levels[i])) for i in range(n))
    return IDENTIFIER + header + index + dfd + kvd + bytes(body)


def write_ktx2(path, tex: Ktx2Texture) -> Path:
    from igs_tex.atomic import atomic_write_bytes

    path = Path(path)
    try:
        data = ktx2_bytes(tex)
    except IgsError as e:
        raise IgsError(f"{path}: {e}") from None
    atomic_write_bytes(path, data)
    return path


def read_ktx2(path) -> Ktx2Texture:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise IgsError(f"{path}: cannot read ({e.strerror or e})") from None
    return parse_ktx2(data, str(path))


def parse_ktx2(data: bytes, name: str = "<bytes>") -> Ktx2Texture:
    """Validate and decode a KTX2 file held in memory; errors start with ``name``."""

    def fail(msg: str):
        raise IgsError(f"{name}: not a valid KTX2 file for igs-tex ({msg})")

    data = bytes(data)
    size = len(data)
    if size < len(IDENTIFIER) or data[: len(IDENTIFIER)] != IDENTIFIER:
        fail("bad identifier" if size >= len(IDENTIFIER) else f"truncated: {size} bytes")
    if size < _HEADER_END:
        fail(f"truncated header: {size} bytes, need {_HEADER_END}")
    (
        vk,
        type_size,
        width,
        height,
        depth,
        layers,
        faces,
        level_count,
        scheme,
        dfd_off,
        dfd_len,
        kvd_off,
        kvd_len,
        sgd_off,
        sgd_len,
    ) = _HEADER.unpack_from(data, len(IDENTIFIER))

    if vk not in BY_VK_FORMAT:
        fail(f"unsupported vkFormat {vk}" + (" (UNDEFINED, e.g. Basis Universal)" if vk == 0 else ""))
    info, srgb = BY_VK_FORMAT[vk]
    if type_size != 1:
        fail(f"typeSize {type_size}, block-compressed formats need 1")
    if width == 0:
        fail("pixelWidth is 0")
    if height == 0:
        fail("pixelHeight is 0 (1D textures are not supported)")
    if depth != 0:
        fail(f"pixelDepth {depth}: 3D textures are not supported")
    if layers != 0:
        fail(f"layerCount {layers}: array textures are not supported")
    if faces != 1:
        fail(f"faceCount {faces}: cube maps are not supported")
    if scheme != 0:
        fail(f"supercompressionScheme {scheme} is not supported")
    if level_count > _max_levels(width, height):
        fail(f"levelCount {level_count} exceeds {_max_levels(width, height)} for {width}x{height}")
    n = max(level_count, 1)  # 0 means "base level only; a loader may generate the rest"

    index_end = _HEADER_END + _LEVEL.size * n
    if size < index_end:
        fail(f"truncated level index: {size} bytes, need {index_end}")
    if dfd_off != index_end:
        fail(f"dfdByteOffset {dfd_off}, must follow the level index at {index_end}")
    if dfd_len < 28 or dfd_off + dfd_len > size:
        fail(f"DFD of {dfd_len} bytes at {dfd_off} does not fit in {size} bytes")
    meta_end = dfd_off + dfd_len
    if kvd_len:
        if kvd_off != meta_end:
            fail(f"kvdByteOffset {kvd_off}, must follow the DFD at {meta_end}")
        if kvd_off + kvd_len > size:
            fail(f"key/value data of {kvd_len} bytes at {kvd_off} does not fit in {size} bytes")
        meta_end = kvd_off + kvd_len
    elif kvd_off not in (0, meta_end):
        fail(f"kvdByteOffset {kvd_off} with no key/value data")
    if sgd_off or sgd_len:
        fail(f"supercompression global data ({sgd_len} bytes at {sgd_off}) without a supercompression scheme")

    _check_dfd(data[dfd_off : dfd_off + dfd_len], info, srgb, fail)
    key_values = _parse_kvd(data[kvd_off : kvd_off + kvd_len], fail) if kvd_len else {}

    align = _level_alignment(info.block_bytes)
    levels: list[bytes] = []
    spans: list[tuple[int, int, int]] = []
    for i in range(n):
        off, length, raw_len = _LEVEL.unpack_from(data, _HEADER_END + _LEVEL.size * i)
        w, h = max(1, width >> i), max(1, height >> i)
        expected = info.level_bytes(w, h)
        if length != expected:
            fail(f"level {i} is {length} bytes, {info.name} {w}x{h} needs {expected}")
        if raw_len != length:
            fail(f"level {i} uncompressedByteLength {raw_len} != byteLength {length} without supercompression")
        if off < meta_end or off + length > size:
            fail(f"level {i} ({length} bytes at {off}) lies outside the data area {meta_end}..{size}")
        if off % align:
            fail(f"level {i} offset {off} is not a multiple of {align}")
        spans.append((off, off + length, i))
        levels.append(data[off : off + length])
    spans.sort()
    for (_, a1, ia), (b0, _, ib) in zip(spans, spans[1:]):
        if b0 < a1:
            fail(f"levels {ia} and {ib} overlap")
    return Ktx2Texture(info.name, srgb, width, height, levels, key_values)


def _check_dfd(dfd: bytes, info, srgb: bool, fail) -> None:
    total = struct.unpack_from("<I", dfd, 0)[0]
    if total != len(dfd):
        fail(f"DFD total size {total} != dfdByteLength {len(dfd)}")
    word0, version, block_size = struct.unpack_from("<IHH", dfd, 4)
    vendor, dtype = word0 & 0x1FFFF, word0 >> 17
    if vendor != 0 or dtype != 0:
        fail(f"first DFD block is vendor {vendor} type {dtype}, expected the Khronos basic block (0, 0)")
    if version != _DFD_VERSION:
        fail(f"DFD version {version}, expected {_DFD_VERSION}")
    if block_size < 24 or (block_size - 24) % 16 or 4 + block_size > len(dfd):
        fail(f"DFD block size {block_size} is inconsistent with {len(dfd)} bytes")
    model, _primaries, transfer, _flags = struct.unpack_from("<4B", dfd, 12)
    dims = struct.unpack_from("<4B", dfd, 16)
    planes = struct.unpack_from("<8B", dfd, 20)
    want_model = _MODEL_ASTC if info.is_astc else _MODEL[info.name]
    if model != want_model:
        fail(f"DFD colour model {model} does not match {info.name} ({want_model})")
    if dims != (info.block_w - 1, info.block_h - 1, 0, 0):
        fail(f"DFD texel block {dims[0] + 1}x{dims[1] + 1} does not match {info.name}")
    if planes[0] != info.block_bytes or any(planes[1:]):
        fail(f"DFD bytesPlane {list(planes)} does not match {info.block_bytes}-byte blocks")
    want_transfer = _TRANSFER_SRGB if srgb else _TRANSFER_LINEAR
    if transfer != want_transfer:
        fail(f"DFD transfer function {transfer} does not match the {'sRGB' if srgb else 'UNORM'} vkFormat")
    n_samples = (block_size - 24) // 16
    if n_samples == 0:
        fail("DFD has no samples")
    block_bits = info.block_bytes * 8
    for s in range(n_samples):
        bit_offset, bit_len_m1, _channel = struct.unpack_from("<HBB", dfd, 28 + 16 * s)
        if bit_offset + bit_len_m1 + 1 > block_bits:
            fail(
                f"DFD sample {s} covers bits {bit_offset}..{bit_offset + bit_len_m1} beyond the {block_bits}-bit block"
            )


def _parse_kvd(kvd: bytes, fail) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(kvd):
        if pos + 4 > len(kvd):
            fail(f"key/value entry at {pos} truncated")
        length = struct.unpack_from("<I", kvd, pos)[0]
        start, end = pos + 4, pos + 4 + length
        if length < 2 or end > len(kvd):
            fail(f"key/value entry at {pos} has length {length}, beyond the {len(kvd)}-byte block")
        entry = kvd[start:end]
        nul = entry.find(b"\0")
        if nul <= 0:
            fail(f"key/value entry at {pos} has no NUL-terminated key")
        try:
            key = entry[:nul].decode("utf-8")
        except UnicodeDecodeError:
            fail(f"key/value entry at {pos}: key is not UTF-8")
        if key in out:
            fail(f"duplicate key {key!r}")
        out[key] = entry[nul + 1 :]
        pos = end + ((-length) % 4)
    return out
