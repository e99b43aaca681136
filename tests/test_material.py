"""Material loading and saving on real files: the shared walnut material and
small fixtures written here in every supported format."""

from pathlib import Path

import numpy as np
import OpenEXR
import png
import pytest
from conftest import MATERIALS
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
        png.Writer(width=w, height=h, greyscale=c in (1, 2), alpha=c in (2, 4), bitdepth=bit_depth).write(
            f, codes.reshape(h, w * c)
        )


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
        "basecolor.r",
        "basecolor.g",
        "basecolor.b",
        "normal.x",
        "normal.y",
        "normal.z",
        "roughness",
        "metalness",
    ]
    assert stack.value_range.shape == (8, 2) and stack.value_range.dtype == np.float32
    assert np.array_equal(stack.value_range, np.tile([0.0, 1.0], (8, 1)).astype(np.float32))
    assert stack.group_slices() == {
        "basecolor": [0, 1, 2],
        "normal": [3, 4, 5],
        "roughness": [6],
        "metalness": [7],
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
    [
        ("walnut_wood", ["roughness", "metalness"]),
        ("rock_cliff", []),
        ("boombox_atlas", ["roughness", "metalness"]),
        ("pipes_trak", []),
    ],
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


# ----------------------------------------------------------------- map discovery
# Folders named as real exporters name them, built from crops of the sample walnut maps.

from igs_tex.material import HEIGHT_REASON, describe_maps, discover_maps  # noqa: E402

SAMPLE = ASSETS / "walnut_wood"


@pytest.fixture(scope="module")
def walnut():
    """32x32 crops of the sample maps as uint8 arrays, plus a binary cut-out mask."""
    box = (96, 0, 128, 32)  # where the (fairly flat) walnut normal map varies most
    out = {}
    for name in ("basecolor", "normal", "roughness", "metalness"):
        with Image.open(SAMPLE / f"{name}.png") as im:
            out[name] = np.asarray(im.crop(box))
    assert out["basecolor"].shape == (32, 32, 3) and out["roughness"].shape == (32, 32)
    assert np.ptp(out["normal"][..., 1]) > 20 and np.ptp(out["roughness"]) > 20  # real texture, not flat
    assert np.abs(out["normal"][..., 1].astype(int) - 128).max() > 10  # so the DirectX flip shows
    out["ao"] = out["basecolor"][..., 1]  # a real plane standing in for occlusion
    out["opacity"] = np.where(out["roughness"] > np.median(out["roughness"]), 255, 0).astype(np.uint8)
    out["normal_dx"] = out["normal"].copy()
    out["normal_dx"][..., 1] = 255 - out["normal"][..., 1]
    out["arm"] = np.stack([out["ao"], out["roughness"], out["metalness"]], axis=-1)
    return out


def save(folder, name, pixels):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(pixels)).save(folder / name)
    return folder / name


def unit(codes):
    return (np.asarray(codes, dtype=np.float64) / 255.0).astype(np.float32)


def by_name(skipped):
    return {s.path.name: s.reason for s in skipped}


def test_poly_haven_folder(tmp_path, walnut):
    d = tmp_path / "walnut_planks"
    save(d, "walnut_planks_diff_1k.png", walnut["basecolor"])
    save(d, "walnut_planks_nor_gl_1k.png", walnut["normal"])
    save(d, "walnut_planks_nor_dx_1k.png", walnut["normal_dx"])
    save(d, "walnut_planks_rough_1k.png", walnut["roughness"])  # the same roughness as arm's G
    save(d, "walnut_planks_arm_1k.png", walnut["arm"])
    save(d, "walnut_planks_disp_1k.png", walnut["roughness"])
    (d / "walnut_planks_1k.blend").write_bytes(b"BLENDER")

    used, skipped = discover_maps(d)
    assert [(a.path.name, a.kind) for a in used] == [
        ("walnut_planks_diff_1k.png", "basecolor"),
        ("walnut_planks_nor_gl_1k.png", "normal"),
        ("walnut_planks_arm_1k.png", "orm"),
    ]
    reasons = by_name(skipped)
    assert set(reasons) == {"walnut_planks_nor_dx_1k.png", "walnut_planks_rough_1k.png", "walnut_planks_disp_1k.png"}
    assert reasons["walnut_planks_disp_1k.png"] == HEIGHT_REASON == "height is not baked unless asked"
    assert "walnut_planks_nor_gl_1k.png" in reasons["walnut_planks_nor_dx_1k.png"]
    assert "OpenGL is preferred" in reasons["walnut_planks_nor_dx_1k.png"]
    assert "packed in walnut_planks_arm_1k.png" in reasons["walnut_planks_rough_1k.png"]
    lines = describe_maps(used, skipped)
    assert lines[:3] == [
        "walnut_planks_diff_1k.png -> basecolor.r, basecolor.g, basecolor.b",
        "walnut_planks_nor_gl_1k.png -> normal.x, normal.y, normal.z (OpenGL (+Y) normal)",
        "walnut_planks_arm_1k.png -> ao (R), roughness (G), metalness (B)",
    ]
    assert lines[3] == "walnut_planks_disp_1k.png: skipped (height is not baked unless asked)"
    assert len(lines) == 6 and all(": skipped (" in ln for ln in lines[3:])

    stack = load_material(d)
    assert stack.channels == GROUPS["basecolor"] + GROUPS["normal"] + ["ao", "roughness", "metalness"]
    assert np.array_equal(stack.data[..., 0:3], unit(walnut["basecolor"]))
    assert np.array_equal(stack.data[..., 3:6], unit(walnut["normal"]))  # the OpenGL file, unflipped
    assert np.array_equal(stack.data[..., 6], unit(walnut["ao"]))
    assert np.array_equal(stack.data[..., 7], unit(walnut["roughness"]))
    assert [m.transform for m in stack.maps] == ["", "", ""]


