"""The version 2 container (docs/FORMAT-v2.md): exact decode rules, the listing rule, the
home-tile scan a sampler does, validation of every rule, and the size rule budgets use."""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import pytest
from conftest import MATERIALS

from igs_tex import budget
from igs_tex.format_v2 import (
    HEADER,
    IgsFileV2,
    build_igs_v2,
    listed_pairs,
    minifloat,
    pack_fields,
    parse_v2,
    unpack_fields,
)
from igs_tex.igsfile import IgsFormatError, from_bytes
from igs_tex.material import load_material
from igs_tex.render.decode import decode_igs
from igs_tex.render.tiles import tile_lists_numpy

CHANNELS = ["basecolor.r", "basecolor.g", "basecolor.b", "roughness", "metalness"]


def scene(rng, n=400, width=200, height=150, tile=32, reach=1, c=5):
    means = rng.uniform(0, [width, height], (n, 2))
    theta = rng.uniform(-4, 4, n)
    # Radii up to and beyond the reach: the writer must raise the too-large ones.
    inv = rng.uniform(2.5 / (reach * tile), 2.0, (n, 2))
    colour = rng.uniform(-0.1, 1.1, (n, c))
    return means, theta, inv, colour


@pytest.fixture
def real_stack():
    stack = load_material(MATERIALS / "walnut_wood")
    return stack.data[300:364, 200:296]  # 64 x 96 x 8 of real texels


def real_scene(rng, target, n=300, tile=16):
    """Gaussians carrying real colours: each takes the texel under its mean."""
    h, w, c = target.shape
    means = rng.uniform(0, [w, h], (n, 2))
    colour = target[np.minimum(means[:, 1].astype(int), h - 1), np.minimum(means[:, 0].astype(int), w - 1)]
    return means, rng.uniform(0, math.pi, n), rng.uniform(3.2 / tile, 1.5, (n, 2)), colour


def names(c):
    return (
        ["basecolor.r", "basecolor.g", "basecolor.b", "normal.x", "normal.y", "normal.z", "roughness", "metalness"]
        + ["other"] * 8
    )[:c]


def test_round_trip_is_byte_identical(rng):
    means, theta, inv, colour = scene(rng)
    igs = build_igs_v2(means, theta, inv, colour, 200, 150, CHANNELS, [[0, 1]] * 5, {"name": "x"}, tile=32)
    data = igs.to_bytes()
    back = from_bytes(data)
    assert isinstance(back, IgsFileV2) and back.to_bytes() == data
    assert back.version == 2 and back.gaussian_count == 400
    for k, v in igs.params().items():
        assert np.array_equal(v, back.params()[k]), k
    assert igs.size_report()["total_bytes"] == len(data)


def test_bit_fields_straddle_words(rng):
    widths = [13, 13, 8, 8, 8, 7, 1, 16]  # 74 bits: fields cross word boundaries at every offset
    vals = [rng.integers(0, 1 << w, 257, dtype=np.uint64).astype(np.uint32) for w in widths]
    words = pack_fields(vals, widths)
    assert words.shape[0] == math.ceil(257 * 74 / 32)
    for a, b in zip(vals, unpack_fields(words, 257, widths)):
        assert np.array_equal(a, b)
    # The reading rule of FORMAT-v2 "Bit streams", written out for one field.
    o = 5 * 74 + 13
    s = o & 31
    v = int(words[o >> 5]) >> s
    if s + 13 > 32:
        v |= (int(words[(o >> 5) + 1]) << (32 - s)) & 0xFFFFFFFF
    assert v & 0x1FFF == int(vals[1][5])


