"""What a .igs file costs and how many Gaussians a budget buys: the one owner of the size rule.

The format's limits, the bits of a Gaussian record, the tile grid, the index entry width and the
byte layout of the sections (docs/FORMAT.md) are written here and nowhere else; igsfile.py lays
files out with these functions, the fitter and the CLI size bakes with them, and the baselines
count rates with them.

A budget (bits per pixel per channel, KiB, or a Gaussian count) is the size of the whole file a
user gets: header, channel table, records, tile offsets, tile index and CRC. The metadata text is
left out of the budget (it is small, and reported on its own). The records cost a fixed number
of bits each; the tile index costs one entry for every tile a Gaussian's circle meets, which
depends on how large the fitted Gaussians are, so the count is solved for an estimate of their
radius and checked against the fitted file (fit/prune.py removes what does not fit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import IgsError

# Format limits (docs/FORMAT.md, "Fixed header"). Chosen so that every section length fits in a
# u32 and 32-bit decoders cannot overflow when they multiply a count by its entry size.
MAX_SIDE = 16384
MAX_CHANNELS = 16
MAX_TILE = 256
MAX_K = 32
MAX_GAUSSIANS = 1 << 26
MAX_INDEX_COUNT = (1 << 30) - 1
# 16-bit index entries address Gaussians 0..65535.
MAX_GAUSSIANS_16BIT_INDEX = 65536
# Fewer than this fits no real material; budgets that give fewer are refused.
MIN_GAUSSIANS = 16

HEADER_SIZE = 84
HEADER_SIZE_V2 = 80
CHANNEL_ENTRY_SIZE = 20
SECTION_ALIGN = 16
CRC_SIZE = 4

# The paper's rate, and the default budget of every bake.
DEFAULT_BPPC = 0.059

# Version 1 records: 16 bits for each of mean x, mean y, theta, inverse scale x, y, and one per
# channel, padded to whole words.
GEOMETRY_VALUES = 5
VALUE_BITS = 16

# Version 2 records (docs/FORMAT-v2.md): means at 1/8 texel, an 8-bit rotation, 8-bit minifloat
# inverse scales (3 exponent bits: 8 octaves; 5 mantissa bits: steps of at most 3.1 %).
MEAN_SUBTEXEL_BITS = 3
THETA_BITS = 8
SCALE_EXP_BITS = 3
SCALE_MANT_BITS = 5
COLOUR_BITS = 8

# Tile size (texels per side) by how sparse the Gaussians are. The tile index lists every
# Gaussian in every tile its 3-sigma circle meets, so where Gaussians are large next to a tile,
# most of the file is index; larger tiles list each Gaussian fewer times and cut fewer of the
# blend's seams, but lengthen every texel's list (the decode cost). 32 is used only where the mean
# spacing sqrt(HW/N) is at least this many texels (measurements: docs/RESULTS.md, "Tile size").
SPARSE_SPACING_PX = 12.0


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def align(n: int) -> int:
    return ceil_div(n, SECTION_ALIGN) * SECTION_ALIGN


def check_tile(tile: int) -> int:
    """The tile size, or an IgsError naming the allowed range."""
    if not 1 <= int(tile) <= MAX_TILE:
        raise IgsError(f"tile size {tile} is outside 1..{MAX_TILE}")
    return int(tile)


def check_k(k: int) -> int:
    if not 1 <= int(k) <= MAX_K:
        raise IgsError(f"K {k} is outside 1..{MAX_K}")
    return int(k)


def tile_grid(width: int, height: int, tile: int) -> tuple[int, int]:
    """(tiles_x, tiles_y): T x T tiles, the last row and column cut at the image edge."""
    return ceil_div(width, tile), ceil_div(height, tile)


def tile_count(width: int, height: int, tile: int) -> int:
    tx, ty = tile_grid(width, height, tile)
    return tx * ty


def auto_tile(width: int, height: int, gaussians: int) -> int:
    """The default tile size for this many Gaussians on this image (see SPARSE_SPACING_PX)."""
    spacing = (width * height / max(1, gaussians)) ** 0.5
    return 32 if spacing >= SPARSE_SPACING_PX else 16


def resolve_tile(tile: int | None, width: int, height: int, gaussians: int) -> int:
    """A requested tile size, where 0 or None means "from the budget"."""
    return auto_tile(width, height, gaussians) if not tile else check_tile(tile)


def bits_per_gaussian(channels: int) -> int:
    """Stored parameter bits of one version 1 record, its padding half excluded."""
    return VALUE_BITS * (GEOMETRY_VALUES + int(channels))


def words_per_gaussian(channels: int) -> int:
    return ceil_div(GEOMETRY_VALUES + int(channels), 2)


def index_bits_for(gaussian_count: int) -> int:
    return 16 if gaussian_count <= MAX_GAUSSIANS_16BIT_INDEX else 32


def index_section_bytes(entries: int, bits: int) -> int:
    return 4 * ceil_div(entries * bits, 32)


@dataclass(frozen=True)
class FileSize:
    """Bytes of each part of a file (docs/FORMAT.md "File layout"); header_bytes holds the fixed
    header, channel table, alignment gaps and CRC, metadata_bytes the metadata text alone."""

    header_bytes: int
    metadata_bytes: int
    gaussian_bytes: int
    tile_offsets_bytes: int
    tile_indices_bytes: int
    param_bits: int
    texel_channels: int

    @property
    def total_bytes(self) -> int:
        return (
            self.header_bytes
            + self.metadata_bytes
            + self.gaussian_bytes
            + self.tile_offsets_bytes
            + self.tile_indices_bytes
        )

    @property
    def budget_bytes(self) -> int:
        """What a budget counts: the whole file but the metadata text."""
        return self.total_bytes - self.metadata_bytes

    def report(self) -> dict:
        """The size report of inspect and the bake summary: bppc counts the file without its
        metadata text (what a budget counts; bppc_file says the same), bppc_params the stored
        parameters alone, bppc_total every byte."""
        tc = self.texel_channels
        return {
            "header_bytes": self.header_bytes,
            "metadata_bytes": self.metadata_bytes,
            "gaussian_bytes": self.gaussian_bytes,
            "tile_offsets_bytes": self.tile_offsets_bytes,
            "tile_indices_bytes": self.tile_indices_bytes,
            "total_bytes": self.total_bytes,
            "param_bits": self.param_bits,
            "bppc": 8 * self.budget_bytes / tc,
            "bppc_file": 8 * self.budget_bytes / tc,
            "bppc_params": self.param_bits / tc,
            "bppc_total": 8 * self.total_bytes / tc,
        }


def section_layout(
    channels: int, metadata_len: int, gaussians: int, tiles: int, index_entries: int
) -> list[tuple[int, int]]:
    """(offset, length) of the five sections in file order, each at align16(end of previous)."""
    lengths = (
        CHANNEL_ENTRY_SIZE * channels,
        metadata_len,
        4 * gaussians * words_per_gaussian(channels),
        4 * (tiles + 1),
        index_section_bytes(index_entries, index_bits_for(gaussians)),
    )
    return place_sections(lengths, HEADER_SIZE)


def place_sections(lengths, start: int) -> list[tuple[int, int]]:
    """(offset, length) of sections written in order after a header of `start` bytes, each at
    align16(end of the previous): the placement both versions' writers use."""
    sections, pos = [], start
    for length in lengths:
        pos = align(pos)
        sections.append((pos, length))
        pos += length
    return sections


