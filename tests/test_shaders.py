"""Shaders of shaders/: compile to valid SPIR-V, and run on Mesa's CPU drivers against the references.

Three execution paths (tests/shader_host.py): GLSL on OpenGL (moderngl, llvmpipe), HLSL->SPIR-V on
Vulkan (wgpu-py, lavapipe) and GLSL->SPIR-V on Vulkan. The inputs are real bakes (cropped sample
materials, sizes not a multiple of the tile) and files derived from them for the edge cases.

If the drivers are missing the execution tests error out (no skips): run
tools/install_shader_deps.sh. Measured numbers are printed with `pytest -s tests/test_shaders.py`.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import shader_host as sh
from baking import bake_crop

from igs_tex.format_v2 import IgsFileV2, build_igs_v2
from igs_tex.igsfile import IgsFile, as_version_1, build_igs, from_bytes
from igs_tex.render.decode import decode_igs
from igs_tex.render.tiles import tile_lists_numpy

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
TOL = 1e-4  # the rendering contract's tolerance is ~1e-5; sin/cos/exp are not exact on GPUs

# Measurements gathered while the tests run, printed once at the end of the module.
REPORT: dict[str, object] = {}


def _record(key: str, value) -> None:
    REPORT[key] = value


@pytest.fixture(scope="module", autouse=True)
def _print_report():
    yield
    if REPORT:
        print("\n--- shader measurements ---")
        for k in sorted(REPORT):
            print(f"{k}: {REPORT[k]}")


# ----------------------------------------------------------------------------------------------
# Inputs: real bakes and files derived from them


def _bake_crop(src: Path, out: Path, box: tuple[int, int, int, int], gaussians: int, steps: int) -> IgsFile:
    """A real bake as a version 1 file: the version 1 tests derive their edge cases from its tile
    lists. A bake that writes version 2 is re-written as version 1 of the same decoded Gaussians
    at its tile size (the version 2 tests re-write it back, see _v2_from)."""
    # The torch backend: the shader tests' reference bakes do not depend on the native build.
    igs = bake_crop(src, out, box, gaussians, steps, backend="torch")[0]
    if igs.version == 1:
        return igs
    p = igs.params()
    return from_bytes(
        build_igs(
            p["means"],
            p["theta"],
            p["inv_scale"],
            p["colour"],
            igs.width,
            igs.height,
            igs.channels,
            igs.value_range,
            igs.metadata,
            tile=igs.tile,
            k=igs.k,
            eps=igs.eps,
        ).to_bytes()
    )


@pytest.fixture(scope="module")
def walnut(tmp_path_factory) -> IgsFile:
    # 88 x 72: neither side a multiple of T = 16, both multiples of 8 for the 1/8 mip.
    return _bake_crop(
        ASSETS / "walnut_wood", tmp_path_factory.mktemp("walnut"), (200, 150, 288, 222), gaussians=150, steps=60
    )


@pytest.fixture(scope="module")
def rock(tmp_path_factory) -> IgsFile:
    return _bake_crop(
        ASSETS / "rock_cliff", tmp_path_factory.mktemp("rock"), (64, 300, 114, 337), gaussians=40, steps=20
    )


def _with_lists(igs: IgsFile, offsets, indices, **changes) -> IgsFile:
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
        tile_offsets=offsets,
        tile_indices=indices,
        metadata=igs.metadata,
    )
    fields.update(changes)
    out = IgsFile(**fields)
    return from_bytes(out.to_bytes())  # through the validating reader: only legal files here


def _empty_tiles(igs: IgsFile, tiles: list[int]) -> IgsFile:
    off = igs.tile_offsets.astype(np.int64)
    lists = [igs.tile_indices[off[t] : off[t + 1]] for t in range(igs.tile_count)]
    for t in tiles:
        lists[t] = lists[t][:0]
    counts = np.array([len(x) for x in lists])
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.uint32)
    return _with_lists(igs, offsets, np.concatenate(lists).astype(np.uint32))


def _retiled(igs: IgsFile, tile: int, k: int) -> IgsFile:
    p = igs.params()
    off, idx = tile_lists_numpy(p["means"], p["inv_scale"], igs.height, igs.width, tile)
    return _with_lists(igs, off.astype(np.uint32), idx.astype(np.uint32), tile=tile, k=k)


def _ties() -> IgsFile:
    """Twelve copies of one Gaussian with different colours: at their mean all twelve have exactly
    the same G, and K = 10 must keep the ten lowest indices. Other Gaussians sit far to the right
    (G < 1e-9 at the copies) so the blend there is the copies' alone."""
    rng = np.random.default_rng(7)
    n_extra = 40
    means = np.concatenate([np.full((12, 2), [5.3, 7.1]), rng.uniform([14, 0], [21, 19], (n_extra, 2))])
    theta = np.concatenate([np.full(12, 0.4), rng.uniform(0, np.pi, n_extra)])
    inv_scale = np.concatenate([np.full((12, 2), [0.2, 0.3]), rng.uniform(1.0, 2.0, (n_extra, 2))])
    colour = np.concatenate([np.linspace(0, 1, 12)[:, None].repeat(2, 1), rng.uniform(0, 1, (n_extra, 2))])
    return from_bytes(
        build_igs(means, theta, inv_scale, colour, 21, 19, ["roughness", "ao"], [[0, 1], [0, 1]], k=10).to_bytes()
    )


