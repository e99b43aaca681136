"""The fit runs on its renderer's device (trainer.py): checked on a machine without a GPU.

A GPU fit differs from a host fit only in where tensors live, so the tests fake a device: a
tensor subclass that reports device 'meta' but holds (and computes on) a CPU tensor, and a
dispatch mode that raises where a host tensor meets a device tensor in one operation, as CUDA
does. A fit on that device must run without mixing, hand the renderer only device tensors,
return host tensors, and compute exactly what the host fit computes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import MATERIALS
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

import igs_tex.fit.trainer as trainer
from igs_tex.fit import FitSettings, fit_stack
from igs_tex.fit.losses import channel_ssim, fit_loss, make_loss
from igs_tex.fit.optim import RowAdam
from igs_tex.material import load_material
from igs_tex.metrics import ssim_map
from igs_tex.render import GaussianParams
from igs_tex.render.native import NativeRenderer
from igs_tex.render.torch_ref import TorchRenderer

FAKE = torch.device("meta")
_COPIES = (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default)


class DeviceMix(RuntimeError):
    pass


class OnFake(torch.Tensor):
    """A tensor on the fake device; `inner` is the CPU tensor holding its values."""

    @staticmethod
    def __new__(cls, inner: torch.Tensor):
        return torch.Tensor._make_wrapper_subclass(
            cls,
            inner.shape,
            strides=inner.stride(),
            storage_offset=inner.storage_offset(),
            dtype=inner.dtype,
            device=FAKE,
            requires_grad=inner.requires_grad,
        )

    def __init__(self, inner: torch.Tensor):
        self.inner = inner

    def __repr__(self):
        return f"OnFake({self.inner!r})"

    __torch_function__ = torch._C._disabled_torch_function_impl

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise RuntimeError(f"{func} on a fake-device tensor outside FakeDevice()")


def _on_fake(device) -> bool:
    return device is not None and torch.device(device) == FAKE


class FakeDevice(TorchDispatchMode):
    """Runs every operation on the CPU tensors inside OnFake and wraps results that stay on the
    device. Mixing raises as on CUDA: 0-dim host tensors (scalars) and copies may cross, a host
    generator may not draw for device tensors."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        leaves, _ = tree_flatten((args, kwargs))
        on_device = any(isinstance(x, OnFake) for x in leaves)
        host = [x for x in leaves if type(x) is torch.Tensor]
        if on_device and func not in _COPIES and any(x.dim() > 0 for x in host):
            raise DeviceMix(f"{func}: host tensors {[tuple(x.shape) for x in host]} meet device tensors")
        if on_device and any(isinstance(x, torch.Generator) for x in leaves):
            raise DeviceMix(f"{func}: a host generator draws for device tensors")
        to_device = _on_fake(kwargs.get("device"))
        to_host = kwargs.get("device") is not None and not to_device
        args, kwargs = tree_map(lambda x: x.inner if isinstance(x, OnFake) else x, (args, kwargs))
        if to_device:
            kwargs = dict(kwargs, device=torch.device("cpu"))
        out = func(*args, **kwargs)
        if to_device or (on_device and not to_host):
            if func._schema.is_mutable:
                return leaves[0]  # the in-place op changed the tensor it was called on
            return tree_map(lambda x: OnFake(x) if isinstance(x, torch.Tensor) else x, out)
        return out


class FakeFactories(TorchFunctionMode):
    # torch.tensor(data, device=...) copies to the device below the dispatch modes.
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.tensor and _on_fake(kwargs.get("device")):
            return func(*args, **{**kwargs, "device": None}).to(FAKE)
        return func(*args, **kwargs)


class OnDevice:
    """A renderer computing on `device` as CudaRenderer does: device parameters in, a device
    image out. On the fake device it renders the parameters' values with `inner` on the host."""

    def __init__(self, inner, name: str, device: torch.device):
        self.inner, self.name, self.device = inner, name, device
        self.calls = 0

    def render(self, params: GaussianParams, *args):
        fields = (params.means, params.theta, params.inv_scale, params.colour)
        if self.device == FAKE:
            # What the trainer hands a GPU renderer must already be on the GPU.
            assert all(isinstance(t, OnFake) for t in fields), [t.device for t in fields]
            fields = tuple(t.to("cpu") for t in fields)  # differentiable: the gradient comes back
        self.calls += 1
        out = self.inner.render(GaussianParams(*fields), *args)
        return out.to(params.colour.device)


@pytest.fixture(scope="module")
def crop():
    data = load_material(MATERIALS / "walnut_wood").data
    return np.ascontiguousarray(data[300:340, 400:440, :3])  # [40, 40, 3]


# Small and sparse: growth ends at step 16, then thin Gaussians leave holes for the repair; the
# first 6 steps run on the 20 x 20 coarse level.
SETTINGS = dict(
    gaussians=24,
    steps=30,
    seed=5,
    grow_every=4,
    init_scale_px=1.5,
    max_scale_px=3.0,
    coarse_fraction=0.2,
    coarse_min_side=16,
    history_steps=(3, 30),
    log_every=5,
    channel_weights=[1.0, 2.0, 3.0],
)


def _fields(p: GaussianParams):
    return (p.means, p.theta, p.inv_scale, p.colour)


def _fit_with(monkeypatch, renderer, target, **kw):
    monkeypatch.setattr(trainer, "get_renderer", lambda backend: renderer)
    return fit_stack(target, FitSettings(**{**SETTINGS, **kw}), progress=False)


