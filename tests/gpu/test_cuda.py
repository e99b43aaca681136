"""CUDA renderer against the references, on a machine with a GPU.

Ground truths: the golden renders in tests/data/golden; igs_tex.render.torch_ref run in float64
(the differentiable contract); the native CPU kernels (same header, float32) when built.
Tolerances: images to 1e-5 absolute, gradients to 1e-4 of each tensor's largest magnitude.

Skipped with the reason when CUDA is unavailable; IGS_REQUIRE_CUDA=1 (set by
tests/gpu/run_device_checks.sh) turns that skip into a failure.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from igs_tex.render import cuda as igs_cuda
from igs_tex.render.params import GaussianParams
from igs_tex.render.tiles import build_tile_lists
from igs_tex.render.torch_ref import TorchRenderer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: run with --noconftest
from scenes import params_on_texels  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"  # the CPU suite's own copies (conftest is not loaded here)
GOLDEN = sorted((DATA / "golden").glob("case_*.npz"))
MATERIAL_DIRS = [DATA / "materials", REPO / "assets"]
FIELDS = ("means", "theta", "inv_scale", "colour")
DEVICE = "cpu" if igs_cuda.emulated() else "cuda"  # the emulator (IGS_CUDA_EMULATE=1) computes on the CPU

AVAILABLE = igs_cuda.cuda_available()
REASON = f"CUDA renderer unavailable: {igs_cuda.cuda_unavailable_reason()}"
if not AVAILABLE and os.environ.get("IGS_REQUIRE_CUDA") == "1":
    pytestmark = pytest.mark.usefixtures("_require_cuda")
else:
    pytestmark = pytest.mark.skipif(not AVAILABLE, reason=REASON)


@pytest.fixture
def _require_cuda():
    pytest.fail(REASON)


try:
    from igs_tex import _native
    from igs_tex.render.native import NativeRenderer
except (ImportError, OSError):  # the CPU extension is optional here; its comparisons skip
    _native = None
needs_native = pytest.mark.skipif(_native is None, reason="igs_tex._native (CPU kernels) not built")


def test_cuda_available():
    assert AVAILABLE, REASON


# ---------------------------------------------------------------------------------------------
# helpers


def random_params(n, C, height, width, seed, scale=(1.5, 6.0), margin=4.0) -> GaussianParams:
    """float64 parameters that are exactly representable in float32 (so both sides see the same)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 2, generator=g, dtype=torch.float64)
    means = means * torch.tensor([width + 2 * margin, height + 2 * margin], dtype=torch.float64) - margin
    theta = torch.rand(n, generator=g, dtype=torch.float64) * torch.pi
    s = scale[0] + (scale[1] - scale[0]) * torch.rand(n, 2, generator=g, dtype=torch.float64)
    colour = torch.rand(n, C, generator=g, dtype=torch.float64) * 1.2 - 0.1
    return GaussianParams(means, theta, 1.0 / s, colour).to(torch.float32).to(torch.float64)


def leaves_of(p: GaussianParams, device="cpu", dtype=None) -> GaussianParams:
    return GaussianParams(
        *(
            getattr(p, f).detach().to(device=device, dtype=dtype or getattr(p, f).dtype).clone().requires_grad_(True)
            for f in FIELDS
        )
    )


def render_and_grads(renderer, p: GaussianParams, grad_out: torch.Tensor, H, W, device="cpu", dtype=None, **kw):
    """-> image (float64 numpy), [grad per field] (float64 numpy)."""
    leaves = leaves_of(p, device, dtype)
    img = renderer.render(leaves, H, W, **kw)
    (img * grad_out.to(device=img.device, dtype=img.dtype)).sum().backward()
    return (img.detach().double().cpu().numpy(), [getattr(leaves, f).grad.double().cpu().numpy() for f in FIELDS])


def reference(p, grad_out, H, W, **kw):
    return render_and_grads(TorchRenderer(), p, grad_out, H, W, "cpu", torch.float64, **kw)


def cuda(p, grad_out, H, W, **kw):
    return render_and_grads(igs_cuda.CudaRenderer(), p, grad_out, H, W, DEVICE, torch.float32, **kw)


