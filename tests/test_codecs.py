"""BCn / ASTC baselines on real textures, the KTX2 container, and the iso-bitrate sweep.

PSNR floors were measured on the top-left 256x256 crop of walnut_wood with etcpak 0.9.15,
texture2ddecoder 1.0.6 and astc-encoder-py 0.1.12 (astcenc thorough) and set about 1 dB
below, so an encoder or packing regression fails loudly while an encoder update that moves
quality by a few tenths does not.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import MATERIALS

from igs_tex import IgsError
from igs_tex.codecs import codec_versions, decode, encode, get_format
from igs_tex.codecs.formats import FORMATS, pad_to_blocks
from igs_tex.codecs.isobitrate import bilinear_upsample, box_downsample, rd_points
from igs_tex.codecs.ktx2 import IDENTIFIER, Ktx2Texture, ktx2_bytes, parse_ktx2, read_ktx2, write_ktx2
from igs_tex.codecs.packing import SCHEMES, Scheme, get_scheme, pack_material, unpack_material, write_ktx2_files
from igs_tex.material import load_material
from igs_tex.metrics import normal_angular_error, psnr

CROP = 256


@pytest.fixture(scope="module")
def walnut():
    stack = load_material(MATERIALS / "walnut_wood")
    return dataclasses.replace(stack, data=np.ascontiguousarray(stack.data[:CROP, :CROP]))


def _group(stack, name):
    return stack.data[..., stack.group_slices()[name]]


def _psnr_only(decoded, target, groups):
    # SSIM on every sweep point would dominate the test time; PSNR is what these tests compare.
    out = {g: {"psnr": psnr(decoded[..., idx], target[..., idx])} for g, idx in groups.items()}
    out["all"] = {"psnr": psnr(decoded, target)}
    return out


def _gradient(h, w, c, seed=0):
    """A smooth image with a little texture: every codec should do well on it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    chans = [0.5 + 0.4 * np.sin(2.0 * x + 3.0 * y + k) for k in range(c)]
    img = np.stack(chans, axis=-1) + 0.01 * rng.standard_normal((h, w, c))
    return np.clip(img, 0, 1)


# ----------------------------------------------------------------------------- versions


def test_codec_versions_names_every_package_and_the_settings():
    v = codec_versions()
    for dist in ("etcpak", "texture2ddecoder", "astc-encoder-py", "flip-evaluator"):
        assert isinstance(v[dist], str) and v[dist][0].isdigit(), (dist, v[dist])
    assert v["settings"]["astc_quality_preset"] == "thorough"


# ----------------------------------------------------------------------------- round trips


def test_base_colour_bc7_beats_bc1_and_both_clear_their_floors(walnut):
    base = _group(walnut, "basecolor")
    p_bc1 = psnr(decode(encode("bc1", base, srgb=True)) / 255.0, base)
    p_bc7 = psnr(decode(encode("bc7", base, srgb=True)) / 255.0, base)
    assert p_bc1 > 34.0  # measured 34.98
    assert p_bc7 > 42.0  # measured 42.86
    assert p_bc7 > p_bc1 + 5.0