def _wide_index() -> IgsFile:
    """65,537 small Gaussians: index_bits = 32 (every file above uses 16-bit indices)."""
    rng = np.random.default_rng(3)
    n = 65537
    return from_bytes(
        build_igs(
            rng.uniform(0, [20, 12], (n, 2)),
            rng.uniform(0, np.pi, n),
            rng.uniform(1.5, 4.0, (n, 2)),
            rng.uniform(0, 1, (n, 3)),
            20,
            12,
            ["basecolor.r", "basecolor.g", "basecolor.b"],
            [[0, 1]] * 3,
            tile=8,
            k=10,
        ).to_bytes()
    )


@pytest.fixture(scope="module")
def variants(walnut, rock) -> dict[str, IgsFile]:
    last = walnut.tile_count - 1
    v = {
        "walnut": walnut,
        "rock": rock,
        "walnut_empty_tiles": _empty_tiles(walnut, [0, 3, walnut.tiles_x + 1, last]),
        "walnut_T13_K3": _retiled(walnut, 13, 3),
        "walnut_T7_K32": _retiled(walnut, 7, 32),
        "walnut_K1": _retiled(walnut, 16, 1),
        "ties": _ties(),
        "index32": _wide_index(),
    }
    return v


@pytest.fixture(scope="module")
def references(variants) -> dict[str, np.ndarray]:
    return {name: decode_igs(igs) for name, igs in variants.items()}


# ----------------------------------------------------------------------------------------------
# Execution backends (created once: llvmpipe/lavapipe compile each shader variant on first use)


@pytest.fixture(scope="session")
def gl_runner():
    return sh.GlRunner()


@pytest.fixture(scope="session")
def vk_runner():
    return sh.WgpuRunner()


BACKENDS = ["glsl-gl", "hlsl-vulkan", "glsl-vulkan"]


@pytest.fixture(params=BACKENDS)
def backend(request) -> sh.Backend:
    lang, api = request.param.split("-")
    runner = request.getfixturevalue("gl_runner" if api == "gl" else "vk_runner")
    return sh.Backend(lang, runner)


# ----------------------------------------------------------------------------------------------
# Compilation


COMPILE_CONFIGS = {
    "default": {},
    "one_buffer": {"IGS_ONE_BUFFER": None},
    "images_rgba8": {"IGS_DECODE_IMAGES": 1, "IGS_IMAGE_FORMAT": "rgba8"},
    "images_rgba16f_real": {"IGS_DECODE_IMAGES": 1, "IGS_IMAGE_FORMAT": "rgba16f", "IGS_DECODE_REAL_UNITS": 1},
    "images_only": {"IGS_DECODE_IMAGES": 1, "IGS_DECODE_BUFFER": 0},
    "caps_k10_c9_nopeak": {"IGS_MAX_K": 10, "IGS_MAX_CHANNELS": 9, "IGS_FOOTPRINT_PEAK_SCALE": 0},
}


@pytest.mark.parametrize("config", sorted(COMPILE_CONFIGS))
@pytest.mark.parametrize("lang", ["glsl", "hlsl"])
def test_decode_shader_compiles_and_validates(lang, config):
    src = sh.SHADERS / f"igs_decode.comp.{lang}"
    spirv = sh.compile_spirv(src, lang, COMPILE_CONFIGS[config])
    sh.spirv_validate(spirv)


@pytest.mark.parametrize("lang", ["glsl", "hlsl"])
def test_test_kernel_compiles_and_validates(lang):
    src = sh.glsl_test_kernel() if lang == "glsl" else sh.hlsl_test_kernel()
    sh.spirv_validate(sh.compile_spirv(src, lang))


