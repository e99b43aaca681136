"""The .igs container, version 2 (docs/FORMAT-v2.md): bit-packed records sorted by home tile and
per-tile offsets instead of a tile index. The reference reader and writer; every other decoder
is checked against it."""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from . import IgsError, budget
from .budget import MAX_CHANNELS, MAX_GAUSSIANS, MAX_SIDE, ceil_div, check_k, check_tile, tile_grid
from .igsfile import SEMANTIC_CODES, IgsFormatError, _check_params, _check_size, metadata_bytes

VERSION = 2
HEADER = struct.Struct("<4sHHIIHHHHfIIBBBBbBHI8I")
HEADER_SIZE = HEADER.size  # 80
CHANNEL = struct.Struct("<BB2xffff")
CHANNEL_ENTRY_SIZE = CHANNEL.size  # 20
assert HEADER_SIZE == budget.HEADER_SIZE_V2 and CHANNEL_ENTRY_SIZE == budget.CHANNEL_ENTRY_SIZE
MAGIC = b"IGSF"
MAX_REACH = 8
SECTION_NAMES = ("channel table", "metadata", "records", "tile offsets")
_F32_PI_BITS = 0x40490FDB
_F32_MIN_NORMAL = float(np.finfo(np.float32).tiny)
# colour_lo and colour_step are zero or at least this large, so that lo + q * step is never
# subnormal (FORMAT-v2 "Channel table").
COLOUR_TINY = 2.0**-102


def _pow2_f32(e: int) -> np.float32:
    """2^e as an exact f32 (normal range)."""
    return np.float32(math.ldexp(1.0, e))


# ----------------------------------------------------------------------------------------------
# Bit streams


def pack_fields(values: list[np.ndarray], widths: list[int]) -> np.ndarray:
    """Records of fields (values[f][i] of widths[f] bits), bit-packed LSB first into u32 words."""
    n = values[0].shape[0] if values else 0
    rb = sum(widths)
    bits = np.zeros(n * rb, dtype=np.uint8)
    o = 0
    base = np.arange(n, dtype=np.int64) * rb
    for v, w in zip(values, widths):
        v = np.asarray(v, dtype=np.uint64)
        if v.size and int(v.max()) >> w:
            raise IgsError(f"a {w}-bit field holds {int(v.max())}")
        for j in range(w):
            bits[base + o + j] = ((v >> np.uint64(j)) & np.uint64(1)).astype(np.uint8)
        o += w
    return _bits_to_words(bits)


def _bits_to_words(bits: np.ndarray) -> np.ndarray:
    nwords = ceil_div(bits.shape[0], 32)
    padded = np.zeros(nwords * 32, dtype=np.uint8)
    padded[: bits.shape[0]] = bits
    return np.packbits(padded, bitorder="little").view("<u4").astype(np.uint32)


def unpack_fields(words: np.ndarray, n: int, widths: list[int]) -> list[np.ndarray]:
    """Inverse of pack_fields: n records of these field widths, each field as uint32 [n]."""
    rb = sum(widths)
    bits = np.unpackbits(np.asarray(words, dtype="<u4").view(np.uint8), bitorder="little")
    base = np.arange(n, dtype=np.int64) * rb
    out, o = [], 0
    for w in widths:
        v = np.zeros(n, dtype=np.uint64)
        for j in range(w):
            v |= bits[base + o + j].astype(np.uint64) << np.uint64(j)
        out.append(v.astype(np.uint32))
        o += w
    return out


# ----------------------------------------------------------------------------------------------
# Record layout


