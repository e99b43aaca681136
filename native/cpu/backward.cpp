// Backward: gradients for means, theta, inv_scale and colour from dL/dimage.
//
// Reuses the forward's selection (no top-K is redone); `out` is recomputed bit for bit.
// Each (tile, listed Gaussian) pair gets one slot of partial gradients, written by the
// thread that owns the tile; a final pass sums each Gaussian's slots in tile order. No
// atomics and no per-thread buffers, so the result is identical for any thread count.
#include <algorithm>
#include <cstring>
#include <memory>

#include "igs/texel.h"
#include "kernels.h"
#include "tile_data.h"

namespace igs {
namespace cpu {
namespace {

// Per-(tile, Gaussian) partials: the five geometric gradients, then C colour gradients.
constexpr int kGeom = 5;
// Lane accumulators per Gaussian: the six GeomMoments sums, then C colour sums.
constexpr int kMoments = 6;
// Per-texel channel vectors live on the stack up to this many channels (DESIGN: up to 16).
constexpr int kMaxChannelsOnStack = 64;

struct BackwardScratch {
    TileSoA soa;
    std::vector<float> U, V, G, W, dot, gT, oT, S, inv, px, lanes;
    std::vector<uint8_t> touched;
    std::vector<int32_t> keep, used;
};

// Unpacks one row's saved selection bits into keep flags; returns whether any lane kept j.
template <int LN>
IGS_ALWAYS_INLINE bool unpack_row(const uint8_t* IGS_RESTRICT bits, int32_t* IGS_RESTRICT keep) {
    uint32_t any = 0;
    for (int q = 0; q < LN / 8; ++q) {
        const uint32_t b = bits[q];
        any |= b;
        for (int bit = 0; bit < 8; ++bit) keep[8 * q + bit] = static_cast<int32_t>((b >> bit) & 1u);
    }
    return any != 0;
}

IGS_ALWAYS_INLINE float lane_sum(const float* a, int n) {
    float s = 0.0f;
    for (int x = 0; x < n; ++x) s += a[x];
    return s;
}

void write_pair(float* slot, const Gaussian& g, const GeomMoments& m, const float* dcol, int C) {
    const GeomGrad gg = moments_to_grad(g, m);
    slot[0] = gg.mx;
    slot[1] = gg.my;
    slot[2] = gg.theta;
    slot[3] = gg.ax;
    slot[4] = gg.ay;
    std::copy(dcol, dcol + C, slot + kGeom);
}

// u, v and G of Gaussian g for one row, G zeroed where the texel did not keep g (kept may be
// null: every texel kept it). Bit for bit the values the forward computed.
template <int LN>
IGS_ALWAYS_INLINE void geometry_row(const Gaussian& g, const float* IGS_RESTRICT px, float py,
                  const int32_t* IGS_RESTRICT kept, float* IGS_RESTRICT U, float* IGS_RESTRICT V,
                  float* IGS_RESTRICT G) {
    for (int x = 0; x < LN; ++x) {
        float uu, vv;
        rotate_offset(g, px[x], py, uu, vv);
        U[x] = uu;
        V[x] = vv;
        G[x] = exp_nonpos(-exponent_from_uv(g, uu, vv));
    }
    if (kept)
        for (int x = 0; x < LN; ++x) G[x] = kept[x] ? G[x] : 0.0f;
}

// One row's contribution of every used Gaussian, accumulated lane-wise into its block of
// `lanes` (kMoments + C rows of LN): the moments of GeomMoments and sum_x w g for colour.
// Channel-outer, Gaussian-inner: consecutive updates go to different Gaussians, so they do
// not wait on each other (a Gaussian-outer dot product is one long dependent add chain);
// each per-(Gaussian, texel) sum still runs over channels in order, as blend_backward().
template <int LN>
IGS_ALWAYS_INLINE void backward_row(const int32_t* IGS_RESTRICT used, int n_used,
                                    const float* IGS_RESTRICT U, const float* IGS_RESTRICT V,
                                    const float* IGS_RESTRICT G, const TileSoA& soa, int C,
                                    const float* IGS_RESTRICT gT, const float* IGS_RESTRICT oT,
                                    const float* IGS_RESTRICT inv, float* IGS_RESTRICT W,
                                    float* IGS_RESTRICT dot, float* IGS_RESTRICT lanes) {
    const int M = kMoments + C;
    const float* IGS_RESTRICT colour = soa.colour.data();
    for (int u = 0; u < n_used; ++u) {
        const size_t j = static_cast<size_t>(used[u]);
        for (int x = 0; x < LN; ++x) {
            W[j * LN + x] = G[j * LN + x] * inv[x];  // dL/dc_j = w g
            dot[j * LN + x] = 0.0f;
        }
    }
    for (int c = 0; c < C; ++c) {
        const float* IGS_RESTRICT gc = gT + static_cast<size_t>(c) * LN;
        const float* IGS_RESTRICT oc = oT + static_cast<size_t>(c) * LN;
        for (int u = 0; u < n_used; ++u) {
            const size_t j = static_cast<size_t>(used[u]);
            const float cv = colour[j * C + c];
            float* IGS_RESTRICT dj = dot + j * LN;
            const float* IGS_RESTRICT wj = W + j * LN;
            float* IGS_RESTRICT dc = lanes + (j * M + kMoments + c) * LN;
            for (int x = 0; x < LN; ++x) {
                dj[x] += gc[x] * (cv - oc[x]);  // g . (c_j - out), see blend_backward()
                dc[x] += wj[x] * gc[x];
            }
        }
    }
    for (int u = 0; u < n_used; ++u) {
        const size_t j = static_cast<size_t>(used[u]);
        const float axj = soa.ax[j], ayj = soa.ay[j];
        const float* IGS_RESTRICT Uj = U + j * LN;
        const float* IGS_RESTRICT Vj = V + j * LN;
        const float* IGS_RESTRICT Gj = G + j * LN;
        const float* IGS_RESTRICT dj = dot + j * LN;
        float* IGS_RESTRICT acc = lanes + j * M * LN;
        for (int x = 0; x < LN; ++x) {
            const float gq = grad_exponent(Gj[x], dj[x] * inv[x]);
            const float a = gq * (Uj[x] * axj);
            const float b = gq * (Vj[x] * ayj);
            acc[x] += a;
            acc[LN + x] += b;
            acc[2 * LN + x] += a * Vj[x];
            acc[3 * LN + x] += b * Uj[x];
            acc[4 * LN + x] += a * Uj[x];
            acc[5 * LN + x] += b * Vj[x];
        }
    }
}

template <int LN>
IGS_ALWAYS_INLINE void backward_tile_fast(const Gaussian* table, const Params& p, const Shape& s,
                        const TileGrid& grid, const TileLists& lists, int64_t t,
                        const float* grad_out, const int64_t* sel_offsets,
                        const uint8_t* sel_masks, float* pair_grad, BackwardScratch& sc) {
    const int C = p.channels;
    const int K = s.k;
    const int D = kGeom + C;
    const int M = kMoments + C;
    const TileRect rect = tile_rect(grid, t);
    const int64_t off = lists.offsets[t];
    const int32_t* list = lists.indices + off;
    const int L = static_cast<int>(lists.offsets[t + 1] - off);
    if (L == 0) return;

    sc.soa.gather(table, p.colour, C, list, L);
    const size_t LL = static_cast<size_t>(L) * LN;
    float* U = grow(sc.U, LL);
    float* V = grow(sc.V, LL);
    float* G = grow(sc.G, LL);
    float* gT = grow(sc.gT, static_cast<size_t>(C) * LN);
    float* oT = grow(sc.oT, static_cast<size_t>(C) * LN);
    float* S = grow(sc.S, LN);
    float* inv = grow(sc.inv, LN);
    float* px = grow(sc.px, LN);
    float* W = grow(sc.W, LL);
    float* dot = grow(sc.dot, LL);
    float* lanes = grow(sc.lanes, static_cast<size_t>(L) * M * LN);
    int32_t* keep = grow(sc.keep, LL);
    uint8_t* touched = grow(sc.touched, L);
    int32_t* used = grow(sc.used, L);
    std::memset(touched, 0, L);
    for (int x = 0; x < LN; ++x) px[x] = texel_centre(rect.x0 + x);

    // A tile listing at most K Gaussians kept all of them at every texel (kernels.h).
    const bool select = L > K;
    int n_used = L;
    if (!select)
        for (int j = 0; j < L; ++j) used[j] = j;

    for (int yy = 0; yy < rect.ny; ++yy) {
        const int y = rect.y0 + yy;
        const float py = texel_centre(y);
        const int64_t row_texel = static_cast<int64_t>(y) * grid.width + rect.x0;

        // dL/dout for this row, channel-major so channels stream lane-wise.
        std::fill(gT, gT + static_cast<size_t>(C) * LN, 0.0f);
        for (int x = 0; x < rect.nx; ++x) {
            const float* gsrc = grad_out + (row_texel + x) * C;
            for (int c = 0; c < C; ++c) gT[static_cast<size_t>(c) * LN + x] = gsrc[c];
        }

        if (select) {
            const uint8_t* bits = sel_masks + sel_offsets[t] + static_cast<int64_t>(yy) * L * (LN / 8);
            n_used = 0;
            for (int j = 0; j < L; ++j)
                if (unpack_row<LN>(bits + j * (LN / 8), keep + static_cast<size_t>(j) * LN)) used[n_used++] = j;
        }

        for (int u = 0; u < n_used; ++u) {
            const size_t j = static_cast<size_t>(used[u]);
            geometry_row<LN>(sc.soa.at(static_cast<int>(j)), px, py, select ? keep + j * LN : nullptr,
                             U + j * LN, V + j * LN, G + j * LN);
        }
        std::fill(S, S + LN, 0.0f);
        for (int u = 0; u < n_used; ++u) {
            const float* Gj = G + static_cast<size_t>(used[u]) * LN;
            for (int x = 0; x < LN; ++x) S[x] += Gj[x];
        }
        for (int x = 0; x < LN; ++x) inv[x] = 1.0f / (S[x] + s.eps);
        // `out` recomputed exactly as the forward computed it (same G, same used set, same
        // order): cheaper than streaming the whole image back in from memory.
        blend_row<LN, true>(G, used, n_used, sc.soa.colour.data(), C, s.eps, LN, oT);

        for (int u = 0; u < n_used; ++u) {
            const size_t j = static_cast<size_t>(used[u]);
            if (!touched[j]) {
                float* acc = lanes + j * M * LN;
                std::fill(acc, acc + static_cast<size_t>(M) * LN, 0.0f);
                touched[j] = 1;
            }
        }
        backward_row<LN>(used, n_used, U, V, G, sc.soa, C, gT, oT, inv, W, dot, lanes);
    }

    float dcol[kMaxChannelsOnStack];
    std::vector<float> dcol_big;
    float* dc = C <= kMaxChannelsOnStack ? dcol : grow(dcol_big, C);
    for (int j = 0; j < L; ++j) {
        float* slot = pair_grad + (off + j) * D;
        if (!touched[j]) {
            std::fill(slot, slot + D, 0.0f);
            continue;
        }
        const float* acc = lanes + static_cast<size_t>(j) * M * LN;
        GeomMoments m;
        m.su = lane_sum(acc, LN);
        m.sv = lane_sum(acc + LN, LN);
        m.suv = lane_sum(acc + 2 * LN, LN);
        m.svu = lane_sum(acc + 3 * LN, LN);
        m.suu = lane_sum(acc + 4 * LN, LN);
        m.svv = lane_sum(acc + 5 * LN, LN);
        for (int c = 0; c < C; ++c) dc[c] = lane_sum(acc + static_cast<size_t>(kMoments + c) * LN, LN);
        write_pair(slot, sc.soa.at(j), m, dc, C);
    }
}

#define IGS_BACKWARD_TILE_ARGS                                                               \
    const Gaussian *table, const Params &p, const Shape &s, const TileGrid &grid,              \
        const TileLists &lists, int64_t t, const float *grad_out,                              \
        const int64_t *sel_offsets, const uint8_t *sel_masks, float *pair_grad,               \
        BackwardScratch &sc

IGS_ALWAYS_INLINE void backward_tile_lanes(IGS_BACKWARD_TILE_ARGS) {
    switch (lanes_for(s.tile)) {
        case 8: backward_tile_fast<8>(table, p, s, grid, lists, t, grad_out, sel_offsets, sel_masks, pair_grad, sc); break;
        case 16: backward_tile_fast<16>(table, p, s, grid, lists, t, grad_out, sel_offsets, sel_masks, pair_grad, sc); break;
        case 32: backward_tile_fast<32>(table, p, s, grid, lists, t, grad_out, sel_offsets, sel_masks, pair_grad, sc); break;
        default: backward_tile_fast<64>(table, p, s, grid, lists, t, grad_out, sel_offsets, sel_masks, pair_grad, sc); break;
    }
}

void backward_tile_baseline(IGS_BACKWARD_TILE_ARGS) {
    backward_tile_lanes(table, p, s, grid, lists, t, grad_out, sel_offsets, sel_masks, pair_grad, sc);
}

#if IGS_AVX2_VARIANT
IGS_TARGET_AVX2 void backward_tile_avx2(IGS_BACKWARD_TILE_ARGS) {
    backward_tile_lanes(table, p, s, grid, lists, t, grad_out, sel_offsets, sel_masks, pair_grad, sc);
}
#endif

// One texel at a time through the header functions, as a CUDA thread would.
void backward_tile_simple(const Gaussian* table, const Params& p, const Shape& s,
                          const TileGrid& grid, const TileLists& lists, int64_t t,
                          const float* grad_out, const int64_t* sel_offsets,
                          const uint8_t* sel_masks, float* pair_grad) {
    const int C = p.channels;
    const int K = s.k;
    const int D = kGeom + C;
    const int nb = selection_lane_bytes(s.tile);
    const TileRect rect = tile_rect(grid, t);
    const int64_t off = lists.offsets[t];
    const int32_t* list = lists.indices + off;
    const int L = static_cast<int>(lists.offsets[t + 1] - off);
    if (L == 0) return;
    const uint8_t* masks = sel_masks + sel_offsets[t];
    std::vector<GeomMoments> mom(L, GeomMoments{0, 0, 0, 0, 0, 0});
    std::vector<float> dcol(static_cast<size_t>(L) * C, 0.0f);
    for (int yy = 0; yy < rect.ny; ++yy) {
        for (int xx = 0; xx < rect.nx; ++xx) {
            const int x = rect.x0 + xx, y = rect.y0 + yy;
            const int64_t texel = static_cast<int64_t>(y) * grid.width + x;
            const float fx = texel_centre(x), fy = texel_centre(y);
            int32_t pos[kMaxK], idx[kMaxK];
            int n = 0;
            for (int j = 0; j < L && n < K; ++j)
                if (L <= K || (masks[(static_cast<int64_t>(yy) * L + j) * nb + xx / 8] >> (xx % 8)) & 1) {
                    pos[n] = j;
                    idx[n++] = list[j];
                }
            float Gk[kMaxK], dLdG[kMaxK], wk[kMaxK];
            for (int q = 0; q < n; ++q) Gk[q] = eval(table[idx[q]], fx, fy);
            // The forward blended in this same (ascending) order: out and S come out identical.
            float out[kMaxChannelsOnStack];
            std::vector<float> out_big;
            float* o = C <= kMaxChannelsOnStack ? out : grow(out_big, C);
            const float S = blend(n, idx, Gk, p.colour, C, s.eps, o);
            const float* g = grad_out + texel * C;
            blend_backward(n, idx, Gk, p.colour, C, S, s.eps, o, g, dLdG, wk);
            for (int q = 0; q < n; ++q) {
                float* dc = dcol.data() + static_cast<size_t>(pos[q]) * C;
                for (int c = 0; c < C; ++c) dc[c] += wk[q] * g[c];
                texel_geom_backward(table[idx[q]], fx, fy, Gk[q], dLdG[q], mom[pos[q]]);
            }
        }
    }
    for (int j = 0; j < L; ++j)
        write_pair(pair_grad + (off + j) * D, table[list[j]], mom[j], dcol.data() + static_cast<size_t>(j) * C, C);
}

// Scratch for the per-(tile, Gaussian) partials, kept per calling thread: reallocating it
// every step costs a page fault per 4 KiB (megabytes at 10K Gaussians). It needs no
// clearing: every slot is written by its tile.
float* pair_buffer(size_t n) {
    thread_local std::unique_ptr<float[]> buf;
    thread_local size_t capacity = 0;
    if (n > capacity) {
        buf.reset(new float[n]);
        capacity = n;
    }
    return buf.get();
}

}  // namespace

void backward(const Params& p, const Shape& s, const TileLists& lists, const float* grad_out,
              const int64_t* sel_offsets, const uint8_t* sel_masks,
              const Grads& out, bool fast) {
    const TileGrid grid = make_tile_grid(s.height, s.width, s.tile);
    fast = fast && s.tile <= kMaxFastTile;
    const int64_t n_tiles = static_cast<int64_t>(grid.tiles_x) * grid.tiles_y;
    const int64_t pairs = lists.offsets[n_tiles];
    const int C = p.channels;
    const int D = kGeom + C;
    const std::vector<Gaussian> table = prepare_gaussians(p);
    float* pair_grad = pair_buffer(static_cast<size_t>(pairs) * D);
    auto* fast_tile = &backward_tile_baseline;
#if IGS_AVX2_VARIANT
    if (simd_avx2()) fast_tile = &backward_tile_avx2;
#endif
#pragma omp parallel num_threads(thread_count())
    {
        BackwardScratch sc;
#pragma omp for schedule(dynamic, 2)
        for (int64_t t = 0; t < n_tiles; ++t) {
            if (fast)
                fast_tile(table.data(), p, s, grid, lists, t, grad_out, sel_offsets,
                          sel_masks, pair_grad, sc);
            else
                backward_tile_simple(table.data(), p, s, grid, lists, t, grad_out,
                                     sel_offsets, sel_masks, pair_grad);
        }
    }
    // Sum each Gaussian's partials in tile order: a fixed order, whatever the threads did.
    std::fill(out.means, out.means + 2 * p.count, 0.0f);
    std::fill(out.theta, out.theta + p.count, 0.0f);
    std::fill(out.inv_scale, out.inv_scale + 2 * p.count, 0.0f);
    std::fill(out.colour, out.colour + p.count * C, 0.0f);
    for (int64_t q = 0; q < pairs; ++q) {
        const int64_t i = lists.indices[q];
        const float* slot = pair_grad + q * D;
        out.means[2 * i] += slot[0];
        out.means[2 * i + 1] += slot[1];
        out.theta[i] += slot[2];
        out.inv_scale[2 * i] += slot[3];
        out.inv_scale[2 * i + 1] += slot[4];
        float* dc = out.colour + i * C;
        for (int c = 0; c < C; ++c) dc[c] += slot[kGeom + c];
    }
}

}  // namespace cpu
}  // namespace igs