def test_poly_haven_separate_map_that_disagrees_with_arm_is_ambiguous(tmp_path, walnut):
    d = tmp_path / "m"
    save(d, "m_diff_2k.png", walnut["basecolor"])
    save(d, "m_arm_2k.png", walnut["arm"])
    save(d, "m_rough_2k.png", 255 - walnut["roughness"])  # not arm's G
    assert_error(d, "m_rough_2k.png", "m_arm_2k.png", "ambiguous")


def test_directx_normal_green_is_flipped_and_written_back(tmp_path, walnut):
    gl = tmp_path / "gl"
    save(gl, "rock_nor_gl_1k.png", walnut["normal"])
    dx = tmp_path / "dx"
    save(dx, "rock_nor_dx_1k.png", walnut["normal_dx"])
    a, b = load_material(gl), load_material(dx)
    assert a.channels == b.channels == GROUPS["normal"]
    # Green flipped relative to the file: 1 - G; red and blue untouched.
    assert np.array_equal(b.data[..., 1], (1.0 - walnut["normal_dx"][..., 1] / 255.0).astype(np.float32))
    assert np.array_equal(b.data[..., [0, 2]], unit(walnut["normal_dx"][..., [0, 2]]))
    # ... which is the OpenGL map it was made from.
    np.testing.assert_allclose(b.data, a.data, atol=1e-7)
    assert np.abs(unit(walnut["normal_dx"])[..., 1] - a.data[..., 1]).max() > 20 / 255
    (m,) = b.maps
    assert (m.kind, m.transform) == ("normal", "flip_green")
    assert m.to_dict()["transform"] == "flip_green" and "transform" not in a.maps[0].to_dict()
    assert MapSource.from_dict(m.to_dict()) == m
    (used,), _ = discover_maps(dx)
    assert "DirectX" in used.describe() and "green flipped" in used.describe()
    # Decode writes the file back in its own (DirectX) convention.
    (out,) = save_maps(b.data, b.channels, b.value_range, b.maps, tmp_path / "out")
    assert out.name == "rock_nor_dx_1k.png"
    assert np.array_equal(np.asarray(Image.open(out)), walnut["normal_dx"])


def test_signed_float_directx_normal_is_negated(tmp_path):
    n = RNG.uniform(-1.0, 1.0, size=(4, 5, 3))
    write_exr(tmp_path / "wall_NormalDX.exr", {"R": n[..., 0], "G": n[..., 1], "B": n[..., 2]})
    stack = load_material(tmp_path)
    assert stack.maps[0].transform == "negate_green"
    lo, hi = stack.value_range[:, 0], stack.value_range[:, 1]
    real = lo + stack.data * (hi - lo)
    np.testing.assert_allclose(real[..., 1], -n[..., 1], atol=1e-5)
    np.testing.assert_allclose(real[..., [0, 2]], n[..., [0, 2]], atol=1e-5)