def _decorations(spirv: bytes) -> str:
    r = subprocess.run([sh.tool("spirv-dis"), "-"], input=spirv, capture_output=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode()


@pytest.mark.parametrize("lang", ["glsl", "hlsl"])
def test_bindings_follow_macros(lang):
    if lang == "glsl":
        d = {
            "IGS_SET": 2,
            "IGS_BINDING_HEADER": 10,
            "IGS_BINDING_GAUSSIANS": 11,
            "IGS_BINDING_TILE_OFFSETS": 12,
            "IGS_BINDING_TILE_INDICES": 13,
            "IGS_BINDING_DECODE_OUT": 14,
        }
    else:
        d = {
            "IGS_VK_SET": 2,
            "IGS_VK_BINDING_HEADER": 10,
            "IGS_VK_BINDING_GAUSSIANS": 11,
            "IGS_VK_BINDING_TILE_OFFSETS": 12,
            "IGS_VK_BINDING_TILE_INDICES": 13,
            "IGS_VK_BINDING_DECODE_OUT": 14,
            "IGS_SPACE": "space3",
            "IGS_REG_HEADER": "t5",
        }
    text = _decorations(sh.compile_spirv(sh.SHADERS / f"igs_decode.comp.{lang}", lang, d))
    bindings = sorted(int(x) for x in re.findall(r"Binding (\d+)", text))
    sets = set(re.findall(r"DescriptorSet (\d+)", text))
    assert bindings == [10, 11, 12, 13, 14]
    assert sets == {"2"}


@pytest.mark.parametrize("lang", ["glsl", "hlsl"])
def test_parameter_decode_is_not_contracted(lang):
    """FORMAT.md requires one rounding per decode step: the results must carry NoContraction."""
    text = _decorations(sh.compile_spirv(sh.SHADERS / f"igs_decode.comp.{lang}", lang))
    assert text.count("NoContraction") >= 7  # sx, sy, mean x/y, theta, colour step, m, colour


# ----------------------------------------------------------------------------------------------
# Execution: parameters and whole-stack decode


def test_execution_drivers(gl_runner, vk_runner):
    _record("driver gl", gl_runner.renderer)
    _record("driver vulkan", vk_runner.renderer)
    assert gl_runner.ctx.version_code >= 430  # compute shaders
    assert vk_runner.adapter.info.get("backend_type") == "Vulkan"


def test_parameters_bit_exact(backend, walnut, variants):
    for name in ("walnut", "rock", "index32"):
        igs = variants[name]
        p = igs.params()
        want = np.concatenate([p["means"], p["theta"][:, None], p["inv_scale"], p["colour"]], axis=1)
        got = backend.params(igs.to_bytes())
        bad = got.view(np.uint32) != want.astype(np.float32).view(np.uint32)
        assert not bad.any(), f"{name}: {int(bad.sum())} parameter words differ from FORMAT.md's bits"


def test_decode_matches_references(backend, walnut, rock, references):
    for name, igs in (("walnut", walnut), ("rock", rock)):
        got = backend.decode(igs.to_bytes())
        ref = references[name]
        err = float(np.abs(got - ref).max())
        _record(f"decode max|err| vs python {backend.lang}/{type(backend.runner).__name__} {name}", err)
        assert err < TOL, name
        nat = sh.native_decode(igs)
        if nat is not None:
            err_n = float(np.abs(got - nat).max())
            _record(f"decode max|err| vs C++ {backend.lang}/{type(backend.runner).__name__} {name}", err_n)
            assert err_n < TOL, name


def test_one_buffer_binding_gives_the_same_stack(backend, walnut):
    data = walnut.to_bytes()
    assert np.array_equal(backend.decode(data, one_buffer=True), backend.decode(data))


@pytest.mark.parametrize(
    "name", ["walnut_empty_tiles", "walnut_T13_K3", "walnut_T7_K32", "walnut_K1", "ties", "index32"]
)
def test_decode_edge_cases(backend, variants, references, name):
    igs = variants[name]
    counts = np.diff(igs.tile_offsets.astype(np.int64))
    if name == "walnut_empty_tiles":
        assert (counts == 0).sum() == 4
    if name in ("walnut_T13_K3", "walnut_K1", "index32"):
        assert (counts > igs.k).any() and igs.width % igs.tile and igs.height % igs.tile
    if name == "index32":
        assert igs.index_bits == 32
    got = backend.decode(igs.to_bytes())
    err = float(np.abs(got - references[name]).max())
    _record(f"decode max|err| {name} {backend.lang}/{type(backend.runner).__name__}", err)
    assert err < TOL
    if name == "walnut_empty_tiles":
        t = np.zeros((igs.height, igs.width), dtype=np.int64)
        ys, xs = np.mgrid[0 : igs.height, 0 : igs.width]
        t = (ys // igs.tile) * igs.tiles_x + xs // igs.tile
        assert np.all(got[counts[t] == 0] == 0.0)  # sum G = 0 renders 0, not NaN


def test_ties_go_to_the_lower_index(backend, variants):
    igs = variants["ties"]
    p = igs.params()
    assert np.unique(p["means"][:12], axis=0).shape[0] == 1  # exact copies after quantisation
    at = p["means"][:1].astype(np.float32)
    got = backend.points(igs.to_bytes(), sh.MODE_TEXEL, at)
    assert np.abs(got - sh.reference_points(igs, at)).max() < TOL
    colours = p["colour"][:12, 0]
    # Lower indices kept: mean of copies 0..9 (0.41); the higher ones would give 0.59.
    assert abs(got[0, 0] - colours[:10].mean()) < 1e-3


@pytest.mark.parametrize("fmt", ["rgba8", "rgba16f"])
def test_decode_images(backend, walnut, references, fmt):
    stack, images = backend.decode(walnut.to_bytes(), images=fmt, real_units=True)
    ref = references["walnut"]
    vr = walnut.value_range
    real = vr[:, 0] + ref * (vr[:, 1] - vr[:, 0])
    ch = {name: i for i, name in enumerate(walnut.channels)}
    tol = 0.5 / 255 + TOL if fmt == "rgba8" else 2.0**-10 + TOL
    expect = {
        "basecolor": [real[..., ch["basecolor.r"]], real[..., ch["basecolor.g"]], real[..., ch["basecolor.b"]]],
        "normal": [real[..., ch["normal.x"]], real[..., ch["normal.y"]], real[..., ch["normal.z"]]],
        "orm": [np.ones_like(real[..., 0]), real[..., ch["roughness"]], real[..., ch["metalness"]]],
    }
    for name, planes in expect.items():
        want = np.stack([*planes, np.ones_like(planes[0])], axis=-1)
        if fmt == "rgba8":
            want = np.clip(want, 0, 1)
        err = float(np.abs(images[name] - want).max())
        assert err < tol, (name, err)
    assert np.abs(stack - real).max() < TOL  # IGS_DECODE_REAL_UNITS on the buffer too


def _run_readme_host_example(igs, tmp_path, monkeypatch) -> np.ndarray:
    text = (sh.SHADERS / "README.md").read_text()
    code = re.search(r"## Minimal host.*?```python\n(.*?)```", text, re.S).group(1)
    path = tmp_path / "material.igs"
    path.write_bytes(igs.to_bytes())
    code = code.replace('path = "material.igs"', f"path = {str(path)!r}")
    code = code.replace('shaders = "shaders"', f"shaders = {str(sh.SHADERS)!r}")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md example", "exec"), scope)
    return scope["stack"]


def test_readme_host_example(vk_runner, walnut, tmp_path, monkeypatch):
    """The wgpu example of shaders/README.md runs as printed and decodes the reference stack."""
    stack = _run_readme_host_example(walnut, tmp_path, monkeypatch)
    assert np.abs(stack - decode_igs(walnut)).max() < TOL


# ----------------------------------------------------------------------------------------------
# Execution: random access


def _random_uv(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    uv = rng.uniform(-1.5, 2.5, (n, 2)).astype(np.float32)
    special = np.array(
        [
            0.0,
            1.0,
            -0.0,
            -1e-9,
            1e-9,
            1 - 2**-24,
            1 + 2**-23,
            -1.0,
            2.0,
            0.5,
            -1000.3,
            999.7,
            1.0 / 88,
            1.0 / 72,
            17 / 88,
            15 / 72,
        ],
        dtype=np.float32,
    )
    k = special.size
    uv[: k * k, 0] = np.repeat(special, k)
    uv[: k * k, 1] = np.tile(special, k)
    return uv


@pytest.mark.parametrize("address", [0, 1], ids=["wrap", "clamp"])
def test_random_access_sampling(backend, walnut, address):
    data = walnut.to_bytes()
    uv = _random_uv(10_000, seed=11 + address)
    got = backend.points(data, sh.MODE_SAMPLE, uv, address=address)
    p = sh.texel_coords(uv, address, walnut.width, walnut.height)
    ref = sh.reference_points(walnut, p)
    err = float(np.abs(got - ref).max())
    _record(f"sample max|err| {['wrap', 'clamp'][address]} {backend.lang}/{type(backend.runner).__name__}", err)
    assert err < TOL


def test_addressing_edges(backend, walnut, references):
    data = walnut.to_bytes()
    w, h = walnut.width, walnut.height
    dec = references["walnut"]
    uv = np.array([[0, 0], [1, 1], [-3, 5], [2.5, -0.25], [1, 0], [0, 1]], dtype=np.float32)
    clamp = backend.points(data, sh.MODE_SAMPLE, uv, address=1)
    # Clamp holds the edge texel centres: uv 0 and anything below is texel 0, uv 1 and above the last.
    for row, (x, y) in zip(clamp, [(0, 0), (w - 1, h - 1), (0, h - 1), (w - 1, 0), (w - 1, 0), (0, h - 1)]):
        assert np.abs(row - dec[y, x]).max() < TOL
    wrap = backend.points(data, sh.MODE_SAMPLE, uv, address=0)
    for row in wrap[[1, 4, 5]]:  # uv 1 wraps to the corner at p = (0, 0)
        assert np.abs(row - wrap[0]).max() < TOL
    # Texel centres in wrap mode, one period away, land on the decoded texels.
    xs, ys = np.array([0, 5, w - 1]), np.array([0, 9, h - 1])
    centres = np.stack([(xs + 0.5) / w + 2, (ys + 0.5) / h - 1], axis=1).astype(np.float32)
    got = backend.points(data, sh.MODE_SAMPLE, centres, address=0)
    assert np.abs(got - dec[ys, xs]).max() < TOL


# ----------------------------------------------------------------------------------------------
# Footprint filtering


def test_zero_footprint_is_the_point_sample(backend, walnut):
    uv = _random_uv(2000, seed=5)
    zero = np.zeros_like(uv)
    plain = backend.points(walnut.to_bytes(), sh.MODE_SAMPLE, uv)
    grad = backend.points(walnut.to_bytes(), sh.MODE_SAMPLE_GRAD, uv, zero, zero)
    assert np.abs(plain - grad).max() < TOL


def _random_footprints(n: int, seed: int) -> np.ndarray:
    """F = J J^T / 12 for random screen-to-texel Jacobians: isotropic, anisotropic, rotated."""
    rng = np.random.default_rng(seed)
    scale = np.exp(rng.uniform(np.log(0.1), np.log(12.0), (n, 2)))
    ang = rng.uniform(0, np.pi, n)
    c, s = np.cos(ang), np.sin(ang)
    jx = np.stack([c * scale[:, 0], s * scale[:, 0]], 1)
    jy = np.stack([-s * scale[:, 1], c * scale[:, 1]], 1)
    F = (
        np.stack(
            [jx[:, 0] ** 2 + jy[:, 0] ** 2, jx[:, 0] * jx[:, 1] + jy[:, 0] * jy[:, 1], jx[:, 1] ** 2 + jy[:, 1] ** 2], 1
        )
        / 12.0
    )
    return F.astype(np.float32)


def test_footprint_matches_convolved_reference(backend, walnut):
    rng = np.random.default_rng(21)
    n = 4000
    p = (rng.uniform(0, 1, (n, 2)) * [walnut.width, walnut.height]).astype(np.float32)
    F = _random_footprints(n, seed=22)
    got = backend.points(walnut.to_bytes(), sh.MODE_FOOTPRINT, p, F=F)
    ref = sh.reference_points(walnut, p, F=F.astype(np.float64))
    err = float(np.abs(got - ref).max())
    _record(f"footprint max|err| {backend.lang}/{type(backend.runner).__name__}", err)
    assert err < TOL


PEAK1 = {"IGS_FOOTPRINT_PEAK_SCALE": 0}
MIN_K32 = {"IGS_FOOTPRINT_MIN_K": 32}


def test_footprint_macros(gl_runner, walnut):
    """IGS_FOOTPRINT_PEAK_SCALE=0 keeps peak 1; IGS_FOOTPRINT_MIN_K raises K for footprints only."""
    b = sh.Backend("glsl", gl_runner)
    rng = np.random.default_rng(23)
    p = (rng.uniform(0, 1, (2000, 2)) * [walnut.width, walnut.height]).astype(np.float32)
    F = _random_footprints(2000, seed=24)
    data = walnut.to_bytes()
    got = b.points(data, sh.MODE_FOOTPRINT, p, F=F, defines=PEAK1)
    ref = sh.reference_points(walnut, p, F=F.astype(np.float64), peak_scale=False)
    assert np.abs(got - ref).max() < TOL
    got = b.points(data, sh.MODE_FOOTPRINT, p, F=F, defines=MIN_K32)
    ref = sh.reference_points(walnut, p, F=F.astype(np.float64), k=32)
    assert np.abs(got - ref).max() < TOL
    plain = b.points(data, sh.MODE_TEXEL, p, defines=MIN_K32)  # point sampling keeps the file's K
    assert np.abs(plain - sh.reference_points(walnut, p)).max() < TOL


@pytest.fixture(scope="module")
def high_frequency() -> IgsFile:
    """3000 Gaussians of 0.7..2 px on 96 x 80: detail a point sample aliases at every mip level."""
    rng = np.random.default_rng(0)
    n = 3000
    return from_bytes(
        build_igs(
            rng.uniform(0, [96, 80], (n, 2)),
            rng.uniform(0, np.pi, n),
            rng.uniform(0.5, 1.5, (n, 2)),
            rng.uniform(0, 1, (n, 3)),
            96,
            80,
            ["basecolor.r", "basecolor.g", "basecolor.b"],
            [[0, 1]] * 3,
        ).to_bytes()
    )


def _mip_psnr(b: sh.Backend, igs: IgsFile, scale: int, defines: dict | None = None) -> tuple[float, float]:
    """(footprint, point-sample) PSNR of igsSampleGrad / igsSample at the centres of mip texels
    against the box-filtered mip of the decoded stack."""
    mip = sh.box_mip(decode_igs(igs), scale)
    hm, wm = mip.shape[:2]
    ys, xs = np.mgrid[0:hm, 0:wm]
    uv = np.stack([(xs.ravel() + 0.5) / wm, (ys.ravel() + 0.5) / hm], 1).astype(np.float32)
    ddx = np.tile(np.array([[1.0 / wm, 0.0]], np.float32), (uv.shape[0], 1))
    ddy = np.tile(np.array([[0.0, 1.0 / hm]], np.float32), (uv.shape[0], 1))
    data = igs.to_bytes()
    filtered = b.points(data, sh.MODE_SAMPLE_GRAD, uv, ddx, ddy, defines=defines).reshape(mip.shape)
    point = b.points(data, sh.MODE_SAMPLE, uv, defines=defines).reshape(mip.shape)
    return sh.psnr(filtered, mip), sh.psnr(point, mip)


# Floors a few dB under the values measured (see shaders/README.md, "Footprint filtering").
PSNR_FLOOR = {
    ("walnut", 2): 55.0,
    ("walnut", 4): 50.0,
    ("walnut", 8): 46.0,
    ("high_frequency", 2): 35.0,
    ("high_frequency", 4): 27.0,
    ("high_frequency", 8): 21.0,
}


@pytest.mark.parametrize("scale", [2, 4, 8])
@pytest.mark.parametrize("material", ["walnut", "high_frequency"])
def test_footprint_against_box_mips(backend, request, material, scale):
    igs = request.getfixturevalue(material)
    q_f, q_p = _mip_psnr(backend, igs, scale)
    tag = f"{backend.lang}/{type(backend.runner).__name__}"
    _record(f"PSNR {material} 1/{scale} footprint / point {tag}", (round(float(q_f), 2), round(float(q_p), 2)))
    assert q_f >= PSNR_FLOOR[(material, scale)]
    if material == "high_frequency":
        assert q_f > q_p + 3.0  # filtering must clearly beat aliasing point samples
    else:
        assert q_f > q_p - 0.5  # a smooth bake: point samples are already close at 1/2


@pytest.mark.parametrize("material", ["walnut", "high_frequency"])
def test_footprint_options_psnr(gl_runner, request, material):
    """The measurements behind the defaults (README, "Footprint filtering")."""
    igs = request.getfixturevalue(material)
    b = sh.Backend("glsl", gl_runner)
    for scale in (2, 4, 8):
        q, _ = _mip_psnr(b, igs, scale)
        q_peak1, _ = _mip_psnr(b, igs, scale, PEAK1)
        q_32, _ = _mip_psnr(b, igs, scale, MIN_K32)
        _record(
            f"PSNR {material} 1/{scale} footprint default / peak 1 / MIN_K=32",
            tuple(round(float(x), 2) for x in (q, q_peak1, q_32)),
        )
        if material == "high_frequency":
            # Mass-preserving beats peak 1 on fine detail, and a wide footprint wants more than K.
            # (Not on the fitted walnut: its image was optimised for top-10, and more Gaussians
            # shift it, so MIN_K costs PSNR there; see the README.)
            assert q > q_peak1 and q_32 > q


# ----------------------------------------------------------------------------------------------
# Version 2 files (docs/FORMAT-v2.md): the same shaders, the home-tile scan and the listing rule


def _v2_from(
    igs, tile: int, reach: int = 1, k: int | None = None, colour_bits=8, count: int | None = None
) -> IgsFileV2:
    """The Gaussians of a bake (its dequantised parameters, the first `count` of them) as a
    version 2 file, through the validating reader."""
    p = igs.params()
    n = igs.gaussian_count if count is None else count
    v2 = build_igs_v2(
        p["means"][:n],
        p["theta"][:n],
        p["inv_scale"][:n],
        p["colour"][:n],
        igs.width,
        igs.height,
        igs.channels,
        igs.value_range,
        {"from": "test_shaders"},
        tile=tile,
        k=igs.k if k is None else k,
        eps=igs.eps,
        reach=reach,
        colour_bits=colour_bits,
    )
    out = from_bytes(v2.to_bytes())
    assert isinstance(out, IgsFileV2)
    return out


def _ties_v2() -> IgsFileV2:
    v1 = _ties()
    p = v1.params()
    return from_bytes(
        build_igs_v2(
            p["means"],
            p["theta"],
            p["inv_scale"],
            p["colour"],
            v1.width,
            v1.height,
            v1.channels,
            v1.value_range,
            tile=16,
            k=10,
        ).to_bytes()
    )


# Odd widths per channel: record_bits odd, so over any 32 consecutive records every field starts
# at every bit of a word; 127 Gaussians: 7-bit tile offsets, which straddle words too.
ODD_COLOUR_BITS = (5, 6, 7, 9, 10, 11, 3, 12)


@pytest.fixture(scope="module")
def variants_v2(walnut, rock) -> dict[str, IgsFileV2]:
    c = walnut.channel_count
    return {
        "v2_walnut_T16": _v2_from(walnut, 16),
        "v2_walnut_T32_K32": _v2_from(walnut, 32, k=32),
        "v2_walnut_T8_R2_K4": _v2_from(walnut, 8, reach=2, k=4),
        "v2_walnut_odd_bits": _v2_from(walnut, 16, colour_bits=ODD_COLOUR_BITS[:c], count=127),
        "v2_rock_T16": _v2_from(rock, 16),
        "v2_ties": _ties_v2(),
    }


@pytest.fixture(scope="module")
def references_v2(variants_v2) -> dict[str, np.ndarray]:
    # For version 2 decode_igs derives version 1 style lists by the listing rule.
    return {name: decode_igs(igs) for name, igs in variants_v2.items()}


V2_FILES = ["v2_walnut_T16", "v2_walnut_T32_K32", "v2_walnut_T8_R2_K4", "v2_walnut_odd_bits", "v2_rock_T16", "v2_ties"]


def _fields_straddle(igs: IgsFileV2) -> list[bool]:
    """Per record field: does some record have it cross a word boundary?"""
    rb, n = igs.layout.record_bits, igs.gaussian_count
    start = np.arange(n, dtype=np.int64) * rb
    out, o = [], 0
    for w in igs.layout.widths:
        out.append(bool((((start + o) & 31) + w > 32).any()))
        o += w
    return out


def test_v2_files_cover_the_format(variants_v2):
    """The inputs reach what the shaders must handle: straddling fields and offsets, reach 2,
    tiles with no home records, lists longer than K, sizes not a multiple of T."""
    odd = variants_v2["v2_walnut_odd_bits"]
    assert odd.layout.record_bits % 2 == 1 and all(_fields_straddle(odd))
    bo = odd.offset_bits
    assert bo == 7 and any(((t * bo) & 31) + bo > 32 for t in range(odd.tile_count + 1))
    assert variants_v2["v2_walnut_T8_R2_K4"].reach == 2
    rock = variants_v2["v2_rock_T16"]
    assert (np.diff(rock.offsets.astype(np.int64)) == 0).any()  # empty home tiles
    t16 = variants_v2["v2_walnut_T16"]
    assert t16.width % t16.tile and t16.height % t16.tile
    for name in ("v2_walnut_T16", "v2_walnut_T8_R2_K4"):
        igs = variants_v2[name]
        assert (np.diff(igs.tile_offsets.astype(np.int64)) > igs.k).any()
        # Lists that reach beyond the home tile: some Gaussian is listed in a tile not its own.
        home = np.repeat(np.arange(igs.tile_count), np.diff(igs.offsets.astype(np.int64)))
        listed_in = np.repeat(np.arange(igs.tile_count), np.diff(igs.tile_offsets.astype(np.int64)))
        assert (home[igs.tile_indices] != listed_in).any()


@pytest.mark.parametrize("one_buffer", [False, True], ids=["sections", "one_buffer"])
@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("lang", ["glsl", "hlsl"])
def test_v2_compiled_for_one_version_validates(lang, version, one_buffer):
    d = {"IGS_FORMAT_VERSION": version, **({"IGS_ONE_BUFFER": None} if one_buffer else {})}
    spirv = sh.compile_spirv(sh.SHADERS / f"igs_decode.comp.{lang}", lang, d)
    sh.spirv_validate(spirv)
    bindings = sorted(int(x) for x in re.findall(r"Binding (\d+)", _decorations(spirv)))
    # The whole file at 0, or its sections at 0..3, of which a version-2-only shader has no
    # tile index buffer (3); the decode output at 4.
    want = [0, 4] if one_buffer else [0, 1, 2, 4] if version == 2 else [0, 1, 2, 3, 4]
    assert bindings == want


@pytest.mark.parametrize("lang", ["glsl", "hlsl"])
def test_v2_dequantisation_is_not_contracted(lang):
    """FORMAT-v2: one rounding per decode line and per listing-rule operation, so all 17 f32
    operations of the version 2 reader carry NoContraction: sx, sy, theta_step, mean x/y,
    theta, m, colour (8), the four box subtracts, u, v, u*u, v*v and their sum (9)."""
    text = _decorations(sh.compile_spirv(sh.SHADERS / f"igs_decode.comp.{lang}", lang, {"IGS_FORMAT_VERSION": 2}))
    decorated = set(re.findall(r"OpDecorate (%\w+) NoContraction", text))
    float_ops = re.findall(r"^\s*(%\w+) = (OpFMul|OpFAdd|OpFSub)", text, re.M)
    assert len(decorated & {i for i, _ in float_ops}) >= 17


def test_v2_parameters_bit_exact(backend, variants_v2):
    for name in ("v2_walnut_T16", "v2_walnut_odd_bits", "v2_rock_T16", "v2_walnut_T8_R2_K4"):
        igs = variants_v2[name]
        p = igs.params()
        want = np.concatenate([p["means"], p["theta"][:, None], p["inv_scale"], p["colour"]], axis=1)
        got = backend.params(igs.to_bytes())
        bad = got.view(np.uint32) != want.astype(np.float32).view(np.uint32)
        assert not bad.any(), f"{name}: {int(bad.sum())} parameter words differ from FORMAT-v2's bits"


@pytest.mark.parametrize("name", V2_FILES)
def test_v2_decode_matches_reference(backend, variants_v2, references_v2, name):
    igs = variants_v2[name]
    got = backend.decode(igs.to_bytes())
    err = float(np.abs(got - references_v2[name]).max())
    _record(f"v2 decode max|err| vs decode_igs {name} {backend.lang}/{type(backend.runner).__name__}", err)
    assert err < TOL, name


def test_v2_shader_variants_give_the_same_stack(backend, walnut, variants_v2):
    """IGS_FORMAT_VERSION 2 (the version 2 reader alone) and IGS_ONE_BUFFER decode what the
    two-version shader does, bit for bit; IGS_FORMAT_VERSION 1 likewise for a version 1 file."""
    data = variants_v2["v2_walnut_T8_R2_K4"].to_bytes()
    both = backend.decode(data)
    assert np.array_equal(backend.decode(data, defines={"IGS_FORMAT_VERSION": 2}), both)
    assert np.array_equal(backend.decode(data, one_buffer=True), both)
    v1 = walnut.to_bytes()
    assert np.array_equal(backend.decode(v1, defines={"IGS_FORMAT_VERSION": 1}), backend.decode(v1))


@pytest.mark.parametrize("address", [0, 1], ids=["wrap", "clamp"])
def test_v2_single_texel_sampling(backend, variants_v2, references_v2, address):
    """igsSample at random uv and igsSampleTexel at texel centres: the contract at those points
    on the listing rule's lists (reach 2 and the straddling file)."""
    for name in ("v2_walnut_T8_R2_K4", "v2_walnut_odd_bits"):
        igs = variants_v2[name]
        data = igs.to_bytes()
        uv = _random_uv(3000, seed=31 + address)
        got = backend.points(data, sh.MODE_SAMPLE, uv, address=address)
        ref = sh.reference_points(igs, sh.texel_coords(uv, address, igs.width, igs.height))
        err = float(np.abs(got - ref).max())
        _record(
            f"v2 sample max|err| {['wrap', 'clamp'][address]} {name} {backend.lang}/{type(backend.runner).__name__}",
            err,
        )
        assert err < TOL, name
        rng = np.random.default_rng(41 + address)
        xs, ys = rng.integers(0, igs.width, 500), rng.integers(0, igs.height, 500)
        centres = np.stack([xs + 0.5, ys + 0.5], 1).astype(np.float32)
        got = backend.points(data, sh.MODE_TEXEL, centres)
        assert np.abs(got - references_v2[name][ys, xs]).max() < TOL, name


def test_v2_footprint_matches_convolved_reference(backend, variants_v2):
    igs = variants_v2["v2_walnut_T16"]
    rng = np.random.default_rng(51)
    p = (rng.uniform(0, 1, (1000, 2)) * [igs.width, igs.height]).astype(np.float32)
    F = _random_footprints(1000, seed=52)
    got = backend.points(igs.to_bytes(), sh.MODE_FOOTPRINT, p, F=F)
    ref = sh.reference_points(igs, p, F=F.astype(np.float64))
    assert np.abs(got - ref).max() < TOL


def test_v2_ties_go_to_the_lower_index(backend, variants_v2):
    igs = variants_v2["v2_ties"]
    p = igs.params()
    first = int(np.argmin(np.abs(p["means"] - [5.3, 7.1]).sum(1)))
    same = (p["means"] == p["means"][first]).all(1) & (p["inv_scale"] == p["inv_scale"][first]).all(1)
    copies = np.nonzero(same & (p["theta"] == p["theta"][first]))[0]  # ascending: the writer's sort is stable
    assert copies.size == 12
    at = p["means"][copies[:1]].astype(np.float32)
    got = backend.points(igs.to_bytes(), sh.MODE_TEXEL, at)
    assert np.abs(got - sh.reference_points(igs, at)).max() < TOL
    assert abs(got[0, 0] - p["colour"][copies[:10], 0].mean()) < 1e-3  # the ten lower indices


def test_v2_readme_host_example(vk_runner, variants_v2, references_v2, tmp_path, monkeypatch):
    """The README's host example binds a version 2 file too (records, offsets, a dummy)."""
    stack = _run_readme_host_example(variants_v2["v2_walnut_odd_bits"], tmp_path, monkeypatch)
    assert np.abs(stack - references_v2["v2_walnut_odd_bits"]).max() < TOL


def test_v2_decode_images(backend, variants_v2, references_v2):
    igs = variants_v2["v2_walnut_T16"]
    stack, images = backend.decode(igs.to_bytes(), images="rgba16f", real_units=True)
    vr = igs.value_range
    real = vr[:, 0] + references_v2["v2_walnut_T16"] * (vr[:, 1] - vr[:, 0])
    assert np.abs(stack - real).max() < TOL
    ch = {name: i for i, name in enumerate(igs.channels)}
    for name, planes in (
        ("basecolor", ("basecolor.r", "basecolor.g", "basecolor.b")),
        ("normal", ("normal.x", "normal.y", "normal.z")),
    ):
        want = np.stack([real[..., ch[c]] for c in planes], axis=-1)
        assert np.abs(images[name][..., :3] - want).max() < 2.0**-10 + TOL, name


def test_v2_cost_per_texel(variants_v2):
    """The per-texel counts of shaders/README.md ("Cost per texel") for the version 2 files and
    for version 1 files of exactly their Gaussians at the same tile size."""
    for name in ("v2_walnut_T16", "v2_walnut_T32_K32", "v2_walnut_T8_R2_K4"):
        igs = variants_v2[name]
        twin = as_version_1(igs)
        c2, c1 = sh.per_texel_cost(igs), sh.per_texel_cost(twin)
        _record(f"v2 cost per texel {name}: v2 / v1 twin", {key: (round(c2[key], 1), round(c1[key], 1)) for key in c2})
        assert c2["scanned"] >= c2["listed"] > 0
        assert abs(c2["listed"] - c1["listed"]) <= 0.01 * c1["listed"]  # the same lists, but f32 vs f64
