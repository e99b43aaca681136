"""The .igs container: quantise, pack, write, read and validate (the byte layout is docs/FORMAT.md).

FORMAT.md is the contract that shaders and the C++ decoder are written from; this module is its
reference implementation. Where they disagree, fix one of them in the same change.

Decoding is done in numpy float32 with exactly the operation order FORMAT.md prescribes, one
IEEE-rounded multiply or add at a time, so that every conforming float32 decoder gets the same bits.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from igs_tex import IgsError, budget
from igs_tex.atomic import atomic_write_bytes
from igs_tex.budget import (  # noqa: F401
    CHANNEL_ENTRY_SIZE,
    CRC_SIZE,
    HEADER_SIZE,
    MAX_CHANNELS,
    MAX_GAUSSIANS,
    MAX_GAUSSIANS_16BIT_INDEX,
    MAX_INDEX_COUNT,
    MAX_K,
    MAX_SIDE,
    MAX_TILE,
    SECTION_ALIGN,
    TileGridMixin,
    align,
    bits_per_gaussian,
    ceil_div,
    check_k,
    check_tile,
    file_size,
    index_bits_for,
    index_section_bytes,
    section_layout,
    words_per_gaussian,
)
from igs_tex.render.tiles import tile_lists_numpy

MAGIC = b"IGSF"
VERSION = 1

# Fixed header: see FORMAT.md "Header" for the offset of every field.
_HEADER = struct.Struct("<4sHHIIHHHHfIIIHH10I")
_CHANNEL = struct.Struct("<B3xffff")
assert _HEADER.size == HEADER_SIZE and _CHANNEL.size == CHANNEL_ENTRY_SIZE

SECTION_NAMES = ("channel table", "metadata", "gaussian buffer", "tile offsets", "tile indices")

SEMANTIC_CODES: dict[str, int] = {
    "other": 0,
    "basecolor.r": 1,
    "basecolor.g": 2,
    "basecolor.b": 3,
    "normal.x": 4,
    "normal.y": 5,
    "normal.z": 6,
    "ao": 7,
    "roughness": 8,
    "metalness": 9,
}
_SEMANTIC_NAMES = {code: name for name, code in SEMANTIC_CODES.items()}

# Decode constants, given to shaders as bit patterns so that no decimal parsing can move them.
UNORM16_STEP = np.uint32(0x37800080).view(np.float32)  # float32(1 / 65535)
THETA_STEP = np.uint32(0x38490FDB).view(np.float32)  # float32(pi) * 2^-16, exactly pi/65536 rounded

# fp16 bit patterns of the positive normal finite numbers [2^-14, 65504]; subnormals are refused
# because some GPU paths flush them to zero, which would make a Gaussian infinitely large.
_FP16_MIN_NORMAL_BITS = 0x0400
_FP16_MAX_FINITE_BITS = 0x7BFF
_FP16_MIN_NORMAL = 2.0**-14
_FP16_MAX = 65504.0

# Minimum width of a colour range. Narrower spreads are flat for any texture purpose, and the floor
# keeps the decode step (hi - lo) / 65535 a normal float32 (GPUs may flush subnormals to zero).
MIN_COLOUR_SPAN = 1e-6
_F32_MIN_NORMAL = float(np.finfo(np.float32).tiny)  # 2^-126


def metadata_bytes(metadata: dict) -> bytes:
    """The metadata section of either version: compact JSON with sorted keys, empty for {}."""
    if not metadata:
        return b""
    try:
        text = json.dumps(metadata, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise IgsError(f"metadata cannot be stored as JSON: {exc}") from None
    return text.encode("utf-8")


class IgsFormatError(IgsError):
    """A .igs file that is truncated, corrupt or violates docs/FORMAT.md."""


# ----------------------------------------------------------------------------------------------
# Quantisation


def _f32_floor(x: np.ndarray) -> np.ndarray:
    """Largest float32 <= x (x float64): keeps every value inside the stored range."""
    y = x.astype(np.float32)
    over = y.astype(np.float64) > x
    y[over] = np.nextafter(y[over], np.float32(-np.inf))
    return y


def _f32_ceil(x: np.ndarray) -> np.ndarray:
    y = x.astype(np.float32)
    under = y.astype(np.float64) < x
    y[under] = np.nextafter(y[under], np.float32(np.inf))
    return y


def _no_subnormal_floor(x: np.ndarray) -> np.ndarray:
    """Round subnormal float32 values down to the nearest zero-or-normal value."""
    x = x.copy()
    sub = (x != 0) & (np.abs(x) < _F32_MIN_NORMAL)
    x[sub & (x > 0)] = 0.0
    x[sub & (x < 0)] = -_F32_MIN_NORMAL
    return x


def colour_ranges(colour: np.ndarray) -> np.ndarray:
    """Per-channel [lo, hi] float32 covering every colour, at least MIN_COLOUR_SPAN wide.

    lo and hi are rounded outwards to float32 and away from subnormals, so that every colour lies
    inside its stored range and the range decodes identically on hardware that flushes subnormals.
    """
    colour = np.asarray(colour, dtype=np.float64)
    c = colour.shape[1]
    if colour.shape[0] == 0:
        lo = np.zeros(c, dtype=np.float32)
    else:
        lo = _no_subnormal_floor(_f32_floor(colour.min(axis=0)))
    hi = _f32_ceil(colour.max(axis=0)) if colour.shape[0] else lo.copy()
    narrow = hi.astype(np.float64) - lo.astype(np.float64) < MIN_COLOUR_SPAN
    if narrow.any():
        widened = _f32_ceil(lo[narrow].astype(np.float64) + MIN_COLOUR_SPAN)
        hi[narrow] = np.maximum(widened, hi[narrow])
    hi = -_no_subnormal_floor(-hi)
    with np.errstate(over="ignore"):
        width = hi - lo
    if not np.all(np.isfinite(width)):
        raise IgsError("cannot quantise: a colour channel spans more than float32 can hold")
    return np.stack([lo, hi], axis=1).astype(np.float32)


def _unorm16(x: np.ndarray) -> np.ndarray:
    """x in [0, 1] (float64) to the nearest of 0..65535; ties to even, as numpy's rint does."""
    return np.rint(np.clip(x, 0.0, 1.0) * 65535.0).astype(np.uint16)


