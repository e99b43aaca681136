// Tile binning (DESIGN.md, rendering contract; igs_tex/render/tiles.py is the Python twin).
//
// Gaussian i is listed in tile t when the circle of radius r_i = 3 max(s_x, s_y) around its
// mean meets the edge-cut tile rectangle (closest-point distance <= r_i). All of it runs in
// float64 on purpose: the golden lists were made in float64 and a Gaussian that touches a tile
// exactly on the boundary must land on the same side. Every step (the bounding-box candidate
// range included) follows tiles.build_tile_lists operation for operation, so the lists agree
// bit for bit, including where the candidate range itself is what excludes a touching tile.
#pragma once

#include "common.h"

namespace igs {

struct TileGrid {
    int width, height, tile;
    int tiles_x, tiles_y;
};

IGS_HD inline TileGrid make_tile_grid(int height, int width, int tile) {
    TileGrid g;
    g.width = width;
    g.height = height;
    g.tile = tile;
    g.tiles_x = (width + tile - 1) / tile;
    g.tiles_y = (height + tile - 1) / tile;
    return g;
}

// 3 * max(s_x, s_y) with s = 1/a; NaN in either inverse scale propagates (as torch.min does).
IGS_HD inline double tile_radius(double ax, double ay) {
    const double fx = ax < 0 ? -ax : ax;
    const double fy = ay < 0 ? -ay : ay;
    double m;
    if (fx != fx)
        m = fx;
    else if (fy != fy)
        m = fy;
    else
        m = fy < fx ? fy : fx;
    return 3.0 / m;
}

IGS_HD inline double clamp_d(double x, double lo, double hi) {
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

// floor(c / tile) clamped to [0, n - 1]: one side of the circle's bounding box, in tiles.
IGS_HD inline int tile_coord(double c, int tile, int n) {
    double f = c / static_cast<double>(tile);
    // floor without <cmath> so it also compiles for the device unchanged.
    double t = static_cast<double>(static_cast<int64_t>(clamp_d(f, -4.0e18, 4.0e18)));
    if (t > f) t -= 1.0;
    return static_cast<int>(clamp_d(t, 0.0, static_cast<double>(n - 1)));
}

// Candidate tile range of a Gaussian; returns false when it is listed nowhere (non-finite
// mean or radius, as tiles.build_tile_lists skips those).
IGS_HD inline bool tile_candidates(const TileGrid& grid, double mx, double my, double r, int& x_lo, int& x_hi,
                                   int& y_lo, int& y_hi) {
    if (!(is_finite(r) && is_finite(mx) && is_finite(my))) return false;
    if (grid.tiles_x <= 0 || grid.tiles_y <= 0) return false;  // empty image
    x_lo = tile_coord(mx - r, grid.tile, grid.tiles_x);
    x_hi = tile_coord(mx + r, grid.tile, grid.tiles_x);
    y_lo = tile_coord(my - r, grid.tile, grid.tiles_y);
    y_hi = tile_coord(my + r, grid.tile, grid.tiles_y);
    return true;
}

// Closest-point test of the circle against tile (cx, cy), the last row/column cut at the edge.
IGS_HD inline bool circle_meets_tile(const TileGrid& grid, double mx, double my, double r, int cx, int cy) {
    const double x0 = static_cast<double>(cx) * grid.tile;
    const double y0 = static_cast<double>(cy) * grid.tile;
    double x1 = x0 + grid.tile;
    double y1 = y0 + grid.tile;
    x1 = x1 > grid.width ? static_cast<double>(grid.width) : x1;
    y1 = y1 > grid.height ? static_cast<double>(grid.height) : y1;
    const double dx = mx - clamp_d(mx, x0, x1);
    const double dy = my - clamp_d(my, y0, y1);
    const double dx2 = dx * dx;  // separate products: no fused multiply-add, like torch
    const double dy2 = dy * dy;
    return dx2 + dy2 <= r * r;
}

// Calls visit(tile_index) for every tile that lists this Gaussian, in row-major tile order.
// Used twice by a binning pass: once to count, once to fill.
template <class Visit>
IGS_HD inline void for_each_tile_of(const TileGrid& grid, float mxf, float myf, float axf, float ayf,
                                    Visit&& visit) {
    const double mx = mxf, my = myf;
    const double r = tile_radius(axf, ayf);
    int x_lo, x_hi, y_lo, y_hi;
    if (!tile_candidates(grid, mx, my, r, x_lo, x_hi, y_lo, y_hi)) return;
    for (int cy = y_lo; cy <= y_hi; ++cy)
        for (int cx = x_lo; cx <= x_hi; ++cx)
            if (circle_meets_tile(grid, mx, my, r, cx, cy)) visit(cy * grid.tiles_x + cx);
}

}  // namespace igs
