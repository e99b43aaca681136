// Forward: image [H,W,C] and the per-texel top-K the backward reuses.
//
// The fast kernel works one tile row at a time with texels in SIMD lanes:
//   1. G[j][x] for every listed Gaussian j and every texel x of the row (header eval());
//   2. if the tile lists at most K Gaussians every texel keeps all of them (no selection);
//      otherwise each texel runs the exact top-K over its column G[.][x] and the G of
//      Gaussians it did not keep are zeroed;
//   3. the blend sums G[j][x] c_j over the Gaussians kept by at least one texel of the row,
//      lane-wise; zeroed entries add exactly nothing, so each texel's sum is its own top-K's.
// The AVX-512 copy first drops from each row the Gaussians that bounds on their exponent prove
// cannot reach any of its texels' top K (row_candidates in forward_rows.inc); steps 1-3 then
// run over the rest and give the same bytes.
#include <algorithm>
#include <cstring>
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>  // the AVX-512 variant's mask moves (forward_rows.inc)
#endif

#include "igs/texel.h"
#include "kernels.h"
#include "tile_data.h"

namespace igs {
namespace cpu {
namespace {

struct ForwardScratch {
    TileSoA soa;
    std::vector<float> G, X, px, top;
    std::vector<int32_t> keep, used, order;
    std::vector<float> key;
    // The AVX-512 copy's row culling (forward_tile_culled in forward_rows.inc).
    std::vector<int32_t> all, rows;
    std::vector<float> lo, nhi;
    std::vector<uint64_t> cand;
};

// Whether a tile's rows take the exponent-first path (forward_rows.inc): a list of L > K
// Gaussians that is long enough for its extra passes to cost less than the exps they save.
inline bool exponent_first(int L, int K) {
    return L > K && K <= 10 && L >= 4 * K;
}

// The order in which the rows' K-th-largest pass (forward_rows.inc) visits a tile's Gaussians.
// tau is a value, the K-th largest counting repeats, so any order gives the same one; but a
// step is skipped when no lane's list can change. On long lists (the exponent-first path,
// L >= 4K) the K Gaussians nearest the tile centre go first, so that most later steps are
// skipped: 512^2 with 10K Gaussians, 1 thread, 29.1 -> 27.7 ms per forward. On shorter lists
// it cost more than it saved (1024^2, 10K: 39.2 -> 40.8 ms), and a full sort by that key
// instead of the K nearest first saved nothing anywhere.
const int32_t* insertion_order(ForwardScratch& sc, const TileRect& rect, int L, int K) {
    int32_t* order = grow(sc.order, static_cast<size_t>(L));
    for (int j = 0; j < L; ++j) order[j] = j;
    if (!exponent_first(L, K)) return order;
    float* key = grow(sc.key, static_cast<size_t>(L));
    const float cx = static_cast<float>(rect.x0) + 0.5f * static_cast<float>(rect.nx);
    const float cy = static_cast<float>(rect.y0) + 0.5f * static_cast<float>(rect.ny);
    for (int j = 0; j < L; ++j) {
        float u, v;
        const Gaussian g = sc.soa.at(j);
        rotate_offset(g, cx, cy, u, v);
        key[j] = exponent_from_uv(g, u, v);
    }
    std::nth_element(order, order + K, order + L,
                     [key](int32_t a, int32_t b) { return key[a] < key[b] || (key[a] == key[b] && a < b); });
    return order;
}

#define IGS_FORWARD_TILE_ARGS                                                                             \
    const Gaussian *table, const Params &p, const Shape &s, const TileGrid &grid, const TileLists &lists, \
        int64_t t, float *image, const int64_t *sel_offsets, uint8_t *sel_masks, ForwardScratch &sc

// In named namespaces: ForwardScratch is an argument of these templates, and argument-
// dependent lookup would otherwise see both copies from inside the second.
#define IGS_ROWS_AVX512 0
namespace portable {
#include "forward_rows.inc"
}  // namespace portable

void forward_tile_baseline(IGS_FORWARD_TILE_ARGS) {
#if defined(__AVX2__)  // IGS_NATIVE_SIMD=avx2: the whole build targets AVX2
    portable::forward_tile_lanes<8>(table, p, s, grid, lists, t, image, sel_offsets, sel_masks, sc);
#else
    portable::forward_tile_lanes<4>(table, p, s, grid, lists, t, image, sel_offsets, sel_masks, sc);
#endif
}

#if IGS_AVX2_VARIANT
IGS_TARGET_AVX2 void forward_tile_avx2(IGS_FORWARD_TILE_ARGS) {
    portable::forward_tile_lanes<8>(table, p, s, grid, lists, t, image, sel_offsets, sel_masks, sc);
}
#endif

#if IGS_AVX512_VARIANT
// Sixteen lanes: a 16-texel tile row is one register. Measured on a 2-core AMD EPYC (1 thread,
// 9 channels, ms per forward; AVX2 -> AVX-512): 512^2 2.5K Gaussians 11.9 -> 9.9, 10K 30.6 ->
// 30.0, 1024^2 2.5K 12.9 -> 10.5, 10K 48.8 -> 39.6; identical bytes. The backward gained
// nothing from the same compile and stays AVX2.
#pragma GCC push_options
#pragma GCC target("avx2,avx512f,avx512vl,avx512bw,avx512dq,prefer-vector-width=512")
#undef IGS_ROWS_AVX512
#define IGS_ROWS_AVX512 1
namespace avx512 {
#include "forward_rows.inc"
__attribute__((noinline)) bool forward_tile_cull(IGS_FORWARD_TILE_ARGS) {
    return forward_tile_culled_lanes<16>(table, p, s, grid, lists, t, image, sel_offsets, sel_masks, sc);
}
void forward_tile(IGS_FORWARD_TILE_ARGS) {
    if (!forward_tile_cull(table, p, s, grid, lists, t, image, sel_offsets, sel_masks, sc))
        forward_tile_lanes<16>(table, p, s, grid, lists, t, image, sel_offsets, sel_masks, sc);
}
}  // namespace avx512
#pragma GCC pop_options
#endif

// One texel at a time through the header functions, exactly as a CUDA thread would.
void forward_tile_simple(const Gaussian* table, const Params& p, const Shape& s, const TileGrid& grid,
                         const TileLists& lists, int64_t t, float* image, const int64_t* sel_offsets,
                         uint8_t* sel_masks) {
    const int C = p.channels;
    const int K = s.k;
    const int nb = selection_lane_bytes(s.tile);
    const TileRect rect = tile_rect(grid, t);
    const int32_t* list = lists.indices + lists.offsets[t];
    const int L = static_cast<int>(lists.offsets[t + 1] - lists.offsets[t]);
    uint8_t* masks = sel_masks + sel_offsets[t];
    if (L > K) std::memset(masks, 0, static_cast<size_t>(rect.ny) * L * nb);
    for (int yy = 0; yy < rect.ny; ++yy) {
        for (int xx = 0; xx < rect.nx; ++xx) {
            const int x = rect.x0 + xx, y = rect.y0 + yy;
            const int64_t texel = static_cast<int64_t>(y) * grid.width + x;
            TopKSorted top;
            top.reset(K);
            select_texel(table, list, L, texel_centre(x), texel_centre(y), top);
            // Blended in list order, as the backward walks the selection and recomputes out.
            sort_by_index(top.n, top.g, top.idx);  // no push() after this
            int32_t idx[kMaxK];
            for (int q = 0; q < top.n; ++q) {
                idx[q] = list[top.idx[q]];
                if (L > K) masks[(static_cast<int64_t>(yy) * L + top.idx[q]) * nb + xx / 8] |= 1u << (xx % 8);
            }
            blend(top.n, idx, top.g, p.colour, C, s.eps, image + texel * C);
        }
    }
}

}  // namespace

void forward(const Params& p, const Shape& s, const TileLists& lists, float* image,
             const int64_t* sel_offsets, uint8_t* sel_masks, bool fast) {
    const TileGrid grid = make_tile_grid(s.height, s.width, s.tile);
    fast = fast && s.tile <= kMaxFastTile;
    const int64_t n_tiles = static_cast<int64_t>(grid.tiles_x) * grid.tiles_y;
    const std::vector<Gaussian> table = prepare_gaussians(p);
    auto* fast_tile = &forward_tile_baseline;
#if IGS_AVX2_VARIANT
    if (simd_avx2()) fast_tile = &forward_tile_avx2;
#endif
#if IGS_AVX512_VARIANT
    if (simd_avx512()) fast_tile = &avx512::forward_tile;
#endif
        // Tiles differ a lot in cost (listed counts vary), so hand them out dynamically; the
        // result does not depend on which thread runs which tile.
#pragma omp parallel num_threads(thread_count())
    {
        ForwardScratch sc;
#pragma omp for schedule(dynamic, 2)
        for (int64_t t = 0; t < n_tiles; ++t) {
            if (fast)
                fast_tile(table.data(), p, s, grid, lists, t, image, sel_offsets, sel_masks, sc);
            else
                forward_tile_simple(table.data(), p, s, grid, lists, t, image, sel_offsets, sel_masks);
        }
    }
}

void topk_weights(const Params& p, const Shape& s, const int32_t* topk, float* weights) {
    const std::vector<Gaussian> table = prepare_gaussians(p);
    const int64_t texels = static_cast<int64_t>(s.height) * s.width;
#pragma omp parallel for schedule(static) num_threads(thread_count())
    for (int64_t i = 0; i < texels; ++i) {
        const float px = texel_centre(static_cast<int>(i % s.width));
        const float py = texel_centre(static_cast<int>(i / s.width));
        for (int q = 0; q < s.k; ++q) {
            const int32_t gi = topk[i * s.k + q];
            weights[i * s.k + q] = gi < 0 ? 0.0f : eval(table[gi], px, py);
        }
    }
}

}  // namespace cpu
}  // namespace igs
