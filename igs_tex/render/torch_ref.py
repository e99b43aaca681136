"""Differentiable ground truth of the rendering contract, in plain PyTorch.

Readable first, but vectorised over batches of tiles so a 512x512 forward+backward takes
seconds: tiles are bucketed by list length, each bucket is padded to its longest list, and
the per-texel top-K selection runs without autograd. Only the K selected Gaussians per texel
are re-evaluated with autograd, so the backward costs K (not list length) per texel.
"""

from __future__ import annotations

import torch

from .params import GaussianParams
from .tiles import build_tile_lists, tile_grid

# Upper bound on elements of one [tiles, texels, list] selection tensor: keeps peak memory
# around a few hundred MB at 2K while batches stay large enough to amortise Python overhead.
_MAX_BATCH_ELEMENTS = 1 << 23


def gaussian_weight(
    px: torch.Tensor, py: torch.Tensor, means: torch.Tensor, theta: torch.Tensor, inv_scale: torch.Tensor
) -> torch.Tensor:
    """G_i(p) per the contract. Broadcasts: px, py [...]; means [..., 2]; theta [...]; inv_scale [..., 2].

    The subtraction p - m comes first: expanding the quadratic form around another origin loses
    enough float32 precision to flip top-K choices (tests/data/golden/README.md).
    """
    dx = px - means[..., 0]
    dy = py - means[..., 1]
    c, s = torch.cos(theta), torch.sin(theta)
    u = (c * dx + s * dy) * inv_scale[..., 0]
    v = (c * dy - s * dx) * inv_scale[..., 1]
    return torch.exp(-0.5 * (u * u + v * v))


def _tile_pixels(tile_ids: torch.Tensor, tiles_x: int, tile: int, height: int, width: int, dtype: torch.dtype):
    """Texel centres [B, T*T] of each tile, with a validity mask for the edge-cut tiles."""
    ty, tx = tile_ids // tiles_x, tile_ids % tiles_x
    local = torch.arange(tile * tile)
    lx, ly = local % tile, local // tile
    x = tx[:, None] * tile + lx[None, :]
    y = ty[:, None] * tile + ly[None, :]
    valid = (x < width) & (y < height)
    return (x.to(dtype) + 0.5, y.to(dtype) + 0.5, valid, y * width + x)


class TorchRenderer:
    name = "torch"

    def render(
        self, params: GaussianParams, height: int, width: int, tile: int = 16, k: int = 10, eps: float = 1e-7
    ) -> torch.Tensor:
        offsets, indices = build_tile_lists(params.means, params.inv_scale, height, width, tile)
        return render_with_lists(params, height, width, tile, k, eps, offsets, indices)


def render_with_lists(
    params: GaussianParams,
    height: int,
    width: int,
    tile: int,
    k: int,
    eps: float,
    offsets: torch.Tensor,
    indices: torch.Tensor,
) -> torch.Tensor:
    """Render [H, W, C] given prebuilt tile lists (offsets [tiles+1], indices ascending per tile)."""
    dtype = params.colour.dtype
    n_ch = params.channels
    tiles_x, tiles_y = tile_grid(height, width, tile)
    counts = offsets[1:] - offsets[:-1]  # [tiles]
    texels = tile * tile
    out_vals, out_pix = [], []
    # Bucket tiles by list length so padding stays small; empty tiles render 0 (sum G = 0).
    order = torch.argsort(counts, stable=True)
    sorted_counts = counts[order]
    first_nonempty = int(torch.searchsorted(sorted_counts, torch.tensor(1)))
    pos = first_nonempty
    n_tiles = order.shape[0]
    while pos < n_tiles:
        max_len_guess = int(sorted_counts[min(n_tiles - 1, pos)])
        batch = max(1, _MAX_BATCH_ELEMENTS // (texels * max(max_len_guess, 1)))
        end = min(n_tiles, pos + batch)
        # Shrink the batch until its longest list still fits the element budget.
        while end - pos > 1 and (end - pos) * texels * int(sorted_counts[end - 1]) > _MAX_BATCH_ELEMENTS:
            end = pos + max(1, (end - pos) // 2)
        tile_ids = order[pos:end]
        vals, pix = _render_tiles(
            params, tile_ids, offsets, indices, int(sorted_counts[end - 1]), tiles_x, tile, height, width, k, eps, dtype
        )
        out_vals.append(vals)
        out_pix.append(pix)
        pos = end
    out = torch.zeros(height * width, n_ch, dtype=dtype)
    if out_vals:
        out = out.index_put((torch.cat(out_pix),), torch.cat(out_vals))
    return out.reshape(height, width, n_ch)


def _render_tiles(params, tile_ids, offsets, indices, max_len, tiles_x, tile, height, width, k, eps, dtype):
    b = tile_ids.shape[0]
    starts = offsets[tile_ids]  # [B]
    lens = offsets[tile_ids + 1] - starts  # [B]
    slot = torch.arange(max_len)
    listed = slot[None, :] < lens[:, None]  # [B, L]
    gidx = indices[(starts[:, None] + slot[None, :]).clamp(max=max(indices.shape[0] - 1, 0))]
    gidx = torch.where(listed, gidx, torch.zeros_like(gidx))  # [B, L]
    px, py, valid, pix = _tile_pixels(tile_ids, tiles_x, tile, height, width, dtype)  # [B, P]

    with torch.no_grad():
        g = gaussian_weight(
            px[:, :, None],
            py[:, :, None],
            params.means[gidx][:, None],
            params.theta[gidx][:, None],
            params.inv_scale[gidx][:, None],
        )  # [B, P, L]
        g = torch.where(listed[:, None, :], g, torch.full_like(g, -1.0))
        kk = min(k, max_len)
        # Stable descending sort keeps list order (ascending index) among equal G: ties -> lower index.
        sel = torch.sort(g, dim=2, descending=True, stable=True).indices[:, :, :kk]  # [B, P, K]
        sel_listed = torch.gather(listed[:, None, :].expand(b, px.shape[1], max_len), 2, sel)
        sel_g = torch.gather(gidx[:, None, :].expand(b, px.shape[1], max_len), 2, sel)  # [B, P, K]

    gk = gaussian_weight(
        px[:, :, None], py[:, :, None], params.means[sel_g], params.theta[sel_g], params.inv_scale[sel_g]
    )  # [B, P, K]
    gk = gk * sel_listed.to(dtype)
    num = torch.einsum("bpk,bpkc->bpc", gk, params.colour[sel_g])
    out = num / (gk.sum(dim=2, keepdim=True) + eps)  # [B, P, C]
    return out[valid], pix[valid]
