"""The .igs container: round trips, quantisation bounds, bit-exact decode, and rejection of bad files."""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import GOLDEN

from igs_tex import IgsError
from igs_tex.igsfile import (
    SEMANTIC_CODES,
    IgsFile,
    IgsFormatError,
    bits_per_gaussian,
    build_igs,
    dequantize,
    from_bytes,
    quantize,
    read_igs,
    write_igs,
)
from igs_tex.render.tiles import tile_lists_numpy

FORMAT_MD = Path(__file__).resolve().parents[1] / "docs" / "FORMAT.md"

# Header field offsets, written out from FORMAT.md rather than imported, so a drift between the
# module and the document fails here.
FIELDS = {
    "magic": (0, "4s"),
    "version": (4, "H"),
    "header_size": (6, "H"),
    "width": (8, "I"),
    "height": (12, "I"),
    "channels": (16, "H"),
    "tile": (18, "H"),
    "k": (20, "H"),
    "index_bits": (22, "H"),
    "eps": (24, "f"),
    "n": (28, "I"),
    "tiles": (32, "I"),
    "index_count": (36, "I"),
    "wpg": (40, "H"),
    "flags": (42, "H"),
}
SECTIONS = ("channel table", "metadata", "gaussian buffer", "tile offsets", "tile indices")
PBR9 = ["basecolor.r", "basecolor.g", "basecolor.b", "normal.x", "normal.y", "normal.z", "ao", "roughness", "metalness"]


def random_gaussians(n, c, width, height, seed=0, scale=(0.05, 1.0)):
    rng = np.random.default_rng(seed)
    means = rng.uniform(0, 1, (n, 2)) * [width, height]
    theta = rng.uniform(-4, 7, n)
    inv_scale = rng.uniform(*scale, (n, 2))
    colour = rng.uniform(-0.05, 1.05, (n, c))
    return means, theta, inv_scale, colour


def make(n=40, c=4, width=64, height=48, seed=0, metadata=None, **kw) -> IgsFile:
    g = random_gaussians(n, c, width, height, seed)
    channels = (PBR9 + ["other"] * 16)[:c]
    vrange = np.tile([0.0, 1.0], (c, 1))
    return build_igs(*g, width, height, channels, vrange, metadata=metadata, **kw)


# The corruption tests share one base file: 4 channels (odd 5 + C, so records carry a padding half),
# 16-bit indices, and a metadata section long enough for the deep-nesting case.
BASE_META = {"material": "test", "sources": {"basecolor": "a.png"}, "notes": "n" * 2600}
BASE = make(metadata=BASE_META)
BASE_BYTES = BASE.to_bytes()


def recrc(data: bytes) -> bytes:
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))


def patch(data: bytes, offset: int, fmt: str, value, fix_crc=True) -> bytes:
    out = bytearray(data)
    struct.pack_into("<" + fmt, out, offset, value)
    return recrc(bytes(out)) if fix_crc else bytes(out)


def field(name, value):
    off, fmt = FIELDS[name]
    return lambda b: patch(b, off, fmt, value)


def section(data: bytes, name: str) -> tuple[int, int]:
    i = SECTIONS.index(name)
    return struct.unpack_from("<II", data, 44 + 8 * i)


def set_section(name, offset=None, length=None):
    def f(b):
        i = SECTIONS.index(name)
        o, n = section(b, name)
        out = bytearray(b)
        struct.pack_into("<II", out, 44 + 8 * i, o if offset is None else offset, n if length is None else length)
        return recrc(bytes(out))

    return f


def set_half(g, h, bits):
    """Overwrite half h of Gaussian g's record."""

    def f(b):
        off, _ = section(b, "gaussian buffer")
        wpg = struct.unpack_from("<H", b, 40)[0]
        return patch(b, off + 4 * (g * wpg) + 2 * h, "H", bits)

    return f


def offsets_of(b):
    off, n = section(b, "tile offsets")
    return list(struct.unpack_from(f"<{n // 4}I", b, off))


def set_offset(t, value_fn):
    def f(b):
        off, _ = section(b, "tile offsets")
        offs = offsets_of(b)
        return patch(b, off + 4 * (t % len(offs)), "I", value_fn(offs))

    return f