def test_ambientcg_folder(tmp_path, walnut):
    d = tmp_path / "Wood049_1K-PNG"
    stem = "Wood049_1K-PNG"
    save(d, f"{stem}_Color.png", walnut["basecolor"])
    save(d, f"{stem}_NormalGL.png", walnut["normal"])
    save(d, f"{stem}_NormalDX.png", walnut["normal_dx"])
    save(d, f"{stem}_Roughness.png", walnut["roughness"])
    save(d, f"{stem}_Metalness.png", walnut["metalness"])
    save(d, f"{stem}_AmbientOcclusion.png", walnut["ao"])
    save(d, f"{stem}_Displacement.png", walnut["roughness"])
    save(d, f"{stem}_Opacity.png", walnut["opacity"])
    save(d, "Wood049.png", walnut["basecolor"])  # ambientCG's preview image
    (d / f"{stem}.mtlx").write_text("<materialx/>")

    used, skipped = discover_maps(d)
    assert [a.kind for a in used] == ["basecolor", "normal", "ao", "roughness", "metalness", "opacity"]
    assert used[1].path.name == f"{stem}_NormalGL.png"
    reasons = by_name(skipped)
    assert set(reasons) == {f"{stem}_NormalDX.png", f"{stem}_Displacement.png", "Wood049.png"}
    assert f"{stem}_NormalGL.png" in reasons[f"{stem}_NormalDX.png"]
    assert reasons[f"{stem}_Displacement.png"] == HEIGHT_REASON
    assert reasons["Wood049.png"] == "name not recognised as a map"
    assert used[-1].describe() == f"{stem}_Opacity.png -> opacity (stored as channel 'other')"

    stack = load_material(d)
    # Opacity has no semantic code (FORMAT.md: 0-9), so it is one `other` channel after the rest.
    assert stack.channels == CHANNEL_ORDER + ["other"]
    assert np.array_equal(stack.data[..., 3:6], unit(walnut["normal"]))
    assert np.array_equal(stack.data[..., 6], unit(walnut["ao"]))
    assert np.array_equal(stack.data[..., 9], unit(walnut["opacity"]))
    assert set(np.unique(stack.data[..., 9])) == {0.0, 1.0}
    assert stack.group_slices()["opacity"] == [9]
    opacity = [m for m in stack.maps if m.kind == "opacity"][0]
    assert opacity.channels == [9] and opacity.file == f"{stem}_Opacity.png"
    assert MapSource.from_dict(opacity.to_dict()) == opacity
    # ... and decodes back to a file of that name.
    written = save_maps(stack.data, stack.channels, stack.value_range, stack.maps, tmp_path / "out")
    assert sorted(p.name for p in written) == sorted(
        f"{stem}_{k}.png" for k in ("Color", "NormalGL", "Roughness", "Metalness", "AmbientOcclusion", "Opacity")
    )
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / f"{stem}_Opacity.png")), walnut["opacity"])


def test_substance_folder_with_directx_normal_and_packed_orm(tmp_path, walnut):
    d = tmp_path / "Walnut"
    save(d, "Walnut_BaseColor.png", walnut["basecolor"])
    save(d, "Walnut_Normal_DirectX.png", walnut["normal_dx"])
    save(d, "Walnut_OcclusionRoughnessMetallic.png", walnut["arm"])
    save(d, "Walnut_Height.png", walnut["roughness"])
    save(d, "Walnut_Emissive.png", np.zeros((32, 32, 3), np.uint8))
    used, skipped = discover_maps(d)
    assert [(a.path.name, a.kind, a.transform) for a in used] == [
        ("Walnut_BaseColor.png", "basecolor", ""),
        ("Walnut_Normal_DirectX.png", "normal", "flip_green"),
        ("Walnut_OcclusionRoughnessMetallic.png", "orm", ""),
    ]
    assert by_name(skipped) == {
        "Walnut_Emissive.png": "emissive maps are not baked (igs-tex has no emissive channel)",
        "Walnut_Height.png": HEIGHT_REASON,
    }
    stack = load_material(d)
    assert stack.channels == GROUPS["basecolor"] + GROUPS["normal"] + ["ao", "roughness", "metalness"]
    np.testing.assert_allclose(stack.data[..., 3:6], unit(walnut["normal"]), atol=1e-7)  # flipped back to GL
    assert np.array_equal(stack.data[..., 6:9], unit(walnut["arm"]))