def test_astc_quality_falls_with_block_size(walnut):
    base = _group(walnut, "basecolor")
    floors = {(4, 4): 42.0, (6, 6): 36.0, (8, 8): 33.5, (12, 12): 31.0}  # measured 42.91 37.13 34.44 31.86
    got = {}
    for (bw, bh), floor in floors.items():
        enc = encode(f"astc{bw}x{bh}", base, srgb=True)
        assert len(enc.data) == 16 * (-(-CROP // bw)) * (-(-CROP // bh))
        got[bw] = psnr(decode(enc) / 255.0, base)
        assert got[bw] > floor, (bw, got[bw])
    assert got[4] > got[6] > got[8] > got[12], got


def test_bc5_normals_beat_bc1_normals(walnut):
    bc5 = unpack_material(pack_material(walnut, Scheme("t", "bc1", "bc5", "bc4")))
    bc1 = unpack_material(pack_material(walnut, Scheme("t", "bc1", "bc1", "bc4")))
    nrm = _group(walnut, "normal")
    idx = walnut.group_slices()["normal"]
    p_bc5, p_bc1 = psnr(bc5[..., idx], nrm), psnr(bc1[..., idx], nrm)
    assert p_bc5 > 47.0  # measured 48.15 (X, Y stored, Z rebuilt)
    assert p_bc1 > 37.5  # measured 38.39 (X, Y, Z as RGB)
    assert p_bc5 > p_bc1 + 5.0
    assert normal_angular_error(bc5[..., idx], nrm) < 0.8  # measured 0.66 degrees


def test_astc_normal_mode_and_orm(walnut):
    packed = pack_material(walnut, "astc4x4")
    roles = {t.role: t for t in packed.textures}
    assert set(roles) == {"basecolor", "normal", "orm"}
    assert roles["normal"].encoded.normal_mode and roles["normal"].encoded.channels == 2
    assert roles["basecolor"].encoded.srgb and not roles["orm"].encoded.srgb
    out = unpack_material(packed)
    g = walnut.group_slices()
    assert psnr(out[..., g["normal"]], walnut.data[..., g["normal"]]) > 49.0  # measured 49.92
    assert psnr(out[..., g["roughness"]], walnut.data[..., g["roughness"]]) > 52.5  # measured 53.68
    # Rebuilt Z gives unit vectors, as a shader would see them.
    n = out[..., g["normal"]] * 2 - 1
    assert np.allclose(np.linalg.norm(n, axis=-1), 1.0, atol=0.02)


def test_bc4_orm_per_channel(walnut):
    packed = pack_material(walnut, "bc1-bc4")
    roles = [t.role for t in packed.textures]
    assert roles == ["basecolor", "normal", "roughness", "metalness"]  # walnut has no AO
    out = unpack_material(packed)
    r = walnut.group_slices()["roughness"]
    assert psnr(out[..., r], walnut.data[..., r]) > 42.5  # measured 43.38
    m = walnut.group_slices()["metalness"]
    assert np.array_equal(out[..., m], walnut.data[..., m])  # a constant map survives exactly


@pytest.mark.parametrize("fmt", ["bc1", "bc7", "astc4x4", "astc6x6"])
def test_pure_red_stays_red(fmt):
    """texture2ddecoder returns BGRA: a missed swap turns red into blue."""
    red = np.zeros((8, 8, 3))
    red[..., 0] = 1.0
    out = decode(encode(fmt, red))
    # BC7 gives 254, not 255: bc7enc's mode 6 shares one p-bit between R=255 and G=B=0,
    # and an error of 1 in R is cheaper than 1 in both G and B.
    assert (out[..., 0] >= 250).all() and (out[..., 1:] <= 5).all(), out[0, 0]


def test_two_and_one_channel_formats_keep_their_channels():
    img = np.zeros((8, 8, 2), dtype=np.uint8)
    img[..., 0], img[..., 1] = 200, 50
    assert tuple(decode(encode("bc5", img))[0, 0]) == (200, 50)
    assert tuple(decode(encode("astc4x4", img))[0, 0]) == (200, 50)
    assert decode(encode("bc4", img[..., :1]))[0, 0, 0] == 200


@pytest.mark.parametrize("fmt", ["bc1", "bc4", "bc5", "bc7", "astc5x4", "astc6x6", "astc10x8", "astc12x12"])
def test_sizes_that_are_not_whole_blocks(fmt):
    info = get_format(fmt)
    c = {"bc4": 1, "bc5": 2}.get(fmt, 3)
    img = _gradient(37, 50, c)
    enc = encode(fmt, img)
    assert (enc.width, enc.height) == (50, 37)
    assert len(enc.data) == info.level_bytes(50, 37)
    out = decode(enc)
    assert out.shape == (37, 50, c)
    assert psnr(out / 255.0, img) > 30.0


def test_edge_padding_replicates_and_crops():
    img = np.arange(2 * 3 * 1).reshape(2, 3, 1)
    p = pad_to_blocks(img, 4, 4)
    assert p.shape == (4, 4, 1)
    assert (p[:2, :3] == img).all() and (p[3, 3] == img[1, 2]).all() and (p[2, :3] == img[1]).all()


def test_bad_inputs_are_igs_errors():
    with pytest.raises(IgsError, match="expected"):
        encode("bc5", np.zeros((8, 8, 3)))
    with pytest.raises(IgsError, match="unknown block format"):
        encode("bc9", np.zeros((8, 8, 3)))
    with pytest.raises(IgsError, match="sRGB"):
        encode("bc4", np.zeros((8, 8, 1)), srgb=True)
    with pytest.raises(IgsError, match="normal"):
        encode("bc5", np.zeros((8, 8, 2)), normal=True)
    with pytest.raises(IgsError, match="empty"):
        encode("bc1", np.zeros((0, 8, 3)))
    enc = encode("bc1", np.zeros((8, 8, 3)))
    with pytest.raises(IgsError, match="bytes"):
        decode(dataclasses.replace(enc, data=enc.data[:-1]))
    with pytest.raises(IgsError, match="unknown codec scheme"):
        get_scheme("astc7x7")
    assert get_scheme("astc10x5").normal == "astc10x5"


# ----------------------------------------------------------------------------- KTX2


def _chain(fmt, w, h, n, srgb=False, seed=0):
    c = {"bc4": 1, "bc5": 2}.get(fmt, 3)
    img = _gradient(h, w, c, seed)
    levels = []
    for i in range(n):
        lw, lh = max(1, w >> i), max(1, h >> i)
        levels.append(encode(fmt, box_downsample(img, i)[:lh, :lw], srgb=srgb))
    return levels


@pytest.mark.parametrize(
    "fmt,srgb,w,h,n",
    [
        ("bc1", True, 50, 37, 6),
        ("bc1", False, 16, 16, 5),
        ("bc4", False, 20, 12, 3),
        ("bc5", False, 33, 17, 2),
        ("bc7", True, 64, 32, 7),
        ("bc7", False, 9, 5, 1),
        ("astc4x4", True, 24, 24, 3),
        ("astc6x6", False, 50, 37, 4),
        ("astc12x12", True, 30, 13, 2),
        ("astc8x5", False, 17, 9, 2),
    ],
)
def test_ktx2_round_trip(tmp_path, fmt, srgb, w, h, n):
    levels = _chain(fmt, w, h, n, srgb)
    tex = Ktx2Texture.from_encoded(levels, {"igs.note": "round trip"})
    path = write_ktx2(tmp_path / f"{fmt}.ktx2", tex)
    data = path.read_bytes()
    assert data[:12] == IDENTIFIER
    back = read_ktx2(path)
    assert (back.format, back.srgb, back.width, back.height) == (fmt, srgb, w, h)
    assert back.vk_format == get_format(fmt).vk_format(srgb)
    assert back.levels == [e.data for e in levels]
    assert back.key_values["igs.note"] == b"round trip\0"
    assert back.key_values["KTXwriter"].startswith(b"igs-tex ")
    assert ktx2_bytes(back) == data  # writing what was read reproduces the file byte for byte
    for i, e in enumerate(levels):
        assert np.array_equal(decode(back.encoded(i, channels=e.channels)), decode(e))


def test_ktx2_writer_rejects_inconsistent_levels():
    levels = _chain("bc1", 16, 16, 2)
    with pytest.raises(IgsError, match="level 1"):
        Ktx2Texture.from_encoded([levels[0], levels[0]])
    tex = Ktx2Texture.from_encoded(levels)
    tex.levels[1] = tex.levels[1][:-8]
    with pytest.raises(IgsError, match="level 1 has"):
        ktx2_bytes(tex)
    tex = Ktx2Texture.from_encoded(_chain("bc1", 4, 4, 1))
    tex.levels = tex.levels * 4  # a 4x4 texture has 3 levels at most
    with pytest.raises(IgsError, match="levels"):
        ktx2_bytes(tex)


def _base_file() -> bytes:
    # BC7 sRGB, 24x16, 3 levels: two block sizes below the base and a key/value block.
    return ktx2_bytes(Ktx2Texture.from_encoded(_chain("bc7", 24, 16, 3, srgb=True), {"igs.k": "v"}))


def _u32(data, off, value):
    b = bytearray(data)
    struct.pack_into("<I", b, off, value)
    return bytes(b)


def _u64(data, off, value):
    b = bytearray(data)
    struct.pack_into("<Q", b, off, value)
    return bytes(b)


def _level(data, i):
    return struct.unpack_from("<3Q", data, 80 + 24 * i)


@functools.lru_cache(maxsize=1)
def _corruptions():
    base = _base_file()
    dfd = struct.unpack_from("<I", base, 48)[0]
    kvd, kvd_len = struct.unpack_from("<2I", base, 56)
    off0, len0, _ = _level(base, 0)
    off1, _, _ = _level(base, 1)
    return {
        "empty": b"",
        "short_identifier": base[:8],
        "truncated_header": base[:50],
        "truncated_level_index": base[:100],
        "truncated_last_level": base[:-1],
        "bad_identifier": base[:1] + b"X" + base[2:],
        "ktx1_identifier": bytes([0xAB, 0x4B, 0x54, 0x58, 0x20, 0x31, 0x31, 0xBB]) + base[8:],
        "vkformat_rgba8": _u32(base, 12, 37),
        "vkformat_undefined": _u32(base, 12, 0),
        "vkformat_bc6h": _u32(base, 12, 143),
        "type_size_4": _u32(base, 16, 4),
        "zero_width": _u32(base, 20, 0),
        "zero_height": _u32(base, 24, 0),
        "huge_width": _u32(base, 20, 0xFFFFFFFF),
        "depth_3d": _u32(base, 28, 4),
        "array_layers": _u32(base, 32, 2),
        "cube_faces": _u32(base, 36, 6),
        "too_many_levels": _u32(base, 40, 9),
        "zstd_scheme": _u32(base, 44, 2),
        "dfd_offset_moved": _u32(base, 48, dfd + 4),
        "dfd_beyond_file": _u32(base, 52, 1 << 20),
        "dfd_total_size_wrong": _u32(base, dfd, 999),
        "dfd_vendor": _u32(base, dfd + 4, 1),
        "dfd_version": _u32(base, dfd + 8, (44 - 4) << 16 | 1),
        "dfd_colour_model_bc1": base[: dfd + 12] + bytes([128]) + base[dfd + 13 :],
        "dfd_transfer_linear_for_srgb": base[: dfd + 14] + bytes([1]) + base[dfd + 15 :],
        "dfd_block_8x8": base[: dfd + 16] + bytes([7, 7]) + base[dfd + 18 :],
        "dfd_bytes_plane": base[: dfd + 20] + bytes([8]) + base[dfd + 21 :],
        "dfd_sample_past_block": _u32(base, dfd + 28, 64 | (127 << 16)),
        "kvd_beyond_file": _u32(base, 60, kvd_len + 4096),
        "kvd_entry_too_long": _u32(base, kvd, 4096),
        "kvd_offset_wrong": _u32(base, 56, kvd + 4),
        "sgd_present": _u64(_u64(base, 64, len(base) - 8), 72, 8),
        "level_beyond_file": _u64(base, 80, len(base) + 64),
        "level_offset_overflow": _u64(base, 80, (1 << 64) - 16),
        "level_inside_header": _u64(base, 80, 16),
        "level_misaligned": _u64(base, 80 + 24, off1 + 4),
        "level_wrong_length": _u64(base, 88, len0 - 16),
        "level_uncompressed_length": _u64(base, 96, len0 + 16),
        "levels_overlap": _u64(base, 80 + 24, off0),
        "level_count_grown": _u32(base, 40, 4),  # a fourth index entry that is really the DFD
        "level1_inside_level0": _u64(base, 80 + 24, off0 + 16),
    }


# What each damaged file must be rejected for (a fragment of the message).
_REASONS = {
    "empty": "truncated",
    "short_identifier": "truncated",
    "truncated_header": "truncated header",
    "truncated_level_index": "truncated level index",
    "truncated_last_level": "outside the data area",
    "bad_identifier": "identifier",
    "ktx1_identifier": "identifier",
    "vkformat_rgba8": "vkFormat 37",
    "vkformat_undefined": "vkFormat 0",
    "vkformat_bc6h": "vkFormat 143",
    "type_size_4": "typeSize",
    "zero_width": "pixelWidth is 0",
    "zero_height": "pixelHeight is 0",
    "huge_width": "needs",
    "depth_3d": "3D",
    "array_layers": "array",
    "cube_faces": "cube",
    "too_many_levels": "levelCount 9",
    "zstd_scheme": "supercompressionScheme",
    "dfd_offset_moved": "dfdByteOffset",
    "dfd_beyond_file": "DFD of",
    "dfd_total_size_wrong": "DFD total size",
    "dfd_vendor": "vendor 1",
    "dfd_version": "DFD version",
    "dfd_colour_model_bc1": "colour model",
    "dfd_transfer_linear_for_srgb": "transfer",
    "dfd_block_8x8": "texel block",
    "dfd_bytes_plane": "bytesPlane",
    "dfd_sample_past_block": "sample 0",
    "kvd_beyond_file": "key/value data",
    "kvd_entry_too_long": "key/value entry",
    "kvd_offset_wrong": "kvdByteOffset",
    "sgd_present": "global data",
    "level_beyond_file": "outside the data area",
    "level_offset_overflow": "outside the data area",
    "level_inside_header": "outside the data area",
    "level_misaligned": "not a multiple",
    "level_wrong_length": "level 0 is",
    "level_uncompressed_length": "uncompressed",
    "levels_overlap": "overlap",
    "level_count_grown": "dfdByteOffset",
    "level1_inside_level0": "overlap",
}


def test_every_corruption_has_a_reason():
    assert set(_REASONS) == set(_corruptions())


@pytest.mark.parametrize("case", sorted(_REASONS))
def test_ktx2_rejects_corrupt_files(tmp_path, case):
    path = tmp_path / f"{case}.ktx2"
    path.write_bytes(_corruptions()[case])
    with pytest.raises(IgsError) as err:
        read_ktx2(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and _REASONS[case] in msg, msg


def test_ktx2_missing_file_names_it(tmp_path):
    with pytest.raises(IgsError, match="nope.ktx2"):
        read_ktx2(tmp_path / "nope.ktx2")


def test_ktx2_random_damage_is_always_an_igs_error():
    base = _base_file()
    rng = np.random.default_rng(7)
    header_end = struct.unpack_from("<I", base, 56)[0] + struct.unpack_from("<I", base, 60)[0]
    parsed = 0
    for _ in range(400):
        b = bytearray(base)
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(0, header_end))] = int(rng.integers(0, 256))
        if rng.random() < 0.3:
            b = b[: int(rng.integers(0, len(b)))]
        try:
            parse_ktx2(bytes(b), "fuzz.ktx2")
            parsed += 1
        except IgsError as e:
            assert str(e).startswith("fuzz.ktx2: ")
    assert parsed < 400  # the damage is real, not all of it lands in ignored bytes


# Written by ktx-parse 2.0.0 (npm, Don McCurdy's KTX2 reader/writer, an implementation
# independent of ours) with the node script below: BC7 sRGB 12x8, 3 levels whose blocks
# decode to flat red, green and blue; and ASTC 6x6 UNORM 20x14, 2 levels of flat colours.
# Level payloads came from etcpak / astcenc; the container bytes are ktx-parse's own.
KTX_PARSE_BC7 = (
    "q0tUWCAyMLsNChoKkgAAAAEAAAAMAAAACAAAAAAAAAAAAAAAAQAAAAMAAAAAAAAAmAAAACwAAADEAAAAIAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAgAQAAAAAAAGAAAAAAAAAAYAAAAAAAAAAAAQAAAAAAACAAAAAAAAAAIAAAAAAAAADwAAAAAAAAABAAAAAAAAAA"
    "EAAAAAAAAAAsAAAAAAAAAAIAKACGAQIAAwMAABAAAAAAAAAAAAB/AAAAAAAAAAAA/////xsAAABLVFh3cml0ZXIAS1RYLVBh"
    "cnNlIHYyLjAuMAAAAAAAAAAAAAAAAAAAQAAAAPj//38SEREREREREUAA4P8HAP5/EhERERERERFAAOD/BwD+fxIRERERERER"
    "wP8fAAAA/n8SEREREREREcD/HwAAAP5/EhERERERERHA/x8AAAD+fxIRERERERERwP8fAAAA/n8SEREREREREcD/HwAAAP5/"
    "EhERERERERHA/x8AAAD+fxIRERERERER"
)
KTX_PARSE_ASTC = (
    "q0tUWCAyMLsNChoKpQAAAAEAAAAUAAAADgAAAAAAAAAAAAAAAQAAAAIAAAAAAAAAgAAAACwAAACsAAAAIAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAQAQAAAAAAAMAAAAAAAAAAwAAAAAAAAADQAAAAAAAAAEAAAAAAAAAAQAAAAAAAAAAsAAAAAAAAAAIAKACiAQEA"
    "BQUAABAAAAAAAAAAAAB/AAAAAAAAAAAA/////xsAAABLVFh3cml0ZXIAS1RYLVBhcnNlIHYyLjAuMAAAAAAAAPz9////////"
    "Hh48PFpa///8/f///////x4ePDxaWv///P3///////8eHjw8Wlr///z9////////Hh48PFpa///8/f///////8jIeHgoKP//"
    "/P3////////IyHh4KCj///z9////////yMh4eCgo///8/f///////8jIeHgoKP///P3////////IyHh4KCj///z9////////"
    "yMh4eCgo///8/f///////8jIeHgoKP///P3////////IyHh4KCj///z9////////yMh4eCgo///8/f///////8jIeHgoKP//"
    "/P3////////IyHh4KCj///z9////////yMh4eCgo//8="
)

_NODE_SCRIPT = r"""
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';
const ktx = await import(pathToFileURL(process.env.KTX_PARSE_MJS).href);
const spec = JSON.parse(fs.readFileSync(0, 'utf8'));
if (spec.mode === 'write') {
  const c = ktx.createDefaultContainer();
  Object.assign(c, {vkFormat: spec.vkFormat, typeSize: 1, pixelWidth: spec.width, pixelHeight: spec.height,
                    pixelDepth: 0, layerCount: 0, faceCount: 1, levelCount: spec.levels.length,
                    supercompressionScheme: 0});
  c.levels = spec.levels.map((hex) => ({levelData: Uint8Array.from(Buffer.from(hex, 'hex')),
                                        uncompressedByteLength: hex.length / 2}));
  c.dataFormatDescriptor = [{vendorId: 0, descriptorType: 0, versionNumber: 2, colorModel: spec.model,
    colorPrimaries: 1, transferFunction: spec.transfer, flags: 0,
    texelBlockDimension: [spec.bw - 1, spec.bh - 1, 0, 0], bytesPlane: [spec.blockBytes, 0, 0, 0, 0, 0, 0, 0],
    samples: spec.samples.map(([o, l, ch]) => ({bitOffset: o, bitLength: l, channelType: ch,
      samplePosition: [0, 0, 0, 0], sampleLower: 0, sampleUpper: 0xFFFFFFFF}))}];
  c.keyValue = spec.keyValue || {};
  fs.writeFileSync(spec.out, ktx.write(c));
} else {
  const c = ktx.read(new Uint8Array(fs.readFileSync(spec.path)));
  const d = c.dataFormatDescriptor[0];
  const kv = {};
  for (const [k, v] of Object.entries(c.keyValue)) kv[k] = typeof v === 'string' ? v : Buffer.from(v).toString('hex');
  console.log(JSON.stringify({vkFormat: c.vkFormat, typeSize: c.typeSize, pixelWidth: c.pixelWidth,
    pixelHeight: c.pixelHeight, pixelDepth: c.pixelDepth, layerCount: c.layerCount, faceCount: c.faceCount,
    levelCount: c.levelCount, supercompressionScheme: c.supercompressionScheme,
    levels: c.levels.map((l) => Buffer.from(l.levelData).toString('hex')),
    uncompressed: c.levels.map((l) => l.uncompressedByteLength),
    dfd: {colorModel: d.colorModel, transferFunction: d.transferFunction, texelBlockDimension: d.texelBlockDimension,
          bytesPlane: d.bytesPlane, samples: d.samples.map((s) => [s.bitOffset, s.bitLength, s.channelType])},
    keyValue: kv}));
}
"""


def _ktx_parse_module() -> str | None:
    """Path of ktx-parse's ES module if node and the package are installed, else None."""
    if shutil.which("node") is None:
        return None
    candidates = []
    if os.environ.get("KTX_PARSE_MJS"):
        candidates.append(Path(os.environ["KTX_PARSE_MJS"]))
    if shutil.which("npm"):
        try:
            root = subprocess.run(["npm", "root", "-g"], capture_output=True, text=True, timeout=30).stdout.strip()
            if root:
                candidates.append(Path(root) / "ktx-parse" / "dist" / "index.mjs")
        except (OSError, subprocess.SubprocessError):
            pass
    return next((str(p) for p in candidates if p.is_file()), None)


def _run_ktx_parse(module: str, spec: dict) -> str:
    proc = subprocess.run(
        ["node", "--input-type=module", "-e", _NODE_SCRIPT],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KTX_PARSE_MJS": module},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _ktx_parse_spec(levels, out) -> dict:
    info = levels[0].info
    model = 162 if info.is_astc else {"bc1": 128, "bc4": 131, "bc5": 132, "bc7": 134}[info.name]
    samples = [[0, 63, 0], [64, 63, 1]] if info.name == "bc5" else [[0, info.block_bytes * 8 - 1, 0]]
    return {
        "mode": "write",
        "out": str(out),
        "vkFormat": info.vk_format(levels[0].srgb),
        "width": levels[0].width,
        "height": levels[0].height,
        "levels": [e.data.hex() for e in levels],
        "model": model,
        "transfer": 2 if levels[0].srgb else 1,
        "bw": info.block_w,
        "bh": info.block_h,
        "blockBytes": info.block_bytes,
        "samples": samples,
    }


def _flat(fmt, w, h, colours, srgb):
    levels = []
    for i, col in enumerate(colours):
        lw, lh = max(1, w >> i), max(1, h >> i)
        levels.append(encode(fmt, np.broadcast_to(np.array(col, dtype=np.uint8), (lh, lw, 3)), srgb=srgb))
    return levels


_BC7_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
_ASTC_COLOURS = [(200, 120, 40), (30, 60, 90)]


@pytest.mark.parametrize(
    "blob,fmt,srgb,size,colours",
    [("bc7", "bc7", True, (12, 8), _BC7_COLOURS), ("astc", "astc6x6", False, (20, 14), _ASTC_COLOURS)],
)
def test_ktx2_reads_files_written_by_ktx_parse(tmp_path, blob, fmt, srgb, size, colours):
    data = base64.b64decode(KTX_PARSE_BC7 if blob == "bc7" else KTX_PARSE_ASTC)
    path = tmp_path / f"ktx_parse_{blob}.ktx2"
    path.write_bytes(data)
    tex = read_ktx2(path)
    assert (tex.format, tex.srgb, (tex.width, tex.height), len(tex.levels)) == (fmt, srgb, size, len(colours))
    assert tex.key_values["KTXwriter"].startswith(b"KTX-Parse")
    for i, col in enumerate(colours):
        texels = decode(tex.encoded(i, channels=3))
        assert texels.shape[:2] == (tex.level_size(i)[1], tex.level_size(i)[0])
        assert np.abs(texels.astype(int) - np.array(col)).max() <= 2, (i, texels[0, 0], col)


def test_ktx2_interoperates_with_ktx_parse_live(tmp_path):
    module = _ktx_parse_module()
    if module is None:
        pytest.skip("node or the ktx-parse npm package is not installed (npm install -g ktx-parse@2.0.0)")
    for fmt, srgb, w, h, n in [("bc1", True, 50, 37, 3), ("bc5", False, 20, 12, 2), ("astc10x6", True, 33, 21, 3)]:
        levels = _chain(fmt, w, h, n, srgb)
        # theirs -> ours
        theirs = tmp_path / f"theirs_{fmt}.ktx2"
        _run_ktx_parse(module, _ktx_parse_spec(levels, theirs))
        tex = read_ktx2(theirs)
        assert (tex.format, tex.srgb, tex.width, tex.height) == (fmt, srgb, w, h)
        assert tex.levels == [e.data for e in levels]
        # ours -> theirs
        ours = write_ktx2(tmp_path / f"ours_{fmt}.ktx2", Ktx2Texture.from_encoded(levels, {"igs.k": "v"}))
        seen = json.loads(_run_ktx_parse(module, {"mode": "read", "path": str(ours)}))
        info = get_format(fmt)
        assert seen["vkFormat"] == info.vk_format(srgb)
        assert (seen["pixelWidth"], seen["pixelHeight"], seen["pixelDepth"]) == (w, h, 0)
        assert (seen["layerCount"], seen["faceCount"], seen["levelCount"], seen["supercompressionScheme"]) == (
            0,
            1,
            n,
            0,
        )
        assert seen["levels"] == [e.data.hex() for e in levels]
        assert seen["uncompressed"] == [len(e.data) for e in levels]
        assert seen["dfd"]["texelBlockDimension"] == [info.block_w - 1, info.block_h - 1, 0, 0]
        assert seen["dfd"]["bytesPlane"][0] == info.block_bytes
        assert seen["dfd"]["transferFunction"] == (2 if srgb else 1)
        assert seen["keyValue"]["igs.k"] == b"v\0".hex()  # ktx-parse decodes only KTX* keys as text
        assert seen["keyValue"]["KTXwriter"].startswith("igs-tex ")


def test_packed_material_writes_readable_ktx2(tmp_path, walnut):
    small = dataclasses.replace(walnut, data=np.ascontiguousarray(walnut.data[:64, :48]))
    packed = pack_material(small, "bc7")
    files = write_ktx2_files(packed, tmp_path / "out")
    assert [f.name for f in files] == ["basecolor.ktx2", "normal.ktx2", "orm.ktx2"]
    for f, t in zip(files, packed.textures):
        back = read_ktx2(f)
        assert back.levels == [t.encoded.data] and back.srgb == t.encoded.srgb
        assert np.array_equal(decode(back.encoded(0, t.encoded.channels)), decode(t.encoded))
    assert read_ktx2(files[1]).format == "bc5"
    assert read_ktx2(files[0]).vk_format == 146  # VK_FORMAT_BC7_SRGB_BLOCK


# ----------------------------------------------------------------------------- iso-bitrate


def test_box_downsample_and_bilinear_upsample():
    img = _gradient(37, 50, 2)
    low = box_downsample(img, 2)
    assert low.shape == (10, 13, 2)
    assert np.isclose(low[0, 0], img[:4, :4].mean(axis=(0, 1))).all()
    assert np.isclose(low[-1, -1], np.pad(img, ((0, 3), (0, 2), (0, 0)), mode="edge")[36:, 48:].mean(axis=(0, 1))).all()
    up = bilinear_upsample(low, 2, 37, 50)
    assert up.shape == (37, 50, 2)
    assert psnr(up, img) > 30.0
    flat = np.full((5, 7, 1), 0.25, dtype=np.float32)
    assert np.allclose(bilinear_upsample(flat, 3, 40, 56), 0.25)
    # A linear ramp is reproduced exactly away from the clamped border.
    ramp = np.tile(np.arange(8, dtype=np.float64)[None, :, None], (4, 1, 1))
    up = bilinear_upsample(ramp, 1, 8, 16)
    assert np.allclose(up[0, 1:-1, 0], (np.arange(1, 15) + 0.5) / 2 - 0.5)


def test_rd_points_rates_and_quality(walnut):
    codecs = ["bc1", "bc7", "astc4x4", "astc6x6", "astc12x12"]
    rows = rd_points(walnut, codecs=codecs, mips=(0, 1, 2), metrics=_psnr_only, keep_decoded=True)
    assert len(rows) == len(codecs) * 3
    by = {(r["codec"], r["mip"]): r for r in rows}
    c = walnut.channel_count  # 8: RGB, XYZ, roughness, metalness
    assert by[("bc1", 0)]["bppc"] == pytest.approx((4 + 8 + 4) / c)
    assert by[("bc7", 0)]["bppc"] == pytest.approx((8 + 8 + 8) / c)
    assert by[("astc6x6", 0)]["bppc"] == pytest.approx(3 * 128 / 36 / c)
    for codec in codecs:
        r0, r1, r2 = by[(codec, 0)], by[(codec, 1)], by[(codec, 2)]
        assert r1["bppc"] == pytest.approx(r0["bppc"] / 4) and r2["bppc"] == pytest.approx(r0["bppc"] / 16)
        assert r0["bppc_stored"] >= r0["bppc"] - 1e-12  # partial edge blocks only ever add bits
        assert r1["metrics"]["all"]["psnr"] < r0["metrics"]["all"]["psnr"]
        assert r2["metrics"]["all"]["psnr"] < r1["metrics"]["all"]["psnr"]
        assert r1["metrics"]["basecolor"]["psnr"] < r0["metrics"]["basecolor"]["psnr"]
        assert r0["decoded"].shape == walnut.data.shape and r0["decoded"].dtype == np.float32
        assert r0["block"] == ("4x4" if codec.startswith("bc") else codec[4:])
    assert by[("bc1", 0)]["bppc_stored"] == pytest.approx(by[("bc1", 0)]["bppc"])  # 256 is whole 4x4 blocks
    assert by[("astc6x6", 0)]["bppc_stored"] > by[("astc6x6", 0)]["bppc"]  # 256 is not whole 6x6 blocks
    assert by[("bc1", 0)]["formats"] == {"basecolor": "bc1", "normal": "bc5", "orm": "bc1"}
    # Mip 0 is the plain round trip.
    assert np.array_equal(by[("bc7", 0)]["decoded"], unpack_material(pack_material(walnut, "bc7")))
    assert by[("astc4x4", 1)]["metrics"]["basecolor"]["psnr"] > 30.0  # measured 31.29


def test_rd_points_default_metrics_and_mip_checks(walnut):
    small = dataclasses.replace(walnut, data=np.ascontiguousarray(walnut.data[:32, :32]))
    rows = rd_points(small, codecs=["bc1"], mips=[1], keep_decoded=False)
    (row,) = rows
    assert "decoded" not in row
    m = row["metrics"]
    assert {"psnr", "ssim", "ms_ssim", "flip"} <= set(m["basecolor"])
    assert "angular_error_deg" in m["normal"]
    with pytest.raises(IgsError, match="mip level"):
        rd_points(small, codecs=["bc1"], mips=[6])
    with pytest.raises(IgsError, match="unknown codec"):
        rd_points(small, codecs=["png"], mips=[0])


def test_every_listed_scheme_packs_a_stack_with_ao():
    rng = np.random.default_rng(3)
    data = rng.random((20, 20, 4)).astype(np.float32)
    from igs_tex.material import MaterialStack

    stack = MaterialStack("s", data, ["basecolor.r", "basecolor.g", "basecolor.b", "ao"], np.tile([0.0, 1.0], (4, 1)))
    for name in SCHEMES:
        packed = pack_material(stack, name)
        out = unpack_material(packed)
        assert out.shape == data.shape
        # Uniform noise is the worst case for a block codec; 10.8 dB is what its mean alone gives.
        assert psnr(out[..., 3], data[..., 3]) > 12.0, name
    assert all(f in FORMATS for f in ("bc1", "bc4", "bc5", "bc7", "astc4x4", "astc12x12"))
