"""A deliberately plain per-texel loop of the rendering contract (float64), for tests only."""

from __future__ import annotations

import math

import numpy as np


def naive_render(means, theta, inv_scale, colour, height, width, tile=16, k=10, eps=1e-7):
    means, theta, inv_scale, colour = (np.asarray(a, dtype=np.float64) for a in (means, theta, inv_scale, colour))
    out = np.zeros((height, width, colour.shape[1]))
    radius = [3.0 * max(1.0 / inv_scale[i, 0], 1.0 / inv_scale[i, 1]) for i in range(len(means))]
    for y in range(height):
        for x in range(width):
            x0, y0 = (x // tile) * tile, (y // tile) * tile
            x1, y1 = min(x0 + tile, width), min(y0 + tile, height)
            px, py = x + 0.5, y + 0.5
            cand = []
            for i in range(len(means)):
                mx, my = means[i]
                cx, cy = min(max(mx, x0), x1), min(max(my, y0), y1)
                if math.hypot(mx - cx, my - cy) > radius[i]:
                    continue
                dx, dy = px - mx, py - my
                c, s = math.cos(theta[i]), math.sin(theta[i])
                u = (c * dx + s * dy) * inv_scale[i, 0]
                v = (-s * dx + c * dy) * inv_scale[i, 1]
                cand.append((-math.exp(-0.5 * (u * u + v * v)), i))
            cand.sort()  # largest G first, ties by lower index
            top = cand[:k]
            wsum = sum(-g for g, _ in top)
            acc = sum(-g * colour[i] for g, i in top) if top else 0.0
            out[y, x] = acc / (wsum + eps)
    return out