def assert_rel(actual, expected, rtol, what, floor=1e-12):
    """max |a - e| <= rtol * max(max |e|, floor): relative to the tensor's scale."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} vs {expected.shape}"
    scale = max(np.abs(expected).max(initial=0.0), floor)
    err = np.abs(actual - expected).max(initial=0.0)
    assert err <= rtol * scale, f"{what}: max abs error {err:.3g} > {rtol:g} * {scale:.3g}"


def compare(p, H, W, C, seed, k=10, tile=16, eps=1e-7, grad_floor=None):
    grad_out = torch.from_numpy(np.random.default_rng(seed).standard_normal((H, W, C)))
    ref_img, ref_g = reference(p, grad_out, H, W, tile=tile, k=k, eps=eps)
    img, got = cuda(p, grad_out, H, W, tile=tile, k=k, eps=eps)
    np.testing.assert_allclose(img, ref_img, rtol=0, atol=1e-5)
    for name, a, b in zip(FIELDS, got, ref_g):
        floor = (grad_floor or {}).get(name, 1e-12)
        assert_rel(a, b, 1e-4, f"d{name}", floor)


# ---------------------------------------------------------------------------------------------
# tile lists


@pytest.mark.parametrize("seed", range(6))
def test_tile_lists_equal_python(seed):
    g = torch.Generator().manual_seed(seed)
    H, W, T = [(37, 50, 16), (64, 64, 16), (33, 47, 8), (100, 17, 16), (16, 16, 16), (5, 3, 4)][seed]
    n = 300
    means = torch.rand(n, 2, generator=g) * torch.tensor([W * 1.6, H * 1.6]) - torch.tensor([W * 0.3, H * 0.3])
    inv = 1.0 / (0.2 + 30 * torch.rand(n, 2, generator=g) ** 3)
    means[0] = torch.tensor([float(T), float(T)])  # on a tile corner
    means[1] = torch.tensor([float(T) - 3.0, 2.0])
    inv[1] = torch.tensor([1.0, 1.0])  # r = 3: touches x = T exactly
    means[2] = torch.tensor([float("nan"), 1.0])
    inv[3] = torch.tensor([0.0, 1.0])  # infinite radius: listed nowhere
    inv[4] = torch.tensor([float("inf"), 0.5])
    inv[5] = torch.tensor([1e-30, 1e-30])
    means, inv = means.float(), inv.float()
    off_py, idx_py = build_tile_lists(means, inv, H, W, T)
    off, idx = igs_cuda.bin_tiles(means.to(DEVICE), inv.to(DEVICE), H, W, T)
    assert off.dtype == torch.int64 and idx.dtype == torch.int32
    np.testing.assert_array_equal(off.cpu().numpy(), off_py.numpy())
    np.testing.assert_array_equal(idx.cpu().numpy(), idx_py.numpy())


def test_tile_lists_large():
    """Many pairs per tile and across the sort's multiple passes (2048^2: 14-bit keys)."""
    H = W = 2048
    p = random_params(20000, 1, H, W, seed=9, scale=(1.0, 16.0))
    off_py, idx_py = build_tile_lists(p.means.float(), p.inv_scale.float(), H, W, 16)
    off, idx = igs_cuda.bin_tiles(p.means.float().to(DEVICE), p.inv_scale.float().to(DEVICE), H, W, 16)
    assert torch.equal(off.cpu(), off_py) and torch.equal(idx.cpu().long(), idx_py)


# ---------------------------------------------------------------------------------------------
# golden cases


def load_golden(path):
    z = np.load(path)
    p = GaussianParams(*(torch.from_numpy(z[f]) for f in FIELDS))
    shape = {
        "height": int(z["height"]),
        "width": int(z["width"]),
        "tile": int(z["tile"]),
        "k": int(z["k"]),
        "eps": float(z["eps"]),
    }
    return z, p, shape


