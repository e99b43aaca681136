"""Tile binning: which Gaussians each T x T tile lists (DESIGN.md, rendering contract).

Gaussian i is listed in tile t when the circle of radius r_i = 3 * max(s_x, s_y) around its mean
meets the tile rectangle [x0, min(x0+T, W)] x [y0, min(y0+T, H)] (closest-point distance <= r_i).
Lists are row-major by tile, indices ascending inside each list: that order is what makes
"ties go to the lower index" cheap for every consumer.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import budget


def tile_grid(height: int, width: int, tile: int) -> tuple[int, int]:
    """(tiles_x, tiles_y) in the renderers' (height, width) argument order."""
    return budget.tile_grid(width, height, tile)


def gaussian_radius(inv_scale: torch.Tensor) -> torch.Tensor:
    # 3 * max(s_x, s_y) with s = 1 / a; the smaller inverse scale is the longer axis.
    return 3.0 / inv_scale.abs().min(dim=1).values


@torch.no_grad()
def build_tile_lists(
    means: torch.Tensor, inv_scale: torch.Tensor, height: int, width: int, tile: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (offsets [tiles+1] int64, indices [pairs] int64) for row-major tiles.

    Works in float64 so that the circle/rectangle test agrees with the float64 golden
    references right at the boundary; the cost is negligible next to rendering.
    """
    tx, ty = tile_grid(height, width, tile)
    n_tiles = tx * ty
    means = means.detach().to(torch.float64)
    r = gaussian_radius(inv_scale.detach().to(torch.float64))
    n = means.shape[0]
    if n == 0:
        return torch.zeros(n_tiles + 1, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
    # Candidate tile range from the circle's bounding box, clamped to the grid.
    finite = torch.isfinite(r) & torch.isfinite(means).all(dim=1)
    r = torch.where(finite, r, torch.zeros_like(r))
    x_lo = torch.floor((means[:, 0] - r) / tile).clamp(0, tx - 1).to(torch.int64)
    x_hi = torch.floor((means[:, 0] + r) / tile).clamp(0, tx - 1).to(torch.int64)
    y_lo = torch.floor((means[:, 1] - r) / tile).clamp(0, ty - 1).to(torch.int64)
    y_hi = torch.floor((means[:, 1] + r) / tile).clamp(0, ty - 1).to(torch.int64)
    nx = x_hi - x_lo + 1
    ny = y_hi - y_lo + 1
    cnt = torch.where(finite, nx * ny, torch.zeros_like(nx))
    gid = torch.repeat_interleave(torch.arange(n), cnt)
    start = torch.cumsum(cnt, 0) - cnt
    local = torch.arange(gid.shape[0]) - start[gid]
    cx = x_lo[gid] + local % nx[gid]
    cy = y_lo[gid] + local // nx[gid]
    # Closest point of the (edge-cut) tile rectangle to the mean.
    x0 = (cx * tile).to(torch.float64)
    y0 = (cy * tile).to(torch.float64)
    x1 = torch.clamp(x0 + tile, max=float(width))
    y1 = torch.clamp(y0 + tile, max=float(height))
    mx, my = means[gid, 0], means[gid, 1]
    dx = mx - torch.clamp(mx, x0, x1)
    dy = my - torch.clamp(my, y0, y1)
    hit = dx * dx + dy * dy <= r[gid] * r[gid]
    tiles = (cy * tx + cx)[hit]
    gids = gid[hit]
    order = torch.argsort(tiles * n + gids)
    tiles, gids = tiles[order], gids[order]
    counts = torch.bincount(tiles, minlength=n_tiles)
    offsets = torch.zeros(n_tiles + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(counts, 0)
    return offsets, gids


def tile_lists_numpy(
    means: np.ndarray, inv_scale: np.ndarray, height: int, width: int, tile: int
) -> tuple[np.ndarray, np.ndarray]:
    off, idx = build_tile_lists(
        torch.from_numpy(np.asarray(means, dtype=np.float64)),
        torch.from_numpy(np.asarray(inv_scale, dtype=np.float64)),
        height,
        width,
        tile,
    )
    return off.numpy(), idx.numpy()
