"""Material loading and saving on real files: the shared walnut material and
small fixtures written here in every supported format."""

from pathlib import Path

import numpy as np
import OpenEXR
import png
import pytest
from PIL import Image

from igs_tex import IgsError
from igs_tex.material import (
    CHANNEL_ORDER,
    GROUPS,
    MapSource,
    load_material,
    map_kind,
    save_maps,
)

from conftest import MATERIALS

WALNUT = MATERIALS / "walnut_wood"
RNG = np.random.default_rng(1234)


# ----------------------------------------------------------------- fixture writers
# Written with the libraries directly (not through igs_tex) so the tests check
# the loader against an independent encoder.


def write_png(path, codes, bit_depth):
    codes = np.asarray(codes)
    if codes.ndim == 2:
        codes = codes[..., None]
    h, w, c = codes.shape
    with open(path, "wb") as f:
        png.Writer(
            width=w, height=h, greyscale=c in (1, 2), alpha=c in (2, 4), bitdepth=bit_depth
        ).write(f, codes.reshape(h, w * c))


def write_exr(path, planes, half=False):
    dtype = np.float16 if half else np.float32
    chans = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in planes.items()}
    with OpenEXR.File({"type": OpenEXR.scanlineimage, "compression": OpenEXR.ZIP_COMPRESSION}, chans) as f:
        f.write(str(path))


def rand8(h, w, c=None):
    shape = (h, w) if c is None else (h, w, c)
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


# ----------------------------------------------------------------- real material


def test_walnut_wood_loads_exactly():
    stack = load_material(WALNUT)
    assert stack.name == "walnut_wood"
    assert stack.data.shape == (1024, 1024, 8)
    assert stack.data.dtype == np.float32
    assert (stack.height, stack.width, stack.channel_count) == (1024, 1024, 8)
    assert stack.channels == [
        "basecolor.r", "basecolor.g", "basecolor.b",
        "normal.x", "normal.y", "normal.z",
        "roughness", "metalness",
    ]
    assert stack.value_range.shape == (8, 2) and stack.value_range.dtype == np.float32
    assert np.array_equal(stack.value_range, np.tile([0.0, 1.0], (8, 1)).astype(np.float32))
    assert stack.group_slices() == {
        "basecolor": [0, 1, 2], "normal": [3, 4, 5], "roughness": [6], "metalness": [7],
    }
    by_kind = {m.kind: m for m in stack.maps}
    assert set(by_kind) == {"basecolor", "normal", "roughness", "metalness"}
    assert by_kind["basecolor"].colour_space == "srgb"
    assert by_kind["normal"].colour_space == "linear"
    assert all(m.bit_depth == 8 and m.file_format == "png" for m in stack.maps)
    assert by_kind["roughness"].file == "roughness.png"

    spots = [(0, 0), (1023, 1023), (517, 3), (100, 900), (640, 480)]
    colour = np.asarray(Image.open(WALNUT / "basecolor.png").convert("RGB"))
    normal = np.asarray(Image.open(WALNUT / "normal.png").convert("RGB"))
    rough = np.asarray(Image.open(WALNUT / "roughness.png"))
    for y, x in spots:
        assert np.array_equal(stack.data[y, x, 0:3], colour[y, x].astype(np.float32) / 255.0)
        assert np.array_equal(stack.data[y, x, 3:6], normal[y, x].astype(np.float32) / 255.0)
        assert stack.data[y, x, 6] == np.float32(rough[y, x] / 255.0)
    assert np.all(stack.data[..., 7] == 0.0)  # the source's metalness is constant 0
    assert 0.0 <= stack.data.min() and stack.data.max() <= 1.0


ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.mark.parametrize(
    "name, extra",
    [("walnut_wood", ["roughness", "metalness"]), ("rock_cliff", []),
     ("boombox_atlas", ["roughness", "metalness"]), ("pipes_trak", [])],
)
def test_sample_assets_load(name, extra):
    stack = load_material(ASSETS / name)
    assert stack.channels == GROUPS["basecolor"] + GROUPS["normal"] + extra
    assert stack.data.shape == (512, 512, len(stack.channels))
    assert (ASSETS / name / "LICENSE").is_file()
    normal = stack.data[..., 3:6] * 2.0 - 1.0
    length = np.linalg.norm(normal, axis=-1)
    if name != "rock_cliff":  # renormalised after downscaling; 8-bit codes leave ~1% slack
        assert np.abs(length - 1.0).max() < 0.02
    else:  # kept as resampled: the source is not unit length
        assert length.mean() > 1.2