def test_golden_cases_exist():
    assert GOLDEN, f"no golden cases under {DATA / 'golden'}"


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_golden(path):
    z, p, shape = load_golden(path)
    out = igs_cuda.CudaRenderer().render(p, **shape)  # float64 CPU params: converted inside
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    np.testing.assert_allclose(out.numpy(), z["expected"], rtol=0, atol=1e-5)
    off, idx = igs_cuda.bin_tiles(
        p.means.to(DEVICE), p.inv_scale.to(DEVICE), shape["height"], shape["width"], shape["tile"]
    )
    np.testing.assert_array_equal(off.cpu().numpy(), z["tile_offsets"])
    np.testing.assert_array_equal(idx.cpu().numpy(), z["tile_indices"])


# ---------------------------------------------------------------------------------------------
# random inputs against the float64 torch reference

CASES = [(k, C) for k in (1, 3, 10) for C in (1, 3, 9)]


@pytest.mark.parametrize("k,C", CASES)
def test_forward_random(k, C):
    H, W = 37, 45
    p = random_params(40, C, H, W, seed=100 + 10 * k + C)
    ref = TorchRenderer().render(p, H, W, k=k).numpy()
    out = igs_cuda.CudaRenderer().render(leaves_of(p, DEVICE, torch.float32), H, W, k=k)
    assert out.device.type == DEVICE and out.dtype == torch.float32 and out.shape == (H, W, C)
    np.testing.assert_allclose(out.detach().cpu().numpy(), ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("k,C", CASES)
def test_gradients_random(k, C):
    H, W = 20, 20
    p = random_params(15, C, H, W, seed=7 + 10 * k + C, scale=(1.5, 5.0), margin=2.0)
    # With K = 1 the geometric gradients are O(eps / G), far below float32 resolution of
    # c - out: held to the scale of an O(1) gradient (as tests/test_native.py does).
    floor = {f: 0.1 for f in FIELDS[:3]} if k == 1 else None
    compare(p, H, W, C, seed=k * 100 + C, k=k, tile=8, grad_floor=floor)


@pytest.mark.parametrize("tile", [1, 4, 5, 8, 16, 32])
def test_tile_sizes(tile):
    """Blocks of tile^2 texels rounded up to whole warps, edge tiles cut at the image border."""
    H, W, C = 35, 41, 3
    p = random_params(60, C, H, W, seed=tile, scale=(1.0, 5.0))
    compare(p, H, W, C, seed=tile, k=5, tile=tile)


@pytest.mark.parametrize("tile,k", [(16, 10), (16, 32), (4, 10), (32, 7)])
def test_long_lists_span_several_chunks(tile, k):
    """Tiles listing more Gaussians than a block stages at once (blockDim) in shared memory."""
    H, W, C = 40, 40, 3
    p = random_params(1500, C, H, W, seed=31 + tile + k, scale=(4.0, 12.0), margin=0.0)
    off, _ = build_tile_lists(p.means, p.inv_scale, H, W, tile)
    longest = int((off[1:] - off[:-1]).max())
    assert longest > max(32, ((tile * tile + 31) // 32) * 32), "test must span several chunks"
    compare(p, H, W, C, seed=5, k=k, tile=tile)


def test_ties_go_to_lower_index():
    """Three bit-identical copies of 4 Gaussians (indices i, i+4, i+8), K = 2: every texel keeps
    its best original i and its first copy i+4, never the copy i+8 that ties with them."""
    H, W, C, k = 16, 16, 3, 2
    # Near the centre and wide, so every texel sees all of them with G > 0 (no 0 == 0 ties).
    base = random_params(4, C, H, W, seed=3, scale=(6.0, 10.0), margin=-4.0)
    p = GaussianParams(*(torch.cat([getattr(base, f)] * 3) for f in FIELDS))
    _, topk, _, _ = igs_cuda.render_with_selection(p, H, W, k=k)
    kept = topk.cpu().numpy()
    assert (kept[:, 0] < 4).all() and (kept[:, 1] == kept[:, 0] + 4).all(), kept[:8]


# ---------------------------------------------------------------------------------------------
# against the native CPU kernels (same header, float32)


@needs_native
def test_selection_and_image_match_native():
    H, W, C, k = 130, 150, 9, 10
    p = random_params(2500, C, H, W, seed=21, scale=(1.0, 9.0))
    m, th, s, c = (getattr(p, f).float().contiguous().numpy() for f in FIELDS)
    off, idx = _native.bin_tiles(m, s, H, W, 16)
    image, selection = _native.forward(m, th, s, c, H, W, 16, k, 1e-7, off, idx, False)
    topk_cpu = _native.selection_topk(selection, H, W, 16, k, off, idx)
    img, topk, off_g, idx_g = igs_cuda.render_with_selection(p, H, W, k=k)
    np.testing.assert_array_equal(off_g.cpu().numpy(), off)
    np.testing.assert_array_equal(idx_g.cpu().numpy(), idx)
    np.testing.assert_allclose(img.cpu().numpy(), image, rtol=0, atol=1e-5)
    # cos/sin may differ by an ulp between glibc and CUDA, which can flip an exact near-tie.
    rows_differ = (topk.cpu().numpy() != topk_cpu.reshape(H * W, k)).any(axis=1).mean()
    assert rows_differ < 1e-3, f"{rows_differ:.2%} of texels selected differently from the CPU"


@needs_native
@pytest.mark.parametrize("k", [3, 10, 20])
def test_image_bit_identical_to_native_with_exact_angles(k):
    """theta = 0 makes cos/sin exact on both sides, and then the CUDA forward is the CPU simple
    path call for call (same header functions, same blend order, no fused multiply-adds): the
    images must agree to the bit, for a register top-K (K <= 16) and the run-time one."""
    H, W, C = 70, 90, 9
    p = random_params(900, C, H, W, seed=40 + k, scale=(1.0, 9.0))
    p = GaussianParams(p.means, torch.zeros_like(p.theta), p.inv_scale, p.colour)
    m, th, s, c = (getattr(p, f).float().contiguous().numpy() for f in FIELDS)
    off, idx = _native.bin_tiles(m, s, H, W, 16)
    image, _ = _native.forward(m, th, s, c, H, W, 16, k, 1e-7, off, idx, False)
    img, _, _, _ = igs_cuda.render_with_selection(p, H, W, k=k)
    np.testing.assert_array_equal(img.cpu().numpy(), image)


@needs_native
def test_large_against_native():
    """1024^2, 9 channels, 20K Gaussians: image and gradients against the CPU kernels."""
    H = W = 1024
    C = 9
    p = random_params(20000, C, H, W, seed=77, scale=(2.0, 16.0)).to(torch.float32)
    grad_out = torch.from_numpy(np.random.default_rng(8).standard_normal((H, W, C)).astype(np.float32))
    want_img, want = render_and_grads(NativeRenderer(), p, grad_out, H, W)
    img, got = render_and_grads(igs_cuda.CudaRenderer(), p, grad_out, H, W, DEVICE)
    np.testing.assert_allclose(img, want_img, rtol=0, atol=1e-5)
    for name, a, b in zip(FIELDS, got, want):
        assert_rel(a, b, 1e-4, f"d{name}")


# ---------------------------------------------------------------------------------------------
# a real material


def _walnut_dir() -> Path:
    d = next(
        (root / "walnut_wood" for root in MATERIAL_DIRS if (root / "walnut_wood" / "basecolor.png").exists()), None
    )
    if d is None:
        pytest.skip(f"walnut_wood not found under {MATERIAL_DIRS}")
    return d


def _material_stack(size=128, x0=64, y0=64):
    Image = pytest.importorskip("PIL.Image")
    d = _walnut_dir()
    planes = []
    for name in ("basecolor", "normal", "roughness", "metalness"):
        f = d / f"{name}.png"
        if f.exists():
            with Image.open(f) as im:
                a = np.asarray(im.crop((x0, y0, x0 + size, y0 + size)), dtype=np.float32) / 255.0
            planes.append(a.reshape(size, size, -1))
    return np.concatenate(planes, axis=2)  # [size, size, C]


def test_real_material_against_torch_reference():
    target = _material_stack()
    H, W, C = target.shape
    p = params_on_texels(target, 600, seed=4)
    compare(p, H, W, C, seed=3)


def test_bake_on_device_decodes_on_cpu(tmp_path):
    """`--device cuda` end to end on a real crop: the .igs written from a CUDA fit decodes with
    the CPU reference to what the CUDA renderer draws from the file's own parameters, its tile
    index is what the CUDA binning builds, and it is about as close to the target as the same
    bake on the torch reference (colour-solved when the CPU extension is built, which the
    torch bake never is)."""
    pytest.importorskip("PIL.Image")
    from baking import bake_crop

    from igs_tex.material import load_material
    from igs_tex.render.decode import decode_igs

    src = _walnut_dir()
    box = (300, 200, 348, 248)
    igs, data = bake_crop(src, tmp_path / "cuda", box, gaussians=80, steps=60, backend="cuda")
    assert igs.metadata["bake"]["backend"] == "cuda"
    q = igs.params()
    p = GaussianParams(*(torch.from_numpy(np.ascontiguousarray(q[f], dtype=np.float32)) for f in FIELDS))
    decoded = decode_igs(igs)
    drawn = igs_cuda.CudaRenderer().render(p, igs.height, igs.width, tile=igs.tile, k=igs.k, eps=float(igs.eps))
    np.testing.assert_allclose(drawn.numpy(), decoded, rtol=0, atol=1e-5)
    off, idx = igs_cuda.bin_tiles(p.means.to(DEVICE), p.inv_scale.to(DEVICE), igs.height, igs.width, igs.tile)
    np.testing.assert_array_equal(off.cpu().numpy(), igs.tile_offsets)
    np.testing.assert_array_equal(idx.cpu().numpy(), igs.tile_indices)

    ref, _ = bake_crop(src, tmp_path / "torch", box, gaussians=80, steps=60, backend="torch")

    target = load_material(tmp_path / "cuda" / src.name).data  # the crop both bakes fitted

    def psnr(file) -> float:
        return float(-10 * np.log10(np.mean((decode_igs(file) - target) ** 2)))

    got, want = psnr(igs), psnr(ref)
    print(f"PSNR cuda {got:.2f} dB, torch {want:.2f} dB")
    assert got > 20.0 and want - 0.5 < got < want + 1.5, (got, want)


# ---------------------------------------------------------------------------------------------
# interface


def test_cpu_float64_params_get_cpu_float64_grads():
    H, W, C = 16, 16, 3
    p = random_params(10, C, H, W, seed=2)
    leaves = leaves_of(p)  # CPU float64
    out = igs_cuda.CudaRenderer().render(leaves, H, W, k=3)
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    out.sum().backward()
    for f in FIELDS:
        grad = getattr(leaves, f).grad
        assert grad.dtype == torch.float64 and grad.device.type == "cpu"


def test_forward_is_deterministic():
    H, W, C = 64, 64, 9
    p = random_params(500, C, H, W, seed=12).to(torch.float32)
    a = igs_cuda.CudaRenderer().render(leaves_of(p, DEVICE), H, W)
    b = igs_cuda.CudaRenderer().render(leaves_of(p, DEVICE), H, W)
    assert torch.equal(a, b)


def test_empty_inputs():
    r = igs_cuda.CudaRenderer()
    p = GaussianParams(torch.zeros(0, 2), torch.zeros(0), torch.ones(0, 2), torch.zeros(0, 3))
    out = r.render(leaves_of(p, DEVICE), 20, 30)
    assert out.shape == (20, 30, 3) and not out.any()
    q = random_params(5, 2, 8, 8, seed=1)
    assert r.render(leaves_of(q, DEVICE), 0, 8).shape == (0, 8, 2)
    leaves = leaves_of(q, DEVICE)
    r.render(leaves, 8, 0).sum().backward()
    assert not leaves.colour.grad.any()


def test_bad_arguments_raise():
    r = igs_cuda.CudaRenderer()
    p = leaves_of(random_params(5, 3, 8, 8, seed=1), DEVICE)
    with pytest.raises(ValueError, match="tile"):
        r.render(p, 8, 8, tile=64)
    with pytest.raises(ValueError, match="k must"):
        r.render(p, 8, 8, k=33)
    with pytest.raises(ValueError, match="expected means"):
        r.render(GaussianParams(p.means, p.theta[:3], p.inv_scale, p.colour), 8, 8)
