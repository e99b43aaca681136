// Tile lists in C++ so a training step never round-trips through Python to bin.
#include <numeric>

#include "kernels.h"
#include "tile_data.h"

namespace igs {
namespace cpu {

void bin_tiles(const float* means, const float* inv_scale, int64_t count, const TileGrid& grid,
               std::vector<int64_t>& offsets, std::vector<int32_t>& indices) {
    const int64_t n_tiles = static_cast<int64_t>(grid.tiles_x) * grid.tiles_y;
    // Pass 1 (parallel): how many tiles each Gaussian meets.
    std::vector<int64_t> per_gaussian(static_cast<size_t>(count) + 1, 0);
#pragma omp parallel for schedule(dynamic, 256) num_threads(thread_count())
    for (int64_t i = 0; i < count; ++i) {
        int64_t hits = 0;
        for_each_tile_of(grid, means[2 * i], means[2 * i + 1], inv_scale[2 * i], inv_scale[2 * i + 1],
                         [&](int64_t) { ++hits; });
        per_gaussian[i + 1] = hits;
    }
    std::partial_sum(per_gaussian.begin(), per_gaussian.end(), per_gaussian.begin());
    const int64_t pairs = per_gaussian[count];

    // Pass 2 (parallel): the tiles of each Gaussian, Gaussian-major.
    std::vector<int32_t> pair_tile(static_cast<size_t>(pairs));
#pragma omp parallel for schedule(dynamic, 256) num_threads(thread_count())
    for (int64_t i = 0; i < count; ++i) {
        int64_t at = per_gaussian[i];
        for_each_tile_of(grid, means[2 * i], means[2 * i + 1], inv_scale[2 * i], inv_scale[2 * i + 1],
                         [&](int64_t t) { pair_tile[at++] = static_cast<int32_t>(t); });
    }

    // Stable counting sort by tile: walking Gaussians in ascending order leaves each tile's
    // list ascending, which is what makes "ties to the lower index" free downstream.
    offsets.assign(static_cast<size_t>(n_tiles) + 1, 0);
    for (int64_t p = 0; p < pairs; ++p) ++offsets[pair_tile[p] + 1];
    std::partial_sum(offsets.begin(), offsets.end(), offsets.begin());
    std::vector<int64_t> cursor(offsets.begin(), offsets.end() - 1);
    indices.resize(static_cast<size_t>(pairs));
    for (int64_t i = 0; i < count; ++i)
        for (int64_t p = per_gaussian[i]; p < per_gaussian[i + 1]; ++p)
            indices[cursor[pair_tile[p]]++] = static_cast<int32_t>(i);
}

}  // namespace cpu
}  // namespace igs