def test_channel_order_constant():
    assert CHANNEL_ORDER == [c for g in GROUPS.values() for c in g]
    assert len(CHANNEL_ORDER) == 9


# ----------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name, kind",
    [
        ("basecolor.png", "basecolor"),
        ("T_Rock_BaseColor.PNG", "basecolor"),
        ("wood-albedo.jpg", "basecolor"),
        ("brick diffuse.tga", "basecolor"),
        ("wall_Base_Color.png", "basecolor"),
        ("rock_nrm.exr", "normal"),
        ("rock_Normal_GL.png", "normal"),
        ("x.normalgl.png", "normal"),
        ("wall_ambient_occlusion.png", "ao"),
        ("wall_AO.jpeg", "ao"),
        ("gold_rough.png", "roughness"),
        ("gold_metallic.png", "metalness"),
        ("crate_ORM.png", "orm"),
        ("crate_arm.exr", "orm"),
        ("heightmap.png", None),
        ("wall_height.png", None),
        ("normal.psd", None),
        ("material.toml", None),
        ("._basecolor.png", None),
    ],
)
def test_map_kind_from_file_name(name, kind):
    assert map_kind(name) == kind


# ----------------------------------------------------------------- formats


def test_png16_keeps_16_bit_precision(tmp_path):
    codes = RNG.integers(0, 65536, size=(8, 6, 3), dtype=np.uint16)
    codes[2, 3] = (1000, 1, 65534)
    write_png(tmp_path / "wall_basecolor.png", codes, 16)
    stack = load_material(tmp_path)
    assert stack.channels == GROUPS["basecolor"]
    assert stack.maps[0].bit_depth == 16 and stack.maps[0].colour_space == "srgb"
    assert stack.data[2, 3, 0] == np.float32(1000 / 65535)
    assert stack.data[2, 3, 1] == np.float32(1 / 65535)
    assert np.array_equal(stack.data, (codes / 65535.0).astype(np.float32))


def test_png8_grey_and_rgba(tmp_path):
    grey = rand8(5, 7)
    rgba = rand8(5, 7, 4)
    write_png(tmp_path / "roughness.png", grey, 8)
    write_png(tmp_path / "basecolor.png", rgba, 8)
    stack = load_material(tmp_path)
    assert stack.channels == GROUPS["basecolor"] + ["roughness"]
    assert np.array_equal(stack.data[..., :3], (rgba[..., :3] / 255.0).astype(np.float32))  # alpha dropped
    assert np.array_equal(stack.data[..., 3], (grey / 255.0).astype(np.float32))


def test_grey_broadcast_to_rgb_and_rgb_to_single_takes_red(tmp_path):
    grey = rand8(4, 4)
    rgb = rand8(4, 4, 3)
    write_png(tmp_path / "albedo.png", grey, 8)
    write_png(tmp_path / "metallic.png", rgb, 8)
    stack = load_material(tmp_path)
    assert stack.channels == GROUPS["basecolor"] + ["metalness"]
    for c in range(3):
        assert np.array_equal(stack.data[..., c], (grey / 255.0).astype(np.float32))
    assert np.array_equal(stack.data[..., 3], (rgb[..., 0] / 255.0).astype(np.float32))


def test_jpeg_and_tga(tmp_path):
    Image.fromarray(rand8(16, 16, 3)).save(tmp_path / "rock_color.jpg", quality=90)
    tga = rand8(16, 16, 3)
    Image.fromarray(tga).save(tmp_path / "rock_normal.tga")
    stack = load_material(tmp_path)
    jpeg_pixels = np.asarray(Image.open(tmp_path / "rock_color.jpg").convert("RGB"))
    assert np.array_equal(stack.data[..., 0:3], (jpeg_pixels / 255.0).astype(np.float32))
    assert np.array_equal(stack.data[..., 3:6], (tga / 255.0).astype(np.float32))
    formats = {m.kind: (m.file_format, m.bit_depth) for m in stack.maps}
    assert formats == {"basecolor": ("jpeg", 8), "normal": ("tga", 8)}