def file_size(
    width: int, height: int, channels: int, tile: int, gaussians: int, index_entries: int, metadata_len: int = 0
) -> FileSize:
    sections = section_layout(channels, metadata_len, gaussians, tile_count(width, height, tile), index_entries)
    total = sections[-1][0] + sections[-1][1] + CRC_SIZE
    gauss, offs, idx = (sections[i][1] for i in (2, 3, 4))
    return FileSize(
        header_bytes=total - metadata_len - gauss - offs - idx,
        metadata_bytes=metadata_len,
        gaussian_bytes=gauss,
        tile_offsets_bytes=offs,
        tile_indices_bytes=idx,
        param_bits=gaussians * bits_per_gaussian(channels),
        texel_channels=width * height * channels,
    )


def budget_bytes(width: int, height: int, channels: int, *, bppc: float | None = None, kib: float | None = None) -> int:
    """The byte budget of a bppc or KiB request (the file without its metadata text)."""
    if (bppc is None) == (kib is None):
        raise IgsError("give exactly one of bppc and kib")
    if bppc is not None:
        if not bppc > 0:
            raise IgsError(f"--bppc must be > 0, got {bppc}")
        return int(bppc * width * height * channels // 8)
    if not kib > 0:
        raise IgsError(f"--kib must be > 0, got {kib}")
    return int(kib * 1024)


def tiles_met(radius_px: float, tile: int) -> float:
    """Mean number of T x T tiles a circle of this radius meets, over random positions: the area
    of the tile grown by the radius (T^2 + 4 r T + pi r^2) over the tile's area."""
    rho = radius_px / tile
    return 1.0 + 4.0 * rho + math.pi * rho * rho


def radius_for_tiles_met(entries_per_gaussian: float, tile: int) -> float:
    """The radius whose circle meets this many tiles on average (inverse of tiles_met)."""
    e = max(1.0, float(entries_per_gaussian))
    rho = (-4.0 + math.sqrt(16.0 + 4.0 * math.pi * (e - 1.0))) / (2.0 * math.pi)
    return rho * tile


def gaussians_for_bytes(limit: int, width: int, height: int, channels: int, tile: int | None, radius_px) -> int:
    """The largest count whose file fits in `limit` bytes when each Gaussian is listed in the
    tiles a circle of radius_px(n) meets (tile None: the automatic tile for that count).
    radius_px is a number or a function of the count (an estimate of the fitted radii)."""
    radius = radius_px if callable(radius_px) else (lambda _n: float(radius_px))

    def fits(n: int) -> bool:
        t = resolve_tile(tile, width, height, n)
        entries = int(math.ceil(n * min(tiles_met(radius(n), t), tile_count(width, height, t))))
        return file_size(width, height, channels, t, n, entries).budget_bytes <= limit

    # A file grows with its count (a switch to 16-texel tiles only adds index).
    return largest_count(fits)


def largest_count(fits) -> int:
    """The largest count in 0..MAX_GAUSSIANS for which fits(count) holds, fits being monotone."""
    lo, hi = 0, MAX_GAUSSIANS
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def check_count(n: int, width: int, height: int, channels: int) -> int:
    if n < MIN_GAUSSIANS:
        raise IgsError(f"budget gives {n} Gaussians for {width}x{height}x{channels}; need at least {MIN_GAUSSIANS}")
    if n > MAX_GAUSSIANS:
        raise IgsError(f"budget gives {n} Gaussians; the format holds at most {MAX_GAUSSIANS}")
    return n


def gaussians_for_budget(
    width: int,
    height: int,
    channels: int,
    *,
    bppc: float | None = None,
    kib: float | None = None,
    gaussians: int | None = None,
) -> int:
    """Gaussian count for exactly one of: bits per pixel per channel, KiB, or a count.

    bppc and kib count only the stored Gaussian parameters (DESIGN.md "Bitrate"), so the tile
    index and header come on top (inspect reports both).
    """
    given = [v is not None for v in (bppc, kib, gaussians)]
    if sum(given) != 1:
        raise IgsError("give exactly one budget: --bppc, --kib or --gaussians")
    if gaussians is not None:
        n = int(gaussians)
    elif bppc is not None:
        if not bppc > 0:
            raise IgsError(f"--bppc must be > 0, got {bppc}")
        n = int(bppc * width * height * channels // bits_per_gaussian(channels))
    else:
        if not kib > 0:
            raise IgsError(f"--kib must be > 0, got {kib}")
        n = int(kib * 1024 * 8 // bits_per_gaussian(channels))
    return check_count(n, width, height, channels)


# ----------------------------------------------------------------------------------------------
# Version 2: records of declared widths, no tile index, per-tile offsets


def mean_bits(width: int, height: int) -> int:
    return max(1, math.ceil(math.log2(max(width, height)))) + MEAN_SUBTEXEL_BITS


def record_bits_v2(width: int, height: int, channels: int, colour_bits: int = COLOUR_BITS) -> int:
    """Bits of a default version 2 record (the layout igs-tex writes)."""
    return (
        2 * mean_bits(width, height)
        + THETA_BITS
        + 2 * (SCALE_EXP_BITS + SCALE_MANT_BITS)
        + int(colour_bits) * int(channels)
    )


def offset_bits_for(gaussian_count: int) -> int:
    return max(1, int(gaussian_count).bit_length())


def section_layout_v2(
    channels: int, metadata_len: int, gaussians: int, record_bits: int, tiles: int
) -> list[tuple[int, int]]:
    lengths = (
        CHANNEL_ENTRY_SIZE * channels,
        metadata_len,
        4 * ceil_div(gaussians * record_bits, 32),
        4 * ceil_div((tiles + 1) * offset_bits_for(gaussians), 32),
    )
    return place_sections(lengths, HEADER_SIZE_V2)


def file_size_v2(
    width: int, height: int, channels: int, tile: int, gaussians: int, record_bits: int, metadata_len: int = 0
) -> FileSize:
    sections = section_layout_v2(channels, metadata_len, gaussians, record_bits, tile_count(width, height, tile))
    total = sections[-1][0] + sections[-1][1] + CRC_SIZE
    rec, offs = sections[2][1], sections[3][1]
    return FileSize(
        header_bytes=total - metadata_len - rec - offs,
        metadata_bytes=metadata_len,
        gaussian_bytes=rec,
        tile_offsets_bytes=offs,
        tile_indices_bytes=0,
        param_bits=gaussians * record_bits,
        texel_channels=width * height * channels,
    )


def gaussians_for_file(limit: int, width: int, height: int, channels: int, tile: int, record_bits: int) -> int:
    """The largest count whose version 2 file (less metadata) fits in `limit` bytes: exact,
    since nothing in a version 2 file depends on where the Gaussians are."""
    return largest_count(lambda n: file_size_v2(width, height, channels, tile, n, record_bits).budget_bytes <= limit)


MAX_REACH = 8


def reach_for(tile: int, max_scale_px: float | None) -> int:
    """The smallest reach R with R * T > 3 * max_scale_px (radius 3 s below R * T, FORMAT-v2's
    reach rule); no cap: the largest reach."""
    if not max_scale_px:
        return MAX_REACH
    r = math.floor(3.0 * max_scale_px / tile) + 1
    if r > MAX_REACH:
        raise IgsError(
            f"--max-scale {max_scale_px:g} needs a reach of {r} tiles of {tile} texels; "
            f"version 2 allows at most {MAX_REACH}: use a larger --tile or a smaller --max-scale"
        )
    return r


def reach_scale_cap(tile: int, reach: int) -> float:
    """The largest standard deviation (px) the fitter may give a Gaussian of a version 2 file: just
    below R * T / 3, so quantisation never has to clamp a trained Gaussian."""
    return reach * tile / 3.0 * (1.0 - 1e-3)


def initial_radius(width: int, height: int, gaussians: int, max_scale_px: float | None) -> float:
    """3 s of the fitter's initial Gaussians (fit/settings.py initial_scale): the estimate of the
    fitted radii a version 1 budget sizes its tile index with."""
    s = max(5.0, 0.5 * (width * height / max(1, gaussians)) ** 0.5)
    return 3.0 * (s if not max_scale_px else min(s, float(max_scale_px)))


def plan_bake(
    width: int,
    height: int,
    channels: int,
    *,
    bppc: float | None = None,
    kib: float | None = None,
    gaussians: int | None = None,
    version: int = 2,
    tile: int | None = None,
    max_scale_px: float | None = None,
) -> tuple[int, int]:
    """(Gaussian count, tile) of a bake: for bppc or kib, the most Gaussians whose whole file
    (less its metadata text) fits; version 2 exactly, version 1 with its index estimated from
    the initial radius (the written size is reported; it can land a little either side)."""
    given = [v is not None for v in (bppc, kib, gaussians)]
    if sum(given) != 1:
        raise IgsError("give exactly one budget: --bppc, --kib or --gaussians")
    if gaussians is not None:
        n = check_count(int(gaussians), width, height, channels)
        return n, resolve_tile(tile, width, height, n)
    limit = budget_bytes(width, height, channels, bppc=bppc, kib=kib)
    if version == 1:
        n = gaussians_for_bytes(
            limit, width, height, channels, tile or None, lambda k: initial_radius(width, height, k, max_scale_px)
        )
        n = check_count(n, width, height, channels)
        return n, resolve_tile(tile, width, height, n)
    rb = record_bits_v2(width, height, channels)
    if tile:
        n = gaussians_for_file(limit, width, height, channels, check_tile(tile), rb)
        return check_count(n, width, height, channels), int(tile)
    # The automatic tile depends on the count and the count on the tile (its offsets): take the
    # first tile that the count it gives would choose (larger tiles first: fewer offsets).
    for t in (32, 16):
        n = gaussians_for_file(limit, width, height, channels, t, rb)
        if auto_tile(width, height, n) == t:
            break
    return check_count(n, width, height, channels), t


class TileGridMixin:
    """The tile grid and channel count of a file of either version (width, height, tile and
    channels are the file's own fields)."""

    @property
    def channel_count(self) -> int:
        return len(self.channels)

    @property
    def tiles_x(self) -> int:
        return tile_grid(self.width, self.height, self.tile)[0]

    @property
    def tiles_y(self) -> int:
        return tile_grid(self.width, self.height, self.tile)[1]

    @property
    def tile_count(self) -> int:
        return tile_count(self.width, self.height, self.tile)