def set_index(j, value_fn):
    """Overwrite tile-index entry j (16-bit entries in the base file)."""

    def f(b):
        off, _ = section(b, "tile indices")
        old = struct.unpack_from("<H", b, off + 2 * j)[0]
        return patch(b, off + 2 * j, "H", value_fn(old, b))

    return f


def index_entry(b, j):
    off, _ = section(b, "tile indices")
    return struct.unpack_from("<H", b, off + 2 * j)[0]


def swap_first_two_indices(b):
    off, _ = section(b, "tile indices")
    lists = offsets_of(b)
    t = next(t for t in range(len(lists) - 1) if lists[t + 1] - lists[t] >= 2)
    j = lists[t]
    a, c = struct.unpack_from("<HH", b, off + 2 * j)
    return recrc(patch(patch(b, off + 2 * j, "H", c, False), off + 2 * j + 2, "H", a, False))


def duplicate_index(b):
    off, _ = section(b, "tile indices")
    lists = offsets_of(b)
    t = next(t for t in range(len(lists) - 1) if lists[t + 1] - lists[t] >= 2)
    j = lists[t]
    return patch(b, off + 2 * j + 2, "H", index_entry(b, j))


def set_channel(c, rel, fmt, value):
    def f(b):
        off, _ = section(b, "channel table")
        return patch(b, off + 20 * c + rel, fmt, value)

    return f


def set_metadata(text: bytes):
    def f(b):
        off, n = section(b, "metadata")
        assert len(text) <= n
        body = text + b" " * (n - len(text))
        return recrc(b[:off] + body + b[off + n :])

    return f


def flip(pos_fn):
    def f(b):
        out = bytearray(b)
        out[pos_fn(b)] ^= 0x5A
        return bytes(out)

    return f


def truncate(pos_fn):
    return lambda b: b[: pos_fn(b)]


def mid(name, frac=0.5):
    return lambda b: section(b, name)[0] + int(section(b, name)[1] * frac)


