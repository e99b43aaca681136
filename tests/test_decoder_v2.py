"""The C reference decoder (native/decoder/) on version 2 files (docs/FORMAT-v2.md).

Files come from igs_tex.format_v2.build_igs_v2: the parameters of a real bake (tile 16 and 32,
other K, reach and colour widths) and random scenes. Ground truths: the torch reference
(igs_tex.render.decode.decode_igs, on format_v2's parameters and listing-rule lists), the native
forward kernel on the same lists (bit for bit), format_v2's dequantised parameters (bit for bit),
a file packed here by hand from FORMAT-v2.md alone, and the Python reader for what must be
rejected (targeted corruptions and a differential fuzz). Version 1 is tests/test_decoder.py.
Measured numbers: `pytest -s tests/test_decoder_v2.py`.
"""

from __future__ import annotations

import math
import re
import struct
import zlib

import numpy as np
import pytest
import shader_host as sh
from baking import bake_crop
from conftest import MATERIALS
from test_decoder import HAVE_DECODER, NOT_BUILT, TOL, error_name

from igs_tex import format_v2
from igs_tex.format_v2 import IgsFileV2, Layout, build_igs_v2
from igs_tex.igsfile import IgsFormatError, from_bytes
from igs_tex.render.decode import decode_igs, decode_stack

if HAVE_DECODER:
    from igs_tex import _native
needs_decoder = pytest.mark.skipif(not HAVE_DECODER, reason=NOT_BUILT)

REPORT: dict[str, object] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_report():
    yield
    if REPORT:
        print("\n--- version 2 decoder measurements ---")
        for k in sorted(REPORT):
            print(f"{k}: {REPORT[k]}")


# ----------------------------------------------------------------------------------------------
# Inputs


@pytest.fixture(scope="module")
def baked(tmp_path_factory):
    # 75 x 53 (neither side a multiple of 16 or 32), a short bake: real parameters, not a good fit.
    return bake_crop(
        MATERIALS / "walnut_wood", tmp_path_factory.mktemp("walnut_v2"), (300, 200, 375, 253), gaussians=120, steps=30
    )


@pytest.fixture(scope="module")
def bake(baked):
    return baked[0]


def v2_from(igs, **options) -> tuple[IgsFileV2, bytes]:
    """build_igs_v2 on a version 1 file's decoded parameters; the file as the Python reader reads it."""
    p = igs.params()
    options.setdefault("k", igs.k)
    f = build_igs_v2(
        p["means"],
        p["theta"],
        p["inv_scale"],
        p["colour"],
        igs.width,
        igs.height,
        igs.channels,
        igs.value_range,
        metadata=igs.metadata,
        **options,
    )
    data = f.to_bytes()
    parsed = from_bytes(data)
    assert isinstance(parsed, IgsFileV2)
    return parsed, data


BAKE_VARIANTS = ["t16", "t32", "t7_k4", "t16_k32", "t16_k1", "t8_r2", "t16_bits", "t13_r3_bits", "baker"]


@pytest.fixture(scope="module")
def variants(bake, baked):
    C = bake.channel_count
    odd = tuple(1 + (5 * c + 3) % 16 for c in range(C))  # widths 1..16, fields cross words
    # "baker": the file bake_material wrote, where it writes version 2 (its own tile and reach).
    return {
        **({"baker": baked} if bake.version == 2 else {}),
        "t16": v2_from(bake, tile=16),
        "t32": v2_from(bake, tile=32),
        "t7_k4": v2_from(bake, tile=7, k=4),
        "t16_k32": v2_from(bake, tile=16, k=32),
        "t16_k1": v2_from(bake, tile=16, k=1),
        "t8_r2": v2_from(bake, tile=8, reach=2),
        "t16_bits": v2_from(bake, tile=16, colour_bits=odd),
        "t13_r3_bits": v2_from(bake, tile=13, reach=3, colour_bits=12),
    }


def random_scene(seed: int) -> tuple[IgsFileV2, bytes]:
    rng = np.random.default_rng(seed)
    W, H = (int(v) for v in rng.integers(1, 90, 2))
    C = int(rng.integers(1, 7))
    n = [0, 1, 2][seed] if seed < 3 else int(rng.integers(3, 400))
    tile = int(rng.choice([1, 2, 3, 5, 8, 16, 32, 64]))
    reach = int(rng.integers(1, 4))
    k = int(rng.integers(1, 33))
    means = rng.uniform(-0.05, 1.05, (n, 2)) * [W, H]  # some outside: the writer clamps
    theta = rng.uniform(-7, 7, n)
    inv_scale = np.exp(rng.uniform(np.log(0.05), np.log(4.0), (n, 2)))
    colour = rng.normal(0.4, 0.3, (n, C))
    bits = tuple(int(b) for b in rng.integers(1, 17, C))
    f = build_igs_v2(
        means,
        theta,
        inv_scale,
        colour,
        W,
        H,
        ["other"] * C,
        [[-1.0, 2.0]] * C,
        metadata={"seed": seed},
        tile=tile,
        k=k,
        reach=reach,
        colour_bits=bits,
        eps=float(rng.choice([1e-7, 1e-3])),
    )
    data = f.to_bytes()
    return from_bytes(data), data


