"""The C reference decoder (native/include/igs_decoder.h, native/decoder/) on version 1 files.

Through igs_tex._native.IgsDecoder (every call goes through the C API) and through a plain C
program built against the CMake library. Ground truths: igs_tex.render.decode.decode_igs (the
torch reference on the file's parameters and stored lists), the native forward kernel, the
shaders' test reference (tests/shader_host.py) for point and footprint sampling, the FORMAT.md
worked example, and the Python reader for what must be rejected (tests/test_igsfile.py's
corruption table, and a differential fuzz).

If the extension is not built the Python-side tests skip with a loud reason, and the C-program
tests skip when gcc/cmake are absent; IGS_REQUIRE_NATIVE=1 (CI) turns both into failures.
Measured numbers: `pytest -s tests/test_decoder.py`. Version 2 files: tests/test_decoder_v2.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import shader_host as sh
from baking import bake_crop
from conftest import MATERIALS

from igs_tex.format_v2 import build_igs_v2
from igs_tex.igsfile import IgsFile, IgsFormatError, from_bytes
from igs_tex.igsfile import as_version_1 as igsfile_as_version_1
from igs_tex.render.decode import decode_igs
from igs_tex.render.native import native_available, native_unavailable_reason
from igs_tex.render.tiles import tile_lists_numpy

REPO = Path(__file__).resolve().parents[1]
FORMAT_MD = REPO / "docs" / "FORMAT.md"
REQUIRE = os.environ.get("IGS_REQUIRE_NATIVE") == "1"

if native_available():
    from igs_tex import _native
HAVE_DECODER = native_available() and hasattr(_native, "IgsDecoder")
NOT_BUILT = (
    "igs_tex._native with the C decoder IS NOT BUILT -- the C++ decoder is untested! "
    f"({native_unavailable_reason() or 'extension predates IgsDecoder'}); rebuild with "
    "`python setup.py build_ext --inplace`"
)
needs_decoder = pytest.mark.skipif(not HAVE_DECODER, reason=NOT_BUILT)

TOL = 1e-6  # C++ vs the torch reference: exp/sin/cos differ by an ulp, nothing else may

REPORT: dict[str, object] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_report():
    yield
    if REPORT:
        print("\n--- decoder measurements ---")
        for k in sorted(REPORT):
            print(f"{k}: {REPORT[k]}")


def test_decoder_built():
    if HAVE_DECODER:
        return
    if REQUIRE:
        pytest.fail(NOT_BUILT)
    pytest.skip(NOT_BUILT)


def error_name(exc: BaseException) -> str:
    m = re.match(r"(IGS_ERR_\w+) ", str(exc))
    assert m, f"error message does not start with the error code: {exc}"
    return m.group(1)


# ----------------------------------------------------------------------------------------------
# Inputs: one real bake, and legal files derived from it for the edge cases


def as_version_1(igs, tile: int = 16) -> tuple[IgsFile, bytes]:
    """A bake of either format version as a version 1 file of its decoded parameters."""
    data = igsfile_as_version_1(igs, tile).to_bytes()
    return from_bytes(data), data


@pytest.fixture(scope="module")
def walnut(tmp_path_factory) -> tuple[IgsFile, bytes]:
    # 75 x 53: neither side a multiple of the tile (16) nor of 8. The baker may write version 2
    # (config.DEFAULT_FORMAT); these tests are version 1's, so the bake is stored as version 1.
    igs, data = bake_crop(
        MATERIALS / "walnut_wood", tmp_path_factory.mktemp("walnut"), (300, 200, 375, 253), gaussians=120, steps=60
    )
    return (igs, data) if igs.version == 1 and igs.tile == 16 else as_version_1(igs)


def derive(igs: IgsFile, **changes) -> tuple[IgsFile, bytes]:
    """A variant of igs through the validating writer and reader: only legal files here."""
    fields = dict(
        width=igs.width,
        height=igs.height,
        tile=igs.tile,
        k=igs.k,
        eps=igs.eps,
        channels=igs.channels,
        value_range=igs.value_range,
        colour_range=igs.colour_range,
        words=igs.words,
        tile_offsets=igs.tile_offsets,
        tile_indices=igs.tile_indices,
        metadata=igs.metadata,
    )
    fields.update(changes)
    if "tile" in changes or "words" in changes:
        tmp = IgsFile(**fields)
        p = tmp.params()
        off, idx = tile_lists_numpy(p["means"], p["inv_scale"], tmp.height, tmp.width, tmp.tile)
        fields.update(tile_offsets=off.astype(np.uint32), tile_indices=idx.astype(np.uint32))
    data = IgsFile(**fields).to_bytes()
    return from_bytes(data), data


def with_index32(igs: IgsFile) -> tuple[IgsFile, bytes]:
    """The same material behind 65600 filler Gaussians, so the file needs 32-bit indices and the
    real Gaussians have indices above 65535. The fillers sit on the image corner (0, 0) with the
    largest inverse scale: G is exactly 0 at every texel centre, so the decode must not change."""
    filler = np.zeros((65600, igs.words.shape[1]), dtype=np.uint32)
    filler[:, 1] = 0x7BFF << 16  # inv_scale_x = 65504 (high half of word 1)
    filler[:, 2] = 0x7BFF  # inv_scale_y = 65504 (low half of word 2)
    return derive(igs, words=np.concatenate([filler, igs.words]))


def with_empty_tiles(igs: IgsFile, tiles: list[int]) -> tuple[IgsFile, bytes]:
    off = igs.tile_offsets.astype(np.int64)
    lists = [igs.tile_indices[off[t] : off[t + 1]] for t in range(igs.tile_count)]
    for t in tiles:
        lists[t] = lists[t][:0]
    counts = np.array([len(x) for x in lists])
    return derive(
        igs,
        tile_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.uint32),
        tile_indices=np.concatenate(lists).astype(np.uint32),
    )


VARIANTS = ["bake", "k1", "k32", "tile7_k4", "tile13", "index32", "empty_tiles"]


@pytest.fixture(scope="module")
def variants(walnut) -> dict[str, tuple[IgsFile, bytes]]:
    igs, data = walnut
    return {
        "bake": walnut,
        "k1": derive(igs, k=1),
        "k32": derive(igs, k=32),
        "tile7_k4": derive(igs, tile=7, k=4),
        "tile13": derive(igs, tile=13),
        "index32": with_index32(igs),
        "empty_tiles": with_empty_tiles(igs, [0, 3, 7]),
    }


def as_version_2(igs: IgsFile, **options) -> bytes:
    """The version 2 file of igs's decoded parameters (igs_tex.format_v2.build_igs_v2)."""
    p = igs.params()
    return build_igs_v2(
        p["means"],
        p["theta"],
        p["inv_scale"],
        p["colour"],
        igs.width,
        igs.height,
        igs.channels,
        igs.value_range,
        metadata=igs.metadata,
        **{"k": igs.k, **options},
    ).to_bytes()