CORRUPTIONS = {
    # truncation anywhere
    "trunc_empty": (truncate(lambda b: 0), "truncated"),
    "trunc_magic": (truncate(lambda b: 3), "truncated"),
    "trunc_header": (truncate(lambda b: 40), "truncated"),
    "trunc_header_end": (truncate(lambda b: 84), "truncated"),
    "trunc_channel_table": (truncate(lambda b: 100), "truncated"),
    "trunc_metadata": (truncate(mid("metadata")), "truncated"),
    "trunc_gaussians": (truncate(mid("gaussian buffer")), "truncated"),
    "trunc_offsets": (truncate(mid("tile offsets")), "truncated"),
    "trunc_indices": (truncate(mid("tile indices")), "truncated"),
    "trunc_no_crc": (truncate(lambda b: len(b) - 4), "truncated"),
    "trunc_last_byte": (truncate(lambda b: len(b) - 1), "truncated"),
    "trailing_bytes": (lambda b: b + b"\0" * 16, "end at byte"),
    # identity and integrity
    "bad_magic": (field("magic", b"IGSG"), "magic"),
    "bad_magic_no_crc_fix": (lambda b: b"PNG\0" + b[4:], "magic"),
    "bad_version_0": (field("version", 0), "version"),
    "bad_version_2": (field("version", 2), "version"),
    "bad_header_size": (field("header_size", 96), "header size"),
    "crc_header_padding": (flip(lambda b: 90), "CRC mismatch"),
    "crc_channel_table": (flip(lambda b: section(b, "channel table")[0] + 5), "CRC mismatch"),
    "crc_metadata": (flip(mid("metadata")), "CRC mismatch"),
    "crc_gaussians": (flip(mid("gaussian buffer")), "CRC mismatch"),
    "crc_indices": (flip(mid("tile indices")), "CRC mismatch"),
    "crc_stored_value": (flip(lambda b: len(b) - 2), "CRC mismatch"),
    "crc_header_field": (lambda b: patch(b, 20, "H", 11, fix_crc=False), "CRC mismatch"),
    # header fields against their limits
    "channels_0": (field("channels", 0), "channel count 0"),
    "channels_17": (field("channels", 17), "channel count 17"),
    "tile_0": (field("tile", 0), "tile size 0"),
    "tile_257": (field("tile", 257), "tile size 257"),
    "k_0": (field("k", 0), "K 0"),
    "k_33": (field("k", 33), "K 33"),
    "width_0": (field("width", 0), "image size"),
    "height_0": (field("height", 0), "image size"),
    "width_16385": (field("width", 16385), "image size"),
    "width_huge": (field("width", 0xFFFFFFFF), "image size"),
    "eps_nan": (field("eps", float("nan")), "epsilon"),
    "eps_zero": (field("eps", 0.0), "epsilon"),
    "eps_negative": (field("eps", -1e-7), "epsilon"),
    "flags": (field("flags", 1), "flags"),
    "words_per_gaussian": (field("wpg", 6), "words per gaussian"),
    "index_bits_8": (field("index_bits", 8), "index bits"),
    "index_bits_32_small_n": (field("index_bits", 32), "index bits"),
    "tile_count_mismatch": (field("tiles", 13), "tile count 13"),
    "tile_count_after_width": (field("width", 80), "tile count"),
    "gaussian_count_overflows_buffer": (field("n", 41), "gaussian buffer section"),
    "gaussian_count_huge": (field("n", 0xFFFFFFFF), "gaussian count"),
    "gaussian_count_needs_32bit": (field("n", 70000), "index bits"),
    "index_count_beyond_section": (
        lambda b: field("index_count", struct.unpack_from("<I", b, 36)[0] + 5)(b),
        "tile indices section",
    ),
    "index_count_huge": (field("index_count", 0xFFFFFFFF), "index count"),
    # section table
    "section_misaligned": (
        lambda b: set_section("gaussian buffer", offset=section(b, "gaussian buffer")[0] + 4)(b),
        "multiple of 16",
    ),
    "section_beyond_file": (set_section("tile indices", offset=1 << 31), "beyond the end"),
    "section_inside_header": (set_section("channel table", offset=80), "overlaps the header"),
    "sections_overlap": (lambda b: set_section("gaussian buffer", offset=section(b, "metadata")[0])(b), "overlaps"),
    "section_length_long": (
        lambda b: set_section("channel table", length=section(b, "channel table")[1] + 200)(b),
        "overlaps",
    ),
    "section_length_short": (
        lambda b: set_section("tile offsets", length=section(b, "tile offsets")[1] - 4)(b),
        "tile offsets section",
    ),
    "section_length_huge": (set_section("tile indices", length=0xFFFFFFF0), "truncated"),
    # channel table
    "semantic_unknown_10": (set_channel(1, 0, "B", 10), "unknown semantic code 10"),
    "semantic_unknown_255": (set_channel(0, 0, "B", 255), "unknown semantic code 255"),
    "channel_reserved_byte": (set_channel(2, 2, "B", 1), "reserved"),
    "value_range_inf": (set_channel(0, 8, "f", float("inf")), "value range"),
    "value_range_inverted": (set_channel(0, 4, "f", 2.0), "value range"),
    "colour_range_nan": (set_channel(1, 12, "f", float("nan")), "colour range"),
    "colour_range_inverted": (set_channel(3, 12, "f", 5.0), "colour range"),
    "colour_range_subnormal": (set_channel(2, 12, "f", 1e-40), "subnormal"),
    "colour_range_subnormal_step": (
        lambda b: set_channel(1, 16, "f", 1e-35)(set_channel(1, 12, "f", 0.0)(b)),
        "subnormal decode step",
    ),
    "colour_range_too_wide": (lambda b: set_channel(0, 16, "f", 3e38)(set_channel(0, 12, "f", -3e38)(b)), "wider"),
    # metadata
    "metadata_not_json": (set_metadata(b"{material: test"), "not valid JSON"),
    "metadata_not_utf8": (set_metadata(b'{"a": "\xff\xfe"}'), "UTF-8"),
    "metadata_not_object": (set_metadata(b"[1, 2, 3]"), "not an object"),
    "metadata_nan": (set_metadata(b'{"a": NaN}'), "strict JSON"),
    "metadata_deep_nesting": (set_metadata(b"[" * 2500), "not valid JSON"),
    # Gaussian buffer
    "inv_scale_zero": (set_half(3, 3, 0x0000), "inverse scale"),
    "inv_scale_negative_zero": (set_half(3, 4, 0x8000), "inverse scale"),
    "inv_scale_negative": (set_half(0, 3, 0xBC00), "inverse scale"),
    "inv_scale_subnormal": (set_half(5, 4, 0x0001), "inverse scale"),
    "inv_scale_inf": (set_half(7, 3, 0x7C00), "inverse scale"),
    "inv_scale_nan": (set_half(39, 4, 0x7E00), "inverse scale"),
    "record_padding_half": (set_half(2, 9, 0x1234), "padding half"),
    # tile lists
    "offsets_first_not_zero": (set_offset(0, lambda o: 1), "not 0"),
    "offsets_non_monotonic": (set_offset(1, lambda o: o[-1]), "decrease"),
    "offsets_last_not_index_count": (set_offset(-1, lambda o: o[-1] - 1), "last tile offset"),
    "index_out_of_range": (set_index(3, lambda old, b: 40), "only 40 Gaussians"),
    "index_out_of_range_max": (set_index(0, lambda old, b: 0xFFFF), "only 40 Gaussians"),
    "index_list_descending": (swap_first_two_indices, "not strictly ascending"),
    "index_list_duplicate": (duplicate_index, "not strictly ascending"),
}