def test_dequantisation_follows_the_written_rules(rng):
    means, theta, inv, colour = scene(rng)
    igs = build_igs_v2(means, theta, inv, colour, 200, 150, CHANNELS, [[0, 1]] * 5, tile=32)
    L = igs.layout
    qx, qy, qt, qa, qb, *qc = (c.astype(np.int64) for c in igs.codes)
    p = igs.params()
    # Exact real values: mean = q * W / 2^P, theta = q * f32(pi) / 2^B, a = 2^(e+E) (1 + m / 2^Bm).
    assert np.array_equal(p["means"][:, 0], np.float32(qx * 200.0 / 2**L.mean_bits))
    assert np.array_equal(p["means"][:, 1], np.float32(qy * 150.0 / 2**L.mean_bits))
    assert np.array_equal(p["theta"], np.float32(qt * float(np.float32(math.pi)) / 2**L.theta_bits))
    e, m = qa >> L.scale_mant_bits, qa & ((1 << L.scale_mant_bits) - 1)
    assert np.array_equal(
        p["inv_scale"][:, 0], (2.0 ** (e + L.scale_exp_min) * (1 + m / 2**L.scale_mant_bits)).astype(np.float32)
    )
    for c in range(5):
        want = np.float32(igs.colour_lo[c]) + (qc[c].astype(np.float32) * igs.colour_step[c]).astype(np.float32)
        assert np.array_equal(p["colour"][:, c], want)
    # Quantisation is close: colour within half a step, theta within half a step (mod pi).
    order = np.argsort(budget_home(means, 200, 150, 32, p), kind="stable")
    assert np.abs(p["colour"] - colour[order]).max() <= igs.colour_step.max() * 0.5 + 1e-6
    dt = np.abs(np.mod(p["theta"] - theta[order] + math.pi / 2, math.pi) - math.pi / 2)
    assert dt.max() <= math.pi / 2**L.theta_bits / 2 + 1e-6


def budget_home(means, w, h, tile, p):
    """Home tiles of the written Gaussians' quantised means, in the input order (to re-order the
    originals the same way the writer did)."""
    levels = 2 ** budget.mean_bits(w, h)
    qx = np.minimum(np.rint(np.clip(means[:, 0], 0, w) / w * levels), levels - 1)
    qy = np.minimum(np.rint(np.clip(means[:, 1], 0, h) / h * levels), levels - 1)
    mx, my = np.float32(qx * w / levels), np.float32(qy * h / levels)
    tx = budget.tile_grid(w, h, tile)[0]
    return np.minimum(np.floor(my / tile), budget.tile_grid(w, h, tile)[1] - 1) * tx + np.minimum(
        np.floor(mx / tile), tx - 1
    )


def test_minifloat_rounds_to_nearest_and_meets_the_reach_rule(rng):
    means, theta, inv, colour = scene(rng, n=2000, tile=16, reach=1)
    igs = build_igs_v2(means, theta, inv, colour, 200, 150, CHANNELS, [[0, 1]] * 5, tile=16)
    p = igs.params()
    a = p["inv_scale"].astype(np.float64)
    assert (np.minimum(a[:, 0], a[:, 1]) * 16 > 3).all()
    order = np.argsort(budget_home(means, 200, 150, 16, p), kind="stable")
    orig = inv[order]
    inside = orig > 3.0 / 16 * 1.05
    rel = np.abs(a[inside] / orig[inside] - 1)
    assert rel.max() <= 2.0 ** -(igs.layout.scale_mant_bits + 1) + 1e-9
    # The minifloat decode is the exact bit construction.
    q = np.arange(1 << igs.layout.scale_bits, dtype=np.uint32)
    v = minifloat(q, igs.layout)
    assert np.all(np.diff(v.astype(np.float64)) > 0)


def test_listing_rule_is_the_contracts_test(rng):
    """The f32 listing rule lists what version 1's f64 binning lists, but for pairs on the circle."""
    means, theta, inv, colour = scene(rng, n=600, tile=16)
    igs = build_igs_v2(means, theta, inv, colour, 200, 150, CHANNELS, [[0, 1]] * 5, tile=16)
    p = igs.params()
    o1, i1 = tile_lists_numpy(p["means"], p["inv_scale"], 150, 200, 16)
    v1 = set(zip(np.repeat(np.arange(len(o1) - 1), np.diff(o1)).tolist(), i1.tolist()))
    v2 = set(
        zip(
            np.repeat(np.arange(len(igs.tile_offsets) - 1), np.diff(igs.tile_offsets)).tolist(),
            igs.tile_indices.tolist(),
        )
    )
    assert len(v1) > 1000
    assert len(v1 ^ v2) <= 0.001 * len(v1)