SCENES = list(range(14))


def scene_with_unused_record_bits() -> tuple[IgsFileV2, bytes]:
    """A random scene whose records stream ends inside its last word (the bake's may not)."""
    for seed in SCENES[3:]:
        igs, data = random_scene(seed)
        if (igs.gaussian_count * igs.layout.record_bits) % 32:
            return igs, data
    raise AssertionError("every scene's records fill their last word")


def native_forward(igs: IgsFileV2) -> np.ndarray:
    """The native training kernel's per-texel path on format_v2's parameters and lists."""
    p = igs.params()
    image, _ = _native.forward(
        p["means"],
        p["theta"],
        p["inv_scale"],
        p["colour"],
        igs.height,
        igs.width,
        igs.tile,
        igs.k,
        float(igs.eps),
        igs.tile_offsets.astype(np.int64),
        igs.tile_indices.astype(np.int32),
        fast=False,
    )
    return np.asarray(image)


def params_matrix(igs) -> np.ndarray:
    p = igs.params()
    return np.concatenate([p["means"], p["theta"][:, None], p["inv_scale"], p["colour"]], axis=1)


def check_against_references(name: str, igs: IgsFileV2, data: bytes) -> np.ndarray:
    d = _native.IgsDecoder(data)
    info = d.info
    assert (info["version"], info["reach"], info["index_bits"]) == (2, igs.reach, 0)
    assert (info["width"], info["height"], info["channels"], info["tile"], info["k"]) == (
        igs.width,
        igs.height,
        igs.channel_count,
        igs.tile,
        igs.k,
    )
    assert (info["gaussian_count"], info["tile_count"]) == (igs.gaussian_count, igs.tile_count)
    # The decoder's lists have as many entries as format_v2's listing rule gives.
    assert info["index_count"] == len(igs.tile_indices)
    assert np.float32(info["eps"]) == np.float32(igs.eps)
    # Dequantisation: FORMAT-v2 "Records", bit for bit.
    got_p = d.gaussians()
    assert got_p.shape == (igs.gaussian_count, 5 + igs.channel_count)
    assert np.array_equal(got_p.view(np.uint32), params_matrix(igs).view(np.uint32)), name
    got = d.decode()
    assert got.shape == (igs.height, igs.width, igs.channel_count) and got.dtype == np.float32
    ref = decode_igs(igs)
    err = float(np.abs(got - ref).max()) if got.size else 0.0
    assert err <= TOL, (name, err)
    # Same lists, same header functions in the same order as the native forward: same bytes.
    if igs.gaussian_count:
        assert np.array_equal(got, native_forward(igs)), name
    else:
        assert not got.any()
    return got


# ----------------------------------------------------------------------------------------------
# Decoding equals the references


def test_native_module_reads_both_versions():
    if not HAVE_DECODER:
        pytest.skip(NOT_BUILT)
    assert _native.IGS_VERSIONS == (1, 2)


@needs_decoder
@pytest.mark.parametrize("name", BAKE_VARIANTS)
def test_bake_decodes_like_the_references(name, variants):
    if name not in variants:
        pytest.skip("bake_material wrote version 1 (config.DEFAULT_FORMAT): no baker-made version 2 file")
    igs, data = variants[name]
    check_against_references(name, igs, data)
    REPORT[f"max |C++ - decode_igs| {name} (T={igs.tile}, R={igs.reach}, K={igs.k})"] = (
        f"{float(np.abs(_native.decode_igs_bytes(data) - decode_igs(igs)).max()):.2e}"
    )


@needs_decoder
@pytest.mark.parametrize("seed", SCENES)
def test_random_scene_decodes_like_the_references(seed):
    igs, data = random_scene(seed)
    got = check_against_references(f"scene {seed}", igs, data)
    if got.size:
        worst = REPORT.get("max |C++ - decode_igs| random scenes", 0.0)
        REPORT["max |C++ - decode_igs| random scenes"] = max(worst, float(np.abs(got - decode_igs(igs)).max()))


@needs_decoder
def test_variants_exercise_what_they_claim(variants):
    lengths = np.diff(variants["t16_k32"][0].tile_offsets.astype(np.int64))
    assert lengths.max() > 32 and lengths.min() <= 32, "K=32 needs lists above and below K"
    assert variants["t8_r2"][0].reach == 2 and variants["t13_r3_bits"][0].reach == 3
    # Reach 2 at tile 8: some Gaussian is listed two tiles away from its home tile.
    igs = variants["t8_r2"][0]
    home = np.repeat(np.arange(igs.tile_count), np.diff(igs.offsets.astype(np.int64)))
    offs = igs.tile_offsets.astype(np.int64)
    far = 0
    for t in range(igs.tile_count):
        g = igs.tile_indices[offs[t] : offs[t + 1]]
        far = max(far, int(np.abs(home[g] % igs.tiles_x - t % igs.tiles_x).max(initial=0)))
    assert far == 2
    assert len(set(variants["t16_bits"][0].layout.colour_bits)) > 3
    assert variants["t16_bits"][0].layout.record_bits % 32 != 0