def test_substance_opengl_normal_beats_unnamed_and_directx(tmp_path, walnut):
    d = tmp_path / "m"
    save(d, "Mat_Normal.png", walnut["normal_dx"])
    save(d, "Mat_Normal_OpenGL.png", walnut["normal"])
    save(d, "Mat_Normal_DirectX.png", walnut["normal_dx"])
    used, skipped = discover_maps(d)
    assert [a.path.name for a in used] == ["Mat_Normal_OpenGL.png"]
    assert sorted(by_name(skipped)) == ["Mat_Normal.png", "Mat_Normal_DirectX.png"]
    assert np.array_equal(load_material(d).data, unit(walnut["normal"]))
    (d / "Mat_Normal_OpenGL.png").unlink()
    used, skipped = discover_maps(d)  # no OpenGL name left: the unnamed one, taken as OpenGL
    assert [a.path.name for a in used] == ["Mat_Normal.png"] and "taken as OpenGL" in used[0].note
    assert [s.path.name for s in skipped] == ["Mat_Normal_DirectX.png"]


@pytest.mark.parametrize("with_roughness", [False, True])
def test_quixel_folder_gloss_becomes_roughness(tmp_path, walnut, with_roughness):
    d = tmp_path / "wood_plank_vdqkaf3"
    stem = "Aset_wood_plank_M_vdqkaf3_4K"
    save(d, f"{stem}_Albedo.png", walnut["basecolor"])
    save(d, f"{stem}_Normal.png", walnut["normal"])
    gloss = 255 - walnut["roughness"]
    save(d, f"{stem}_Gloss.png", gloss)
    save(d, f"{stem}_AO.png", walnut["ao"])
    save(d, f"{stem}_Specular.png", walnut["roughness"])
    save(d, f"{stem}_Displacement.png", walnut["roughness"])
    if with_roughness:
        save(d, f"{stem}_Roughness.png", walnut["roughness"])
    used, skipped = discover_maps(d)
    reasons = by_name(skipped)
    assert reasons[f"{stem}_Specular.png"] == "specular maps are not baked (igs-tex has no specular channel)"
    assert reasons[f"{stem}_Displacement.png"] == HEIGHT_REASON
    rough = [a for a in used if a.kind == "roughness"][0]
    stack = load_material(d)
    assert stack.channels == GROUPS["basecolor"] + GROUPS["normal"] + ["ao", "roughness"]
    m = [m for m in stack.maps if m.kind == "roughness"][0]
    if with_roughness:
        assert rough.path.name == m.file == f"{stem}_Roughness.png" and m.transform == ""
        assert reasons[f"{stem}_Gloss.png"] == (
            f"roughness comes from {stem}_Roughness.png; roughness is preferred over glossiness"
        )
        assert np.array_equal(stack.data[..., 7], unit(walnut["roughness"]))
    else:
        assert rough.path.name == m.file == f"{stem}_Gloss.png" and m.transform == "one_minus"
        assert rough.note == "glossiness: roughness = 1 - gloss" and "1 - gloss" in rough.describe()
        assert np.array_equal(stack.data[..., 7], (1.0 - gloss / 255.0).astype(np.float32))
        np.testing.assert_allclose(stack.data[..., 7], unit(walnut["roughness"]), atol=1e-7)
        # Decode writes glossiness back under the gloss file's name.
        save_maps(stack.data, stack.channels, stack.value_range, stack.maps, tmp_path / "out")
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / f"{stem}_Gloss.png")), gloss)


def test_unreal_folder(tmp_path, walnut):
    d = tmp_path / "T_Walnut"
    save(d, "T_Walnut_D.tga", walnut["basecolor"])
    save(d, "T_Walnut_N.png", walnut["normal"])
    save(d, "T_Walnut_ORM.png", walnut["arm"])
    save(d, "T_Walnut_H.png", walnut["roughness"])
    (d / "T_Walnut_N.ktx2").write_bytes(b"\xabKTX 20\xbb\r\n\x1a\n" + bytes(100))
    used, skipped = discover_maps(d)
    assert [(a.path.name, a.kind) for a in used] == [
        ("T_Walnut_D.tga", "basecolor"),
        ("T_Walnut_N.png", "normal"),
        ("T_Walnut_ORM.png", "orm"),
    ]
    assert "taken as OpenGL" in used[1].describe()
    assert by_name(skipped) == {
        "T_Walnut_H.png": HEIGHT_REASON,
        "T_Walnut_N.ktx2": "KTX2 maps are not read yet; a normal map by its name",
    }
    stack = load_material(d)
    assert stack.channels == GROUPS["basecolor"] + GROUPS["normal"] + ["ao", "roughness", "metalness"]
    assert np.array_equal(stack.data[..., 0:3], unit(walnut["basecolor"]))
    assert np.array_equal(stack.data[..., 6:9], unit(walnut["arm"]))
    assert {m.kind: m.file_format for m in stack.maps} == {"basecolor": "tga", "normal": "png", "orm": "png"}