def native_forward(igs: IgsFile) -> np.ndarray:
    """The native training kernel's per-texel path on the file's parameters and stored lists."""
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


# ----------------------------------------------------------------------------------------------
# Decoding equals the references


@needs_decoder
@pytest.mark.parametrize("name", VARIANTS)
def test_decode_equals_python_reference(name, variants):
    igs, data = variants[name]
    got = _native.decode_igs_bytes(data)
    ref = decode_igs(igs)
    assert got.shape == (igs.height, igs.width, igs.channel_count) and got.dtype == np.float32
    err = float(np.abs(got - ref).max())
    REPORT[f"max |C++ - decode_igs| {name} (K={igs.k}, T={igs.tile}, {igs.index_bits}-bit)"] = f"{err:.2e}"
    assert err <= TOL, (name, err)
    # The native forward's per-texel path runs the same header functions in the same order.
    assert np.array_equal(got, native_forward(igs)), name


@needs_decoder
def test_derived_files_exercise_what_they_claim(variants, walnut):
    base = _native.decode_igs_bytes(walnut[1])
    igs32, data32 = variants["index32"]
    assert igs32.index_bits == 32 and int(igs32.tile_indices.max()) > 65535
    assert np.array_equal(_native.decode_igs_bytes(data32), base)
    # Tile 0 lists every filler: longer than the row decoder's scratch bound (1 << 20 G values
    # per row block), so its per-texel fallback runs too.
    assert int(np.diff(igs32.tile_offsets.astype(np.int64)).max()) * igs32.tile > 1 << 20
    igs, data = variants["empty_tiles"]
    out = _native.decode_igs_bytes(data)
    assert np.all(out[:16, :16] == 0) and np.any(out[16:32, :16] != 0)
    # Both per-texel paths: lists longer than K (selection) and at most K (all kept).
    lengths = np.diff(variants["k32"][0].tile_offsets.astype(np.int64))
    assert lengths.max() > 32 and lengths.min() <= 32, "K=32 must have lists both above and below K"
    assert (variants["k1"][0].k, variants["k32"][0].k) == (1, 32)
    assert not np.array_equal(_native.decode_igs_bytes(variants["k1"][1]), base)


@needs_decoder
def test_parameters_bit_exact(variants):
    for name in ("bake", "index32"):
        igs, data = variants[name]
        p = igs.params()
        want = np.concatenate([p["means"], p["theta"][:, None], p["inv_scale"], p["colour"]], axis=1)
        got = _native.IgsDecoder(data).gaussians()
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), name


def _format_md_example() -> tuple[bytes, list[list[str]]]:
    text = FORMAT_MD.read_text(encoding="utf-8")
    dump = text.split("The file (184 bytes):")[1].split("```")[1]
    data = bytes(int(b, 16) for line in dump.strip().splitlines() for b in line.split(":")[1].split())
    rows = re.findall(
        r"^\| +(\d) \| (0x[0-9a-f]{8}) \| (0x[0-9a-f]{8}) \| (0x[0-9a-f]{8}) \| "
        r"(0x[0-9a-f]{8}) \| (0x[0-9a-f]{8}) \| (0x[0-9a-f]{8}) \|$",
        text,
        re.M,
    )
    return data, [list(r[1:]) for r in rows]


@needs_decoder
def test_format_md_worked_example():
    # Written from the document alone: its bytes decode to its table's f32 bits.
    data, rows = _format_md_example()
    assert len(data) == 184 and len(rows) == 2
    d = _native.IgsDecoder(data)
    got = d.gaussians().view(np.uint32)
    assert [[f"0x{v:08x}" for v in row] for row in got] == rows
    info = d.info
    assert (info["width"], info["height"], info["channels"], info["tile"], info["k"]) == (24, 12, 1, 16, 10)
    assert info["semantic"] == [8] and info["index_bits"] == 16 and info["metadata"] == "{}"
    assert (info["version"], info["reach"]) == (1, 0)
    assert np.float32(info["eps"]).view(np.uint32) == 0x33D6BF95