def naive_scan(igs, x, y):
    """One texel as a runtime sampler computes it: scan the home tiles within reach, apply the
    listing rule, top-K by (G, lower index), normalised blend. Written from FORMAT-v2 alone."""
    p = igs.params()
    T, R, tx_n = igs.tile, igs.reach, igs.tiles_x
    tx, ty = x // T, y // T
    x0, x1 = np.float32(tx * T), np.float32(min(tx * T + T, igs.width))
    y0, y1 = np.float32(ty * T), np.float32(min(ty * T + T, igs.height))
    px, py = x + 0.5, y + 0.5
    cands = []
    for hy in range(max(ty - R, 0), min(ty + R, igs.tiles_y - 1) + 1):
        first, last = hy * tx_n + max(tx - R, 0), hy * tx_n + min(tx + R, tx_n - 1)
        for i in range(int(igs.offsets[first]), int(igs.offsets[last + 1])):
            mx, my = p["means"][i]
            am = min(p["inv_scale"][i])
            ex = max(max(x0 - mx, mx - x1), np.float32(0))
            ey = max(max(y0 - my, my - y1), np.float32(0))
            u, v = np.float32(ex * am), np.float32(ey * am)
            if np.float32(np.float32(u * u) + np.float32(v * v)) <= 9:
                dx, dy = px - float(mx), py - float(my)
                c, s = math.cos(p["theta"][i]), math.sin(p["theta"][i])
                uu, vv = c * dx + s * dy, -s * dx + c * dy
                g = math.exp(-0.5 * ((uu * p["inv_scale"][i][0]) ** 2 + (vv * p["inv_scale"][i][1]) ** 2))
                cands.append((-g, i))
    assert [i for _, i in cands] == sorted(i for _, i in cands)  # rows visit ascending indices
    top = sorted(cands)[: igs.k]
    w = np.array([-g for g, _ in top])
    cols = np.array([p["colour"][i] for _, i in top]).reshape(len(top), -1)
    return (w[:, None] * cols).sum(0) / (w.sum() + igs.eps)


@pytest.mark.parametrize("tile,reach", [(16, 1), (8, 2)])
def test_home_tile_scan_equals_the_reference_decode(rng, real_stack, tile, reach):
    h, w, c = real_stack.shape
    means, theta, inv, colour = real_scene(rng, real_stack, tile=tile * reach)
    igs = build_igs_v2(means, theta, inv, colour, w, h, names(c), [[0, 1]] * c, tile=tile, reach=reach)
    ref = decode_igs(igs)
    for x, y in [(0, 0), (w - 1, h - 1), (17, 40), (63, 5), (tile, tile), (tile - 1, 2 * tile - 1)]:
        assert np.abs(naive_scan(igs, x, y) - ref[y, x]).max() < 1e-5, (x, y)


# ---------------------------------------------------------------------------------------------
# validation


@pytest.fixture
def good(rng):
    means, theta, inv, colour = scene(rng, n=120)
    return build_igs_v2(means, theta, inv, colour, 200, 150, CHANNELS, [[0, 1]] * 5, {"m": 1}, tile=32).to_bytes()


def reseal(data: bytearray) -> bytes:
    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])))
    return bytes(data)


def header_fields(data: bytes) -> list:
    return list(HEADER.unpack_from(data, 0))


def with_header(data: bytes, index: int, value) -> bytes:
    f = header_fields(data)
    f[index] = value
    out = bytearray(data)
    out[: HEADER.size] = HEADER.pack(*f)
    return reseal(out)


@pytest.mark.parametrize(
    "index,value,message",
    [
        (1, 3, "version"),
        (3, 0, "image size"),
        (5, 17, "channel count"),
        (6, 0, "tile size"),
        (7, 33, "K"),
        (8, 9, "reach"),
        (9, float("nan"), "epsilon"),
        (11, 5, "tile count"),
        (12, 25, "mean_bits"),
        (13, 0, "theta_bits"),
        (16, 127, "scale_exp_min"),
        (17, 3, "offset bits"),
        (18, 99, "record bits"),
        (19, 1, "flags"),
        (20, 8, "multiple of 16"),
    ],
)
def test_header_rules_are_checked(good, index, value, message):
    with pytest.raises(IgsFormatError, match=message):
        from_bytes(with_header(good, index, value), "x.igs")


