// Forward: image [H,W,C] and the per-texel top-K the backward reuses.
//
// The fast kernel works one tile row at a time with texels in SIMD lanes:
//   1. G[j][x] for every listed Gaussian j and every texel x of the row (header eval());
//   2. if the tile lists at most K Gaussians every texel keeps all of them (no selection);
//      otherwise each texel runs the exact top-K over its column G[.][x] and the G of
//      Gaussians it did not keep are zeroed;
//   3. the blend sums G[j][x] c_j over the Gaussians kept by at least one texel of the row,
//      lane-wise; zeroed entries add exactly nothing, so each texel's sum is its own top-K's.
#include <algorithm>
#include <cstring>

#include "igs/texel.h"
#include "kernels.h"
#include "tile_data.h"

namespace igs {
namespace cpu {
namespace {

struct ForwardScratch {
    TileSoA soa;
    std::vector<float> G, X, px, top;
    std::vector<int32_t> keep, used;
};

template <int LN>
IGS_ALWAYS_INLINE void eval_row(const Gaussian& g, const float* IGS_RESTRICT px, float py, float* IGS_RESTRICT out) {
    for (int x = 0; x < LN; ++x) out[x] = eval(g, px[x], py);
}

// The argument eval() passes to exp_nonpos(), -q, for one row.
template <int LN>
IGS_ALWAYS_INLINE void exponent_row(const Gaussian& g, const float* IGS_RESTRICT px, float py,
                                    float* IGS_RESTRICT out) {
    for (int x = 0; x < LN; ++x) {
        float u, v;
        rotate_offset(g, px[x], py, u, v);
        out[x] = -exponent_from_uv(g, u, v);
    }
}

template <int N>
IGS_ALWAYS_INLINE void exp_lanes(const float* IGS_RESTRICT in, float* IGS_RESTRICT out) {
    for (int x = 0; x < N; ++x) out[x] = exp_nonpos(in[x]);
}

// Step 1 of select_row: tau[x] = the K-th largest of G[.][x] counting repeats. Each G is
// inserted into a descending list per lane with new_k = max(old_k, min(old_{k-1}, g)): no
// compare that branches, so lanes never diverge. The list lives in top [K][LN].
template <int LN>
IGS_ALWAYS_INLINE void kth_largest_in_memory(const float* IGS_RESTRICT G, int L, int K,
                                             float* IGS_RESTRICT top) {
    for (int k = 0; k < K; ++k)
        for (int x = 0; x < LN; ++x) top[k * LN + x] = -1.0f;  // below any G
    for (int j = 0; j < L; ++j) {
        const float* IGS_RESTRICT g = G + static_cast<size_t>(j) * LN;
        for (int k = K - 1; k > 0; --k) {
            float* IGS_RESTRICT cur = top + k * LN;
            const float* IGS_RESTRICT prev = top + (k - 1) * LN;
            for (int x = 0; x < LN; ++x) {
                const float lo = prev[x] < g[x] ? prev[x] : g[x];
                cur[x] = cur[x] > lo ? cur[x] : lo;
            }
        }
        for (int x = 0; x < LN; ++x) top[x] = top[x] > g[x] ? top[x] : g[x];
    }
}

// The same with the whole list in registers, VW lanes at a time, writing only tau [LN].
// KC slots hold the KC largest values, so slot K-1 is the K-th largest for any K <= KC.
// In memory the list costs a load and a store per insertion step: at 10K Gaussians that
// was half of the forward.
#if defined(__GNUC__)
// Lane vectors only pass between always-inlined functions, so the ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
template <int VW>
struct LaneVector;
template <>
struct LaneVector<4> {
    typedef float type __attribute__((vector_size(16)));
    typedef int32_t mask __attribute__((vector_size(16)));
};
template <>
struct LaneVector<8> {
    typedef float type __attribute__((vector_size(32)));
    typedef int32_t mask __attribute__((vector_size(32)));
};

// Bit i set when lane i of a comparison result is true (lane masks are 0 / -1).
template <int VW>
IGS_ALWAYS_INLINE uint32_t lane_bits(typename LaneVector<VW>::mask m) {
#if defined(__x86_64__) || defined(__SSE__)
    // movmskps is SSE, part of every x86-64 baseline, so the baseline variant may use it too;
    // an AVX builtin here would not compile into the baseline instance of this template.
    typedef float f4 __attribute__((vector_size(16)));
    uint32_t bits = 0;
    for (int h = 0; h < VW / 4; ++h) {
        f4 part;
        std::memcpy(&part, reinterpret_cast<const char*>(&m) + 16 * h, sizeof part);
        bits |= static_cast<uint32_t>(__builtin_ia32_movmskps(part)) << (4 * h);
    }
    return bits;
#else
    uint32_t bits = 0;
    for (int i = 0; i < VW; ++i) bits |= static_cast<uint32_t>(m[i] & 1) << i;
    return bits;
#endif
}

// Also returns in ties [LN] how many of the K kept may be ties at tau (K minus the count
// strictly above tau), read off the register list: every G above the K-th largest is in it.
// That holds only without NaN (a NaN G scrambles the list), so the return value says whether
// any lane saw one; the caller then counts over G instead.
// An insertion with g <= slot KC-1 in every lane changes no slot (each slot is >= the last,
// so min(slot k-1, g) = g <= slot k), so such a step is skipped: past the first few dozen
// Gaussians of a long list most are, since a texel's top K are settled early. NaN fails
// the g <= test and is inserted as before, so the list is the one the full loop builds.
template <int LN, int KC, int VW>
IGS_ALWAYS_INLINE bool kth_largest_in_registers(const float* IGS_RESTRICT G, int L, int K,
                                                float* IGS_RESTRICT tau,
                                                int32_t* IGS_RESTRICT ties,
                                                float below = -1.0f) {
    using V = typename LaneVector<VW>::type;
    using M = typename LaneVector<VW>::mask;
    M nan = M{} ;
    for (int x0 = 0; x0 < LN; x0 += VW) {
        V t[KC];
        for (int k = 0; k < KC; ++k) t[k] = V{} + below;  // below any G by default
        for (int j = 0; j < L; ++j) {
            V g;
            std::memcpy(&g, G + static_cast<size_t>(j) * LN + x0, sizeof g);
            const M settled = g <= t[KC - 1];
            if (lane_bits<VW>(settled) == (1u << VW) - 1) continue;
            nan |= g != g;
            for (int k = KC - 1; k > 0; --k) {
                const V lo = t[k - 1] < g ? t[k - 1] : g;
                t[k] = t[k] > lo ? t[k] : lo;
            }
            t[0] = t[0] > g ? t[0] : g;
        }
        V tk = t[0];
        for (int k = 1; k < KC; ++k)  // constant indices keep t[] in registers
            if (k == K - 1) tk = t[k];
        M tie = M{} + K;
        for (int k = 0; k < KC; ++k)
            if (k < K - 1) tie += t[k] > tk;  // true lanes are -1
        std::memcpy(tau + x0, &tk, sizeof(V));
        std::memcpy(ties + x0, &tie, sizeof(M));
    }
    return lane_bits<VW>(nan) == 0;
}

// The keep pass of select_row for a NaN-free row, fused with what used to follow it: zeroes
// the G a texel did not keep, writes the row's selection bits (layout in kernels.h) and
// lists in `used` the Gaussians some texel kept; returns how many.
template <int LN, int VW>
IGS_ALWAYS_INLINE int keep_pack_mask(float* IGS_RESTRICT G, int L, const float* IGS_RESTRICT tau,
                                     const int32_t* IGS_RESTRICT ties, uint8_t* IGS_RESTRICT out,
                                     int32_t* IGS_RESTRICT used) {
    using V = typename LaneVector<VW>::type;
    using M = typename LaneVector<VW>::mask;
    constexpr int NC = LN / VW;
    V tv[NC];
    M tie[NC];
    for (int c = 0; c < NC; ++c) {
        std::memcpy(&tv[c], tau + c * VW, sizeof(V));
        std::memcpy(&tie[c], ties + c * VW, sizeof(M));
    }
    int n_used = 0;
    for (int j = 0; j < L; ++j) {
        float* IGS_RESTRICT Gj = G + static_cast<size_t>(j) * LN;
        uint64_t bits = 0;
        for (int c = 0; c < NC; ++c) {
            V g;
            std::memcpy(&g, Gj + c * VW, sizeof g);
            const M eq = g == tv[c];
            const M take = (g > tv[c]) | (eq & (tie[c] > 0));
            tie[c] += eq & take;
            const M kept = (M)g & take;  // a vector cast reinterprets the bits
            std::memcpy(Gj + c * VW, &kept, sizeof kept);
            bits |= static_cast<uint64_t>(lane_bits<VW>(take)) << (c * VW);
        }
        uint8_t* IGS_RESTRICT o = out + static_cast<size_t>(j) * (LN / 8);
        for (int q = 0; q < LN / 8; ++q) o[q] = static_cast<uint8_t>(bits >> (8 * q));
        used[n_used] = j;
        n_used += bits != 0 ? 1 : 0;
    }
    return n_used;
}
#endif

// Packs one row's keep flags into the saved selection bits (layout in kernels.h).
template <int LN>
IGS_ALWAYS_INLINE void pack_row(const int32_t* IGS_RESTRICT keep, int L, uint8_t* IGS_RESTRICT out) {
    for (int j = 0; j < L; ++j)
        for (int q = 0; q < LN / 8; ++q) {
            const int32_t* k8 = keep + static_cast<size_t>(j) * LN + 8 * q;
            uint32_t b = 0;
            for (int bit = 0; bit < 8; ++bit) b |= static_cast<uint32_t>(k8[bit] & 1) << bit;
            out[j * (LN / 8) + q] = static_cast<uint8_t>(b);
        }
}

// Zeroes G where the texel did not keep Gaussian j; returns whether any texel kept it.
template <int LN>
IGS_ALWAYS_INLINE bool mask_row(float* IGS_RESTRICT Gj, const int32_t* IGS_RESTRICT kept) {
    int32_t any = 0;
    for (int x = 0; x < LN; ++x) {
        any |= kept[x];
        Gj[x] = kept[x] ? Gj[x] : 0.0f;
    }
    return any != 0;
}

// The exact top-K of every lane (texel) of a row at once, branch-free; the same rule as
// TopKSorted in topk.h (the tests hold the two paths to identical selections):
//  1. tau[x] = the K-th largest of G[.][x] counting repeats;
//  2. keep every G > tau, then the G == tau in index order while fewer than K are kept:
//     ties go to the lower index. The kept < K cap only matters for NaN input.
// A per-texel scalar top-K spent most of its time in mispredicted branches.
// Then zeroes the G not kept, writes the row's selection bits to `bits` and the Gaussians
// some texel kept to `used`; returns how many. VW is the float width of the SIMD variant.
template <int LN, int VW>
IGS_ALWAYS_INLINE int select_row(float* IGS_RESTRICT G, int L, int K, float* IGS_RESTRICT top,
                                 int32_t* IGS_RESTRICT keep, uint8_t* IGS_RESTRICT bits,
                                 int32_t* IGS_RESTRICT used) {
    float* IGS_RESTRICT tau = top + (K - 1) * LN;
    int32_t ties[LN], kept[LN];
#if defined(__GNUC__)
    if (K <= 10) {
        const bool clean = K <= 4 ? kth_largest_in_registers<LN, 4, VW>(G, L, K, tau, ties)
                                  : kth_largest_in_registers<LN, 10, VW>(G, L, K, tau, ties);
        if (clean) return keep_pack_mask<LN, VW>(G, L, tau, ties, bits, used);
    } else
#endif
        kth_largest_in_memory<LN>(G, L, K, top);
    for (int x = 0; x < LN; ++x) {
        ties[x] = K;
        kept[x] = 0;
    }
    for (int j = 0; j < L; ++j) {
        const float* IGS_RESTRICT g = G + static_cast<size_t>(j) * LN;
        for (int x = 0; x < LN; ++x) ties[x] -= g[x] > tau[x] ? 1 : 0;
    }
    for (int j = 0; j < L; ++j) {
        const float* IGS_RESTRICT g = G + static_cast<size_t>(j) * LN;
        int32_t* IGS_RESTRICT kj = keep + static_cast<size_t>(j) * LN;
        for (int x = 0; x < LN; ++x) {
            const int32_t eq = g[x] == tau[x] ? 1 : 0;
            const int32_t take = ((g[x] > tau[x] ? 1 : 0) | (eq & (ties[x] > 0 ? 1 : 0))) &
                                 (kept[x] < K ? 1 : 0);
            ties[x] -= eq & take;
            kept[x] += take;
            kj[x] = take;
        }
    }
    pack_row<LN>(keep, L, bits);
    int n_used = 0;
    for (int j = 0; j < L; ++j)
        if (mask_row<LN>(G + static_cast<size_t>(j) * LN, keep + static_cast<size_t>(j) * LN))
            used[n_used++] = j;
    return n_used;
}

#if defined(__GNUC__)
// Most of a row's G are never kept, and exp was the largest cost of the forward. exp_nonpos()
// is monotone non-decreasing (checked over every float in [-88, 0]), so the K-th largest G of
// a texel is exp_nonpos of the K-th largest exponent x = -q, and a G whose x lies clearly
// below that one is strictly smaller than tau: it is neither kept nor a tie, so its exp is
// never needed. This computes tau from the exponents X [L][LN], evaluates exp only in the
// VW-lane chunks where some lane may reach tau (G elsewhere set to 0, as the keep pass
// would), and then runs the keep pass on exact G; the selection and every kept G are the
// ones the full evaluation gives. A lane whose tau is so small that flushed zeros could tie
// at it evaluates every exp. Returns -1 when a NaN reached the row; then G is left unset.
// exp_nonpos() (gaussian.h) on VW lanes, operation for operation, so every lane is bit for bit
// the scalar result. Written out because inside a branch the compiler left the scalar
// function unvectorised.
template <int VW>
IGS_ALWAYS_INLINE typename LaneVector<VW>::type exp_nonpos_lanes(typename LaneVector<VW>::type x) {
    using V = typename LaneVector<VW>::type;
    using M = typename LaneVector<VW>::mask;
    typedef uint32_t U __attribute__((vector_size(sizeof(V))));
    const M flush = x < kExpFlushBelow;
    const V xc = flush ? V{} + kExpFlushBelow : x;
    const float kRound = 12582912.0f;
    const V t = xc * 1.44269504088896341f;
    const V nf = (t + kRound) - kRound;
    const float kLn2Hi = 0.693359375f;
    const float kLn2Lo = -2.12194440e-4f;
    V r = xc - nf * kLn2Hi;
    r = r - nf * kLn2Lo;
    const V r2 = r * r;
    V p = V{} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const V er = (p * r2 + r) + 1.0f;
    const U n = (U)__builtin_convertvector(nf, M);
    const V scaled = (V)((U)er + (n << 23));
    return flush ? V{} : scaled;
}

template <int LN, int VW>
IGS_ALWAYS_INLINE int select_row_from_exponents(const float* IGS_RESTRICT X, float* IGS_RESTRICT G,
                                                int L, int K, float* IGS_RESTRICT top,
                                                uint8_t* IGS_RESTRICT bits,
                                                int32_t* IGS_RESTRICT used) {
    using V = typename LaneVector<VW>::type;
    // exp_nonpos(x - 2^-10) is below exp_nonpos(x) by ~1000 ulp for x >= kFloor, where the
    // result is a normal float far from the flush at -87.
    constexpr float kMargin = 1.0f / 1024.0f;
    constexpr float kFloor = -86.0f;
    float* IGS_RESTRICT xtau = top;
    int32_t ties[LN];
    // Exponents go down to -inf: the list starts there instead of at -1.
    const float below = -__builtin_inff();
    const bool clean = K <= 4 ? kth_largest_in_registers<LN, 4, VW>(X, L, K, xtau, ties, below)
                              : kth_largest_in_registers<LN, 10, VW>(X, L, K, xtau, ties, below);
    if (!clean) return -1;
    float tau[LN], cut[LN];
    for (int x0 = 0; x0 < LN; x0 += VW) {
        V xv;
        std::memcpy(&xv, xtau + x0, sizeof xv);
        const V tv = exp_nonpos_lanes<VW>(xv);
        std::memcpy(tau + x0, &tv, sizeof tv);
    }
    for (int x = 0; x < LN; ++x) {
        // A lane whose tau is this small takes every exp (its cut admits everything).
        cut[x] = xtau[x] >= kFloor ? xtau[x] - kMargin : -__builtin_inff();
        ties[x] = K;
    }
    for (int j = 0; j < L; ++j) {
        const float* IGS_RESTRICT xj = X + static_cast<size_t>(j) * LN;
        float* IGS_RESTRICT gj = G + static_cast<size_t>(j) * LN;
        for (int x0 = 0; x0 < LN; x0 += VW) {
            V xv, cv;
            std::memcpy(&xv, xj + x0, sizeof xv);
            std::memcpy(&cv, cut + x0, sizeof cv);
            if (lane_bits<VW>(xv >= cv) != 0) {
                const V gv = exp_nonpos_lanes<VW>(xv);
                std::memcpy(gj + x0, &gv, sizeof gv);
            } else {
                const V zero = V{};
                std::memcpy(gj + x0, &zero, sizeof zero);
            }
        }
        for (int x = 0; x < LN; ++x) ties[x] -= gj[x] > tau[x] ? 1 : 0;
    }
    return keep_pack_mask<LN, VW>(G, L, tau, ties, bits, used);
}
#endif

// LN (lanes per row) is a template parameter so the common tile sizes get fully unrolled
// row loops; forward_tile_lanes() picks the instance.
template <int LN, int VW>
IGS_ALWAYS_INLINE void forward_tile_fast(const Gaussian* table, const Params& p, const Shape& s,
                       const TileGrid& grid, const TileLists& lists, int64_t t, float* image,
                       const int64_t* sel_offsets, uint8_t* sel_masks, ForwardScratch& sc) {
    const int C = p.channels;
    const int K = s.k;
    const TileRect rect = tile_rect(grid, t);
    const int32_t* list = lists.indices + lists.offsets[t];
    const int L = static_cast<int>(lists.offsets[t + 1] - lists.offsets[t]);

    sc.soa.gather(table, p.colour, C, list, L);
    float* G = grow(sc.G, static_cast<size_t>(L) * LN);
    float* X = grow(sc.X, static_cast<size_t>(L) * LN);
    float* px = grow(sc.px, LN);
    int32_t* keep = grow(sc.keep, static_cast<size_t>(L) * LN);
    float* top = grow(sc.top, static_cast<size_t>(K) * LN);
    int32_t* used = grow(sc.used, L);
    for (int x = 0; x < LN; ++x) px[x] = texel_centre(rect.x0 + x);
    const bool select = L > K;
    int n_used = L;
    if (!select)
        for (int j = 0; j < L; ++j) used[j] = j;

    for (int yy = 0; yy < rect.ny; ++yy) {
        const int y = rect.y0 + yy;
        const float py = texel_centre(y);
        const int64_t row_texel = static_cast<int64_t>(y) * grid.width + rect.x0;

#if defined(__GNUC__)
        if (select && K <= 10 && L >= 4 * K) {  // short lists: the extra passes cost more than the exps saved
            for (int j = 0; j < L; ++j) exponent_row<LN>(sc.soa.at(j), px, py, X + static_cast<size_t>(j) * LN);
            uint8_t* bits = sel_masks + sel_offsets[t] + static_cast<int64_t>(yy) * L * (LN / 8);
            n_used = select_row_from_exponents<LN, VW>(X, G, L, K, top, bits, used);
            if (n_used < 0) {
                for (int j = 0; j < L; ++j) exp_lanes<LN>(X + static_cast<size_t>(j) * LN, G + static_cast<size_t>(j) * LN);
                n_used = select_row<LN, VW>(G, L, K, top, keep, bits, used);
            }
            blend_row<LN, false>(G, used, n_used, sc.soa.colour.data(), C, s.eps, rect.nx,
                                 image + row_texel * C);
            continue;
        }
#endif
        for (int j = 0; j < L; ++j) eval_row<LN>(sc.soa.at(j), px, py, G + static_cast<size_t>(j) * LN);

        if (select) {
            n_used = select_row<LN, VW>(G, L, K, top, keep,
                                        sel_masks + sel_offsets[t] + static_cast<int64_t>(yy) * L * (LN / 8),
                                        used);
        }

        blend_row<LN, false>(G, used, n_used, sc.soa.colour.data(), C, s.eps, rect.nx,
                             image + row_texel * C);
    }
}

#define IGS_FORWARD_TILE_ARGS                                                                \
    const Gaussian *table, const Params &p, const Shape &s, const TileGrid &grid,              \
        const TileLists &lists, int64_t t, float *image, const int64_t *sel_offsets,           \
        uint8_t *sel_masks, ForwardScratch &sc

// VW: floats per SIMD register of the variant being compiled (kth_largest_in_registers).
template <int VW>
IGS_ALWAYS_INLINE void forward_tile_lanes(IGS_FORWARD_TILE_ARGS) {
    switch (lanes_for(s.tile)) {
        case 8: forward_tile_fast<8, VW>(table, p, s, grid, lists, t, image, sel_offsets, sel_masks, sc); break;
        case 16: forward_tile_fast<16, VW>(table, p, s, grid, lists, t, image, sel_offsets, sel_masks, sc); break;
        case 32: forward_tile_fast<32, VW>(table, p, s, grid, lists, t, image, sel_offsets, sel_masks, sc); break;
        default: forward_tile_fast<64, VW>(table, p, s, grid, lists, t, image, sel_offsets, sel_masks, sc); break;
    }
}

void forward_tile_baseline(IGS_FORWARD_TILE_ARGS) {
#if defined(__AVX2__)  // IGS_NATIVE_SIMD=avx2: the whole build targets AVX2
    forward_tile_lanes<8>(table, p, s, grid, lists, t, image, sel_offsets, sel_masks, sc);
#else
    forward_tile_lanes<4>(table, p, s, grid, lists, t, image, sel_offsets, sel_masks, sc);
#endif
}

#if IGS_AVX2_VARIANT
IGS_TARGET_AVX2 void forward_tile_avx2(IGS_FORWARD_TILE_ARGS) {
    forward_tile_lanes<8>(table, p, s, grid, lists, t, image, sel_offsets, sel_masks, sc);
}
#endif

// One texel at a time through the header functions, exactly as a CUDA thread would.
void forward_tile_simple(const Gaussian* table, const Params& p, const Shape& s,
                         const TileGrid& grid, const TileLists& lists, int64_t t, float* image,
                         const int64_t* sel_offsets, uint8_t* sel_masks) {
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
