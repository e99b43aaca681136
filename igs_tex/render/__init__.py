"""Renderers behind one interface (DESIGN.md "Reference and fast paths").

    renderer.render(params: GaussianParams, height, width, tile=16, k=10, eps=1e-7) -> Tensor [H, W, C]

Every renderer is differentiable with respect to every field of GaussianParams and builds
(or caches) its own tile lists.
"""

from __future__ import annotations

from .params import GaussianParams

BACKENDS = ("torch", "native", "cuda")


def get_renderer(backend: str = "auto"):
    """Return a renderer instance. 'auto' picks native when the extension is built, else torch."""
    if backend in ("auto", "native"):
        try:
            from .native import NativeRenderer, native_available

            if native_available():
                return NativeRenderer()
        except ImportError:
            pass
        if backend == "native":
            from .. import IgsError

            raise IgsError(
                "backend 'native': the C++ extension igs_tex._native is not built; "
                "reinstall with a C++17 compiler (pip install .) or use --backend torch"
            )
    if backend in ("auto", "torch"):
        from .torch_ref import TorchRenderer

        return TorchRenderer()
    if backend == "cuda":
        from .cuda import CudaRenderer, cuda_available, cuda_unavailable_reason

        if cuda_available():
            return CudaRenderer()
        from .. import IgsError

        raise IgsError(f"backend 'cuda' is unavailable: {cuda_unavailable_reason()}")
    from .. import IgsError

    raise IgsError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["GaussianParams", "get_renderer", "BACKENDS"]