def test_crc_and_truncation_are_checked(good):
    bad = bytearray(good)
    bad[100] ^= 1
    with pytest.raises(IgsFormatError, match="CRC"):
        from_bytes(bytes(bad))
    with pytest.raises(IgsFormatError, match="truncated"):
        from_bytes(good[: len(good) // 2])


def rewrite(data: bytes, mutate) -> bytes:
    """Parse, change the codes or offsets, and write back a file with a valid CRC (the mutation
    must be caught by the rules, not by the checksum)."""
    igs = parse_v2(data)
    mutate(igs)
    igs._lists = None
    return igs.to_bytes()


def test_records_outside_their_home_tile_are_rejected(good):
    def swap(igs):
        a, b = 0, igs.gaussian_count - 1
        for c in igs.codes:
            c[[a, b]] = c[[b, a]]

    with pytest.raises(IgsFormatError, match="home tile"):
        from_bytes(rewrite(good, swap))


def test_the_reach_rule_is_checked(good):
    def grow(igs):
        igs.codes[3][5] = 0  # the smallest inverse scale of the layout: far too large a Gaussian

    igs = parse_v2(good)
    if float(minifloat(np.array([0], np.uint32), igs.layout)[0]) * igs.reach * igs.tile > 3:
        pytest.fail("the layout's smallest inverse scale meets the reach rule; the test needs one that does not")
    with pytest.raises(IgsFormatError, match="radius"):
        from_bytes(rewrite(good, grow))


def test_offsets_must_be_ordered(good):
    def disorder(igs):
        igs.offsets[3], igs.offsets[4] = igs.offsets[4] + 1, igs.offsets[3]

    with pytest.raises(IgsFormatError, match="offsets|home tile"):
        from_bytes(rewrite(good, disorder))


def test_random_corruptions_are_rejected_cleanly(good):
    """Bit flips with a fixed-up CRC: each parses or fails with IgsFormatError, nothing else."""
    rng = np.random.default_rng(7)
    rejected = 0
    for _ in range(300):
        bad = bytearray(good)
        for _ in range(int(rng.integers(1, 4))):
            bad[int(rng.integers(0, len(bad) - 4))] ^= 1 << int(rng.integers(0, 8))
        try:
            back = from_bytes(reseal(bad))
        except IgsFormatError:
            rejected += 1
            continue
        # Accepted: a file whose every rule holds, so writing it and reading it again agrees.
        assert from_bytes(back.to_bytes()).to_bytes() == back.to_bytes()
    assert rejected > 50


# ---------------------------------------------------------------------------------------------
# size rule


def test_the_size_rule_counts_the_whole_file(rng):
    for n, c in [(0, 1), (1, 3), (77, 5), (1000, 8)]:
        means, theta, inv, colour = scene(rng, n=max(n, 1), c=c)
        igs = build_igs_v2(
            means[:n], theta[:n], inv[:n], colour[:n], 200, 150, names(c), [[0, 1]] * c, {"k": "v"}, tile=32
        )
        size = budget.file_size_v2(200, 150, c, 32, n, igs.layout.record_bits, len(igs._metadata_bytes()))
        assert size.total_bytes == len(igs.to_bytes())


def test_the_budget_solve_fills_the_file_without_passing_it():
    for w, h, c, bppc, tile in [(512, 512, 8, 0.059, 32), (1024, 1024, 6, 0.03, 32), (300, 200, 3, 0.12, 16)]:
        limit = budget.budget_bytes(w, h, c, bppc=bppc)
        rb = budget.record_bits_v2(w, h, c)
        n = budget.gaussians_for_file(limit, w, h, c, tile, rb)
        assert budget.file_size_v2(w, h, c, tile, n, rb).budget_bytes <= limit
        assert budget.file_size_v2(w, h, c, tile, n + 1, rb).budget_bytes > limit
        assert budget.file_size_v2(w, h, c, tile, n, rb).budget_bytes >= 0.98 * limit


def test_listed_pairs_are_sorted_by_tile_then_index(rng):
    means, theta, inv, colour = scene(rng, n=200, tile=16)
    igs = build_igs_v2(means, theta, inv, colour, 200, 150, CHANNELS, [[0, 1]] * 5, tile=16)
    p = igs.params()
    home = np.repeat(np.arange(igs.tile_count), np.diff(igs.offsets.astype(np.int64)))
    t, g = listed_pairs(p["means"], p["inv_scale"], 200, 150, 16, 1, home)
    key = t * 10_000 + g
    assert np.all(np.diff(key) > 0)


def test_colours_that_would_decode_to_infinity_or_subnormals_are_rejected(good):
    """A colour_step so large that the top code overflows, or one below 2^-102."""
    igs = parse_v2(good)
    for lo, step, message in ((3e38, 3e37, "not finite"), (0.0, 2.0**-110, "2\\^-102")):
        igs.colour_lo[1], igs.colour_step[1] = lo, step
        with pytest.raises(IgsFormatError, match=message):
            from_bytes(igs.to_bytes())
