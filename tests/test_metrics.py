"""Report metrics: MS-SSIM, FLIP and normal-map angular error, on synthetic and real images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import MATERIALS

from igs_tex.material import load_material
from igs_tex.metrics import (
    flip,
    group_metrics,
    ms_ssim,
    ms_ssim_scales,
    normal_angular_error,
    report_metrics,
    ssim,
)


@pytest.fixture(scope="module")
def walnut_base():
    stack = load_material(MATERIALS / "walnut_wood")
    return stack.data[256:448, 256:448, stack.group_slices()["basecolor"]].astype(np.float64)  # 192 px: 5 scales


def _noisy(img, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(img + sigma * rng.standard_normal(img.shape), 0.0, 1.0)


# ----------------------------------------------------------------------------- MS-SSIM


def test_ms_ssim_of_identical_images_is_one(walnut_base):
    assert ms_ssim(walnut_base, walnut_base) == pytest.approx(1.0, abs=1e-12)
    assert ms_ssim(torch.from_numpy(walnut_base), torch.from_numpy(walnut_base)) == pytest.approx(1.0, abs=1e-12)


def test_ms_ssim_falls_as_noise_grows(walnut_base):
    values = [ms_ssim(_noisy(walnut_base, s), walnut_base) for s in (0.005, 0.02, 0.05, 0.1)]
    assert all(a > b for a, b in zip(values, values[1:])), values
    assert values[0] > 0.99 and values[-1] < 0.9, values


def test_ms_ssim_is_less_sensitive_to_fine_noise_than_ssim(walnut_base):
    # Coarse scales average the noise away, so MS-SSIM sits above single-scale SSIM.
    noisy = _noisy(walnut_base, 0.05)
    single = float(ssim(torch.from_numpy(noisy), torch.from_numpy(walnut_base)))
    assert ms_ssim(noisy, walnut_base) > single


def test_ms_ssim_scale_count_and_small_images():
    assert ms_ssim_scales(176, 176) == 5
    assert ms_ssim_scales(175, 400) == 4
    assert ms_ssim_scales(11, 11) == 1
    assert ms_ssim_scales(10, 64) == 0
    img = np.random.default_rng(1).random((40, 40, 1))
    assert ms_ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    assert ms_ssim(_noisy(img, 0.1), img) < 1.0
    with pytest.raises(ValueError, match="smaller"):
        ms_ssim(img[:8, :8], img[:8, :8])
    with pytest.raises(ValueError, match="shapes"):
        ms_ssim(img, img[:30])


# ----------------------------------------------------------------------------- FLIP


def test_flip_identical_is_zero_and_grows_with_error(walnut_base):
    img = walnut_base.astype(np.float32)
    assert flip(img, img) == 0.0
    small, large = flip(_noisy(img, 0.01), img), flip(_noisy(img, 0.08), img)
    assert 0.0 < small < large < 1.0
    grey = img[..., :1]
    assert flip(grey, grey) == 0.0
    with pytest.raises(ValueError, match="channels"):
        flip(np.zeros((8, 8, 2)), np.zeros((8, 8, 2)))


# ----------------------------------------------------------------------------- angular error


def _encode_normals(n):
    return (np.asarray(n) + 1.0) * 0.5


def test_angular_error_of_identical_normals_is_zero():
    rng = np.random.default_rng(5)
    n = rng.standard_normal((32, 32, 3))
    n[..., 2] = np.abs(n[..., 2]) + 0.1
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    enc = _encode_normals(n)
    assert normal_angular_error(enc, enc) < 1e-6


@pytest.mark.parametrize("degrees", [0.5, 10.0, 37.0, 90.0])
def test_angular_error_of_a_known_rotation(degrees):
    # Normals in the x-z plane rotated about y: every texel turns by exactly `degrees`.
    a = np.linspace(-0.6, 0.6, 64)
    n = np.stack([np.sin(a), np.zeros_like(a), np.cos(a)], axis=-1)[None].repeat(8, axis=0)  # [8, 64, 3]
    t = math.radians(degrees)
    rot = np.array([[math.cos(t), 0.0, math.sin(t)], [0.0, 1.0, 0.0], [-math.sin(t), 0.0, math.cos(t)]])
    turned = n @ rot.T
    assert normal_angular_error(_encode_normals(turned), _encode_normals(n)) == pytest.approx(degrees, abs=1e-6)


def test_angular_error_ignores_length():
    n = np.array([[[0.0, 0.6, 0.8]]])
    assert normal_angular_error(_encode_normals(0.5 * n), _encode_normals(n)) < 1e-6


# ----------------------------------------------------------------------------- report_metrics


def test_report_metrics_adds_keys_and_keeps_group_metrics():
    rng = np.random.default_rng(2)
    target = rng.random((24, 24, 7))
    decoded = np.clip(target + 0.02 * rng.standard_normal(target.shape), 0, 1)
    groups = {"basecolor": [0, 1, 2], "normal": [3, 4, 5], "roughness": [6]}
    base = group_metrics(decoded, target, groups)
    full = report_metrics(decoded, target, groups)
    assert set(full) == set(base) == {"basecolor", "normal", "roughness", "all"}
    for g in base:
        for k, v in base[g].items():
            assert full[g][k] == v
        assert 0.0 < full[g]["ms_ssim"] < 1.0
    assert full["basecolor"]["flip"] > 0.0
    assert full["normal"]["angular_error_deg"] > 0.0
    assert "flip" not in full["roughness"] and "angular_error_deg" not in full["roughness"]
    tiny = report_metrics(decoded[:11, :11], target[:11, :11], groups)
    assert "ms_ssim" in tiny["all"]


def test_a_float_normal_map_is_measured_in_its_own_units(tmp_path):
    """An EXR normal map whose vectors span little of [-1, 1]: PSNR and angle on the values as
    loaded, not on the per-channel min-max stretch the stack stores them in."""
    import OpenEXR

    from igs_tex.metrics import group_metrics, report_metrics

    rng = np.random.default_rng(3)
    h = w = 48
    # Real tangent-space normals from the walnut map, tilted at most ~25 degrees (x, y in about
    # [-0.4, 0.4]), plus an error of known size.
    enc = load_material(MATERIALS / "walnut_wood").data[:h, :w, 3:6].astype(np.float64)
    n = enc * 2 - 1
    n[..., :2] *= 0.4 / max(np.abs(n[..., :2]).max(), 1e-6)
    n[..., 2] = np.sqrt(1 - (n[..., :2] ** 2).sum(-1))
    chans = {k: np.ascontiguousarray(n[..., i], dtype=np.float32) for i, k in enumerate("RGB")}
    with OpenEXR.File({"type": OpenEXR.scanlineimage, "compression": OpenEXR.ZIP_COMPRESSION}, chans) as f:
        f.write(str(tmp_path / "rock_normal.exr"))
    stack = load_material(tmp_path)
    vr = stack.value_range.astype(np.float64)
    assert (vr[:, 1] - vr[:, 0]).min() < 0.9  # stretched per channel on load
    noise = rng.normal(0, 0.01, n.shape)
    decoded_real = n + noise
    decoded = ((decoded_real - vr[:, 0]) / (vr[:, 1] - vr[:, 0])).astype(np.float32)
    groups = stack.group_slices()
    span = vr[:, 1].max() - vr[:, 0].min()
    want = 10 * math.log10(span**2 / np.mean((decoded_real - stack.data * (vr[:, 1] - vr[:, 0]) - vr[:, 0]) ** 2))
    got = group_metrics(decoded, stack.data, groups, stack.value_range)["normal"]["psnr"]
    assert got == pytest.approx(want, abs=1e-6)
    # The old measure (on the stretch) reported it several dB worse.
    stretched = group_metrics(decoded, stack.data, groups)["normal"]["psnr"]
    assert got - stretched > 3.0
    # Degrees on the real vectors: an error of 0.01 per component is about 0.6-0.9 degrees.
    deg = report_metrics(decoded, stack.data, groups, stack.value_range)["normal"]["angular_error_deg"]
    a = decoded_real / np.linalg.norm(decoded_real, axis=-1, keepdims=True)
    b = n / np.linalg.norm(n, axis=-1, keepdims=True)
    ref = np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), (a * b).sum(-1))).mean()
    assert deg == pytest.approx(ref, rel=1e-3) and 0.2 < deg < 2.0