def test_albedo_only_material(tmp_path):
    write_png(tmp_path / "albedo.png", rand8(3, 9, 3), 8)
    (tmp_path / "LICENSE").write_text("CC0")
    (tmp_path / "material.toml").write_text('name = "x"')
    write_png(tmp_path / "height.png", rand8(3, 9), 8)
    stack = load_material(tmp_path)
    assert stack.data.shape == (3, 9, 3)
    assert stack.channels == GROUPS["basecolor"]
    assert [m.file for m in stack.maps] == ["albedo.png"]
    assert stack.group_slices() == {"basecolor": [0, 1, 2]}


def test_orm_packed_map(tmp_path):
    orm = rand8(6, 6, 3)
    write_png(tmp_path / "crate_basecolor.png", rand8(6, 6, 3), 8)
    write_png(tmp_path / "crate_ORM.png", orm, 8)
    stack = load_material(tmp_path)
    assert stack.channels == GROUPS["basecolor"] + ["ao", "roughness", "metalness"]
    assert np.array_equal(stack.data[..., 3:6], (orm / 255.0).astype(np.float32))
    packed = [m for m in stack.maps if m.kind == "orm"][0]
    assert packed.channels == [3, 4, 5] and packed.colour_space == "linear"
    assert stack.group_slices() == {"basecolor": [0, 1, 2], "ao": [3], "roughness": [4], "metalness": [5]}


@pytest.mark.parametrize("half", [False, True])
def test_exr_rgb_hdr_round_trips_through_value_range(tmp_path, half):
    rgb = RNG.uniform(-0.5, 40.0, size=(5, 4, 3))
    rgb[0, 0] = (37.5, -0.25, 2.0)
    write_exr(tmp_path / "sky_basecolor.exr", {"R": rgb[..., 0], "G": rgb[..., 1], "B": rgb[..., 2]}, half=half)
    stack = load_material(tmp_path)
    src = rgb.astype(np.float16 if half else np.float32).astype(np.float64)
    m = stack.maps[0]
    assert (m.file_format, m.bit_depth, m.colour_space) == ("exr", 16 if half else 32, "linear")
    assert 0.0 <= stack.data.min() and stack.data.max() <= 1.0
    assert np.array_equal(stack.value_range[:, 0], src.reshape(-1, 3).min(0).astype(np.float32))
    assert np.array_equal(stack.value_range[:, 1], src.reshape(-1, 3).max(0).astype(np.float32))
    lo, hi = stack.value_range[:, 0], stack.value_range[:, 1]
    real = lo + stack.data * (hi - lo)
    np.testing.assert_allclose(real, src, rtol=1e-6, atol=1e-5)
    assert real.max() > 1.0


def test_exr_single_channel_y_half_and_constant(tmp_path):
    rough = RNG.uniform(0.1, 0.9, size=(4, 4))
    write_exr(tmp_path / "roughness.exr", {"Y": rough}, half=True)
    write_exr(tmp_path / "metalness.exr", {"Y": np.full((4, 4), 3.0)})
    stack = load_material(tmp_path)
    assert stack.channels == ["roughness", "metalness"]
    assert [m.bit_depth for m in stack.maps] == [16, 32]
    src = rough.astype(np.float16).astype(np.float64)
    lo, hi = stack.value_range[0]
    np.testing.assert_allclose(lo + stack.data[..., 0] * (hi - lo), src, rtol=1e-6, atol=1e-6)
    # A constant map still gets hi > lo so the range is invertible.
    assert tuple(stack.value_range[1]) == (3.0, 4.0)
    assert np.all(stack.data[..., 1] == 0.0)