@dataclass(frozen=True)
class Layout:
    """Bit widths of a record's fields (FORMAT-v2 "Records") and the minifloat's exponent base."""

    mean_bits: int
    theta_bits: int
    scale_exp_bits: int
    scale_mant_bits: int
    scale_exp_min: int
    colour_bits: tuple[int, ...]

    @property
    def scale_bits(self) -> int:
        return self.scale_exp_bits + self.scale_mant_bits

    @property
    def widths(self) -> list[int]:
        return [self.mean_bits, self.mean_bits, self.theta_bits, self.scale_bits, self.scale_bits, *self.colour_bits]

    @property
    def record_bits(self) -> int:
        return sum(self.widths)

    def check(self) -> None:
        problems = []
        if not 1 <= self.mean_bits <= 24:
            problems.append(f"mean_bits {self.mean_bits} outside 1..24")
        if not 1 <= self.theta_bits <= 16:
            problems.append(f"theta_bits {self.theta_bits} outside 1..16")
        if not 1 <= self.scale_exp_bits <= 8:
            problems.append(f"scale_exp_bits {self.scale_exp_bits} outside 1..8")
        if not 0 <= self.scale_mant_bits <= 16:
            problems.append(f"scale_mant_bits {self.scale_mant_bits} outside 0..16")
        if not (self.scale_exp_min >= -126 and self.scale_exp_min + (1 << self.scale_exp_bits) - 1 <= 127):
            problems.append(f"scale_exp_min {self.scale_exp_min} gives exponents outside -126..127")
        if not 1 <= len(self.colour_bits) <= MAX_CHANNELS or not all(1 <= b <= 16 for b in self.colour_bits):
            problems.append(f"colour_bits {list(self.colour_bits)}")
        if problems:
            raise IgsError("invalid record layout: " + "; ".join(problems))


def default_layout(width: int, height: int, channels: int, colour_bits: int = 8) -> Layout:
    """What igs-tex writes (FORMAT-v2 "Encoding"); scale_exp_min is set per file from the fit."""
    return Layout(
        mean_bits=budget.mean_bits(width, height),
        theta_bits=budget.THETA_BITS,
        scale_exp_bits=budget.SCALE_EXP_BITS,
        scale_mant_bits=budget.SCALE_MANT_BITS,
        scale_exp_min=0,
        colour_bits=(int(colour_bits),) * int(channels),
    )


# ----------------------------------------------------------------------------------------------
# Dequantisation (normative: one f32 operation a line, FORMAT-v2 "Records")


def minifloat(q: np.ndarray, layout: Layout) -> np.ndarray:
    q = np.asarray(q, dtype=np.uint32)
    e = (q >> np.uint32(layout.scale_mant_bits)).astype(np.int64)
    m = (q & np.uint32((1 << layout.scale_mant_bits) - 1)).astype(np.uint32)
    bits = (((e + layout.scale_exp_min + 127).astype(np.uint32)) << np.uint32(23)) | (
        m << np.uint32(23 - layout.scale_mant_bits)
    )
    return bits.astype(np.uint32).view(np.float32)


def dequantize(
    codes: list[np.ndarray], layout: Layout, width: int, height: int, colour_lo: np.ndarray, colour_step: np.ndarray
) -> dict[str, np.ndarray]:
    qx, qy, qt, qa, qb, *qc = codes
    sx = np.float32(width) * _pow2_f32(-layout.mean_bits)
    sy = np.float32(height) * _pow2_f32(-layout.mean_bits)
    theta_step = np.uint32(_F32_PI_BITS).view(np.float32) * _pow2_f32(-layout.theta_bits)
    n = qx.shape[0]
    means = np.empty((n, 2), dtype=np.float32)
    means[:, 0] = qx.astype(np.float32) * sx
    means[:, 1] = qy.astype(np.float32) * sy
    theta = (qt.astype(np.float32) * theta_step).astype(np.float32)
    inv_scale = np.stack([minifloat(qa, layout), minifloat(qb, layout)], axis=1)
    colour = np.empty((n, len(qc)), dtype=np.float32)
    for c, q in enumerate(qc):
        m = q.astype(np.float32) * np.float32(colour_step[c])
        colour[:, c] = np.float32(colour_lo[c]) + m
    return {"means": means, "theta": theta, "inv_scale": inv_scale, "colour": colour}


# ----------------------------------------------------------------------------------------------
# Quantisation (informative: any encoder whose output validates is conforming)


