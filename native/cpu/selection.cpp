// Layout of the forward's saved per-texel selection (kernels.h) and its expansion to indices.
#include "kernels.h"
#include "tile_data.h"

namespace igs {
namespace cpu {

int selection_lane_bytes(int tile) {
    return lanes_for(tile) / 8;
}

int64_t selection_offsets(const Shape& s, const TileLists& lists, int64_t* offsets) {
    const TileGrid grid = make_tile_grid(s.height, s.width, s.tile);
    const int64_t n_tiles = static_cast<int64_t>(grid.tiles_x) * grid.tiles_y;
    const int nb = selection_lane_bytes(s.tile);
    int64_t at = 0;
    for (int64_t t = 0; t < n_tiles; ++t) {
        offsets[t] = at;
        const int64_t L = lists.offsets[t + 1] - lists.offsets[t];
        if (L > s.k) at += static_cast<int64_t>(tile_rect(grid, t).ny) * L * nb;
    }
    offsets[n_tiles] = at;
    return at;
}

void selection_topk(const Shape& s, const TileLists& lists, const int64_t* sel_offsets,
                    const uint8_t* sel_masks, int32_t* topk) {
    const TileGrid grid = make_tile_grid(s.height, s.width, s.tile);
    const int64_t n_tiles = static_cast<int64_t>(grid.tiles_x) * grid.tiles_y;
    const int nb = selection_lane_bytes(s.tile);
    const int K = s.k;
#pragma omp parallel for schedule(dynamic, 8) num_threads(thread_count())
    for (int64_t t = 0; t < n_tiles; ++t) {
        const TileRect rect = tile_rect(grid, t);
        const int32_t* list = lists.indices + lists.offsets[t];
        const int L = static_cast<int>(lists.offsets[t + 1] - lists.offsets[t]);
        for (int yy = 0; yy < rect.ny; ++yy) {
            const uint8_t* row = sel_masks + sel_offsets[t] + static_cast<int64_t>(yy) * L * nb;
            for (int x = 0; x < rect.nx; ++x) {
                int32_t* dst = topk + (static_cast<int64_t>(rect.y0 + yy) * grid.width + rect.x0 + x) * K;
                int n = 0;
                for (int j = 0; j < L && n < K; ++j)
                    if (L <= K || (row[j * nb + x / 8] >> (x % 8)) & 1) dst[n++] = list[j];
                for (; n < K; ++n) dst[n] = -1;
            }
        }
    }
}

}  // namespace cpu
}  // namespace igs