@needs_decoder
def test_texel_rect_and_points_agree_with_the_image(variants, rng):
    igs, data = variants["t7_k4"]
    d = _native.IgsDecoder(data)
    full = d.decode()
    W, H = igs.width, igs.height
    for threads in (1, 2, 3, 0):
        assert np.array_equal(d.decode(threads=threads), full), threads
    yy, xx = np.mgrid[0:H, 0:W]
    xy = np.stack([xx.ravel(), yy.ravel()], axis=1)
    # Every texel through single-texel sampling: exactly the image.
    assert np.array_equal(d.texels(xy), full.reshape(-1, igs.channel_count))
    assert np.array_equal(d.sample_points((xy + 0.5).astype(np.float32)), full.reshape(-1, igs.channel_count))
    for x0, y0, w, h in [(0, 0, W, H), (W - 1, H - 1, 1, 1), (5, 7, 30, 11), (W - 20, 0, 20, H)]:
        assert np.array_equal(_native.decode_igs_rect(data, x0, y0, w, h), full[y0 : y0 + h, x0 : x0 + w])


@needs_decoder
def test_sampling_matches_the_shader_reference(variants, rng):
    igs, data = variants["t16"]
    d = _native.IgsDecoder(data)
    p = (rng.uniform(0, 1, (2000, 2)) * [igs.width, igs.height]).astype(np.float32)
    p[:3] = [[0, 0], [igs.width, igs.height], [igs.width, 0]]
    err = float(np.abs(d.sample_points(p) - sh.reference_points(igs, p)).max())
    REPORT["max |C++ - reference| point sampling (2000 points)"] = f"{err:.2e}"
    assert err <= 1e-5
    jac = rng.normal(0, 1, (2000, 2, 2)) * rng.uniform(0.1, 6, (2000, 1, 1))
    F = (np.einsum("nij,nkj->nik", jac, jac) / 12.0)[:, [0, 0, 1], [0, 1, 1]].astype(np.float32)
    got = d.sample_footprint(p, F, texel_space=True)
    err = float(np.abs(got - sh.reference_points(igs, p, F=F)).max())
    REPORT["max |C++ - float64 reference| footprint sampling"] = f"{err:.2e}"
    assert err <= 2e-5


@needs_decoder
def test_decode_stack_uses_the_c_decoder(variants):
    igs, data = variants["t32"]
    assert np.array_equal(decode_stack(igs), _native.IgsDecoder(data).decode())


# ----------------------------------------------------------------------------------------------
# A file packed by hand from FORMAT-v2.md alone (not with format_v2's packer)