def _f32_up(x: float) -> np.float32:
    y = np.float32(x)
    return np.nextafter(y, np.float32(np.inf)) if float(y) < x else y


def colour_codes(colour: np.ndarray, bits: tuple[int, ...]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Codes per channel and the f32 (colour_lo, colour_step) tables: lo the minimum rounded down
    to f32 (away from subnormals), step (max - lo) / (2^b - 1) rounded up, so codes reach max."""
    colour = np.asarray(colour, dtype=np.float64)
    n, c = colour.shape
    lo = np.zeros(c, dtype=np.float32)
    step = np.zeros(c, dtype=np.float32)
    codes = []
    for ch in range(c):
        levels = (1 << bits[ch]) - 1
        v = colour[:, ch]
        lo_c = np.float32(v.min()) if n else np.float32(0.0)
        if n and float(lo_c) > v.min():
            lo_c = np.nextafter(lo_c, np.float32(-np.inf))
        if 0 < abs(float(lo_c)) < COLOUR_TINY:
            lo_c = np.float32(0.0) if lo_c > 0 else np.float32(-COLOUR_TINY)
        span = (v.max() - float(lo_c)) if n else 0.0
        st = np.maximum(_f32_up(span / levels), np.float32(COLOUR_TINY)) if span > 0 else np.float32(0.0)
        with np.errstate(over="ignore"):
            if not np.isfinite(np.float32(lo_c) + np.float32(levels) * st):
                raise IgsError("cannot quantise: a colour channel spans more than float32 can hold")
        lo[ch], step[ch] = lo_c, st
        if float(st) == 0.0:
            codes.append(np.zeros(n, dtype=np.uint32))
            continue
        # The nearest code to each colour as decoded (lo + q * step in f32), from the f64 estimate.
        q = np.clip(np.rint((v - float(lo_c)) / float(st)), 0, levels).astype(np.uint32)
        codes.append(q)
    return codes, lo, step


def scale_codes(inv_scale: np.ndarray, layout: Layout, floor: float) -> np.ndarray:
    """Nearest minifloat codes of inverse scales, clamped to the layout's range and raised
    strictly above `floor` (the reach rule) where needed."""
    a = np.asarray(inv_scale, dtype=np.float64)
    bm, top_e = layout.scale_mant_bits, (1 << layout.scale_exp_bits) - 1
    emin = layout.scale_exp_min
    lo_val, hi_val = 2.0**emin, 2.0 ** (emin + top_e) * (2.0 - 2.0**-bm)
    a = np.clip(a, lo_val, hi_val)
    e = np.floor(np.log2(a)).astype(np.int64)
    mant = a / np.exp2(e.astype(np.float64)) - 1.0
    m = np.rint(mant * (1 << bm)).astype(np.int64)
    carry = m >= (1 << bm)
    e[carry] += 1
    m[carry] = 0
    e = np.clip(e - emin, 0, top_e)
    code = (e << bm) | m
    code = np.minimum(code, (top_e << bm) | ((1 << bm) - 1)).astype(np.uint32)
    value = minifloat(code, layout).astype(np.float64)
    low = value <= floor
    if low.any():
        smallest = _smallest_code_above(floor, layout)
        code[low] = np.maximum(code[low], smallest)
    return code


def _smallest_code_above(floor: float, layout: Layout) -> np.uint32:
    all_codes = np.arange(1 << layout.scale_bits, dtype=np.uint32)
    values = minifloat(all_codes, layout).astype(np.float64)
    ok = np.nonzero(values > floor)[0]
    if not ok.size:
        raise IgsError(f"no inverse scale of the layout is above {floor}: scale_exp_min too low")
    return np.uint32(ok[0])


def scale_exp_min_for(inv_scale: np.ndarray, layout: Layout, floor: float) -> int:
    """The smallest exponent base whose range starts at or below both the fit's smallest
    inverse scale and the reach floor's octave, so that large Gaussians keep their size."""
    a = np.asarray(inv_scale, dtype=np.float64)
    # Inverse scales under the floor are raised to it, so the range need not start below it.
    lowest = max(float(a.min()) if a.size else floor, floor)
    e = int(math.floor(math.log2(max(lowest, 2.0**-126))))
    return max(-126, min(e, 127 - ((1 << layout.scale_exp_bits) - 1)))


def home_tiles(means: np.ndarray, width: int, height: int, tile: int) -> np.ndarray:
    tx, ty = tile_grid(width, height, tile)
    m = np.asarray(means, dtype=np.float64)
    hx = np.minimum(np.floor(m[:, 0] / tile), tx - 1).astype(np.int64)
    hy = np.minimum(np.floor(m[:, 1] / tile), ty - 1).astype(np.int64)
    return hy * tx + hx


def listed_pairs(
    means: np.ndarray, inv_scale: np.ndarray, width: int, height: int, tile: int, reach: int, home: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(tile, gaussian) pairs of the FORMAT-v2 listing rule, in f32, for the tiles within reach
    of each Gaussian's home tile; sorted by tile, then ascending Gaussian."""
    tiles_x, tiles_y = tile_grid(width, height, tile)
    n = means.shape[0]
    hx, hy = home % tiles_x, home // tiles_x
    am = np.minimum(inv_scale[:, 0], inv_scale[:, 1]).astype(np.float32)
    mx, my = means[:, 0].astype(np.float32), means[:, 1].astype(np.float32)
    ts, gs = [], []
    idx = np.arange(n, dtype=np.int64)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            tx_, ty_ = hx + dx, hy + dy
            ok = (tx_ >= 0) & (tx_ < tiles_x) & (ty_ >= 0) & (ty_ < tiles_y)
            x0 = (tx_ * tile).astype(np.float32)
            x1 = np.minimum(tx_ * tile + tile, width).astype(np.float32)
            y0 = (ty_ * tile).astype(np.float32)
            y1 = np.minimum(ty_ * tile + tile, height).astype(np.float32)
            ex = np.maximum(np.maximum(x0 - mx, mx - x1), np.float32(0))
            ey = np.maximum(np.maximum(y0 - my, my - y1), np.float32(0))
            u = ex * am
            v = ey * am
            s = u * u + v * v
            hit = ok & (s <= np.float32(9.0))
            ts.append(ty_[hit] * tiles_x + tx_[hit])
            gs.append(idx[hit])
    t = np.concatenate(ts) if ts else np.zeros(0, np.int64)
    g = np.concatenate(gs) if gs else np.zeros(0, np.int64)
    order = np.lexsort((g, t))
    return t[order], g[order]


# ----------------------------------------------------------------------------------------------
# The file object


@dataclass(eq=False)
class IgsFileV2(budget.TileGridMixin):
    width: int
    height: int
    tile: int
    k: int
    eps: float
    reach: int
    channels: list[str]
    value_range: np.ndarray  # float32 [C, 2]
    layout: Layout
    colour_lo: np.ndarray  # float32 [C]
    colour_step: np.ndarray  # float32 [C]
    codes: list[np.ndarray]  # one uint32 [N] array per field, sorted by home tile
    offsets: np.ndarray  # uint32 [tiles + 1]: records of home tile t are [offsets[t], offsets[t+1])
    metadata: dict = field(default_factory=dict)
    version: int = VERSION

    def __post_init__(self) -> None:
        self.width, self.height, self.tile, self.k, self.reach = (
            int(v) for v in (self.width, self.height, self.tile, self.k, self.reach)
        )
        with np.errstate(over="ignore"):
            self.eps = float(np.float32(self.eps))
        self.channels = list(self.channels)
        self.value_range = np.asarray(self.value_range, dtype=np.float32)
        self.colour_lo = np.asarray(self.colour_lo, dtype=np.float32)
        self.colour_step = np.asarray(self.colour_step, dtype=np.float32)
        self.codes = [np.asarray(c, dtype=np.uint32) for c in self.codes]
        self.offsets = np.asarray(self.offsets, dtype=np.uint32)
        self.metadata = dict(self.metadata or {})
        self._lists = None

    @property
    def gaussian_count(self) -> int:
        return int(self.codes[0].shape[0])

    @property
    def offset_bits(self) -> int:
        return budget.offset_bits_for(self.gaussian_count)

    def params(self) -> dict[str, np.ndarray]:
        return dequantize(self.codes, self.layout, self.width, self.height, self.colour_lo, self.colour_step)

    def _tile_lists(self) -> tuple[np.ndarray, np.ndarray]:
        if self._lists is None:
            p = self.params()
            home = np.repeat(np.arange(self.tile_count, dtype=np.int64), np.diff(self.offsets.astype(np.int64)))
            t, g = listed_pairs(p["means"], p["inv_scale"], self.width, self.height, self.tile, self.reach, home)
            offs = np.zeros(self.tile_count + 1, dtype=np.uint32)
            np.cumsum(np.bincount(t, minlength=self.tile_count), out=offs[1:])
            self._lists = (offs, g.astype(np.uint32))
        return self._lists

    @property
    def tile_offsets(self) -> np.ndarray:
        """Version 1 style lists of the listing rule (what a decoder that builds lists computes)."""
        return self._tile_lists()[0]

    @property
    def tile_indices(self) -> np.ndarray:
        return self._tile_lists()[1]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IgsFileV2):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    def _metadata_bytes(self) -> bytes:
        return metadata_bytes(self.metadata)

    def file_size(self) -> budget.FileSize:
        return budget.file_size_v2(
            self.width,
            self.height,
            self.channel_count,
            self.tile,
            self.gaussian_count,
            self.layout.record_bits,
            len(self._metadata_bytes()),
        )

    def size_report(self) -> dict:
        return self.file_size().report()

    def to_bytes(self) -> bytes:
        meta = self._metadata_bytes()
        n, c = self.gaussian_count, self.channel_count
        records = pack_fields(self.codes, self.layout.widths) if n else np.zeros(0, np.uint32)
        offsets = pack_fields([self.offsets], [self.offset_bits])
        table = b"".join(
            CHANNEL.pack(_SEMANTIC_CODES[s], b, float(v[0]), float(v[1]), float(lo), float(st))
            for s, b, v, lo, st in zip(
                self.channels, self.layout.colour_bits, self.value_range, self.colour_lo, self.colour_step
            )
        )
        sections = budget.section_layout_v2(c, len(meta), n, self.layout.record_bits, self.tile_count)
        payload = (table, meta, records.astype("<u4").tobytes(), offsets.astype("<u4").tobytes())
        for (off, length), data in zip(sections, payload):
            assert len(data) == length, (off, length, len(data))
        L = self.layout
        header = HEADER.pack(
            MAGIC,
            VERSION,
            HEADER_SIZE,
            self.width,
            self.height,
            c,
            self.tile,
            self.k,
            self.reach,
            self.eps,
            n,
            self.tile_count,
            L.mean_bits,
            L.theta_bits,
            L.scale_exp_bits,
            L.scale_mant_bits,
            L.scale_exp_min,
            self.offset_bits,
            L.record_bits,
            0,
            *[v for s in sections for v in s],
        )
        out = bytearray(header)
        for (off, _), data in zip(sections, payload):
            out.extend(b"\0" * (off - len(out)))
            out.extend(data)
        out.extend(struct.pack("<I", zlib.crc32(out)))
        return bytes(out)


_SEMANTIC_CODES = SEMANTIC_CODES
_SEMANTIC_NAMES = {v: k for k, v in _SEMANTIC_CODES.items()}


def build_igs_v2(
    means,
    theta,
    inv_scale,
    colour,
    width: int,
    height: int,
    channels,
    value_range,
    metadata: dict | None = None,
    tile: int = 32,
    k: int = 10,
    eps: float = 1e-7,
    reach: int = 1,
    colour_bits: int | tuple[int, ...] = 8,
) -> IgsFileV2:
    """Quantise a Gaussian set into version 2 records, sorted by home tile."""
    width, height, tile, k, reach = int(width), int(height), int(tile), int(k), int(reach)
    channels = list(channels)
    means, theta, inv_scale, colour = _check_params(means, theta, inv_scale, colour)
    if colour.shape[1] != len(channels):
        raise IgsError(f"colour has {colour.shape[1]} channels but {len(channels)} are named")
    unknown = [s for s in channels if s not in _SEMANTIC_CODES]
    if unknown:
        raise IgsError(f"unknown channel semantics {unknown}")
    _check_size(width, height)
    check_tile(tile)
    check_k(k)
    if not 1 <= reach <= MAX_REACH:
        raise IgsError(f"reach {reach} is outside 1..{MAX_REACH}")
    eps32 = np.float32(eps)
    if not (np.isfinite(eps32) and eps32 > 0):
        raise IgsError(f"epsilon {eps} must be finite and > 0 in float32")
    vrange = np.asarray(value_range, dtype=np.float32).reshape(len(channels), 2)
    bits = (int(colour_bits),) * len(channels) if np.isscalar(colour_bits) else tuple(int(b) for b in colour_bits)
    floor = 3.0 / (reach * tile)
    base = default_layout(width, height, len(channels))
    layout = Layout(
        base.mean_bits,
        base.theta_bits,
        base.scale_exp_bits,
        base.scale_mant_bits,
        scale_exp_min_for(inv_scale, base, floor),
        bits,
    )
    layout.check()
    levels = 1 << layout.mean_bits
    qx = np.minimum(np.rint(np.clip(means[:, 0], 0, width) / width * levels), levels - 1).astype(np.uint32)
    qy = np.minimum(np.rint(np.clip(means[:, 1], 0, height) / height * levels), levels - 1).astype(np.uint32)
    t_levels = 1 << layout.theta_bits
    qt = (np.rint(np.mod(theta, math.pi) / math.pi * t_levels).astype(np.int64) % t_levels).astype(np.uint32)
    qa = scale_codes(inv_scale[:, 0], layout, floor)
    qb = scale_codes(inv_scale[:, 1], layout, floor)
    qc, lo, step = colour_codes(colour, bits)
    codes = [qx, qy, qt, qa, qb, *qc]
    p = dequantize(codes, layout, width, height, lo, step)
    home = home_tiles(p["means"], width, height, tile)
    order = np.argsort(home, kind="stable")
    codes = [c[order] for c in codes]
    tiles = budget.tile_count(width, height, tile)
    offsets = np.zeros(tiles + 1, dtype=np.uint32)
    np.cumsum(np.bincount(home, minlength=tiles), out=offsets[1:])
    return IgsFileV2(
        width=width,
        height=height,
        tile=tile,
        k=k,
        eps=float(eps32),
        reach=reach,
        channels=channels,
        value_range=vrange,
        layout=layout,
        colour_lo=lo,
        colour_step=step,
        codes=codes,
        offsets=offsets,
        metadata=dict(metadata or {}),
    )


# ----------------------------------------------------------------------------------------------
# Reading


class _Invalid(Exception):
    pass


def parse_v2(data: bytes, name: str = "<bytes>") -> IgsFileV2:
    try:
        return _parse(bytes(data))
    except _Invalid as e:
        raise IgsFormatError(f"{name}: not a valid version 2 .igs file: {e}") from None


def _parse(data: bytes) -> IgsFileV2:
    size = len(data)
    if size < HEADER_SIZE + budget.CRC_SIZE:
        raise _Invalid(f"truncated: header and CRC need {HEADER_SIZE + budget.CRC_SIZE} bytes, file has {size}")
    (
        magic,
        version,
        header_size,
        w,
        h,
        c,
        tile,
        k,
        reach,
        eps,
        n,
        tiles,
        p_bits,
        t_bits,
        e_bits,
        m_bits,
        e_min,
        o_bits,
        rec_bits,
        flags,
        *secs,
    ) = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise _Invalid(f"bad magic {magic!r}")
    if version != VERSION or header_size != HEADER_SIZE:
        raise _Invalid(f"version {version} / header size {header_size}, expected {VERSION} / {HEADER_SIZE}")
    sections = [(secs[2 * i], secs[2 * i + 1]) for i in range(4)]
    prev, prev_name = HEADER_SIZE, "header"
    for sname, (off, length) in zip(SECTION_NAMES, sections):
        if off % budget.SECTION_ALIGN:
            raise _Invalid(f"{sname} offset {off} is not a multiple of {budget.SECTION_ALIGN}")
        if off < prev:
            raise _Invalid(f"{sname} at byte {off} overlaps the {prev_name}")
        if off + length + budget.CRC_SIZE > size:
            raise _Invalid(f"truncated: {sname} ends at byte {off + length} but file has {size} bytes")
        prev, prev_name = off + length, sname
    if prev + budget.CRC_SIZE != size:
        raise _Invalid(f"file has {size} bytes but its sections and CRC end at {prev + budget.CRC_SIZE}")
    (stored,) = struct.unpack_from("<I", data, size - budget.CRC_SIZE)
    if stored != zlib.crc32(memoryview(data)[: size - budget.CRC_SIZE]):
        raise _Invalid("CRC mismatch (file corrupt)")
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise _Invalid(f"image size {w}x{h} is outside 1..{MAX_SIDE}")
    if not 1 <= c <= MAX_CHANNELS:
        raise _Invalid(f"channel count {c} is outside 1..{MAX_CHANNELS}")
    for check, value in ((check_tile, tile), (check_k, k)):
        try:
            check(value)
        except IgsError as e:
            raise _Invalid(str(e)) from None
    if not 1 <= reach <= MAX_REACH:
        raise _Invalid(f"reach {reach} is outside 1..{MAX_REACH}")
    if not (math.isfinite(eps) and eps > 0):
        raise _Invalid(f"epsilon {eps} must be finite and > 0")
    if n > MAX_GAUSSIANS:
        raise _Invalid(f"gaussian count {n} exceeds the limit {MAX_GAUSSIANS}")
    if tiles != budget.tile_count(w, h, tile):
        raise _Invalid(f"tile count {tiles}, but {w}x{h} in {tile}-texel tiles has {budget.tile_count(w, h, tile)}")
    if o_bits != budget.offset_bits_for(n):
        raise _Invalid(f"offset bits {o_bits}, but {n} Gaussians need {budget.offset_bits_for(n)}")
    if flags:
        raise _Invalid(f"flags {flags:#x}: none are defined in version {VERSION}")
    (ct_off, ct_len), (md_off, md_len), (rc_off, rc_len), (to_off, to_len) = sections
    if ct_len != CHANNEL_ENTRY_SIZE * c:
        raise _Invalid(f"channel table is {ct_len} bytes but {c} channels need {CHANNEL_ENTRY_SIZE * c}")
    entries = [CHANNEL.unpack_from(data, ct_off + CHANNEL_ENTRY_SIZE * i) for i in range(c)]
    for i in range(c):
        if data[ct_off + CHANNEL_ENTRY_SIZE * i + 2 : ct_off + CHANNEL_ENTRY_SIZE * i + 4] != b"\0\0":
            raise _Invalid(f"channel {i}: reserved bytes are not zero")
    layout = Layout(p_bits, t_bits, e_bits, m_bits, e_min, tuple(e[1] for e in entries))
    try:
        layout.check()
    except IgsError as e:
        raise _Invalid(str(e)) from None
    if rec_bits != layout.record_bits:
        raise _Invalid(f"record bits {rec_bits}, but the field widths add up to {layout.record_bits}")
    if rc_len != 4 * ceil_div(n * rec_bits, 32):
        raise _Invalid(
            f"records section is {rc_len} bytes but {n} records of {rec_bits} bits need "
            f"{4 * ceil_div(n * rec_bits, 32)}"
        )
    if to_len != 4 * ceil_div((tiles + 1) * o_bits, 32):
        raise _Invalid(
            f"tile offsets section is {to_len} bytes but {tiles + 1} entries of {o_bits} bits "
            f"need {4 * ceil_div((tiles + 1) * o_bits, 32)}"
        )
    channels, vrange, lo, step = [], [], [], []
    for i, (code, _bits, vlo, vhi, clo, cst) in enumerate(entries):
        if code not in _SEMANTIC_NAMES:
            raise _Invalid(f"channel {i}: unknown semantic code {code}")
        if not all(math.isfinite(v) for v in (vlo, vhi, clo, cst)) or vhi < vlo or cst < 0:
            raise _Invalid(f"channel {i}: ranges must be finite with value_hi >= value_lo and colour_step >= 0")
        if any(0 < abs(v) < COLOUR_TINY for v in (clo, cst)):
            raise _Invalid(f"channel {i}: colour_lo and colour_step must be zero or of magnitude >= 2^-102")
        with np.errstate(over="ignore"):
            top = np.float32(clo) + np.float32((1 << _bits) - 1) * np.float32(cst)
        if not np.isfinite(top):
            raise _Invalid(f"channel {i}: the largest colour code decodes to {float(top)} (not finite)")
        channels.append(_SEMANTIC_NAMES[code])
        vrange.append((vlo, vhi))
        lo.append(clo)
        step.append(cst)
    metadata = {}
    if md_len:
        try:
            metadata = json.loads(
                data[md_off : md_off + md_len].decode("utf-8"),
                parse_constant=lambda s: (_ for _ in ()).throw(ValueError(s)),
            )
        except (UnicodeDecodeError, ValueError) as e:
            raise _Invalid(f"metadata is not strict UTF-8 JSON: {e}") from None
        if not isinstance(metadata, dict):
            raise _Invalid("metadata is not a JSON object")
    rec_words = np.frombuffer(data, dtype="<u4", count=rc_len // 4, offset=rc_off)
    off_words = np.frombuffer(data, dtype="<u4", count=to_len // 4, offset=to_off)
    for sname, words, used in (("records", rec_words, n * rec_bits), ("tile offsets", off_words, (tiles + 1) * o_bits)):
        if used % 32 and int(words[-1]) >> (used % 32):
            raise _Invalid(f"{sname}: unused bits of the last word are not zero")
    codes = unpack_fields(rec_words, n, layout.widths) if n else [np.zeros(0, np.uint32)] * len(layout.widths)
    (offsets,) = unpack_fields(off_words, tiles + 1, [o_bits])
    if offsets[0] != 0 or offsets[-1] != n or np.any(np.diff(offsets.astype(np.int64)) < 0):
        raise _Invalid("tile offsets must start at 0, end at N and never decrease")
    igs = IgsFileV2(
        width=w,
        height=h,
        tile=tile,
        k=k,
        eps=eps,
        reach=reach,
        channels=channels,
        value_range=np.array(vrange, np.float32),
        layout=layout,
        colour_lo=np.array(lo, np.float32),
        colour_step=np.array(step, np.float32),
        codes=codes,
        offsets=offsets,
        metadata=metadata,
    )
    p = igs.params()
    am = np.minimum(p["inv_scale"][:, 0], p["inv_scale"][:, 1]).astype(np.float64)
    bad = np.nonzero(am * (reach * tile) <= 3.0)[0]
    if bad.size:
        raise _Invalid(
            f"record {int(bad[0])}: radius 3 / {float(am[bad[0]])} is not below reach * tile = "
            f"{reach * tile} texels ({bad.size} records)"
        )
    home = home_tiles(p["means"], w, h, tile)
    stored_home = np.repeat(np.arange(tiles, dtype=np.int64), np.diff(offsets.astype(np.int64)))
    wrong = np.nonzero(home != stored_home)[0]
    if wrong.size:
        raise _Invalid(f"record {int(wrong[0])} lies outside its home tile's range ({wrong.size} records)")
    return igs
