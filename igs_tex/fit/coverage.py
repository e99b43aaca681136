"""Empty tiles: find texels no Gaussian reaches and move the weakest Gaussians into them.

A texel only blends the Gaussians listed in its tile (3-sigma test), and the contract renders a
texel with an empty list (or whose listed Gaussians have all decayed below the epsilon) as 0.
No gradient reaches such a texel, so once every Gaussian has drifted or shrunk out of a
tile, nothing in training brings one back: measured on pipes_trak
512 px at 0.03 bppc, uncovered texels grew from 768 at step 500 to 1312 at step 700 and four
black 16 x 16 squares shipped in the file. Growth samples where the error is, but it ends at
40% of the run.

The repair (beyond the paper) runs at every growth interval once growth is done: for each tile
holding holes it moves the Gaussian that paints the least of the image (smallest total
normalised weight) onto that tile's worst texel, with the target's colour there and fresh
optimiser moments, like a grown one, so the remaining steps train it in. It does nothing where
no tile has holes, so such fits are unchanged, byte for byte. Measured (512 px, 1000 steps,
PSNR of the .igs): pipes_trak 0.03 bppc 20.83 -> 21.46 dB, no empty tile left; at 0.06 bppc,
where small holes open and close, seeds 0 and 1 gained 0.01 dB. Two variants lost and were
dropped: relocating weak Gaussians broadly (every round, to high-error texels; -0.02 to -0.3 dB
on walnut_wood, rock_cliff, boombox_atlas, pipes_trak), and one last repair after the final
step, whose untrained Gaussians disturb their neighbours more than the holes cost (-0.13 to
-0.25 dB at 0.06 bppc).
"""

from __future__ import annotations

import torch

from ..render import GaussianParams
from ..render.tiles import tile_grid


def coverage(
    renderer, params: GaussianParams, height: int, width: int, tile: int, k: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(per texel [H, W], per Gaussian [N]) sums of the normalised blend weights.

    Rendering colour 1 gives sum_k w_k = sum G / (sum G + eps) per texel: 1 where a listed
    Gaussian reaches, 0 in an empty tile, and near 0 where the listed ones have decayed below eps
    (a thin Gaussian seen across its short axis); below 0.5 the texel is a hole. The gradient of
    the image's sum with respect to that colour is each Gaussian's total weight over the image,
    in texels.
    """
    ones = torch.ones(
        params.means.shape[0], 1, dtype=params.means.dtype, device=params.means.device, requires_grad=True
    )
    p = GaussianParams(params.means.detach(), params.theta.detach(), params.inv_scale.detach(), ones)
    with torch.enable_grad():
        out = renderer.render(p, height, width, tile, k, eps)
        out.sum().backward()
    return out.detach()[..., 0], ones.grad[:, 0].detach()


def holes(texel_cover: torch.Tensor, error: torch.Tensor, tile: int) -> torch.Tensor:
    """Flat texel indices, one per tile with holes (coverage < 0.5): its hole of largest error."""
    h, w = texel_cover.shape
    flat = torch.nonzero((texel_cover < 0.5).flatten())[:, 0]
    if flat.numel() == 0:
        return flat
    y, x = torch.div(flat, w, rounding_mode="floor"), flat % w
    tiles_x, _ = tile_grid(h, w, tile)
    tid = torch.div(y, tile, rounding_mode="floor") * tiles_x + torch.div(x, tile, rounding_mode="floor")
    e = error.flatten()[flat].to(torch.float64)
    # Sort by tile, then by descending error (stable: ties keep the lower texel index), and keep
    # each tile's first entry.
    order = torch.argsort(-e, stable=True)
    order = order[torch.argsort(tid[order], stable=True)]
    first = torch.ones(order.numel(), dtype=torch.bool, device=order.device)
    first[1:] = tid[order][1:] != tid[order][:-1]
    return flat[order[first]]


def weakest(weight: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the `count` Gaussians with the smallest total weight (ties: lower index)."""
    return torch.argsort(weight, stable=True)[:count]
