"""Pictures for the comparison report: error heat maps and nearest-neighbour zoomed crops.

Values are shown as stored (sRGB codes for base colour, [0, 1]-encoded normals as RGB,
single-channel maps as grey), the same values the metrics score, so what the eye sees in a
crop matches the PSNR beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# viridis at five stops: perceptually ordered, readable in grey, no red/green-only cue.
_STOPS = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)], dtype=np.float64)
# Error maps larger than this are max-pooled down: the hot spots must survive the shrink.
MAX_ERROR_MAP_SIDE = 1024
CROP_OUTLINE = (255, 64, 64)


def colour_lut() -> np.ndarray:
    """[256, 3] uint8 heat ramp."""
    t = np.linspace(0.0, 1.0, 256)
    pos = t * (len(_STOPS) - 1)
    i0 = np.minimum(pos.astype(int), len(_STOPS) - 2)
    f = (pos - i0)[:, None]
    return np.round(_STOPS[i0] * (1 - f) + _STOPS[i0 + 1] * f).astype(np.uint8)


_LUT = colour_lut()


def to_rgb8(values: np.ndarray) -> np.ndarray:
    """[H, W, n] in [0, 1] -> [H, W, 3] uint8: 1 channel as grey, 2 padded with mid-grey, 3 as is."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    if v.ndim == 2:
        v = v[..., None]
    n = v.shape[2]
    if n == 1:
        v = np.repeat(v, 3, axis=2)
    elif n == 2:
        v = np.concatenate([v, np.full(v.shape[:2] + (1,), 0.5)], axis=2)
    elif n > 3:
        v = v[..., :3]
    return np.round(v * 255.0).astype(np.uint8)


def abs_error(decoded: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[H, W]: mean absolute difference over the channels given."""
    return np.abs(np.asarray(decoded, np.float64) - np.asarray(target, np.float64)).mean(axis=2)


def error_scale(errors: list[np.ndarray]) -> float:
    """One colour scale for a row of maps: the 99.5th percentile over all of them, so a few
    outliers do not wash the rest of the row out to the bottom colour."""
    if not errors:
        return 1.0
    v = float(np.percentile(np.concatenate([e.ravel() for e in errors]), 99.5))
    if v <= 0:
        v = float(max(e.max() for e in errors))
    return v if v > 0 else 1.0


def heat(err: np.ndarray, scale: float) -> np.ndarray:
    """[H, W] -> [H, W, 3] uint8 through the ramp, err = scale (and above) at the top colour."""
    idx = np.clip(np.round(err / scale * 255.0), 0, 255).astype(np.uint8)
    return _LUT[idx]


def max_pool_to(err: np.ndarray, max_side: int = MAX_ERROR_MAP_SIDE) -> tuple[np.ndarray, int]:
    """Shrink by an integer factor until it fits; returns the map and the factor."""
    f = 1
    while max(err.shape) > max_side * f:
        f *= 2
    if f == 1:
        return err, 1
    h, w = err.shape
    padded = np.pad(err, ((0, (-h) % f), (0, (-w) % f)), mode="edge")
    return padded.reshape(padded.shape[0] // f, f, padded.shape[1] // f, f).max(axis=(1, 3)), f


def crop_size_for(height: int, width: int) -> int:
    """A crop a quarter of the short side, 8..64 texels: small enough to zoom, big enough to read."""
    return int(min(64, max(8, min(height, width) // 4), height, width))


def choose_crop(target: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the size x size window with the most detail (sum of |gradient| over
    all channels): detail is where every codec struggles, so it shows differences best."""
    t = np.asarray(target, np.float64)
    h, w = t.shape[:2]
    g = np.zeros((h, w))
    g[:, 1:] += np.abs(np.diff(t, axis=1)).sum(axis=2)
    g[1:, :] += np.abs(np.diff(t, axis=0)).sum(axis=2)
    ii = np.zeros((h + 1, w + 1))
    ii[1:, 1:] = g.cumsum(0).cumsum(1)
    step = max(1, size // 4)
    best, at = -1.0, (0, 0)
    for y in range(0, h - size + 1, step):
        for x in range(0, w - size + 1, step):
            s = ii[y + size, x + size] - ii[y, x + size] - ii[y + size, x] + ii[y, x]
            if s > best:
                best, at = s, (x, y)
    return at


def zoom(img: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement: every texel stays a visible square."""
    return np.repeat(np.repeat(img, factor, axis=0), factor, axis=1)


def outline(img: np.ndarray, x0: int, y0: int, size: int, scale: int = 1, colour=CROP_OUTLINE) -> np.ndarray:
    """A copy with a rectangle drawn around the crop (coordinates in texels, image shrunk by ``scale``)."""
    out = img.copy()
    h, w = out.shape[:2]
    t = 2 if max(h, w) >= 256 else 1
    xa, ya = x0 // scale, y0 // scale
    xb, yb = min(w, -(-(x0 + size) // scale)), min(h, -(-(y0 + size) // scale))
    c = np.array(colour, dtype=np.uint8)
    out[ya : ya + t, xa:xb] = c
    out[max(ya, yb - t) : yb, xa:xb] = c
    out[ya:yb, xa : xa + t] = c
    out[ya:yb, max(xa, xb - t) : xb] = c
    return out


def save_png(path: Path, rgb: np.ndarray) -> Path:
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(path, compress_level=6)
    return path