def _check_params(means, theta, inv_scale, colour):
    means = np.asarray(means, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64)
    inv_scale = np.asarray(inv_scale, dtype=np.float64)
    colour = np.asarray(colour, dtype=np.float64)
    if means.ndim != 2 or means.shape[1] != 2:
        raise IgsError(f"cannot quantise: means must be [N, 2], got {list(means.shape)}")
    n = means.shape[0]
    if theta.shape != (n,):
        raise IgsError(f"cannot quantise: theta must be [{n}], got {list(theta.shape)}")
    if inv_scale.shape != (n, 2):
        raise IgsError(f"cannot quantise: inv_scale must be [{n}, 2], got {list(inv_scale.shape)}")
    if colour.ndim != 2 or colour.shape[0] != n or not 1 <= colour.shape[1] <= MAX_CHANNELS:
        raise IgsError(f"cannot quantise: colour must be [{n}, 1..{MAX_CHANNELS}], got {list(colour.shape)}")
    if n > MAX_GAUSSIANS:
        raise IgsError(f"cannot quantise: {n} Gaussians, the format holds at most {MAX_GAUSSIANS}")
    for name, arr in (("means", means), ("theta", theta), ("inv_scale", inv_scale), ("colour", colour)):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise IgsError(f"cannot quantise: {int(bad.sum())} non-finite values in {name}")
    # A non-positive inverse scale is not a Gaussian the contract knows; clamping it to 2^-14 would
    # silently turn a training bug into a huge blob.
    if (inv_scale <= 0).any():
        raise IgsError(f"cannot quantise: {int((inv_scale <= 0).sum())} inverse scales are <= 0")
    return means, theta, inv_scale, colour


def _check_size(width: int, height: int) -> None:
    if not (1 <= int(width) <= MAX_SIDE and 1 <= int(height) <= MAX_SIDE):
        raise IgsError(f"image size {width}x{height} is outside 1..{MAX_SIDE}")