@needs_decoder
def test_info_matches_the_file(walnut):
    igs, data = walnut
    info = _native.IgsDecoder(data).info
    codes = {
        "basecolor.r": 1,
        "basecolor.g": 2,
        "basecolor.b": 3,
        "normal.x": 4,
        "normal.y": 5,
        "normal.z": 6,
        "ao": 7,
        "roughness": 8,
        "metalness": 9,
        "other": 0,
    }
    assert info["semantic"] == [codes[c] for c in igs.channels]
    assert (info["width"], info["height"], info["channels"]) == (igs.width, igs.height, igs.channel_count)
    assert (info["gaussian_count"], info["index_count"]) == (igs.gaussian_count, len(igs.tile_indices))
    assert info["value_lo"] == igs.value_range[:, 0].tolist()
    assert info["value_hi"] == igs.value_range[:, 1].tolist()
    assert json.loads(info["metadata"]) == igs.metadata


@needs_decoder
def test_threads_do_not_change_bytes(variants):
    _, data = variants["tile7_k4"]
    d = _native.IgsDecoder(data)
    one = d.decode(threads=1)
    for threads in (0, 2, 3, 64):
        assert np.array_equal(d.decode(threads=threads), one), threads


@needs_decoder
def test_rect_and_texel_agree_with_the_image(variants, rng):
    igs, data = variants["tile13"]
    d = _native.IgsDecoder(data)
    full = d.decode()
    W, H = igs.width, igs.height
    rects = [
        (0, 0, W, H),
        (0, 0, 1, 1),
        (W - 1, H - 1, 1, 1),
        (5, 7, 30, 11),
        (12, 12, 2, 30),
        (W - 20, 0, 20, H),
        (3, 4, 0, 5),
    ]
    for x0, y0, w, h in rects:
        for threads in (1, 0):
            got = _native.decode_igs_rect(data, x0, y0, w, h, threads=threads)
            assert got.shape == (h, w, igs.channel_count)
            assert np.array_equal(got, full[y0 : y0 + h, x0 : x0 + w]), (x0, y0, w, h)
    xy = np.stack([rng.integers(0, W, 500), rng.integers(0, H, 500)], axis=1)
    assert np.array_equal(d.texels(xy), full[xy[:, 1], xy[:, 0]])
    assert np.array_equal(d.texel(W - 1, 0), full[0, W - 1])
    # Texel centres through the point sampler are the same evaluation.
    centres = (xy + 0.5).astype(np.float32)
    assert np.array_equal(d.sample_points(centres), full[xy[:, 1], xy[:, 0]])


@needs_decoder
def test_point_sampling_matches_reference(variants, rng):
    igs, data = variants["tile7_k4"]
    d = _native.IgsDecoder(data)
    p = (rng.uniform(0, 1, (3000, 2)) * [igs.width, igs.height]).astype(np.float32)
    p[:4] = [[0, 0], [igs.width, igs.height], [igs.width, 0], [0.25, igs.height]]  # edges
    err = float(np.abs(d.sample_points(p) - sh.reference_points(igs, p)).max())
    REPORT["max |C++ - reference| point sampling (3000 points)"] = f"{err:.2e}"
    assert err <= 1e-5


@needs_decoder
@pytest.mark.parametrize("mode", [0, 1])
def test_uv_addressing_matches_shaders(mode, walnut, rng):
    igs, data = walnut
    d = _native.IgsDecoder(data)
    uv = rng.uniform(-2.5, 3.5, (4000, 2)).astype(np.float32)
    edges = np.array(
        [[0, 0], [1, 1], [-1e-9, -1e-9], [1 - 1e-9, 0.5], [-1, 2], [0.5 / igs.width, 0.2], [1e-30, -3e-8], [7, -7]],
        dtype=np.float32,
    )
    uv = np.concatenate([edges, uv])
    p = sh.texel_coords(uv, mode, igs.width, igs.height)
    got = d.sample_uv(uv, mode=mode)
    # The addressing is f32 arithmetic as the shaders do it: bit-identical point, same result.
    assert np.array_equal(got, d.sample_points(p))
    err = float(np.abs(got - sh.reference_points(igs, p)).max())
    REPORT[f"max |C++ - reference| uv sampling mode {mode}"] = f"{err:.2e}"
    assert err <= 1e-5
    if mode == 1:  # clamp: anything left of / above the first texel centre is texel 0
        assert np.array_equal(d.sample_uv(np.array([[-5, -5], [0, 0]], np.float32), 1)[0], d.texel(0, 0))


