"""Regenerate the small sample materials in assets/ from the shared 1024 px set.

    python tools/make_assets.py [--src ../shared/materials] [--out assets] [--size 512]

Each map is downscaled with Pillow's Lanczos filter and written as 8-bit PNG
under the same file name. Normal maps are resampled as vectors in [-1, 1] and
renormalised, because averaging unit vectors shortens them and a shader would
read the shortened length as a flatter surface. rock_cliff is the exception:
its source normals are not unit length (B = 255 everywhere, XY unscaled), so
renormalising would change what the data says rather than restore it; those
are resampled and re-encoded as they are.

LICENSE files and assets/README.md are written by hand, not by this script.
"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SRC = REPO.parent / "shared" / "materials"

# material -> whether its normal map may be renormalised after resampling
MATERIALS = {"walnut_wood": True, "rock_cliff": False, "boombox_atlas": True, "pipes_trak": True}


def _resize_plane(plane: np.ndarray, size: int) -> np.ndarray:
    # Mode "F" keeps the filter in float so the only rounding is the final encode.
    return np.asarray(Image.fromarray(plane.astype(np.float32), mode="F").resize((size, size), Image.LANCZOS))


def downscale_normal(codes: np.ndarray, size: int, renormalise: bool) -> np.ndarray:
    n = codes[..., :3].astype(np.float64) / 255.0 * 2.0 - 1.0  # [H, W, 3]
    small = np.stack([_resize_plane(n[..., c], size) for c in range(3)], axis=-1).astype(np.float64)
    if renormalise:
        small /= np.maximum(np.linalg.norm(small, axis=-1, keepdims=True), 1e-8)
    return np.clip(np.rint((small + 1.0) * 0.5 * 255.0), 0, 255).astype(np.uint8)


def downscale_plain(im: Image.Image, size: int) -> np.ndarray:
    # Colour is filtered on the stored sRGB codes, as texture tools commonly do.
    return np.asarray(im.resize((size, size), Image.LANCZOS))


def material_toml(src_text: str, size: int, maps: list[str], renormalised: bool) -> str:
    """The shared material.toml with resolution and provenance updated for the downscale."""
    text = re.sub(r"(?m)^resolution = \[.*\]$", f"resolution = [{size}, {size}]", src_text)
    listed = ", ".join(f'"{m}"' for m in maps)
    text = re.sub(r"(?m)^resampled_maps = \[.*?\](.*)$", lambda m: f"resampled_maps = [{listed}]{m.group(1)}", text)
    how = (
        "renormalised to unit length"
        if renormalised
        else "NOT renormalised (source is not unit length; kept as resampled)"
    )
    note = (
        f"igs-tex assets: downscaled from 1024x1024 to {size}x{size} with Pillow LANCZOS by tools/make_assets.py; "
        f"normal map resampled as [-1,1] vectors, {how}"
    )
    text = re.sub(r"(?m)^(notes = \[.*)\]$", lambda m: f'{m.group(1)}, "{note}"]', text)
    if not renormalised:  # the inherited comment on resampled_maps would otherwise claim the opposite
        text = text.replace("normals renormalised;", "normals NOT renormalised for this material;")
    return text


def make(src_root: Path, out_root: Path, size: int) -> None:
    for name, renormalise in MATERIALS.items():
        src = src_root / name
        out = out_root / name
        out.mkdir(parents=True, exist_ok=True)
        meta_text = (src / "material.toml").read_text()
        meta = tomllib.loads(meta_text)
        maps = list(meta["files"])
        for kind, file in meta["files"].items():
            with Image.open(src / file) as im:
                im.load()
                if kind == "normal":
                    small = downscale_normal(np.asarray(im.convert("RGB")), size, renormalise)
                else:
                    small = downscale_plain(im, size)
            Image.fromarray(small).save(out / file, optimize=True)
        toml_text = material_toml(meta_text, size, maps, renormalise)
        tomllib.loads(toml_text)  # fail here rather than ship a broken file
        (out / "material.toml").write_text(toml_text)
        print(f"{out}: {', '.join(meta['files'].values())}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC, help="folder holding the shared materials")
    ap.add_argument("--out", type=Path, default=REPO / "assets", help="assets folder to write into")
    ap.add_argument("--size", type=int, default=512, help="output width and height in pixels")
    args = ap.parse_args()
    make(args.src, args.out, args.size)


if __name__ == "__main__":
    main()