def quantize(means, theta, inv_scale, colour, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pack float Gaussians into the record layout of FORMAT.md.

    Returns (words uint32 [N, words_per_gaussian], colour_range float32 [C, 2]).
    Means outside the image are clamped to its edge: unorm16 cannot represent them.
    """
    means, theta, inv_scale, colour = _check_params(means, theta, inv_scale, colour)
    _check_size(width, height)
    n, c = colour.shape
    wpg = words_per_gaussian(c)
    crange = colour_ranges(colour)
    halves = np.zeros((n, 2 * wpg), dtype=np.uint16)
    halves[:, 0] = _unorm16(means[:, 0] / width)
    halves[:, 1] = _unorm16(means[:, 1] / height)
    # theta and theta + pi are the same Gaussian, so [0, pi) covers all of them; a value that
    # rounds up to pi wraps to 0 for the same reason.
    wrapped = np.mod(theta, math.pi)
    halves[:, 2] = (np.rint(wrapped / math.pi * 65536.0).astype(np.int64) % 65536).astype(np.uint16)
    inv = np.clip(inv_scale, _FP16_MIN_NORMAL, _FP16_MAX).astype(np.float16)
    halves[:, 3:5] = inv.view(np.uint16)
    lo = crange[:, 0].astype(np.float64)
    hi = crange[:, 1].astype(np.float64)
    halves[:, 5 : 5 + c] = _unorm16((colour - lo) / (hi - lo))
    words = halves[:, 0::2].astype(np.uint32) | (halves[:, 1::2].astype(np.uint32) << np.uint32(16))
    return words, crange


def _halves(words: np.ndarray) -> np.ndarray:
    halves = np.empty((words.shape[0], 2 * words.shape[1]), dtype=np.uint16)
    halves[:, 0::2] = (words & np.uint32(0xFFFF)).astype(np.uint16)
    halves[:, 1::2] = (words >> np.uint32(16)).astype(np.uint16)
    return halves


def dequantize(words, channel_count: int, width: int, height: int, colour_range) -> dict[str, np.ndarray]:
    """Float32 parameters exactly as every FORMAT.md decoder computes them.

    Each line below is one float32 operation, in FORMAT.md's order; do not fold or reorder them.
    """
    words = np.asarray(words, dtype=np.uint32)
    c = int(channel_count)
    if words.ndim != 2 or words.shape[1] != words_per_gaussian(c):
        raise IgsError(f"Gaussian buffer must be [N, {words_per_gaussian(c)}] words, got {list(words.shape)}")
    crange = np.asarray(colour_range, dtype=np.float32).reshape(c, 2)
    h = _halves(words)
    q = h.astype(np.float32)  # exact: q <= 65535 < 2^24
    sx = np.float32(width) * UNORM16_STEP
    sy = np.float32(height) * UNORM16_STEP
    means = np.empty((words.shape[0], 2), dtype=np.float32)
    means[:, 0] = q[:, 0] * sx
    means[:, 1] = q[:, 1] * sy
    theta = q[:, 2] * THETA_STEP
    inv_scale = h[:, 3:5].copy().view(np.float16).astype(np.float32)
    lo = crange[:, 0]
    step = (crange[:, 1] - lo) * UNORM16_STEP
    colour = lo + q[:, 5 : 5 + c] * step
    return {
        "means": means,
        "theta": theta.astype(np.float32),
        "inv_scale": inv_scale,
        "colour": colour.astype(np.float32),
    }


# ----------------------------------------------------------------------------------------------
# The file object


@dataclass(eq=False)
class IgsFile(TileGridMixin):
    version = VERSION  # a class constant, not a field: version 2 files are format_v2.IgsFileV2

    width: int
    height: int
    tile: int
    k: int
    eps: float
    channels: list[str]
    value_range: np.ndarray  # float32 [C, 2]: real = lo + v * (hi - lo)
    colour_range: np.ndarray  # float32 [C, 2]: the unorm16 range of stored colours
    words: np.ndarray  # uint32 [N, words_per_gaussian]
    tile_offsets: np.ndarray  # uint32 [tiles + 1]
    tile_indices: np.ndarray  # uint32 [index count]
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.width, self.height, self.tile, self.k = (int(v) for v in (self.width, self.height, self.tile, self.k))
        # The header stores eps as f32; holding the f32 value keeps write/read round trips equal.
        with np.errstate(over="ignore"):
            self.eps = float(np.float32(self.eps))
        self.channels = list(self.channels)
        self.value_range = np.asarray(self.value_range, dtype=np.float32)
        self.colour_range = np.asarray(self.colour_range, dtype=np.float32)
        self.words = np.asarray(self.words, dtype=np.uint32)
        self.tile_offsets = np.asarray(self.tile_offsets, dtype=np.uint32)
        self.tile_indices = np.asarray(self.tile_indices, dtype=np.uint32)
        self.metadata = dict(self.metadata or {})

    @property
    def gaussian_count(self) -> int:
        return int(self.words.shape[0])

    @property
    def index_bits(self) -> int:
        return index_bits_for(self.gaussian_count)

    @property
    def words_per_gaussian(self) -> int:
        return words_per_gaussian(self.channel_count)

    def params(self) -> dict[str, np.ndarray]:
        """Dequantised float32 means [N, 2], theta [N], inv_scale [N, 2], colour [N, C]."""
        return dequantize(self.words, self.channel_count, self.width, self.height, self.colour_range)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IgsFile):
            return NotImplemented
        scalars = ("width", "height", "tile", "k", "eps", "channels", "metadata")
        arrays = ("value_range", "colour_range", "words", "tile_offsets", "tile_indices")
        return all(getattr(self, s) == getattr(other, s) for s in scalars) and all(
            getattr(self, a).shape == getattr(other, a).shape and np.array_equal(getattr(self, a), getattr(other, a))
            for a in arrays
        )

    def _metadata_bytes(self) -> bytes:
        return metadata_bytes(self.metadata)

    def _layout(self, metadata_len: int) -> list[tuple[int, int]]:
        return section_layout(
            self.channel_count, metadata_len, self.gaussian_count, self.tile_count, int(self.tile_indices.shape[0])
        )

    def _check_writable(self) -> None:
        problems = []
        c = self.channel_count
        if not 1 <= c <= MAX_CHANNELS:
            problems.append(f"{c} channels (allowed 1..{MAX_CHANNELS})")
        unknown = [s for s in self.channels if s not in SEMANTIC_CODES]
        if unknown:
            problems.append(f"unknown channel semantics {unknown}")
        if not (1 <= self.width <= MAX_SIDE and 1 <= self.height <= MAX_SIDE):
            problems.append(f"size {self.width}x{self.height}")
        for check, value in ((check_tile, self.tile), (check_k, self.k)):
            try:
                check(value)
            except IgsError as e:
                problems.append(str(e))
        if not (math.isfinite(self.eps) and 0 < self.eps <= float(np.finfo(np.float32).max)):
            problems.append(f"epsilon {self.eps}")
        if self.tile_indices.ndim != 1 or self.tile_indices.shape[0] > MAX_INDEX_COUNT:
            problems.append(f"tile indices shape {list(self.tile_indices.shape)}")
        if self.value_range.shape != (c, 2) or self.colour_range.shape != (c, 2):
            problems.append("range tables are not [C, 2]")
        if self.words.ndim != 2 or self.words.shape[1] != self.words_per_gaussian:
            problems.append(f"Gaussian buffer shape {list(self.words.shape)}")
        if self.tile_offsets.shape != (self.tile_count + 1,):
            problems.append(f"{self.tile_offsets.shape[0]} tile offsets for {self.tile_count} tiles")
        if problems:
            raise IgsError("cannot write .igs: " + "; ".join(problems))

    def to_bytes(self) -> bytes:
        """Serialise; the result is re-read and fully validated, so an invalid file is never produced."""
        self._check_writable()
        meta = self._metadata_bytes()
        sections = self._layout(len(meta))
        n = self.gaussian_count
        header = _HEADER.pack(
            MAGIC,
            VERSION,
            HEADER_SIZE,
            self.width,
            self.height,
            self.channel_count,
            self.tile,
            self.k,
            self.index_bits,
            self.eps,
            n,
            self.tile_count,
            int(self.tile_indices.shape[0]),
            self.words_per_gaussian,
            0,
            *[v for s in sections for v in s],
        )
        table = b"".join(
            _CHANNEL.pack(SEMANTIC_CODES[s], *self.value_range[i], *self.colour_range[i])
            for i, s in enumerate(self.channels)
        )
        if self.index_bits == 16:
            idx = self.tile_indices.astype(np.uint16)
            if not np.array_equal(idx, self.tile_indices):
                raise IgsError("cannot write .igs: a tile index does not fit in 16 bits")
            if idx.shape[0] % 2:
                idx = np.append(idx, np.uint16(0))
            index_payload = idx.astype("<u2").tobytes()
        else:
            index_payload = self.tile_indices.astype("<u4").tobytes()
        payloads = (
            table,
            meta,
            self.words.astype("<u4").tobytes(),
            self.tile_offsets.astype("<u4").tobytes(),
            index_payload,
        )
        out = bytearray(header)
        for (offset, length), payload in zip(sections, payloads):
            assert len(payload) == length
            out.extend(b"\0" * (offset - len(out)))
            out.extend(payload)
        out.extend(struct.pack("<I", zlib.crc32(out)))
        data = bytes(out)
        try:
            _parse(data)
        except _Invalid as exc:
            raise IgsError(f"cannot write .igs: {exc}") from None
        return data

    def size_report(self) -> dict:
        """Byte counts per part and the bitrate in bits per pixel per channel (DESIGN.md "Bitrate").

        header_bytes covers the fixed header, channel table, metadata, alignment padding and CRC.
        bppc counts only the stored Gaussian parameters (16 bits each, padding halves excluded);
        bppc_total counts every byte of the file.
        """
        return self.file_size().report()

    def file_size(self):
        """budget.FileSize of this file as it would be written."""
        return file_size(
            self.width,
            self.height,
            self.channel_count,
            self.tile,
            self.gaussian_count,
            int(self.tile_indices.shape[0]),
            len(self._metadata_bytes()),
        )


# ----------------------------------------------------------------------------------------------
# Building


def build_igs(
    means,
    theta,
    inv_scale,
    colour,
    width: int,
    height: int,
    channels,
    value_range,
    metadata: dict | None = None,
    tile: int = 16,
    k: int = 10,
    eps: float = 1e-7,
) -> IgsFile:
    """Quantise a Gaussian set and index it.

    The tile lists come from the dequantised parameters, because those are what every decoder
    sees; lists built from the float originals could miss a Gaussian whose mean moved over a tile
    boundary in quantisation.
    """
    width, height, tile, k = int(width), int(height), int(tile), int(k)
    channels = list(channels)
    colour_arr = np.asarray(colour)
    if colour_arr.ndim != 2 or colour_arr.shape[1] != len(channels):
        raise IgsError(f"colour has shape {list(colour_arr.shape)} but {len(channels)} channels are named")
    unknown = [s for s in channels if s not in SEMANTIC_CODES]
    if unknown:
        raise IgsError(f"unknown channel semantics {unknown}; known: {sorted(SEMANTIC_CODES)}")
    _check_size(width, height)
    check_tile(tile)
    check_k(k)
    eps32 = np.float32(eps)
    if not (np.isfinite(eps32) and eps32 > 0):
        raise IgsError(f"epsilon {eps} must be finite and > 0 in float32")
    vrange = np.asarray(value_range, dtype=np.float32)
    if vrange.shape != (len(channels), 2):
        raise IgsError(f"value_range must be [{len(channels)}, 2], got {list(vrange.shape)}")
    if not (np.all(np.isfinite(vrange)) and np.all(vrange[:, 1] >= vrange[:, 0])):
        raise IgsError("value_range must be finite with hi >= lo")
    words, crange = quantize(means, theta, inv_scale, colour, width, height)
    p = dequantize(words, len(channels), width, height, crange)
    offsets, indices = tile_lists_numpy(p["means"], p["inv_scale"], height, width, tile)
    if indices.shape[0] > MAX_INDEX_COUNT:
        raise IgsError(f"tile lists hold {indices.shape[0]} entries, the format holds at most {MAX_INDEX_COUNT}")
    return IgsFile(
        width=width,
        height=height,
        tile=tile,
        k=k,
        eps=float(eps32),
        channels=channels,
        value_range=vrange,
        colour_range=crange,
        words=words,
        tile_offsets=offsets.astype(np.uint32),
        tile_indices=indices.astype(np.uint32),
        metadata=dict(metadata or {}),
    )


def as_version_1(igs, tile: int | None = None) -> IgsFile:
    """A file of either version as a version 1 file of exactly its decoded Gaussians (in its
    stored order), at `tile` (default the file's own): for engines that read only version 1, and
    for comparing the two layouts on the same Gaussians."""
    tile = igs.tile if tile is None else int(tile)
    if igs.version == 1 and igs.tile == tile:
        return igs
    p = igs.params()
    return build_igs(
        p["means"],
        p["theta"],
        p["inv_scale"],
        p["colour"],
        igs.width,
        igs.height,
        igs.channels,
        igs.value_range,
        metadata=igs.metadata,
        tile=tile,
        k=igs.k,
        eps=igs.eps,
    )


# ----------------------------------------------------------------------------------------------
# Reading


class _Invalid(Exception):
    """Internal: one validation failure, turned into IgsFormatError with the file name."""


def _reject_constant(name: str):
    raise _Invalid(f"metadata is not strict JSON: contains {name}")


def _parse(data: bytes) -> IgsFile:
    size = len(data)
    if size < HEADER_SIZE + CRC_SIZE:
        raise _Invalid(f"truncated: header and CRC need {HEADER_SIZE + CRC_SIZE} bytes but file has {size} bytes")
    (
        magic,
        version,
        header_size,
        width,
        height,
        c,
        tile,
        k,
        index_bits,
        eps,
        n,
        tile_count,
        index_count,
        wpg,
        flags,
        *table,
    ) = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise _Invalid(f"not an .igs file: magic is {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise _Invalid(f"unsupported version {version} (this reader knows {VERSION})")
    if header_size != HEADER_SIZE:
        raise _Invalid(f"header size {header_size}, version {VERSION} has {HEADER_SIZE}")

    # Sections first, so that a short file is reported as truncated rather than as a CRC failure.
    sections = list(zip(table[0::2], table[1::2]))
    prev_end, prev_name = HEADER_SIZE, "header"
    for name, (offset, length) in zip(SECTION_NAMES, sections):
        if offset % SECTION_ALIGN:
            raise _Invalid(f"{name} offset {offset} is not a multiple of {SECTION_ALIGN}")
        if offset < prev_end:
            raise _Invalid(
                f"{name} (bytes {offset}..{offset + length}) overlaps the {prev_name}, which ends at byte {prev_end}"
            )
        if offset > size:
            raise _Invalid(
                f"truncated or corrupt: {name} starts at byte {offset}, beyond the end of the file ({size} bytes)"
            )
        end = offset + length
        if end + CRC_SIZE > size:
            raise _Invalid(f"truncated: {name} end at byte {end} (+{CRC_SIZE} bytes of CRC) but file has {size} bytes")
        prev_end, prev_name = end, name
    if prev_end + CRC_SIZE != size:
        raise _Invalid(f"file has {size} bytes but its sections and CRC end at byte {prev_end + CRC_SIZE}")
    (stored_crc,) = struct.unpack_from("<I", data, size - CRC_SIZE)
    actual_crc = zlib.crc32(memoryview(data)[: size - CRC_SIZE])
    if stored_crc != actual_crc:
        raise _Invalid(f"CRC mismatch: stored {stored_crc:08x}, computed {actual_crc:08x} (file corrupt)")

    # Header fields against their limits.
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise _Invalid(f"image size {width}x{height} is outside 1..{MAX_SIDE}")
    if not 1 <= c <= MAX_CHANNELS:
        raise _Invalid(f"channel count {c} is outside 1..{MAX_CHANNELS}")
    for check, value in ((check_tile, tile), (check_k, k)):
        try:
            check(value)
        except IgsError as e:
            raise _Invalid(str(e)) from None
    if not (math.isfinite(eps) and eps > 0):
        raise _Invalid(f"epsilon {eps} must be finite and > 0")
    if n > MAX_GAUSSIANS:
        raise _Invalid(f"gaussian count {n} exceeds the limit {MAX_GAUSSIANS}")
    if index_bits != index_bits_for(n):
        raise _Invalid(f"index bits {index_bits}, but {n} Gaussians require {index_bits_for(n)}")
    expected_tiles = budget.tile_count(width, height, tile)
    if tile_count != expected_tiles:
        raise _Invalid(
            f"tile count {tile_count}, but a {width}x{height} image in {tile}-texel tiles has {expected_tiles}"
        )
    if index_count > MAX_INDEX_COUNT:
        raise _Invalid(f"index count {index_count} exceeds the limit {MAX_INDEX_COUNT}")
    if wpg != words_per_gaussian(c):
        raise _Invalid(f"words per gaussian {wpg}, but {c} channels need {words_per_gaussian(c)}")
    if flags != 0:
        raise _Invalid(f"flags {flags:#06x}: no flags are defined in version {VERSION}")

    # Section lengths against the counts (Python ints: no overflow whatever the header says).
    need = (
        CHANNEL_ENTRY_SIZE * c,
        None,
        4 * n * wpg,
        4 * (tile_count + 1),
        index_section_bytes(index_count, index_bits),
    )
    what = (
        f"{c} channels",
        None,
        f"{n} Gaussians of {wpg} words",
        f"{tile_count} tiles",
        f"{index_count} indices of {index_bits} bits",
    )
    for name, (_, length), want, why in zip(SECTION_NAMES, sections, need, what):
        if want is not None and length != want:
            raise _Invalid(f"{name} section is {length} bytes but {why} need {want}")
    (ct_off, _), (md_off, md_len), (gb_off, _), (to_off, _), (ti_off, ti_len) = sections

    # Channel table.
    channels, vrange, crange = [], np.empty((c, 2), np.float32), np.empty((c, 2), np.float32)
    for i in range(c):
        pos = ct_off + i * CHANNEL_ENTRY_SIZE
        if data[pos + 1 : pos + 4] != b"\0\0\0":
            raise _Invalid(f"channel {i}: reserved bytes are not zero")
        code, vlo, vhi, clo, chi = _CHANNEL.unpack_from(data, pos)
        if code not in _SEMANTIC_NAMES:
            raise _Invalid(f"channel {i}: unknown semantic code {code}")
        channels.append(_SEMANTIC_NAMES[code])
        vrange[i] = (vlo, vhi)
        crange[i] = (clo, chi)
        for label, lo, hi in (("value range", vlo, vhi), ("colour range", clo, chi)):
            if not (math.isfinite(lo) and math.isfinite(hi) and hi >= lo):
                raise _Invalid(f"channel {i}: {label} [{lo}, {hi}] must be finite with hi >= lo")
        for label, v in (("lo", clo), ("hi", chi)):
            if v != 0 and abs(v) < _F32_MIN_NORMAL:
                raise _Invalid(f"channel {i}: colour range {label} {v} is subnormal")
        with np.errstate(over="ignore"):
            step = (np.float32(chi) - np.float32(clo)) * UNORM16_STEP
        if not np.isfinite(step):
            raise _Invalid(f"channel {i}: colour range [{clo}, {chi}] is wider than float32 holds")
        if 0 < step < _F32_MIN_NORMAL:
            raise _Invalid(f"channel {i}: colour range [{clo}, {chi}] gives a subnormal decode step")

    # Metadata.
    metadata: dict = {}
    if md_len:
        try:
            text = data[md_off : md_off + md_len].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Invalid(f"metadata is not valid UTF-8 (byte {exc.start})") from None
        try:
            metadata = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise _Invalid(
                f"metadata is not valid JSON: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from None
        if not isinstance(metadata, dict):
            raise _Invalid(f"metadata is JSON {type(metadata).__name__}, not an object")

    # Gaussian buffer.
    words = np.frombuffer(data, dtype="<u4", count=n * wpg, offset=gb_off).astype(np.uint32).reshape(n, wpg)
    halves = _halves(words)
    if (5 + c) % 2 and n and np.any(halves[:, -1]):
        g = int(np.flatnonzero(halves[:, -1])[0])
        raise _Invalid(f"gaussian {g}: padding half is not zero")
    inv = halves[:, 3:5]
    bad = (inv < _FP16_MIN_NORMAL_BITS) | (inv > _FP16_MAX_FINITE_BITS)
    if bad.any():
        g, axis = (int(v) for v in np.argwhere(bad)[0])
        value = inv[g, axis : axis + 1].view(np.float16)[0]
        raise _Invalid(
            f"gaussian {g}: inverse scale {'xy'[axis]} is {value} (fp16 {int(inv[g, axis]):#06x}); "
            "it must be a positive normal finite fp16"
        )

    # Tile lists.
    offsets = np.frombuffer(data, dtype="<u4", count=tile_count + 1, offset=to_off).astype(np.uint32)
    if offsets[0] != 0:
        raise _Invalid(f"tile offsets start at {int(offsets[0])}, not 0")
    if int(offsets[-1]) != index_count:
        raise _Invalid(f"last tile offset is {int(offsets[-1])} but index count is {index_count}")
    steps = np.diff(offsets.astype(np.int64))
    if (steps < 0).any():
        t = int(np.flatnonzero(steps < 0)[0])
        raise _Invalid(f"tile offsets decrease at tile {t}: {int(offsets[t])} then {int(offsets[t + 1])}")
    if index_bits == 16:
        packed = np.frombuffer(data, dtype="<u2", count=ti_len // 2, offset=ti_off)
        if packed.shape[0] > index_count and packed[-1] != 0:
            raise _Invalid("tile indices: padding half is not zero")
        indices = packed[:index_count].astype(np.uint32)
    else:
        indices = np.frombuffer(data, dtype="<u4", count=index_count, offset=ti_off).astype(np.uint32)
    if index_count and int(indices.max()) >= n:
        j = int(np.argmax(indices >= n))
        raise _Invalid(f"tile index entry {j} is {int(indices[j])} but there are only {n} Gaussians")
    if index_count > 1:
        ascending = indices[1:] > indices[:-1]
        # Entries that start a new list are not compared with the end of the previous one.
        starts = offsets[1:-1].astype(np.int64)
        starts = starts[(starts > 0) & (starts < index_count)]
        ascending[starts - 1] = True
        if not ascending.all():
            j = int(np.flatnonzero(~ascending)[0]) + 1
            t = int(np.searchsorted(offsets, j, side="right")) - 1
            raise _Invalid(
                f"tile {t}: list is not strictly ascending at entry {j} ({int(indices[j - 1])} then {int(indices[j])})"
            )

    return IgsFile(
        width=width,
        height=height,
        tile=tile,
        k=k,
        eps=float(eps),
        channels=channels,
        value_range=vrange,
        colour_range=crange,
        words=words,
        tile_offsets=offsets,
        tile_indices=indices,
        metadata=metadata,
    )


def from_bytes(data: bytes, name: str = "<bytes>"):
    """Parse and validate a whole .igs file of either version (version 2: format_v2.py); any
    defect raises IgsFormatError naming `name`."""
    data = bytes(data)
    try:
        if len(data) >= 6 and data[:4] == MAGIC and struct.unpack_from("<H", data, 4)[0] == 2:
            from . import format_v2

            try:
                return format_v2._parse(data)
            except format_v2._Invalid as exc:
                raise _Invalid(str(exc)) from None
        return _parse(data)
    except _Invalid as exc:
        raise IgsFormatError(f"{name}: {exc}") from None
    except (struct.error, ValueError, OverflowError, MemoryError) as exc:
        # Every path above is meant to be guarded; this keeps a missed one a format error.
        raise IgsFormatError(f"{name}: malformed file ({type(exc).__name__}: {exc})") from None


def read_igs(path):
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IgsFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return from_bytes(data, str(path))


def write_igs(path, igs: IgsFile) -> None:
    """Write atomically (see atomic.py): readers never see a half-written file."""
    atomic_write_bytes(path, igs.to_bytes())