def test_exr_rgba_drops_alpha(tmp_path):
    planes = {c: RNG.uniform(0, 1, size=(3, 3)) for c in "RGBA"}
    write_exr(tmp_path / "normal.exr", planes)
    stack = load_material(tmp_path)
    assert stack.channels == GROUPS["normal"]
    lo, hi = stack.value_range[:, 0], stack.value_range[:, 1]
    real = lo + stack.data * (hi - lo)
    np.testing.assert_allclose(real, np.stack([planes[c] for c in "RGB"], -1), rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------- errors


def assert_error(path, *needles):
    with pytest.raises(IgsError) as info:
        load_material(path)
    msg = str(info.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, msg
    return msg


def test_error_mismatched_sizes(tmp_path):
    write_png(tmp_path / "basecolor.png", rand8(8, 8, 3), 8)
    write_png(tmp_path / "normal.png", rand8(4, 8, 3), 8)
    msg = assert_error(tmp_path, "normal.png", "basecolor.png")
    assert "8x4" in msg and "8x8" in msg


def test_error_corrupt_png(tmp_path):
    (tmp_path / "basecolor.png").write_bytes(RNG.integers(0, 256, 500, dtype=np.uint8).tobytes())
    assert_error(tmp_path, "basecolor.png", "cannot read image")


def test_error_truncated_png(tmp_path):
    write_png(tmp_path / "full.png", RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8), 8)
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "roughness.png").write_bytes(data[: len(data) // 2])
    assert_error(tmp_path, "roughness.png", "cannot read image")


@pytest.mark.parametrize("ext", ["jpg", "tga", "exr"])
def test_error_corrupt_other_formats(tmp_path, ext):
    (tmp_path / f"albedo.{ext}").write_bytes(b"not an image at all" * 20)
    assert_error(tmp_path, f"albedo.{ext}")


def test_error_truncated_jpeg(tmp_path):
    Image.fromarray(rand8(64, 64, 3)).save(tmp_path / "x.jpg", quality=95)
    data = (tmp_path / "x.jpg").read_bytes()
    (tmp_path / "wall_diffuse.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "x.jpg").unlink()
    assert_error(tmp_path, "wall_diffuse.jpg")


def test_error_nan_in_exr(tmp_path):
    y = np.ones((4, 4), np.float32)
    g = np.ones((4, 4), np.float32)
    g[1, 2] = np.nan
    write_exr(tmp_path / "normal.exr", {"R": y, "G": g, "B": y})
    assert_error(tmp_path, "normal.exr", "channel G", "NaN/Inf")


def test_error_inf_in_exr(tmp_path):
    y = np.zeros((4, 4), np.float32)
    y[0, 0] = np.inf
    write_exr(tmp_path / "ao.exr", {"Y": y})
    assert_error(tmp_path, "ao.exr", "NaN/Inf")


def test_error_empty_folder(tmp_path):
    (tmp_path / "README.txt").write_text("nothing here")
    assert_error(tmp_path, str(tmp_path), "no recognised map")


def test_error_duplicate_maps(tmp_path):
    write_png(tmp_path / "wood_albedo.png", rand8(4, 4, 3), 8)
    write_png(tmp_path / "wood_basecolor.png", rand8(4, 4, 3), 8)
    assert_error(tmp_path, "wood_albedo.png", "wood_basecolor.png", "duplicate")


def test_error_orm_and_separate_map(tmp_path):
    write_png(tmp_path / "arm.png", rand8(4, 4, 3), 8)
    write_png(tmp_path / "roughness.png", rand8(4, 4), 8)
    assert_error(tmp_path, "arm.png", "roughness.png", "ambiguous")


def test_error_nonexistent_path(tmp_path):
    assert_error(tmp_path / "no_such_material", "no_such_material")


# ----------------------------------------------------------------- save_maps


def roundtrip(src_dir, out_dir, fmt="auto"):
    a = load_material(src_dir)
    written = save_maps(a.data, a.channels, a.value_range, a.maps, out_dir, fmt=fmt)
    return a, written, load_material(out_dir)


def test_save_maps_round_trip_png8_and_png16(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_png(src / "rock_basecolor.png", rand8(9, 7, 3), 8)
    write_png(src / "rock_normal.png", RNG.integers(0, 65536, (9, 7, 3), dtype=np.uint16), 16)
    write_png(src / "rock_roughness.png", RNG.integers(0, 65536, (9, 7), dtype=np.uint16), 16)
    write_png(src / "rock_ao.png", rand8(9, 7), 8)
    a, written, b = roundtrip(src, tmp_path / "out")
    assert sorted(p.name for p in written) == sorted(p.name for p in src.iterdir())
    assert np.array_equal(a.data, b.data)
    assert a.channels == b.channels
    assert [m.to_dict() for m in a.maps] == [m.to_dict() for m in b.maps]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_save_maps_round_trip_exr(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_exr(src / "basecolor.exr", {c: RNG.uniform(0, 12, (6, 5)) for c in "RGB"}, half=True)
    write_exr(src / "roughness.exr", {"Y": RNG.uniform(0.2, 0.7, (6, 5))})
    a, written, b = roundtrip(src, tmp_path / "out")
    assert sorted(p.name for p in written) == ["basecolor.exr", "roughness.exr"]
    np.testing.assert_allclose(b.value_range, a.value_range, rtol=1e-6)
    np.testing.assert_allclose(b.data, a.data, atol=1e-6)
    assert all(m.bit_depth == 32 for m in b.maps)  # auto writes float32 EXR


def test_save_maps_jpeg_becomes_png_and_orm(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(rand8(8, 8, 3)).save(src / "brick_albedo.jpg")
    write_png(src / "brick_orm.png", rand8(8, 8, 3), 8)
    a, written, b = roundtrip(src, tmp_path / "out")
    assert sorted(p.name for p in written) == ["brick_albedo.png", "brick_orm.png"]
    assert np.array_equal(a.data, b.data)


def test_save_maps_forced_formats(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_png(src / "basecolor.png", rand8(4, 4, 3), 8)
    a = load_material(src)
    written = save_maps(a.data, a.channels, a.value_range, a.maps, tmp_path / "p16", fmt="png16")
    assert [p.name for p in written] == ["basecolor.png"]
    b = load_material(tmp_path / "p16")
    assert b.maps[0].bit_depth == 16
    np.testing.assert_allclose(b.data, a.data, atol=0.5 / 65535)
    written = save_maps(a.data, a.channels, a.value_range, a.maps, tmp_path / "exr", fmt="exr")
    assert [p.name for p in written] == ["basecolor.exr"]
    c = load_material(tmp_path / "exr")
    real = c.value_range[:, 0] + c.data * (c.value_range[:, 1] - c.value_range[:, 0])
    np.testing.assert_allclose(real, a.data, atol=1e-6)


def test_save_maps_clips_and_rounds(tmp_path):
    data = np.array([[[-0.2], [0.5 / 255 + 1e-4], [1.7], [0.25]]], dtype=np.float32)  # [1, 4, 1]
    maps = [MapSource("roughness", "roughness.png", [0], 8, "png", "linear")]
    (path,) = save_maps(data, ["roughness"], np.array([[0.0, 1.0]], np.float32), maps, tmp_path)
    assert np.array_equal(np.asarray(Image.open(path)), [[0, 1, 255, 64]])


def test_save_maps_rejects_bad_metadata(tmp_path):
    data = np.zeros((2, 2, 1), np.float32)
    vr = np.array([[0.0, 1.0]], np.float32)
    escape = [MapSource("roughness", "../evil.png", [0], 8, "png", "linear")]
    with pytest.raises(IgsError, match="invalid map file name"):
        save_maps(data, ["roughness"], vr, escape, tmp_path)
    wrong = [MapSource("normal", "n.png", [0], 8, "png", "linear")]
    with pytest.raises(IgsError, match="n.png"):
        save_maps(data, ["roughness"], vr, wrong, tmp_path)
    with pytest.raises(IgsError, match="unknown output format"):
        save_maps(data, ["roughness"], vr, [], tmp_path, fmt="webp")


def test_map_source_dict_round_trip():
    m = MapSource("orm", "crate_ORM.png", [3, 4, 5], 16, "png", "linear")
    assert MapSource.from_dict(m.to_dict()) == m
    with pytest.raises(IgsError, match="missing"):
        MapSource.from_dict({"kind": "orm"})
    with pytest.raises(IgsError, match="unknown kind"):
        MapSource.from_dict({**m.to_dict(), "kind": "height"})