@needs_decoder
def test_footprint_sampling_matches_reference(variants, rng):
    igs, data = variants["bake"]
    d = _native.IgsDecoder(data)
    n = 2000
    p = (rng.uniform(0, 1, (n, 2)) * [igs.width, igs.height]).astype(np.float32)
    # Random PSD covariances from random uv derivatives, minification up to ~8 texels per pixel.
    jac = rng.normal(0, 1, (n, 2, 2)) * rng.uniform(0.1, 8, (n, 1, 1))
    F = (np.einsum("nij,nkj->nik", jac, jac) / 12.0)[:, [0, 0, 1], [0, 1, 1]].astype(np.float32)
    worst = 0.0
    for min_k, keep_peak in ((0, False), (32, False), (0, True)):
        got = d.sample_footprint(p, F, texel_space=True, min_k=min_k, keep_peak=keep_peak)
        ref = sh.reference_points(igs, p, F=F, peak_scale=not keep_peak, k=max(igs.k, min_k))
        err = float(np.abs(got - ref).max())
        REPORT[f"max |C++ - float64 reference| footprint min_k={min_k} keep_peak={keep_peak}"] = f"{err:.2e}"
        worst = max(worst, err)
        assert not np.array_equal(got, d.sample_points(p))
    assert worst <= 2e-5
    # F = 0 is point sampling, up to the different (rotated-frame) algebra's rounding.
    zero = d.sample_footprint(p, np.zeros(3, np.float32), texel_space=True)
    assert float(np.abs(zero - d.sample_points(p)).max()) <= 1e-5
    # uv entry point = addressing + the texel-space one.
    uv = rng.uniform(-1, 2, (300, 2)).astype(np.float32)
    for mode in (0, 1):
        assert np.array_equal(
            d.sample_footprint(uv, F[:300], mode=mode),
            d.sample_footprint(sh.texel_coords(uv, mode, igs.width, igs.height), F[:300], texel_space=True),
        )


@needs_decoder
def test_footprint_helpers_follow_the_shader():
    data, _ = _format_md_example()
    d = _native.IgsDecoder(data)  # 24 x 12
    dudx, dvdx, dudy, dvdy = 0.1, -0.02, 0.03, 0.2
    jx = np.float32([dudx * 24, dvdx * 12])
    jy = np.float32([dudy * 24, dvdy * 12])
    want = np.float32(1 / 12) * np.float32(
        [jx[0] ** 2 + jy[0] ** 2, jx[0] * jx[1] + jy[0] * jy[1], jx[1] ** 2 + jy[1] ** 2]
    )
    np.testing.assert_allclose(d.footprint_from_uv_derivatives(dudx, dvdx, dudy, dvdy), want, rtol=1e-6)
    for level in (0, 1, 2.5, 3):
        s = 2.0**level
        np.testing.assert_allclose(
            _native.IgsDecoder.footprint_for_mip_level(level),
            d.footprint_from_uv_derivatives(s / 24, 0, 0, s / 12),
            rtol=1e-6,
        )
    with pytest.raises(ValueError, match="IGS_ERR_BAD_ARGUMENT"):
        _native.IgsDecoder.footprint_for_mip_level(float("nan"))