def pack_bits(fields: list[tuple[int, int]]) -> bytes:
    """(value, width) fields, LSB first, into little-endian u32 words."""
    acc, pos = 0, 0
    for value, width in fields:
        assert 0 <= value < 1 << width
        acc |= value << pos
        pos += width
    return acc.to_bytes(4 * -(-pos // 32), "little")


def hand_made_file() -> tuple[bytes, np.ndarray]:
    W, H, C, T, K, R = 24, 12, 2, 16, 10, 1
    P, Bt, Be, Bm, E = 8, 8, 3, 5, -3
    bits = (8, 5)
    rb = 2 * P + Bt + 2 * (Be + Bm) + sum(bits)  # 53: records straddle word boundaries
    lo = np.float32([0.1, -0.5])
    step = np.float32([0.003, 1 / 31])
    # qx, qy, qt, qa, qb, colours: mean (3, 5.48) in tile 0, (20.25, 9) in tile 1
    recs = [(32, 117, 0, (2 << Bm) | 0, (1 << Bm) | 16, 200, 31), (216, 192, 81, (3 << Bm) | 0, (4 << Bm) | 0, 7, 0)]
    widths = [P, P, Bt, Be + Bm, Be + Bm, *bits]
    records = pack_bits([(v, w) for r in recs for v, w in zip(r, widths)])
    offsets = pack_bits([(0, 2), (1, 2), (2, 2)])  # bit_length(2) = 2 bits each
    table = b"".join(
        struct.pack("<BB2xffff", code, b, 0.0, 1.0, float(lo_), float(s))
        for code, b, lo_, s in zip((8, 7), bits, lo, step)
    )
    sections = [(80, len(table)), (128, 0), (128, len(records)), (144, len(offsets))]
    header = struct.pack(
        "<4sHHIIHHHHfIIBBBBbBHI8I",
        b"IGSF",
        2,
        80,
        W,
        H,
        C,
        T,
        K,
        R,
        1e-7,
        2,
        2,
        P,
        Bt,
        Be,
        Bm,
        E,
        2,
        rb,
        0,
        *[v for s in sections for v in s],
    )
    body = header + table + b"\0" * 8 + records + offsets
    data = body + struct.pack("<I", zlib.crc32(body))
    # The decoded values, each line of FORMAT-v2 "Records" as one f32 operation.
    f32 = np.float32
    sx, sy = f32(W) * f32(2.0**-P), f32(H) * f32(2.0**-P)
    tstep = np.uint32(0x40490FDB).view(np.float32) * f32(2.0**-Bt)

    def mini(q):
        e, m = q >> Bm, q & ((1 << Bm) - 1)
        return np.uint32(((e + E + 127) << 23) | (m << (23 - Bm))).view(np.float32)

    want = np.array(
        [
            [
                f32(r[0]) * sx,
                f32(r[1]) * sy,
                f32(r[2]) * tstep,
                mini(r[3]),
                mini(r[4]),
                lo[0] + f32(r[5]) * step[0],
                lo[1] + f32(r[6]) * step[1],
            ]
            for r in recs
        ],
        dtype=np.float32,
    )
    return data, want


@needs_decoder
def test_hand_made_file_from_the_document():
    data, want = hand_made_file()
    assert len(data) == 152
    np.testing.assert_allclose(
        want[:, :5], [[3.0, 5.484375, 0.0, 0.5, 0.375], [20.25, 9.0, 81 * math.pi / 256, 1.0, 2.0]], rtol=1e-6
    )
    d = _native.IgsDecoder(data)
    assert np.array_equal(d.gaussians().view(np.uint32), want.view(np.uint32))
    py = format_v2.parse_v2(data)
    assert np.array_equal(params_matrix(py).view(np.uint32), want.view(np.uint32))
    assert d.info["semantic"] == [8, 7] and d.info["metadata"] == "{}"
    assert np.array_equal(d.decode(), native_forward(py))
    assert float(np.abs(d.decode() - decode_igs(py)).max()) <= TOL


# ----------------------------------------------------------------------------------------------
# Rejection of malformed files

FIELDS = {
    "magic": (0, "4s"),
    "version": (4, "H"),
    "header_size": (6, "H"),
    "width": (8, "I"),
    "height": (12, "I"),
    "channels": (16, "H"),
    "tile": (18, "H"),
    "k": (20, "H"),
    "reach": (22, "H"),
    "eps": (24, "f"),
    "gaussian_count": (28, "I"),
    "tile_count": (32, "I"),
    "mean_bits": (36, "B"),
    "theta_bits": (37, "B"),
    "scale_exp_bits": (38, "B"),
    "scale_mant_bits": (39, "B"),
    "scale_exp_min": (40, "b"),
    "offset_bits": (41, "B"),
    "record_bits": (42, "H"),
    "flags": (44, "I"),
}
for _i, _s in enumerate(format_v2.SECTION_NAMES):
    FIELDS[f"{_s} offset"] = (48 + 8 * _i, "I")
    FIELDS[f"{_s} length"] = (52 + 8 * _i, "I")

# The Python reader's message -> the C error for the same defect (first phrase that matches).
CODE_FOR_MESSAGE = [
    ("truncated", "IGS_ERR_TRUNCATED"),
    ("bad magic", "IGS_ERR_BAD_MAGIC"),
    ("not an .igs file", "IGS_ERR_BAD_MAGIC"),
    ("unsupported version", "IGS_ERR_BAD_VERSION"),
    ("header size", "IGS_ERR_BAD_HEADER"),
    ("multiple of 16", "IGS_ERR_BAD_LAYOUT"),
    ("overlaps", "IGS_ERR_BAD_LAYOUT"),
    ("sections and CRC end", "IGS_ERR_BAD_LAYOUT"),
    ("CRC mismatch", "IGS_ERR_BAD_CRC"),
    ("image size", "IGS_ERR_BAD_HEADER"),
    ("channel count", "IGS_ERR_BAD_HEADER"),
    ("tile size", "IGS_ERR_BAD_HEADER"),
    ("is outside 1..32", "IGS_ERR_BAD_HEADER"),
    ("radius 3", "IGS_ERR_BAD_GAUSSIAN"),
    ("reach", "IGS_ERR_BAD_HEADER"),
    ("epsilon", "IGS_ERR_BAD_HEADER"),
    ("gaussian count", "IGS_ERR_BAD_HEADER"),
    ("tile count", "IGS_ERR_BAD_HEADER"),
    ("offset bits", "IGS_ERR_BAD_HEADER"),
    ("flags", "IGS_ERR_BAD_HEADER"),
    ("channel table is", "IGS_ERR_BAD_SECTION_SIZE"),
    ("reserved bytes", "IGS_ERR_BAD_CHANNEL_TABLE"),
    ("invalid record layout: colour_bits", "IGS_ERR_BAD_CHANNEL_TABLE"),
    ("invalid record layout", "IGS_ERR_BAD_HEADER"),
    ("record bits", "IGS_ERR_BAD_HEADER"),
    ("records section is", "IGS_ERR_BAD_SECTION_SIZE"),
    ("tile offsets section is", "IGS_ERR_BAD_SECTION_SIZE"),
    ("unknown semantic code", "IGS_ERR_BAD_CHANNEL_TABLE"),
    ("ranges must be finite", "IGS_ERR_BAD_CHANNEL_TABLE"),
    ("zero or of magnitude", "IGS_ERR_BAD_CHANNEL_TABLE"),
    ("decodes to", "IGS_ERR_BAD_CHANNEL_TABLE"),
    ("metadata", "IGS_ERR_BAD_METADATA"),
    ("records: unused bits", "IGS_ERR_BAD_GAUSSIAN"),
    ("tile offsets: unused bits", "IGS_ERR_BAD_TILE_LIST"),
    ("tile offsets must start at 0", "IGS_ERR_BAD_TILE_LIST"),
    ("outside its home tile", "IGS_ERR_BAD_TILE_LIST"),
]


def python_code(data: bytes) -> str | None:
    """None if the Python reader accepts data, else the C error its message corresponds to."""
    try:
        from_bytes(data)
    except IgsFormatError as exc:
        message = str(exc)
        for phrase, code in CODE_FOR_MESSAGE:
            if phrase in message:
                return code
        raise AssertionError(f"no C code for the Python message {message!r}") from None
    return None


def c_code(data: bytes) -> str | None:
    try:
        _native.IgsDecoder(data)
    except ValueError as exc:
        assert "\n" not in str(exc)
        return error_name(exc)
    return None


def recrc(data: bytes) -> bytes:
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))