def test_base_file_shape():
    # The corruption cases assume these properties of the base file.
    assert BASE.index_bits == 16 and BASE.gaussian_count == 40 and (5 + BASE.channel_count) % 2 == 1
    assert len(CORRUPTIONS) >= 20
    offs = offsets_of(BASE_BYTES)
    assert offs[2] < offs[-1], "offsets_non_monotonic needs tile 2 to end before the last entry"
    assert from_bytes(BASE_BYTES) == BASE


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_rejects_corrupt_file(name, tmp_path):
    corrupt, expected = CORRUPTIONS[name]
    data = corrupt(BASE_BYTES)
    assert data != BASE_BYTES
    path = tmp_path / f"{name}.igs"
    path.write_bytes(data)
    with pytest.raises(IgsFormatError) as info:
        read_igs(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    assert expected in message, message


def test_index_padding_half_must_be_zero():
    igs = make(n=12, c=1, width=20, height=20, seed=3)
    if len(igs.tile_indices) % 2 == 0:  # force an odd count by dropping the last list entry
        igs = make(n=13, c=1, width=20, height=20, seed=3)
    assert len(igs.tile_indices) % 2 == 1
    b = igs.to_bytes()
    off, n = section(b, "tile indices")
    bad = patch(b, off + n - 2, "H", 7)
    with pytest.raises(IgsFormatError, match="padding half"):
        from_bytes(bad, "x.igs")


def test_missing_file_is_igs_error(tmp_path):
    with pytest.raises(IgsFormatError, match="cannot read"):
        read_igs(tmp_path / "absent.igs")


def test_fuzz_only_format_errors():
    rng = np.random.default_rng(1234)
    small = make(n=25, c=3, width=40, height=33, seed=9, metadata={"m": [1, 2.5, "x"]}).to_bytes()
    outcomes = {"ok": 0, "rejected": 0}
    for i in range(400):
        b = bytearray(small)
        kind = i % 4
        if kind == 0:  # flips anywhere, CRC made valid again so the checks behind it are reached
            for _ in range(rng.integers(1, 4)):
                b[rng.integers(0, len(b) - 4)] ^= int(rng.integers(1, 256))
            data = recrc(bytes(b))
        elif kind == 1:  # a random header or section-table word
            pos = int(rng.integers(0, 84 // 2)) * 2
            struct.pack_into("<H", b, pos, int(rng.integers(0, 65536)))
            data = recrc(bytes(b))
        elif kind == 2:  # flips in the payload, with the CRC left stale half the time
            pos = int(rng.integers(96, len(b)))
            b[pos] ^= 1 << int(rng.integers(0, 8))
            data = recrc(bytes(b)) if rng.random() < 0.5 or pos >= len(b) - 4 else bytes(b)
        else:  # truncation, sometimes with a fresh CRC over the shortened file
            cut = int(rng.integers(0, len(b)))
            data = bytes(b[:cut])
            if cut > 8 and rng.random() < 0.5:
                data = data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))
        try:
            igs = from_bytes(data, "fuzz.igs")
        except IgsFormatError as exc:
            assert str(exc).startswith("fuzz.igs: ")
            outcomes["rejected"] += 1
            continue
        # Whatever is accepted must be fully usable and re-serialise to an equal file.
        outcomes["ok"] += 1
        p = igs.params()
        assert all(np.all(np.isfinite(v)) for v in p.values())
        assert from_bytes(igs.to_bytes()) == igs
    assert outcomes["rejected"] > 100 and outcomes["ok"] > 10, outcomes


# ----------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("c", [1, 3, 4, 9, 16])
def test_round_trip(c, tmp_path):
    igs = make(n=200, c=c, width=77, height=50, seed=c, metadata={"material": "oak", "c": c})
    data = igs.to_bytes()
    back = from_bytes(data)
    assert back == igs
    assert back.to_bytes() == data
    for key, value in igs.params().items():
        got = back.params()[key]
        assert got.dtype == np.float32 and np.array_equal(got, value), key
    path = tmp_path / "m.igs"
    write_igs(path, igs)
    assert path.read_bytes() == data and read_igs(path) == igs
    assert data[:4] == b"IGSF"


def test_header_fields_and_layout():
    igs = make(n=40, c=9, width=100, height=37, tile=8, k=7, eps=1e-6)
    b = igs.to_bytes()
    get = {name: struct.unpack_from("<" + fmt, b, off)[0] for name, (off, fmt) in FIELDS.items()}
    assert get["magic"] == b"IGSF" and get["version"] == 1 and get["header_size"] == 84
    assert (get["width"], get["height"], get["channels"], get["tile"], get["k"]) == (100, 37, 9, 8, 7)
    assert get["eps"] == np.float32(1e-6) and get["flags"] == 0
    assert get["n"] == 40 and get["tiles"] == 13 * 5 and get["wpg"] == 7 and get["index_bits"] == 16
    assert get["index_count"] == len(igs.tile_indices)
    end = 84
    for name in SECTIONS:
        off, n = section(b, name)
        assert off % 16 == 0 and off >= end and off - end < 16
        end = off + n
    assert end + 4 == len(b)
    assert struct.unpack_from("<I", b, end)[0] == zlib.crc32(b[:end])
    # Channel table entry 0: semantic code, reserved zeros, value range, colour range.
    off, _ = section(b, "channel table")
    code, vlo, vhi, clo, chi = struct.unpack_from("<B3xffff", b, off)
    assert code == SEMANTIC_CODES["basecolor.r"] and (vlo, vhi) == (0.0, 1.0)
    assert (clo, chi) == tuple(igs.colour_range[0])


def test_semantic_codes_table():
    assert SEMANTIC_CODES == {
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


def test_empty_metadata_has_zero_length():
    b = make(metadata=None).to_bytes()
    assert section(b, "metadata")[1] == 0
    assert from_bytes(b).metadata == {}


def test_build_rejects_bad_input():
    g = random_gaussians(5, 2, 10, 10)
    with pytest.raises(IgsError, match="unknown channel"):
        build_igs(*g, 10, 10, ["ao", "gloss"], [[0, 1], [0, 1]])
    bad = list(g)
    bad[0] = g[0].copy()
    bad[0][1, 0] = np.nan
    with pytest.raises(IgsError, match="non-finite"):
        build_igs(*bad, 10, 10, ["ao", "other"], [[0, 1], [0, 1]])
    bad = list(g)
    bad[2] = -g[2]
    with pytest.raises(IgsError, match="<= 0"):
        build_igs(*bad, 10, 10, ["ao", "other"], [[0, 1], [0, 1]])
    with pytest.raises(IgsError, match="image size"):
        build_igs(*g, 0, 10, ["ao", "other"], [[0, 1], [0, 1]])
    with pytest.raises(IgsError, match="metadata"):
        build_igs(*g, 10, 10, ["ao", "other"], [[0, 1], [0, 1]], metadata={"x": float("nan")}).to_bytes()


# ----------------------------------------------------------------------------------------------
# Quantisation


def test_quantisation_error_bounds():
    width, height, c = 300, 200, 5
    means, theta, inv_scale, colour = random_gaussians(3000, c, width, height, seed=7, scale=(1e-3, 50.0))
    colour[:, 2] *= 40.0  # one channel with a wide range
    words, crange = quantize(means, theta, inv_scale, colour, width, height)
    p = dequantize(words, c, width, height, crange)
    f32 = 2.0**-22  # a couple of float32 roundings, relative
    for axis, side in ((0, width), (1, height)):
        err = np.abs(p["means"][:, axis].astype(np.float64) - means[:, axis])
        assert err.max() <= side / 65535 / 2 + side * f32
    wrapped = np.mod(theta, np.pi)
    d = np.abs(p["theta"].astype(np.float64) - wrapped)
    d = np.minimum(d, np.pi - d)  # theta and theta + pi are the same Gaussian
    assert d.max() <= np.pi / 65536
    assert np.all((p["theta"] >= 0) & (p["theta"] < np.pi))
    rel = np.abs(p["inv_scale"].astype(np.float64) / inv_scale - 1)
    assert rel.max() <= 2.0**-11
    span = (crange[:, 1] - crange[:, 0]).astype(np.float64)
    err = np.abs(p["colour"].astype(np.float64) - colour)
    assert np.all(err <= span / 65535 / 2 + (span + np.abs(colour)) * f32)
    assert np.all(crange[:, 0] <= colour.min(axis=0)) and np.all(crange[:, 1] >= colour.max(axis=0))


def test_quantisation_edge_values():
    width, height = 50, 40
    means = np.array([[-3.0, 45.0], [0.0, 0.0], [50.0, 40.0], [60.0, -1.0]])
    theta = np.array([np.pi - 1e-9, -np.pi / 2, 3 * np.pi + 0.25, 0.0])
    inv_scale = np.array([[1e-9, 1e9], [2.0**-14, 65504.0], [1.0, 1.0], [0.5, 3.0]])
    colour = np.full((4, 2), 0.25)  # flat channels take the fallback range
    words, crange = quantize(means, theta, inv_scale, colour, width, height)
    p = dequantize(words, 2, width, height, crange)
    tol = 50 * 2.0**-22
    assert np.allclose(p["means"], [[0, 40], [0, 0], [50, 40], [50, 0]], atol=tol, rtol=0)
    assert p["theta"][0] == 0.0  # just below pi wraps to 0
    assert abs(p["theta"][1] - np.pi / 2) <= np.pi / 65536 and abs(p["theta"][2] - 0.25) <= np.pi / 65536
    assert np.array_equal(p["inv_scale"][:2], [[2.0**-14, 65504.0], [2.0**-14, 65504.0]])
    assert np.all(crange[:, 1] > crange[:, 0])
    assert np.allclose(p["colour"], 0.25, atol=1e-6)


def test_colour_range_rules():
    colour = np.array([[0.5, 1e-40, -3.0], [0.5 + 1e-8, 2e-40, -3.0]])
    words, crange = quantize(np.zeros((2, 2)), np.zeros(2), np.ones((2, 2)), colour, 8, 8)
    lo, hi = crange[:, 0].astype(np.float64), crange[:, 1].astype(np.float64)
    assert np.all(hi - lo >= 1e-6)  # narrow and flat channels are widened
    assert np.all((lo <= colour.min(axis=0)) & (hi >= colour.max(axis=0)))
    tiny = np.finfo(np.float32).tiny
    assert np.all((crange == 0) | (np.abs(crange) >= tiny))  # no subnormals stored
    p = dequantize(words, 3, 8, 8, crange)
    assert np.allclose(p["colour"], colour, atol=1e-6)


def test_position_precision_2048():
    side = 2048
    rng = np.random.default_rng(5)
    means = rng.uniform(0, side, (20000, 2))
    g = (means, np.zeros(20000), np.ones((20000, 2)), rng.uniform(0, 1, (20000, 1)))
    words, crange = quantize(*g, side, side)
    err = np.abs(dequantize(words, 1, side, side, crange)["means"] - means)
    assert err.max() < 0.02
    assert err.max() <= side / 65535 / 2 + 1e-3


def test_decode_matches_format_md_formulas_bit_exactly():
    # Scalar float32 evaluation written from FORMAT.md: one rounding per operation.
    width, height, c = 1000, 613, 3
    means, theta, inv_scale, colour = random_gaussians(300, c, width, height, seed=11)
    words, crange = quantize(means, theta, inv_scale, colour, width, height)
    p = dequantize(words, c, width, height, crange)
    K = np.float32(struct.unpack("<f", struct.pack("<I", 0x37800080))[0])
    TH = np.float32(struct.unpack("<f", struct.pack("<I", 0x38490FDB))[0])
    assert K == np.float32(1 / 65535) and TH == np.float32(np.pi / 65536)
    sx, sy = np.float32(width) * K, np.float32(height) * K
    for i in range(0, 300, 7):
        h = [(int(w) >> s) & 0xFFFF for w in words[i] for s in (0, 16)]
        assert p["means"][i, 0] == np.float32(h[0]) * sx
        assert p["means"][i, 1] == np.float32(h[1]) * sy
        assert p["theta"][i] == np.float32(h[2]) * TH
        for a in range(2):
            assert p["inv_scale"][i, a] == np.float32(struct.unpack("<e", struct.pack("<H", h[3 + a]))[0])
        for ch in range(c):
            lo, hi = crange[ch]
            step = (hi - lo) * K
            assert p["colour"][i, ch] == lo + np.float32(h[5 + ch]) * step


def test_record_packing_order():
    colour = [[0.0, 1.0, 0.5], [1.0, 0.0, 0.0], [0.5, 0.5, 1.0]]
    words, crange = quantize([[10.0, 20.0]] * 3, [0.5] * 3, [[0.25, 2.0]] * 3, colour, 100, 100)
    assert words.shape == (3, 4) and np.array_equal(crange, [[0, 1]] * 3)
    h = [(int(w) >> s) & 0xFFFF for w in words[0] for s in (0, 16)]
    assert h[0] == round(0.1 * 65535) and h[1] == round(0.2 * 65535)
    assert h[2] == round(0.5 / np.pi * 65536)
    assert h[3] == 0x3400 and h[4] == 0x4000  # fp16 0.25, 2.0
    assert h[5:8] == [0, 65535, round(0.5 * 65535)] and len(h) == 8  # 5 + 3 halves: no padding


# ----------------------------------------------------------------------------------------------
# Index width, tile lists, size report


def test_index_bits_by_count():
    assert make(n=100).index_bits == 16
    small_scale = dict(width=64, height=64)
    g = random_gaussians(65536, 1, **small_scale, seed=2, scale=(2.0, 3.0))
    assert build_igs(*g, 64, 64, ["ao"], [[0, 1]]).index_bits == 16
    g = random_gaussians(70000, 1, **small_scale, seed=2, scale=(2.0, 3.0))
    igs = build_igs(*g, 64, 64, ["ao"], [[0, 1]])
    assert igs.index_bits == 32 and int(igs.tile_indices.max()) > 65535
    b = igs.to_bytes()
    assert struct.unpack_from("<H", b, 22)[0] == 32
    assert section(b, "tile indices")[1] == 4 * len(igs.tile_indices)
    assert from_bytes(b) == igs


def test_tile_lists_come_from_dequantised_params():
    case = np.load(GOLDEN / "case_c9.npz")
    h, w, t = int(case["height"]), int(case["width"]), int(case["tile"])
    igs = build_igs(
        case["means"],
        case["theta"],
        case["inv_scale"],
        case["colour"],
        w,
        h,
        PBR9,
        np.tile([0.0, 1.0], (9, 1)),
        tile=t,
        k=int(case["k"]),
        eps=float(case["eps"]),
    )
    back = from_bytes(igs.to_bytes())
    p = back.params()
    offsets, indices = tile_lists_numpy(p["means"], p["inv_scale"], h, w, t)
    assert np.array_equal(back.tile_offsets, offsets) and np.array_equal(back.tile_indices, indices)
    assert back.k == int(case["k"]) and back.eps == np.float32(case["eps"])
    # Quantisation moves means by at most 1/256 px here, so almost every list survives unchanged.
    golden = set(
        zip(np.repeat(np.arange(len(case["tile_offsets"]) - 1), np.diff(case["tile_offsets"])), case["tile_indices"])
    )
    ours = set(zip(np.repeat(np.arange(len(offsets) - 1), np.diff(offsets)), indices))
    assert len(golden ^ ours) <= 0.02 * len(golden)


def test_size_report():
    igs = make(n=123, c=9, width=256, height=128, metadata={"name": "m"})
    rep = igs.size_report()
    b = igs.to_bytes()
    assert rep["total_bytes"] == len(b)
    meta = len(json.dumps({"name": "m"}, separators=(",", ":")).encode())
    assert rep["metadata_bytes"] == meta
    assert (
        rep["header_bytes"]
        + rep["metadata_bytes"]
        + rep["gaussian_bytes"]
        + rep["tile_offsets_bytes"]
        + rep["tile_indices_bytes"]
        == rep["total_bytes"]
    )
    assert rep["bppc_file"] == pytest.approx(8 * (len(b) - meta) / (256 * 128 * 9))
    assert rep["gaussian_bytes"] == 123 * 7 * 4
    assert rep["param_bits"] == 123 * 14 * 16 == 123 * bits_per_gaussian(9)
    assert rep["bppc_params"] == pytest.approx(123 * 14 * 16 / (256 * 128 * 9))
    assert rep["bppc"] == rep["bppc_file"]
    assert rep["bppc_total"] == pytest.approx(8 * len(b) / (256 * 128 * 9))
    assert bits_per_gaussian(9) == 224 and bits_per_gaussian(1) == 96


# ----------------------------------------------------------------------------------------------
# Writing


def test_write_igs_atomic(tmp_path, monkeypatch):
    path = tmp_path / "out.igs"
    path.write_bytes(b"old contents")
    first = make(seed=1)
    write_igs(path, first)
    assert read_igs(path) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.igs"]
    second = make(seed=2)
    write_igs(path, second)
    assert read_igs(path) == second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.igs"]

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(IgsError, match="cannot write"):
        write_igs(path, first)
    monkeypatch.undo()
    assert read_igs(path) == second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.igs"]


def test_write_igs_invalid_file_writes_nothing(tmp_path):
    igs = make()
    igs.tile_indices = igs.tile_indices.copy()
    igs.tile_indices[0] = 40  # out of range: caught by the self-check in to_bytes
    with pytest.raises(IgsError):
        write_igs(tmp_path / "bad.igs", igs)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------
# FORMAT.md worked example


def example_file() -> IgsFile:
    """The file whose bytes docs/FORMAT.md prints; keep the two in step."""
    return build_igs(
        means=[[3.0, 5.5], [20.25, 9.0]],
        theta=[0.0, 1.0],
        inv_scale=[[0.5, 0.25], [1.0, 2.0]],
        colour=[[0.2], [0.9]],
        width=24,
        height=12,
        channels=["roughness"],
        value_range=[[0.0, 1.0]],
        tile=16,
        k=10,
        eps=1e-7,
    )


def hexdump(data: bytes) -> str:
    return "\n".join(f"{i:04x}: " + " ".join(f"{x:02x}" for x in data[i : i + 16]) for i in range(0, len(data), 16))


def test_format_md_example_matches():
    text = FORMAT_MD.read_text(encoding="utf-8")
    igs = example_file()
    assert hexdump(igs.to_bytes()) in text
    p = igs.params()
    for name, arr in p.items():
        for v in arr.reshape(-1):
            token = f"{np.float32(v).view(np.uint32):08x}"
            assert re.search(rf"\b0x{token}\b", text), (name, v, token)
