// Version 2 tile lists, built once at creation: docs/FORMAT-v2.md "The listing rule (normative,
// f32)" for every record against the tiles within `reach` of its home tile, so that evaluation
// is version 1's. Records are visited in ascending index, so every list comes out strictly
// ascending (the order the contract's top-K tie rule relies on).
#include <algorithm>
#include <vector>

#include "decoder.h"

namespace igs_decoder_impl {

namespace {

// Version 1 caps its stored index at 2^30 - 1 entries; lists longer in total than that are
// refused here too, so no file makes this decoder hold more than a version 1 file could.
constexpr uint64_t kMaxListEntries = (1ull << 30) - 1;

// Calls visit(tile, i) for every listed (tile, Gaussian) pair, tiles in any order, i ascending
// for each tile. home[t] .. home[t + 1] - 1 are the records of home tile t.
template <class Visit>
void for_each_listed(const igs_decoder& d, const std::vector<uint32_t>& home, Visit&& visit) {
    const uint32_t T = d.tile, R = d.reach, W = d.width, H = d.height;
    for (uint32_t t = 0; t < d.tile_count; ++t) {
        if (home[t] == home[t + 1]) continue;
        const uint32_t hx = t % d.tiles_x, hy = t / d.tiles_x;
        const uint32_t tx_lo = hx > R ? hx - R : 0, tx_hi = std::min(hx + R, d.tiles_x - 1);
        const uint32_t ty_lo = hy > R ? hy - R : 0, ty_hi = std::min(hy + R, d.tiles_y - 1);
        for (uint32_t i = home[t]; i < home[t + 1]; ++i) {
            const igs::Gaussian& g = d.gaussians[i];
            const float am = std::min(g.ax, g.ay);
            for (uint32_t ty = ty_lo; ty <= ty_hi; ++ty) {
                // Tile edges are integers below 2^24: exact in f32.
                const float y0 = static_cast<float>(ty * T);
                const float y1 = static_cast<float>(std::min(ty * T + T, H));
                const float ey = std::max(std::max(y0 - g.my, g.my - y1), 0.0f);
                const float v = ey * am;
                const float vv = v * v;
                for (uint32_t tx = tx_lo; tx <= tx_hi; ++tx) {
                    const float x0 = static_cast<float>(tx * T);
                    const float x1 = static_cast<float>(std::min(tx * T + T, W));
                    const float ex = std::max(std::max(x0 - g.mx, g.mx - x1), 0.0f);
                    const float u = ex * am;
                    const float uu = u * u;
                    const float s = uu + vv;  // two products, then the sum: never fused
                    if (s <= 9.0f) visit(ty * d.tiles_x + tx, i);
                }
            }
        }
    }
}

}  // namespace

igs_error build_tile_lists(igs_decoder& d, const std::vector<uint32_t>& home, Detail& detail) {
    std::vector<uint32_t> count(d.tile_count, 0);  // each <= N <= 2^26
    for_each_listed(d, home, [&](uint32_t tile, uint32_t) { ++count[tile]; });
    uint64_t total = 0;
    for (uint32_t c : count) total += c;
    if (total > kMaxListEntries)
        return detail.fail(IGS_ERR_OUT_OF_MEMORY,
                           "the listing rule gives %llu tile-list entries; this decoder holds at "
                           "most 2^30 - 1 (version 1's index limit)",
                           ull(total));
    d.offsets.assign(static_cast<size_t>(d.tile_count) + 1, 0);
    for (uint32_t t = 0; t < d.tile_count; ++t) d.offsets[t + 1] = d.offsets[t] + count[t];
    d.indices.resize(static_cast<size_t>(total));
    // count becomes each tile's fill cursor.
    for (uint32_t t = 0; t < d.tile_count; ++t) count[t] = d.offsets[t];
    for_each_listed(d, home,
                    [&](uint32_t tile, uint32_t i) { d.indices[count[tile]++] = static_cast<int32_t>(i); });
    d.index_count = static_cast<uint32_t>(total);
    return IGS_SUCCESS;
}

}  // namespace igs_decoder_impl