@pytest.mark.parametrize(
    "name, kind",
    [
        ("oak_diff_1k.png", "basecolor"),
        ("oak_nor_gl_2k.exr", "normal"),
        ("oak_nor_dx_4k.png", "normal"),
        ("oak_rough_8k.jpg", "roughness"),
        ("oak_arm_1k.png", "orm"),
        ("oak_metal_1k.png", "metalness"),
        ("oak_disp_1k.png", None),
        ("Wood049_2K-JPG_Color.jpg", "basecolor"),
        ("Wood049_2K_NormalDX.png", "normal"),
        ("Wood049_1K_AmbientOcclusion.jpg", "ao"),
        ("Wood049_1K_Opacity.png", "opacity"),
        ("Mat_Mixed_AO.png", "ao"),
        ("Mat_Normal_OpenGL.png", "normal"),
        ("Mat_OcclusionRoughnessMetallic.png", "orm"),
        ("Aset_M_x_4K_Gloss.jpg", "roughness"),
        ("Aset_M_x_4K_Specular.jpg", None),
        ("T_Rock_D.png", "basecolor"),
        ("T-Rock-R.png", "roughness"),
        ("T Rock M.png", "metalness"),
        ("T.Rock.ORM.tga", "orm"),
        ("T_Rock_H.png", None),
        ("T_Rock_N.ktx2", None),
        ("rock_albedo_2048.png", "basecolor"),
        ("wood.png", None),
        ("2k.png", None),
    ],
)
def test_map_kind_of_exporter_names(name, kind):
    assert map_kind(name) == kind


def test_unrecognised_folder_error_names_what_it_saw(tmp_path):
    d = tmp_path / "download"
    d.mkdir()
    save(d, "scan_0001.png", rand8(4, 4, 3))
    save(d, "wood_height.png", rand8(4, 4))
    (d / "wood.ktx2").write_bytes(b"x" * 40)
    (d / "notes.txt").write_text("from the scanner")
    (d / "Wood049_2K-JPG").mkdir()  # the maps are one level down
    msg = assert_error(
        d,
        str(d),
        "no recognised map",
        "scan_0001.png",
        "notes.txt",
        "Wood049_2K-JPG/",
        "wood.ktx2 (KTX2 maps are not read yet)",
        "wood_height.png (height is not baked unless asked)",
    )
    assert "scan_0001.png (" not in msg  # plainly unrecognised names carry no reason


def test_unrecognised_folder_error_lists_a_dozen(tmp_path):
    for i in range(15):
        save(tmp_path, f"img{i:02d}.png", rand8(2, 2))
    msg = assert_error(tmp_path, "img00.png", "img11.png", "and 3 more")
    assert "img12.png" not in msg


def test_hidden_and_unread_files_are_listed_as_skipped(tmp_path):
    save(tmp_path, "wood_basecolor.png", rand8(4, 4, 3))
    save(tmp_path, "._wood_basecolor.png", rand8(4, 4, 3))
    save(tmp_path, "wood_normal.tif", rand8(4, 4, 3))
    (tmp_path / "LICENSE").write_text("CC0")
    used, skipped = discover_maps(tmp_path)
    assert [a.path.name for a in used] == ["wood_basecolor.png"]
    assert by_name(skipped) == {
        "._wood_basecolor.png": "hidden file",
        "wood_normal.tif": "TIF files are not read; use PNG, JPEG, TGA or EXR; a normal map by its name",
    }


def test_single_map_file_discovery(tmp_path, walnut):
    f = save(tmp_path, "rock_NormalDX.png", walnut["normal_dx"])
    (a,), skipped = discover_maps(f)
    assert skipped == [] and a.transform == "flip_green"
    np.testing.assert_allclose(load_material(f).data, unit(walnut["normal"]), atol=1e-7)
    h = save(tmp_path, "rock_height.png", walnut["roughness"])
    assert_error(h, "rock_height.png", HEIGHT_REASON)


# ----------------------------------------------------------------- maps= override