def _count_repairs(monkeypatch) -> list[int]:
    spots = []
    real = trainer.holes

    def counting(*a, **k):
        out = real(*a, **k)
        spots.append(int(out.numel()))
        return out

    monkeypatch.setattr(trainer, "holes", counting)
    return spots


def test_fit_on_a_device_keeps_it_there_and_equals_the_host_fit(monkeypatch, crop):
    spots = _count_repairs(monkeypatch)
    host = fit_stack(crop, FitSettings(backend="torch", **SETTINGS), progress=False)
    assert sum(spots) > 0  # the repair path ran (it moves Gaussians only where holes are)

    renderer = OnDevice(TorchRenderer(), "torch", FAKE)
    with FakeFactories(), FakeDevice():
        dev = _fit_with(monkeypatch, renderer, crop)
    assert renderer.calls > SETTINGS["steps"]  # training, full-size history and coverage renders
    for t in _fields(dev.params):
        assert type(t) is torch.Tensor and t.device.type == "cpu" and t.is_contiguous()
    # Same seed, same draws (sampling stays on the host generator), same arithmetic.
    for a, b in zip(_fields(host.params), _fields(dev.params)):
        assert torch.equal(a, b)
    assert dev.psnr_history == host.psnr_history and dev.log == host.log
    assert dev.final_loss == host.final_loss


def test_a_host_device_attribute_changes_nothing(monkeypatch, crop):
    # Native keeps its fused C++ loss on the host; torch is the torch path either way.
    for name, inner in (("native", NativeRenderer()), ("torch", TorchRenderer())):
        plain = _fit_with(monkeypatch, inner, crop, steps=20)
        tagged = _fit_with(monkeypatch, OnDevice(inner, name, torch.device("cpu")), crop, steps=20)
        for a, b in zip(_fields(plain.params), _fields(tagged.params)):
            assert torch.equal(a, b), name


def test_native_renderer_off_the_host_takes_the_torch_loss(monkeypatch, crop):
    # The fused loss reads host memory (numpy): on another device it would fail on the target.
    renderer = OnDevice(NativeRenderer(), "native", FAKE)
    with FakeFactories(), FakeDevice():
        r = _fit_with(monkeypatch, renderer, crop, steps=12, history_steps=(1, 12))
    assert all(type(t) is torch.Tensor for t in _fields(r.params))
    assert r.psnr_history[12] > r.psnr_history[1]


def test_the_fake_device_catches_mixing():
    # The harness has teeth: a host tensor meeting a device one raises, as on CUDA (the
    # SSIM window was made on the host once, before the loss built it on the target's device).
    a = torch.rand(16, 16, 2)
    with FakeFactories(), FakeDevice():
        x, y = a.to(FAKE), (a * 0.5).to(FAKE)
        with pytest.raises(DeviceMix):
            x + a
        with pytest.raises(DeviceMix):
            torch.nn.functional.conv2d(x.permute(2, 0, 1)[None], torch.ones(2, 1, 1, 3), groups=2)
        got = channel_ssim(x, y)
        assert isinstance(got, OnFake)
        got = got.to("cpu")
    assert torch.equal(got, ssim_map(a, a * 0.5).mean(dim=(1, 2)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_training_ssim_is_the_metrics_ssim_bit_for_bit(dtype):
    g = torch.Generator().manual_seed(3)
    target = torch.rand(23, 31, 4, generator=g, dtype=dtype)
    render = (target + 0.1 * torch.randn(23, 31, 4, generator=g, dtype=dtype)).requires_grad_(True)
    assert torch.equal(channel_ssim(render, target), ssim_map(render, target).mean(dim=(1, 2)))

    # The prepared loss (target statistics computed once) equals the one-shot definition,
    # value and gradient.
    cw = [1.0, 0.5, 2.0, 0.0]
    loss = make_loss(target, 0.1, cw, use_native=False)
    first = loss(render)
    (grad_first,) = torch.autograd.grad(first, render)
    again = loss(render)  # the prepared statistics are reused, not consumed
    ref = fit_loss(render, target, 0.1, torch.tensor(cw, dtype=dtype))
    (grad_ref,) = torch.autograd.grad(ref, render)
    assert torch.equal(first, ref) and torch.equal(again, ref) and torch.equal(grad_first, grad_ref)


def test_row_adam_moves_host_rows_to_its_device():
    # Growth samples and colours new Gaussians on the host; the optimiser takes them to its device.
    with FakeFactories(), FakeDevice():
        opt = RowAdam([torch.zeros(4, 2).to(FAKE).requires_grad_(True), torch.zeros(4, 3).to(FAKE)], [1e-3, 1e-2])
        grown = opt.append_rows([torch.ones(2, 2), torch.ones(2, 3, dtype=torch.float64)])
        opt.replace_rows(torch.tensor([0, 5]), [torch.full((2, 2), 2.0), torch.full((2, 3), 3.0)])
        opt.tensors[0].grad = torch.ones(6, 2).to(FAKE)
        opt.step()  # a host tensor anywhere in the update raises here
        state = [*opt.tensors, *opt.m, *opt.v, opt.t]
        assert all(isinstance(t, OnFake) for t in [*grown, *state])
        values = [t.to("cpu") for t in opt.tensors]
        steps = opt.t.to("cpu")
    assert [tuple(t.shape) for t in values] == [(6, 2), (6, 3)] and values[1].dtype == torch.float32
    assert values[1][:, 0].tolist() == [3.0, 0.0, 0.0, 0.0, 1.0, 3.0]
    assert steps.tolist() == [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