def put(data: bytes, field: str, value, fix_crc: bool = True) -> bytes:
    off, fmt = FIELDS[field]
    out = bytearray(data)
    struct.pack_into("<" + fmt, out, off, value)
    return recrc(bytes(out)) if fix_crc else bytes(out)


def get(data: bytes, field: str):
    off, fmt = FIELDS[field]
    return struct.unpack_from("<" + fmt, data, off)[0]


def put_at(data: bytes, pos: int, fmt: str, value) -> bytes:
    out = bytearray(data)
    struct.pack_into("<" + fmt, out, pos, value)
    return recrc(bytes(out))


def rebuilt(igs: IgsFileV2, codes=None, offsets=None, layout=None, **changes) -> bytes:
    """igs with other codes / offsets / layout through the (non-validating) writer."""
    fields = dict(
        width=igs.width,
        height=igs.height,
        tile=igs.tile,
        k=igs.k,
        eps=igs.eps,
        reach=igs.reach,
        channels=igs.channels,
        value_range=igs.value_range,
        layout=layout or igs.layout,
        colour_lo=igs.colour_lo,
        colour_step=igs.colour_step,
        codes=[c.copy() for c in igs.codes] if codes is None else codes,
        offsets=igs.offsets.copy() if offsets is None else offsets,
        metadata=igs.metadata,
    )
    fields.update(changes)
    return IgsFileV2(**fields).to_bytes()


def with_metadata_bytes(igs: IgsFileV2, raw: bytes) -> bytes:
    """igs with the metadata section's bytes replaced by raw (same length as a placeholder)."""
    data = bytearray(rebuilt(igs, metadata={"x": "y" * max(0, len(raw) - 8)}))
    off, length = get(bytes(data), "metadata offset"), get(bytes(data), "metadata length")
    assert length == len(raw), (length, len(raw))
    data[off : off + length] = raw
    return recrc(bytes(data))