@needs_decoder
def test_footprint_beats_point_sampling_on_mips(walnut):
    # DESIGN.md: Sigma_i + F filters minified sampling without a mip chain. Against box mips of
    # the decoded stack, footprint samples at mip texel centres must beat point samples there.
    igs, data = walnut
    d = _native.IgsDecoder(data)
    full = d.decode()
    for level in (2, 3):
        s = 2**level
        h, w = igs.height // s * s, igs.width // s * s
        mip = sh.box_mip(full[:h, :w], s)
        jj, ii = np.meshgrid(np.arange(h // s), np.arange(w // s), indexing="ij")
        p = np.stack([(ii.reshape(-1) + 0.5) * s, (jj.reshape(-1) + 0.5) * s], 1).astype(np.float32)
        F = np.float32(_native.IgsDecoder.footprint_for_mip_level(level))
        foot = sh.psnr(d.sample_footprint(p, F, texel_space=True), mip.reshape(-1, igs.channel_count))
        point = sh.psnr(d.sample_points(p), mip.reshape(-1, igs.channel_count))
        REPORT[f"PSNR vs box mip 1/{s}: footprint / point"] = f"{foot:.1f} / {point:.1f} dB"
        # 1/8 is where point sampling aliases clearly (measured 50.3 vs 48.8 dB on this bake); at
        # 1/4 the Gaussian footprint (F = 4^level / 12 I) and a box mip differ about as much as
        # point samples do (measured 53.0 vs 53.6 dB), so there it only must not lose much.
        if level == 3:
            assert foot > point + 1.0, (level, foot, point)
        else:
            assert foot > point - 1.0, (level, foot, point)


@needs_decoder
def test_value_range_to_real_units(walnut):
    igs, _ = walnut
    vr = np.tile(np.float32([[-1.0, 1.0]]), (igs.channel_count, 1))
    vr[0] = [0.25, 3.0]
    igs2, data = derive(igs, value_range=vr)
    d = _native.IgsDecoder(data)
    v = d.decode()
    lo, hi = igs2.value_range[:, 0], igs2.value_range[:, 1]
    want = lo + v * (hi - lo)  # float32, one rounding per step (FORMAT.md)
    assert np.array_equal(d.to_real(v), want)
    assert d.info["value_lo"][0] == 0.25


@needs_decoder
def test_bad_arguments_are_refused(walnut):
    igs, data = walnut
    d = _native.IgsDecoder(data)
    W, H = igs.width, igs.height
    bad = [
        lambda: d.decode_rect(0, 0, W + 1, 1),
        lambda: d.decode_rect(W, 0, 1, 1),
        lambda: d.decode_rect(1, H - 1, 1, 2),
        lambda: d.decode_rect(2**32 - 1, 0, 2, 1),
        lambda: d.texel(W, 0),
        lambda: d.texel(0, H),
        lambda: d.texels(np.array([[0, 0], [-1, 0]])),
        lambda: d.sample_points(np.float32([[W + 0.01, 1]])),
        lambda: d.sample_points(np.float32([[-0.01, 1]])),
        lambda: d.sample_points(np.float32([[np.nan, 1]])),
        lambda: d.sample_uv(np.float32([[np.inf, 0]])),
        lambda: d.sample_uv(np.float32([[0, 0]]), mode=2),
        lambda: d.sample_footprint(np.float32([[1, 1]]), np.float32([-1, 0, 1]), texel_space=True),
        lambda: d.sample_footprint(np.float32([[1, 1]]), np.float32([1, 2, 1]), texel_space=True),
        lambda: d.sample_footprint(np.float32([[1, 1]]), np.float32([1, np.nan, 1])),
        lambda: d.sample_footprint(np.float32([[1, 1]]), np.float32([1e30, 0, 1e30])),
    ]
    for i, f in enumerate(bad):
        with pytest.raises(ValueError) as info:
            f()
        assert error_name(info.value) == "IGS_ERR_BAD_ARGUMENT", i


# ----------------------------------------------------------------------------------------------
# Rejection of malformed files

# The Python reader's message for each corruption of tests/test_igsfile.py, and the C error the
# same defect must give (FORMAT.md "Validation", step by step).
CODE_FOR_MESSAGE = {
    "truncated": "IGS_ERR_TRUNCATED",
    "beyond the end": "IGS_ERR_TRUNCATED",
    "end at byte": "IGS_ERR_BAD_LAYOUT",
    "multiple of 16": "IGS_ERR_BAD_LAYOUT",
    "overlaps": "IGS_ERR_BAD_LAYOUT",
    "overlaps the header": "IGS_ERR_BAD_LAYOUT",
    "magic": "IGS_ERR_BAD_MAGIC",
    "version": "IGS_ERR_BAD_VERSION",
    "header size": "IGS_ERR_BAD_HEADER",
    "CRC mismatch": "IGS_ERR_BAD_CRC",
    "channel count 0": "IGS_ERR_BAD_HEADER",
    "channel count 17": "IGS_ERR_BAD_HEADER",
    "tile size 0": "IGS_ERR_BAD_HEADER",
    "tile size 257": "IGS_ERR_BAD_HEADER",
    "K 0": "IGS_ERR_BAD_HEADER",
    "K 33": "IGS_ERR_BAD_HEADER",
    "image size": "IGS_ERR_BAD_HEADER",
    "epsilon": "IGS_ERR_BAD_HEADER",
    "flags": "IGS_ERR_BAD_HEADER",
    "words per gaussian": "IGS_ERR_BAD_HEADER",
    "index bits": "IGS_ERR_BAD_HEADER",
    "tile count 13": "IGS_ERR_BAD_HEADER",
    "tile count": "IGS_ERR_BAD_HEADER",
    "gaussian count": "IGS_ERR_BAD_HEADER",
    "index count": "IGS_ERR_BAD_HEADER",
    "gaussian buffer section": "IGS_ERR_BAD_SECTION_SIZE",
    "tile indices section": "IGS_ERR_BAD_SECTION_SIZE",
    "tile offsets section": "IGS_ERR_BAD_SECTION_SIZE",
    "unknown semantic code 10": "IGS_ERR_BAD_CHANNEL_TABLE",
    "unknown semantic code 255": "IGS_ERR_BAD_CHANNEL_TABLE",
    "reserved": "IGS_ERR_BAD_CHANNEL_TABLE",
    "value range": "IGS_ERR_BAD_CHANNEL_TABLE",
    "colour range": "IGS_ERR_BAD_CHANNEL_TABLE",
    "subnormal": "IGS_ERR_BAD_CHANNEL_TABLE",
    "subnormal decode step": "IGS_ERR_BAD_CHANNEL_TABLE",
    "wider": "IGS_ERR_BAD_CHANNEL_TABLE",
    "not valid JSON": "IGS_ERR_BAD_METADATA",
    "UTF-8": "IGS_ERR_BAD_METADATA",
    "not an object": "IGS_ERR_BAD_METADATA",
    "strict JSON": "IGS_ERR_BAD_METADATA",
    "inverse scale": "IGS_ERR_BAD_GAUSSIAN",
    "padding half": "IGS_ERR_BAD_GAUSSIAN",
    "not 0": "IGS_ERR_BAD_TILE_LIST",
    "decrease": "IGS_ERR_BAD_TILE_LIST",
    "last tile offset": "IGS_ERR_BAD_TILE_LIST",
    "only 40 Gaussians": "IGS_ERR_INDEX_OUT_OF_RANGE",
    "not strictly ascending": "IGS_ERR_BAD_TILE_LIST",
}


# A version 1 file whose version field says 2 goes to the version 2 readers, which both refuse
# its header size (84, not 80): a header error in C, as a wrong header size is in version 1.
CODE_FOR_NAME = {"bad_version_2": "IGS_ERR_BAD_HEADER"}


def _corruptions():
    import test_igsfile

    return test_igsfile.CORRUPTIONS, test_igsfile.BASE_BYTES


@needs_decoder
@pytest.mark.parametrize("name", sorted(_corruptions()[0]))
def test_rejects_corrupt_file_like_the_python_reader(name):
    corruptions, base = _corruptions()
    corrupt, expected = corruptions[name]
    data = corrupt(base)
    with pytest.raises(IgsFormatError):
        from_bytes(data)
    with pytest.raises(ValueError) as info:
        _native.IgsDecoder(data)
    message = str(info.value)
    assert error_name(info.value) == CODE_FOR_NAME.get(name, CODE_FOR_MESSAGE[expected]), message
    assert expected in message, message  # the detail names the same defect as the Python reader
    assert "\n" not in message


def recrc(data: bytes) -> bytes:
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))