def test_maps_override_names_files_the_discovery_cannot(tmp_path, walnut):
    save(tmp_path, "scan_a.png", walnut["basecolor"])
    save(tmp_path, "scan_b.png", walnut["normal_dx"])
    save(tmp_path, "scan_rough.png", walnut["roughness"])
    save(tmp_path, "scan_c.png", 255 - walnut["roughness"])
    used, skipped = discover_maps(tmp_path, maps={"basecolor": "scan_a.png", "normal_dx": "scan_b.png"})
    assert [(a.path.name, a.kind, a.explicit) for a in used] == [
        ("scan_a.png", "basecolor", True),
        ("scan_b.png", "normal", True),
        ("scan_rough.png", "roughness", False),
    ]
    assert "given by maps=" in used[0].describe()
    assert by_name(skipped) == {"scan_c.png": "name not recognised as a map"}
    stack = load_material(tmp_path, maps={"basecolor": "scan_a.png", "normal-DX": tmp_path / "scan_b.png"})
    assert np.array_equal(stack.data[..., 0:3], unit(walnut["basecolor"]))
    np.testing.assert_allclose(stack.data[..., 3:6], unit(walnut["normal"]), atol=1e-7)
    # gloss: 1 - value; an explicit roughness replaces the discovered one, which is reported.
    stack = load_material(tmp_path, maps={"gloss": "scan_c.png"})
    assert stack.channels == ["roughness"]
    np.testing.assert_allclose(stack.data[..., 0], unit(walnut["roughness"]), atol=1e-7)
    _, skipped = discover_maps(tmp_path, maps={"gloss": "scan_c.png"})
    assert by_name(skipped)["scan_rough.png"] == "roughness given by maps= (scan_c.png)"


def test_maps_override_normal_is_used_as_stored(tmp_path, walnut):
    save(tmp_path, "x_nor_dx.png", walnut["normal_dx"])
    stack = load_material(tmp_path, maps={"normal": "x_nor_dx.png"})  # the key decides, not the name
    assert stack.maps[0].transform == ""
    assert np.array_equal(stack.data, unit(walnut["normal_dx"]))


def test_maps_override_asks_for_height(tmp_path, walnut):
    save(tmp_path, "wall_diff_1k.png", walnut["basecolor"])
    save(tmp_path, "wall_disp_1k.png", walnut["roughness"])
    save(tmp_path, "wall_opacity.png", walnut["opacity"])
    assert by_name(discover_maps(tmp_path)[1]) == {"wall_disp_1k.png": HEIGHT_REASON}
    stack = load_material(tmp_path, maps={"height": "wall_disp_1k.png"})
    assert stack.channels == GROUPS["basecolor"] + ["other", "other"]
    assert stack.group_slices() == {"basecolor": [0, 1, 2], "opacity": [3], "other": [4]}
    assert np.array_equal(stack.data[..., 3], unit(walnut["opacity"]))
    assert np.array_equal(stack.data[..., 4], unit(walnut["roughness"]))
    used, _ = discover_maps(tmp_path, maps={"height": "wall_disp_1k.png"})
    assert used[-1].describe() == "wall_disp_1k.png -> height (stored as channel 'other') (given by maps=)"
    written = save_maps(stack.data, stack.channels, stack.value_range, stack.maps, tmp_path / "out")
    assert sorted(p.name for p in written) == ["wall_diff_1k.png", "wall_disp_1k.png", "wall_opacity.png"]


@pytest.mark.parametrize(
    "maps, needles",
    [
        ({"specular": "a.png"}, ["'specular'", "specular maps are not baked"]),
        ({"sparkle": "a.png"}, ["'sparkle'", "unknown map kind"]),
        ({"normal": "missing.png"}, ["missing.png", "no such file", "maps['normal']"]),
        ({"normal": "a.ktx2"}, ["a.ktx2", "KTX2 maps are not read yet"]),
        ({"orm": "a.png", "roughness": "b.png"}, ["a.png", "b.png", "same channel"]),
    ],
)
def test_maps_override_errors(tmp_path, maps, needles):
    save(tmp_path, "a.png", rand8(4, 4, 3))
    save(tmp_path, "b.png", rand8(4, 4))
    (tmp_path / "a.ktx2").write_bytes(b"x")
    with pytest.raises(IgsError) as info:
        load_material(tmp_path, maps=maps)
    for n in needles:
        assert n in str(info.value), str(info.value)


def test_map_source_transform_is_checked():
    m = MapSource("roughness", "x_gloss.png", [0], 8, "png", "linear", "one_minus")
    assert m.to_dict()["transform"] == "one_minus" and MapSource.from_dict(m.to_dict()) == m
    with pytest.raises(IgsError, match="unknown transform"):
        MapSource.from_dict({**m.to_dict(), "transform": "rotate"})