def targeted_corruptions(igs: IgsFileV2, data: bytes) -> dict[str, tuple[bytes, str]]:
    """name -> (corrupt bytes, the C error it must give). Each has one defect."""
    n, tiles = igs.gaussian_count, igs.tile_count
    L = igs.layout
    ct_off, rc_off, to_off = (
        get(data, "channel table offset"),
        get(data, "records offset"),
        get(data, "tile offsets offset"),
    )
    rc_len, to_len = get(data, "records length"), get(data, "tile offsets length")
    out: dict[str, tuple[bytes, str]] = {}
    H, CT, SZ, G, TL = (
        "IGS_ERR_BAD_HEADER",
        "IGS_ERR_BAD_CHANNEL_TABLE",
        "IGS_ERR_BAD_SECTION_SIZE",
        "IGS_ERR_BAD_GAUSSIAN",
        "IGS_ERR_BAD_TILE_LIST",
    )
    out["magic"] = (put(data, "magic", b"IGSX"), "IGS_ERR_BAD_MAGIC")
    out["version 3"] = (put(data, "version", 3), "IGS_ERR_BAD_VERSION")
    out["version 1"] = (put(data, "version", 1), H)  # a version 1 reader: header size 80 != 84
    out["header size 84"] = (put(data, "header_size", 84), H)
    out["crc"] = (data[:-1] + bytes([data[-1] ^ 1]), "IGS_ERR_BAD_CRC")
    out["payload flip, stale crc"] = (data[:rc_off] + bytes([data[rc_off] ^ 4]) + data[rc_off + 1 :], "IGS_ERR_BAD_CRC")
    out["bytes after the crc"] = (recrc(data + b"\0" * 8), "IGS_ERR_BAD_LAYOUT")
    out["records misaligned"] = (put(data, "records offset", rc_off + 4), "IGS_ERR_BAD_LAYOUT")
    out["records overlap the metadata"] = (put(data, "records offset", ct_off), "IGS_ERR_BAD_LAYOUT")
    out["offsets beyond the end"] = (put(data, "tile offsets offset", 0xFFFFFFF0), "IGS_ERR_TRUNCATED")
    out["offsets run past the end"] = (put(data, "tile offsets length", to_len + 64), "IGS_ERR_TRUNCATED")
    for field, value in [
        ("width", 0),
        ("width", 16385),
        ("height", 0),
        ("channels", 0),
        ("channels", 17),
        ("tile", 0),
        ("tile", 257),
        ("k", 0),
        ("k", 33),
        ("reach", 0),
        ("reach", 9),
        ("eps", 0.0),
        ("eps", float("nan")),
        ("eps", float("inf")),
        ("eps", -1.0),
        ("gaussian_count", (1 << 26) + 1),
        ("tile_count", tiles + 1),
        ("mean_bits", 0),
        ("mean_bits", 25),
        ("theta_bits", 0),
        ("theta_bits", 17),
        ("scale_exp_bits", 0),
        ("scale_exp_bits", 9),
        ("scale_mant_bits", 17),
        ("scale_exp_min", -127),
        ("scale_exp_min", 127 - (1 << L.scale_exp_bits) + 2),
        ("offset_bits", igs.offset_bits + 1),
        ("offset_bits", 0),
        ("record_bits", L.record_bits + 1),
        ("flags", 1),
        ("flags", 1 << 31),
    ]:
        out[f"{field} {value}"] = (put(data, field, value), H)
    # A different P with record_bits to match: the records section no longer fits the count.
    out["mean bits + 1, record bits to match"] = (
        put(put(data, "mean_bits", L.mean_bits + 1, fix_crc=False), "record_bits", L.record_bits + 2),
        SZ,
    )
    out["channel table length"] = (put(data, "channel table length", 20 * igs.channel_count - 20), SZ)
    # One record more (or fewer) with the same offset width: the records section is too short.
    other = n + 1 if (n + 1).bit_length() == n.bit_length() else n - 1
    out["gaussian count changed"] = (put(data, "gaussian_count", other), SZ)
    # Channel table.
    entry = ct_off + 20 * (igs.channel_count - 1)
    out["semantic 10"] = (put_at(data, entry, "B", 10), CT)
    out["semantic 255"] = (put_at(data, entry, "B", 255), CT)
    out["reserved byte"] = (put_at(data, entry + 3, "B", 1), CT)
    for name, at, value in [
        ("value_lo nan", 4, float("nan")),
        ("value_hi inf", 8, float("inf")),
        ("value_hi < value_lo", 8, -5.0),
        ("colour_lo nan", 12, float("nan")),
        ("colour_lo subnormal", 12, 1e-40),
        ("colour_step subnormal", 16, 1e-41),
        ("colour_step negative", 16, -0.5),
        ("colour_step inf", 16, float("inf")),
    ]:
        out[name] = (put_at(data, entry + at, "f", value), CT)
    for b in (0, 17):
        bits = list(L.colour_bits)
        bits[0] = b
        lay = Layout(L.mean_bits, L.theta_bits, L.scale_exp_bits, L.scale_mant_bits, L.scale_exp_min, tuple(bits))
        codes = [c.copy() for c in igs.codes]
        codes[5] = np.zeros(n, np.uint32)
        out[f"colour bits {b}"] = (rebuilt(igs, codes=codes, layout=lay), CT)
    # Metadata.
    for name, raw in [
        ("not json", b'{"a": 1,}   '),
        ("not an object", b"[1, 2, 3]   "),
        ("NaN", b'{"a": NaN}  '),
        ("bad utf-8", b'{"a": "\xff"}'),
        ("overlong", b'{"\xc0\xaf": 1}'),
    ]:
        out[f"metadata {name}"] = (with_metadata_bytes(igs, raw), "IGS_ERR_BAD_METADATA")
    # Records: unused bits, reach rule.
    used = n * L.record_bits
    if used % 32:
        last = rc_off + rc_len - 4
        out["records unused bits"] = (put_at(data, last, "I", struct.unpack_from("<I", data, last)[0] | 1 << 31), G)
    # Every inverse scale 16 times smaller: most radii now exceed reach * tile.
    out["scale exponent min - 4"] = (put(data, "scale_exp_min", L.scale_exp_min - 4), G)
    floor = 3.0 / (igs.reach * igs.tile)
    values = format_v2.minifloat(np.arange(1 << L.scale_bits, dtype=np.uint32), L).astype(np.float64)
    below = np.flatnonzero(values <= floor)  # codes whose radius 3 / a is at least reach * tile
    for axis, field in ((0, 3), (1, 4)):
        if below.size:
            codes = [c.copy() for c in igs.codes]
            codes[field][n // 2] = below[-1]
            out[f"reach rule broken on axis {axis}"] = (rebuilt(igs, codes=codes), G)
    # Offsets: start, end, order, unused bits.
    offs = igs.offsets.astype(np.int64)
    nonempty = np.flatnonzero(np.diff(offs) >= 1)
    assert len(nonempty) >= 2
    t = int(nonempty[len(nonempty) // 2])  # a home tile with records, and records before it
    for name, change in [
        ("offsets[0] = 1", (0, 1)),
        ("offsets[-1] = N - 1", (tiles, n - 1)),
        ("an offset decreases", (t + 1, int(offs[t]) - 1)),
    ]:
        o = igs.offsets.copy()
        o[change[0]] = change[1]
        out[name] = (rebuilt(igs, offsets=o), TL)
    swapped = igs.offsets.copy()
    swapped[t], swapped[t + 1] = swapped[t + 1], swapped[t]
    out["two offsets swapped"] = (rebuilt(igs, offsets=swapped), TL)
    if ((tiles + 1) * igs.offset_bits) % 32:
        last = to_off + to_len - 4
        out["offsets unused bits"] = (put_at(data, last, "I", struct.unpack_from("<I", data, last)[0] | 1 << 31), TL)
    # Records outside their home tile: a mean moved one tile over, two records exchanged.
    codes = [c.copy() for c in igs.codes]
    step = int(math.ceil(igs.tile / (igs.width / (1 << L.mean_bits))))
    i = int(offs[t])
    codes[0][i] = codes[0][i] + step if codes[0][i] + step < 1 << L.mean_bits else codes[0][i] - step
    out["record moved to the next tile"] = (rebuilt(igs, codes=codes), TL)
    codes = [c.copy() for c in igs.codes]
    j = int(nonempty[-1])
    a, b = int(offs[t]), int(offs[j])
    for c in codes:
        c[a], c[b] = c[b], c[a]
    out["two records of different tiles exchanged"] = (rebuilt(igs, codes=codes), TL)
    return out


@needs_decoder
@pytest.mark.parametrize("name", ["t16", "t32", "t16_bits"])
def test_targeted_corruptions_are_rejected_like_the_python_reader(name, variants):
    igs, data = variants[name]
    cases = targeted_corruptions(igs, data)
    for label, (bad, want) in cases.items():
        py = python_code(bad)
        assert py is not None, f"{label}: the Python reader accepts it"
        got = c_code(bad)
        assert got == want, (label, got, want)
        assert py == want, (label, py, want)
    REPORT[f"targeted corruptions refused ({name})"] = len(cases)


@needs_decoder
def test_error_details_name_the_defect(variants):
    checked: set[str] = set()
    for igs, data in (variants["t16"], variants["t16_bits"], scene_with_unused_record_bits()):
        cases = targeted_corruptions(igs, data)
        phrases = {
            "reach rule broken on axis 0": "is not below reach * tile",
            "scale exponent min - 4": "is not below reach * tile",
            "record moved to the next tile": "outside its home tile's range",
            "two records of different tiles exchanged": "outside its home tile's range",
            "two offsets swapped": "tile offsets decrease",
            "offsets[0] = 1": "not 0",
            "records unused bits": "records: unused bits",
            "reach 9": "reach 9 is outside 1..8",
            "colour bits 17": "colour bits 17 outside 1..16",
            "version 3": "unsupported version 3",
            "record_bits %d" % (igs.layout.record_bits + 1): "record bits",
            "gaussian count changed": "records section is",
            "offsets unused bits": "tile offsets: unused bits",
        }
        for label, phrase in phrases.items():
            if label not in cases:  # a stream that fills its last word has no unused bits
                continue
            with pytest.raises(ValueError, match=re.escape(phrase)):
                _native.IgsDecoder(cases[label][0])
            checked.add(label)
    assert {"records unused bits", "offsets unused bits", "reach rule broken on axis 0"} <= checked, checked


@needs_decoder
def test_truncation_at_every_length(variants):
    _, data = variants["t16_bits"]
    for cut in range(len(data)):
        assert c_code(data[:cut]) == "IGS_ERR_TRUNCATED", cut
        if cut > 8:  # a CRC valid for the shorter buffer does not help
            assert c_code(recrc(data[:cut])) == "IGS_ERR_TRUNCATED", cut
    REPORT["truncations refused (t16_bits)"] = f"{len(data)} lengths, each also with a fresh CRC"


def fuzz_mutation(igs: IgsFileV2, data: bytes, rng: np.random.Generator, kind: int) -> tuple[bytes, bool]:
    """One mutated file; the flag says whether it has a single known defect (then the C and Python
    error codes must agree too, not only accept / reject)."""
    n, L = igs.gaussian_count, igs.layout
    rc_off = get(data, "records offset")
    if kind == 0:  # byte flips anywhere, CRC refreshed so the checks behind it run
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(0, len(b) - 4))] ^= int(rng.integers(1, 256))
        return recrc(bytes(b)), False
    if kind == 1:  # a header field to a random, nearby or extreme value
        field = list(FIELDS)[int(rng.integers(1, len(FIELDS)))]
        off, fmt = FIELDS[field]
        size = struct.calcsize("<" + fmt)
        old = get(data, field)
        if fmt == "f":
            value = float(rng.choice([0.0, -1.0, np.nan, np.inf, 1e-30, old * 2]))
        else:
            lo, hi = (-128, 127) if fmt == "b" else (0, (1 << (8 * size)) - 1)
            value = int(np.clip(rng.choice([old + 1, old - 1, 0, hi, int(rng.integers(lo, hi + 1)), old * 2]), lo, hi))
        return put(data, field, value), False
    if kind == 2:  # single-bit flips in the records and tile offsets, CRC refreshed
        b = bytearray(data)
        b[int(rng.integers(rc_off, len(b) - 4))] ^= 1 << int(rng.integers(0, 8))
        return recrc(bytes(b)), False
    if kind == 3:  # truncation, sometimes with a CRC valid for the shorter buffer
        cut = int(rng.integers(0, len(data)))
        out = data[:cut]
        return (recrc(out) if cut > 8 and rng.random() < 0.5 else out), False
    if kind == 4:  # tile offsets out of order: an entry changed or two entries swapped
        o = igs.offsets.copy()
        t = int(rng.integers(0, len(o)))
        if rng.random() < 0.5:
            u = int(rng.integers(0, len(o)))
            o[t], o[u] = o[u], o[t]
        else:
            o[t] = int(np.clip(int(o[t]) + int(rng.choice([-2, -1, 1, 2])), 0, (1 << igs.offset_bits) - 1))
        return rebuilt(igs, offsets=o), True
    if kind == 5:  # a record's mean moved (maybe out of its home tile)
        codes = [c.copy() for c in igs.codes]
        i = int(rng.integers(0, n))
        axis = int(rng.integers(0, 2))
        codes[axis][i] = int(rng.integers(0, 1 << L.mean_bits))
        return rebuilt(igs, codes=codes), True
    if kind == 6:  # a record's inverse scale to a random code (maybe below the reach floor)
        codes = [c.copy() for c in igs.codes]
        i = int(rng.integers(0, n))
        codes[3 + int(rng.integers(0, 2))][i] = int(rng.integers(0, 1 << L.scale_bits)) >> int(rng.integers(0, 4))
        return rebuilt(igs, codes=codes), True
    # kind 7: a record's fields re-drawn at random (theta, colours), mean kept: always valid
    codes = [c.copy() for c in igs.codes]
    i = int(rng.integers(0, n))
    codes[2][i] = int(rng.integers(0, 1 << L.theta_bits))
    for c, b in enumerate(L.colour_bits):
        codes[5 + c][i] = int(rng.integers(0, 1 << b))
    return rebuilt(igs, codes=codes), True


@needs_decoder
def test_differential_fuzz_against_the_python_reader(variants):
    """800 mutations of two files: the C decoder accepts exactly what the Python reader accepts,
    what both accept decodes like the native forward on the Python reader's parameters and lists,
    and single-defect mutations get the same error code from both."""
    rng = np.random.default_rng(2024)
    outcome = {"accepted": 0, "rejected": 0, "codes compared": 0}
    codes_seen: set[str] = set()
    for i in range(800):
        igs, data = variants["t16_bits" if i % 2 else "t32"]
        mutated, single = fuzz_mutation(igs, data, rng, i % 8)
        try:
            parsed = from_bytes(mutated)
        except IgsFormatError:
            parsed = None
        got = c_code(mutated)
        if got is not None:
            assert parsed is None, f"mutation {i}: C refused what Python accepts: {got}"
            outcome["rejected"] += 1
            codes_seen.add(got)
            if single:
                assert python_code(mutated) == got, f"mutation {i} (kind {i % 8})"
                outcome["codes compared"] += 1
            continue
        assert parsed is not None, f"mutation {i} (kind {i % 8}): C accepted what Python refuses"
        outcome["accepted"] += 1
        d = _native.IgsDecoder(mutated)
        assert np.array_equal(d.gaussians().view(np.uint32), params_matrix(parsed).view(np.uint32)), i
        assert np.array_equal(d.decode(), native_forward(parsed), equal_nan=True), i
    REPORT["differential fuzz (800 version 2 mutations)"] = outcome
    REPORT["error codes reached by the fuzz"] = sorted(codes_seen)
    assert outcome["accepted"] > 80 and outcome["rejected"] > 300, outcome
    assert len(codes_seen) >= 9, codes_seen
