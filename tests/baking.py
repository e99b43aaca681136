"""Small real bakes for the decoder tests: a crop of a sample material, few Gaussians, few steps."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from igs_tex.bakes.material import BakeOptions, bake_material
from igs_tex.igsfile import IgsFile, from_bytes


def bake_crop(
    src: Path,
    out: Path,
    box: tuple[int, int, int, int],
    gaussians: int,
    steps: int,
    k: int = 10,
    backend: str = "auto",
    format: int = 2,
) -> tuple[IgsFile, bytes]:
    """Bake the PNG maps of `src` cropped to box (left, top, right, bottom); returns the file as
    parsed by the reference reader and its bytes."""
    crop = out / src.name
    crop.mkdir(parents=True)
    for f in sorted(src.glob("*.png")):
        Image.open(f).crop(box).save(crop / f.name)
    # One torch thread: the tensors are tiny, and a busy core elsewhere stalls OpenMP teams.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = bake_material(
            crop,
            out / "baked",
            BakeOptions(gaussians=gaussians, steps=steps, k=k, backend=backend, format=format),
            progress=False,
        )
    finally:
        torch.set_num_threads(threads)
    data = Path(summary["output"]).read_bytes()
    return from_bytes(data), data