def put(data: bytes, offset: int, fmt: str, value, fix_crc: bool = True) -> bytes:
    out = bytearray(data)
    struct.pack_into("<" + fmt, out, offset, value)
    return recrc(bytes(out)) if fix_crc else bytes(out)


def section(data: bytes, i: int) -> tuple[int, int]:
    return struct.unpack_from("<II", data, 44 + 8 * i)


def expect_error(data: bytes, code: str, phrase: str | None = None) -> None:
    with pytest.raises(ValueError) as info:
        _native.IgsDecoder(data)
    assert error_name(info.value) == code, str(info.value)
    if phrase:
        assert phrase in str(info.value), str(info.value)
    with pytest.raises(IgsFormatError):
        from_bytes(data)


@needs_decoder
@pytest.mark.parametrize("name", ["bake", "index32"])
def test_truncation_at_every_length(name, variants):
    _, data = variants[name]
    n = len(data)
    lengths = sorted(set(range(0, min(n, 400))) | set(range(0, n, max(1, n // 997))) | {n - 5, n - 4, n - 1})
    for cut in lengths:
        with pytest.raises(ValueError) as info:
            _native.IgsDecoder(data[:cut])
        assert error_name(info.value) == "IGS_ERR_TRUNCATED", (cut, str(info.value))
    REPORT[f"truncations refused ({name}, {n} bytes)"] = len(lengths)


@needs_decoder
def test_rejects_targeted_corruptions_of_a_real_bake(variants):
    for name in ("bake", "index32"):
        igs, data = variants[name]
        n, m, tiles = igs.gaussian_count, len(igs.tile_indices), igs.tile_count
        wpg = igs.words_per_gaussian
        (g_off, g_len), (o_off, _), (i_off, i_len) = section(data, 2), section(data, 3), section(data, 4)
        isz = igs.index_bits // 8
        off = igs.tile_offsets.astype(np.int64)
        t = int(np.flatnonzero(np.diff(off) >= 2)[0])  # a tile with at least two entries
        expect_error(put(data, 0, "4s", b"IGSX"), "IGS_ERR_BAD_MAGIC")
        expect_error(put(data, 0, "4s", b"PNG\0", fix_crc=False), "IGS_ERR_BAD_MAGIC")
        expect_error(put(data, 4, "H", 3), "IGS_ERR_BAD_VERSION")
        expect_error(put(data, 4, "H", 2), "IGS_ERR_BAD_HEADER", "version 2 has 80")
        expect_error(put(data, 4, "H", 0, fix_crc=False), "IGS_ERR_BAD_VERSION")
        for pos in (90, g_off + 5, o_off + 1, i_off, len(data) - 1):  # payload flips, CRC stale
            b = bytearray(data)
            b[pos] ^= 0x40
            expect_error(bytes(b), "IGS_ERR_BAD_CRC", "CRC mismatch")
        # Tile offsets beyond M, decreasing, not starting at 0, not ending at M (CRC refreshed
        # so the checks behind it are reached).
        expect_error(put(data, o_off + 4 * (t + 1), "I", m + 1000), "IGS_ERR_BAD_TILE_LIST", "decrease")
        expect_error(put(data, o_off + 4 * (t + 1), "I", 0xFFFFFFFF), "IGS_ERR_BAD_TILE_LIST")
        expect_error(put(data, o_off + 4 * tiles, "I", m + 1), "IGS_ERR_BAD_TILE_LIST", "last tile offset")
        expect_error(put(data, o_off, "I", 1), "IGS_ERR_BAD_TILE_LIST", "not 0")
        k = int(np.flatnonzero(off[:-1] > 0)[0])  # offsets[k] > 0 = offsets[k - 1] + something
        expect_error(put(data, o_off + 4 * (k + 1), "I", 0), "IGS_ERR_BAD_TILE_LIST", "decrease")
        # Tile indices >= N, and lists out of order.
        fmt = "H" if isz == 2 else "I"
        for j, value in ((0, n), (m - 1, n), (m // 2, (1 << (8 * isz)) - 1)):
            expect_error(put(data, i_off + isz * j, fmt, value), "IGS_ERR_INDEX_OUT_OF_RANGE", f"only {n} Gaussians")
        j = int(off[t])
        first = struct.unpack_from("<" + fmt, data, i_off + isz * j)[0]
        expect_error(put(data, i_off + isz * (j + 1), fmt, first), "IGS_ERR_BAD_TILE_LIST", "not strictly ascending")
        # Counts whose sections would run beyond the buffer.
        expect_error(put(data, 28, "I", n + 1), "IGS_ERR_BAD_SECTION_SIZE", "gaussian buffer section")
        grown = put(put(data, 28, "I", n + 1, fix_crc=False), 64, "I", g_len + 4 * wpg)
        expect_error(grown, "IGS_ERR_BAD_LAYOUT")  # the Gaussian buffer now overlaps the offsets
        # 64 more index entries and a section long enough for them: it runs past the buffer.
        expect_error(
            put(put(data, 36, "I", m + 64, fix_crc=False), 80, "I", i_len + 64 * isz),
            "IGS_ERR_TRUNCATED",
            "tile indices end",
        )
        expect_error(put(data, 36, "I", m + 2), "IGS_ERR_BAD_SECTION_SIZE", "tile indices section")
        expect_error(put(data, 80, "I", 0xFFFFFFF0), "IGS_ERR_TRUNCATED")
        expect_error(put(data, 76, "I", 0xFFFFFFF0), "IGS_ERR_TRUNCATED", "beyond the end")
        expect_error(put(data, 72, "I", 0x7FFFFFF0), "IGS_ERR_TRUNCATED", "tile offsets end")
        expect_error(put(data, 72, "I", section(data, 3)[1] + 16), "IGS_ERR_BAD_LAYOUT", "overlaps the tile offsets")
        expect_error(put(data, 28, "I", 0xFFFFFFFF), "IGS_ERR_BAD_HEADER", "gaussian count")
        expect_error(put(data, 8, "I", 0xFFFFFFFF), "IGS_ERR_BAD_HEADER", "image size")
    for empty in (b"", b"\0"):
        expect_error(empty, "IGS_ERR_TRUNCATED")


@needs_decoder
def test_differential_fuzz_against_the_python_reader(walnut):
    """Random mutations: the C decoder accepts exactly what the Python reader accepts, and what
    both accept decodes like the native forward on the Python-parsed parameters."""
    _, data = walnut
    rng = np.random.default_rng(99)
    outcome = {"accepted": 0, "rejected": 0}
    for i in range(600):
        b = bytearray(data)
        kind = i % 4
        if kind == 0:  # byte flips anywhere, CRC refreshed so the checks behind it run
            for _ in range(int(rng.integers(1, 4))):
                b[int(rng.integers(0, len(b) - 4))] ^= int(rng.integers(1, 256))
            mutated = recrc(bytes(b))
        elif kind == 1:  # a random header / section-table half-word
            struct.pack_into("<H", b, int(rng.integers(0, 42)) * 2, int(rng.integers(0, 65536)))
            mutated = recrc(bytes(b))
        elif kind == 2:  # single-bit flips in the payload sections, CRC refreshed
            pos = int(rng.integers(section(data, 2)[0], len(b) - 4))
            b[pos] ^= 1 << int(rng.integers(0, 8))
            mutated = recrc(bytes(b))
        else:  # truncation, sometimes with a CRC that is valid for the shorter buffer
            cut = int(rng.integers(0, len(b)))
            mutated = bytes(b[:cut])
            if cut > 8 and rng.random() < 0.5:
                mutated = recrc(mutated)
        try:
            igs = from_bytes(mutated)
        except IgsFormatError:
            igs = None
        try:
            d = _native.IgsDecoder(mutated)
        except ValueError as exc:
            assert igs is None, f"mutation {i}: C refused what Python accepts: {exc}"
            outcome["rejected"] += 1
            continue
        assert igs is not None, f"mutation {i}: C accepted what Python refuses"
        outcome["accepted"] += 1
        assert np.array_equal(d.decode(), native_forward(igs)), i
    REPORT["differential fuzz (600 mutations)"] = outcome
    assert outcome["accepted"] > 30 and outcome["rejected"] > 200, outcome


# ----------------------------------------------------------------------------------------------
# A C program against the plain library (no Python, no torch)

GCC = shutil.which("gcc")
GXX = shutil.which("g++")
CMAKE = shutil.which("cmake")
TOOLCHAIN_MISSING = (
    "gcc and cmake (or g++) are needed to build the C decoder library and "
    "tests/c/decode_main.c: install build-essential and cmake"
)


def toolchain_or_skip() -> None:
    if GCC and (CMAKE or GXX):
        return
    if REQUIRE:
        pytest.fail(TOOLCHAIN_MISSING)
    pytest.skip(TOOLCHAIN_MISSING)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def c_library(tmp_path_factory) -> dict[str, Path]:
    """native/CMakeLists.txt built and installed into a temporary prefix (or, without cmake,
    native/decoder/*.cpp compiled by g++ into a static library)."""
    toolchain_or_skip()
    tmp = tmp_path_factory.mktemp("cdecoder")
    prefix = tmp / "prefix"
    if CMAKE:
        run([CMAKE, "-S", REPO / "native", "-B", tmp / "build", "-DCMAKE_BUILD_TYPE=Release"])
        run([CMAKE, "--build", tmp / "build", "-j", "2"])
        run([CMAKE, "--install", tmp / "build", "--prefix", prefix])
        lib = next((prefix / d) for d in ("lib", "lib64") if (prefix / d / "libigs_decoder.a").exists())
        return {"include": prefix / "include", "static": lib / "libigs_decoder.a", "libdir": lib}
    (prefix / "lib").mkdir(parents=True)
    objs = []
    for src in sorted((REPO / "native" / "decoder").glob("*.cpp")):
        objs.append(tmp / f"{src.stem}.o")
        run([GXX, "-std=c++17", "-O2", "-ffp-contract=off", f"-I{REPO / 'native/include'}", "-c", src, "-o", objs[-1]])
    run(["ar", "rcs", prefix / "lib" / "libigs_decoder.a", *objs])
    return {"include": REPO / "native" / "include", "static": prefix / "lib" / "libigs_decoder.a", "libdir": None}


@needs_decoder
def test_c_program_decodes_like_python(c_library, variants, tmp_path):
    exe = tmp_path / "decode_main"
    # Plain C99 with warnings as errors: the header must be valid C, not only C++.
    run(
        [
            GCC,
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-pedantic",
            "-Werror",
            "-O2",
            f"-I{c_library['include']}",
            REPO / "tests/c/decode_main.c",
            c_library["static"],
            "-lstdc++",
            "-lpthread",
            "-lm",
            "-o",
            exe,
        ]
    )
    cases = [(name, *variants[name]) for name in ("bake", "index32", "tile7_k4")]
    # A version 2 file of the same bake (tests/test_decoder_v2.py has the rest of version 2).
    v2 = as_version_2(variants["bake"][0], tile=16)
    cases.append(("v2_tile16", from_bytes(v2), v2))
    for name, igs, data in cases:
        src = tmp_path / f"{name}.igs"
        src.write_bytes(data)
        raw = tmp_path / f"{name}.raw"
        r = run([exe, src, raw, "2"])
        assert r.stdout.split() == [
            str(v) for v in (igs.width, igs.height, igs.channel_count, igs.gaussian_count, igs.k)
        ]
        got = np.fromfile(raw, dtype=np.float32).reshape(igs.height, igs.width, igs.channel_count)
        assert np.array_equal(got, _native.decode_igs_bytes(data)), name
        err = float(np.abs(got - decode_igs(igs)).max())
        REPORT[f"max |C program - decode_igs| {name}"] = f"{err:.2e}"
        assert err <= TOL
    # A corrupt file: non-zero exit and the error named.
    bad = tmp_path / "bad.igs"
    bad.write_bytes(variants["bake"][1][:-7])
    r = subprocess.run([str(exe), str(bad), str(tmp_path / "bad.raw")], capture_output=True, text=True)
    assert r.returncode == 1 and "IGS_ERR_TRUNCATED" in r.stderr, r.stderr


def test_c_library_shared_build_links(c_library, tmp_path):
    if c_library["libdir"] is None:
        reason = "cmake not found: native/CMakeLists.txt (the shared library) is untested"
        if REQUIRE:
            pytest.fail(reason)
        pytest.skip(reason)
    libdir = c_library["libdir"]
    assert (libdir / "libigs_decoder.so").exists() and (c_library["include"] / "igs_decoder.h").exists()
    src = tmp_path / "probe.c"
    src.write_text(
        '#include "igs_decoder.h"\n#include <stdio.h>\n#include <string.h>\n'
        "int main(void) {\n"
        "    igs_decoder* d = (igs_decoder*)1;\n"
        '    igs_error e = igs_decoder_create("IGSF", 4, &d);\n'
        '    printf("%s\\n", igs_error_string(e));\n'
        "    return e == IGS_ERR_TRUNCATED && d == NULL ? 0 : 1;\n}\n"
    )
    exe = tmp_path / "probe"
    run(
        [
            GCC,
            "-std=c99",
            "-Wall",
            "-Werror",
            f"-I{c_library['include']}",
            src,
            f"-L{libdir}",
            "-ligs_decoder",
            f"-Wl,-rpath,{libdir}",
            "-o",
            exe,
        ]
    )
    r = run([exe])
    assert r.stdout.startswith("IGS_ERR_TRUNCATED")


def test_cmake_consumer_finds_the_installed_package(c_library, variants, tmp_path):
    """find_package(igs_decoder) against the installed prefix, as native/README.md documents it:
    the consumer project builds decode_main.c with both targets and they decode like Python."""
    if c_library["libdir"] is None:
        reason = "cmake not found: the CMake package config is untested"
        if REQUIRE:
            pytest.fail(reason)
        pytest.skip(reason)
    prefix = c_library["libdir"].parent
    build = tmp_path / "consumer"
    run([CMAKE, "-S", REPO / "tests/c/cmake_consumer", "-B", build, f"-DCMAKE_PREFIX_PATH={prefix}"])
    run([CMAKE, "--build", build, "-j", "2"])
    igs, data = variants["bake"]
    src = tmp_path / "bake.igs"
    src.write_bytes(data)
    for exe in ("decode_main", "decode_main_shared"):
        raw = tmp_path / f"{exe}.raw"
        r = run([build / exe, src, raw, "1"], env={**os.environ, "LD_LIBRARY_PATH": str(c_library["libdir"])})
        assert r.stdout.split()[:3] == [str(igs.width), str(igs.height), str(igs.channel_count)]
        got = np.fromfile(raw, dtype=np.float32).reshape(igs.height, igs.width, igs.channel_count)
        assert np.array_equal(got, _native.decode_igs_bytes(data)), exe
