// Backward: gradients for means, theta, inv_scale and colour from dL/dimage.
//
// Reuses the forward's selection (no top-K is redone) and recomputes G; the image itself is
// never needed (octet_terms).
// Each (tile, listed Gaussian) pair gets one slot of partial gradients, written by the
// thread that owns the tile; a final pass sums each Gaussian's slots in tile order. No
// atomics and no per-thread buffers, so the result is identical for any thread count.
#include <algorithm>
#include <cstring>
#include <memory>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>  // the AVX2 variant's selection decode (used_lists)
#endif

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
    std::vector<float> U, V, G, Q, gT, P, px, lanes;
    std::vector<uint8_t> touched, any;
    std::vector<int32_t> used;
    std::vector<uint32_t> rowmask;
};

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

// The row kernels below work on octets: the 8 texels x0 .. x0+7 of one selection byte, each
// with its own list of the Gaussians some of its texels kept. A Gaussian kept only in one
// half of a 16-texel row costs nothing in the other half. Skipping is exact: there its G is 0,
// so every term it would add (G, w = G/S, G c, w g, gq = -G dL/dG) is a zero, and adding a
// zero leaves a sum started at +0 unchanged bit for bit. Octets, not SIMD registers, are the
// unit so that the baseline and AVX2 variants skip the same work (they would differ only
// in where a non-finite input spreads NaN).
constexpr int kOct = 8;

// Eight floats as one value: a register pair on the SSE baseline, one register with AVX2. The
// auto-vectoriser kept turning the octet loops into scalar code (it could not prove the
// accumulator rows apart from the inputs), so they are written with these explicitly. Every
// operation is the per-lane IEEE operation, so results equal the scalar expressions.
#if defined(__GNUC__)
// Only ever passed between always-inlined functions, so the ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float Oct __attribute__((vector_size(32)));
typedef int32_t OctMask __attribute__((vector_size(32)));
// Broadcast through the integer bits: Oct{} + v would turn -0 into +0, and Oct{v, v, ...}
// compiled to a chain of lane inserts instead of one broadcast.
IGS_ALWAYS_INLINE Oct splat(float v) {
    return (Oct)(OctMask{} + static_cast<int32_t>(float_bits(v)));
}
// Lanes whose bit is clear in `bits` set to +0.
IGS_ALWAYS_INLINE Oct keep_lanes(Oct v, uint32_t bits) {
    const OctMask lane = {1, 2, 4, 8, 16, 32, 64, 128};
    const OctMask b = OctMask{} + static_cast<int32_t>(bits);
    return (Oct)((OctMask)v & ((b & lane) != 0));
}
#else
struct Oct {
    float v[kOct];
};
IGS_ALWAYS_INLINE Oct splat(float x) {
    Oct r;
    for (int i = 0; i < kOct; ++i) r.v[i] = x;
    return r;
}
#define IGS_OCT_OP(op)                                            \
    IGS_ALWAYS_INLINE Oct operator op(Oct a, Oct b) {             \
        for (int i = 0; i < kOct; ++i) a.v[i] = a.v[i] op b.v[i]; \
        return a;                                                 \
    }                                                             \
    IGS_ALWAYS_INLINE Oct& operator op##=(Oct& a, Oct b) {        \
        return a = a op b;                                        \
    }
IGS_OCT_OP(+)
IGS_OCT_OP(-)
IGS_OCT_OP(*)
IGS_OCT_OP(/)
#undef IGS_OCT_OP
IGS_ALWAYS_INLINE Oct operator-(Oct a) {
    for (int i = 0; i < kOct; ++i) a.v[i] = -a.v[i];
    return a;
}
IGS_ALWAYS_INLINE Oct keep_lanes(Oct v, uint32_t bits) {
    for (int i = 0; i < kOct; ++i) v.v[i] = (bits >> i) & 1u ? v.v[i] : 0.0f;
    return v;
}
#endif
IGS_ALWAYS_INLINE Oct load(const float* p) {
    Oct v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
IGS_ALWAYS_INLINE void store(float* p, Oct v) {
    std::memcpy(p, &v, sizeof v);
}

// u, v and G of Gaussian g at one octet, G zeroed where the texel did not keep g (bit x of
// `kept`). Bit for bit the values the forward computed.
IGS_ALWAYS_INLINE void geometry_octet(const Gaussian& g, const float* IGS_RESTRICT px, float py,
                                      uint32_t kept, float* IGS_RESTRICT U, float* IGS_RESTRICT V,
                                      float* IGS_RESTRICT G) {
    for (int x = 0; x < kOct; ++x) {
        float uu, vv;
        rotate_offset(g, px[x], py, uu, vv);
        U[x] = uu;
        V[x] = vv;
        G[x] = exp_nonpos(-exponent_from_uv(g, uu, vv));
    }
    if (kept != 0xffu) store(G, keep_lanes(load(G), kept));
}

IGS_ALWAYS_INLINE int lowest_row(uint32_t rows) {
#if defined(__GNUC__)
    return __builtin_ctz(rows);
#else
    int r = 0;
    while (!((rows >> r) & 1u)) ++r;
    return r;
#endif
}

// Rows per band (backward_tile_fast): a band's U, V, G, Q ([L][band][LN] floats) stay in L2.
template <int LN>
constexpr int band_rows() {
    return LN <= 16 ? LN : 256 / LN;
}

// CC, here and below: the channel count when fixed at compile time (backward_tile_lanes), or
// 0 to take C at run time.
//
// The backward of one octet's blend, per Gaussian j used there: w_j = G_j / den (dL/dc_j is
// w_j g) and gq_j = dL/dq_j, overwriting G_j with w_j and writing gq_j to Q. Pointers are at
// the octet's first lane and row; Gaussian j's values at j * JS.
//
// dL/dG_j = sum_c g_c (c_jc - out_c) / den (blend_backward()) is taken here in the equal form
// (P_j - B) / den with P_j = sum_c g_c c_jc and B = sum_c g_c out_c = (sum_j G_j P_j) / den,
// the two terms autograd produces for the normalised blend. It needs neither `out` nor a
// blend, which the first form had to recompute per texel. 1024^2 with 10K Gaussians,
// 2 threads: backward 27.9 -> 25.8 ms. Rounding differs from the header's form at the 1e-7
// level (the native tests hold it to the torch reference as before).
template <int LN, int CC, int JS>
IGS_ALWAYS_INLINE void octet_terms(const int32_t* IGS_RESTRICT used, int n_used, float* IGS_RESTRICT G,
                                   float* IGS_RESTRICT Q, const float* IGS_RESTRICT colour, int C_,
                                   const float* IGS_RESTRICT gT, Oct den, float* IGS_RESTRICT P) {
    const int C = CC > 0 ? CC : C_;
    Oct Bsum = splat(0.0f);
    for (int u = 0; u < n_used; ++u) {
        const size_t j = static_cast<size_t>(used[u]);
        const float* IGS_RESTRICT cj = colour + j * C;
        Oct Pj = splat(0.0f);
        for (int c = 0; c < C; ++c) Pj += load(gT + static_cast<size_t>(c) * LN) * splat(cj[c]);
        store(P + static_cast<size_t>(u) * kOct, Pj);
        Bsum += load(G + j * JS) * Pj;
    }
    const Oct B = Bsum / den;
    const Oct inv = splat(1.0f) / den;
    for (int u = 0; u < n_used; ++u) {
        const size_t j = static_cast<size_t>(used[u]);
        const Oct Gj = load(G + j * JS);
        const Oct dot = load(P + static_cast<size_t>(u) * kOct) - B;
        store(Q + j * JS, (-Gj) * (dot * inv));  // grad_exponent(G, dL/dG)
        store(G + j * JS, Gj * inv);
    }
}

// N lane sums (rows of LN floats from p): continued from p, or started at 0 on a tile's first
// band. Constant trip counts, so the arrays below stay in registers.
template <int LN, int N>
IGS_ALWAYS_INLINE void resume_sums(bool first, const float* IGS_RESTRICT p, Oct* s) {
    for (int q = 0; q < N; ++q) s[q] = first ? splat(0.0f) : load(p + q * LN);
}
template <int LN, int N>
IGS_ALWAYS_INLINE void store_sums(const Oct* s, float* IGS_RESTRICT p) {
    for (int q = 0; q < N; ++q) store(p + q * LN, s[q]);
}

// Gaussian j's sums over the band rows it was used in (bit r of `rows`) in one octet: rows
// ascending, lane by lane, kept in registers across the rows and added to its lane
// accumulators once (stored on the first band, which also writes the zeros of an unused
// octet). Accumulating row by row in memory instead, every (Gaussian, octet, row) loaded and
// stored all 6 + C sums: 1024^2 with 10K Gaussians, 2 threads, backward 26.8 -> 24.6 ms.
// U, V, Q: j's values at its first band row (row stride LN). First the six GeomMoments sums.
template <int LN>
IGS_ALWAYS_INLINE void moments_rows(uint32_t rows, bool first, const float* IGS_RESTRICT U,
                                    const float* IGS_RESTRICT V, const float* IGS_RESTRICT Q, float ax,
                                    float ay, float* IGS_RESTRICT acc) {
    Oct m[kMoments];
    resume_sums<LN, kMoments>(first, acc, m);
    for (; rows != 0; rows &= rows - 1) {
        const int r = lowest_row(rows);
        const Oct gq = load(Q + r * LN), Uj = load(U + r * LN), Vj = load(V + r * LN);
        const Oct a = gq * (Uj * splat(ax));
        const Oct b = gq * (Vj * splat(ay));
        m[0] += a;
        m[1] += b;
        m[2] += a * Vj;
        m[3] += b * Uj;
        m[4] += a * Uj;
        m[5] += b * Vj;
    }
    store_sums<LN, kMoments>(m, acc);
}

// Then sum_x w g per channel (dL/dc_j) into dc (C rows of LN), eight channels per pass over
// the rows where C allows. W: j's w at its first band row; gT: the band's first row of
// dL/dout (row stride C * LN, channel stride LN).
template <int LN, int CC>
IGS_ALWAYS_INLINE void colour_rows(uint32_t rows, bool first, const float* IGS_RESTRICT W,
                                   const float* IGS_RESTRICT gT, int C_, float* IGS_RESTRICT dc) {
    const int C = CC > 0 ? CC : C_;
    const size_t rs = static_cast<size_t>(C) * LN;
    int c = 0;
    for (; c + 8 <= C; c += 8) {
        float* IGS_RESTRICT d = dc + static_cast<size_t>(c) * LN;
        Oct a[8];
        resume_sums<LN, 8>(first, d, a);
        for (uint32_t b = rows; b != 0; b &= b - 1) {
            const int r = lowest_row(b);
            const Oct w = load(W + r * LN);
            const float* IGS_RESTRICT g = gT + r * rs + static_cast<size_t>(c) * LN;
            for (int q = 0; q < 8; ++q) a[q] += w * load(g + q * LN);
        }
        store_sums<LN, 8>(a, d);
    }
    for (; c < C; ++c) {
        float* IGS_RESTRICT d = dc + static_cast<size_t>(c) * LN;
        Oct a[1];
        resume_sums<LN, 1>(first, d, a);
        for (uint32_t b = rows; b != 0; b &= b - 1) {
            const int r = lowest_row(b);
            a[0] += load(W + r * LN) * load(gT + r * rs + static_cast<size_t>(c) * LN);
        }
        store_sums<LN, 1>(a, d);
    }
}

// A row's selection bits ([Gaussian][octet] bytes, kernels.h) turned into one list per octet
// of the Gaussians some texel of that octet kept, ascending; list o starts at used + o * stride.
// Branch-free appends: which Gaussians a texel kept is data, and a branch on it mispredicts.
// Appends Gaussians j0 .. L-1 to lists already holding n_used[o] entries.
template <int NO>
IGS_ALWAYS_INLINE void used_lists_scalar(const uint8_t* IGS_RESTRICT bits, int j0, int L,
                                         int32_t* IGS_RESTRICT used, int stride, int* IGS_RESTRICT n_used) {
    for (int j = j0; j < L; ++j)
        for (int o = 0; o < NO; ++o) {
            used[o * stride + n_used[o]] = j;
            n_used[o] += bits[j * NO + o] != 0 ? 1 : 0;
        }
}

#if IGS_AVX2_VARIANT || (defined(__AVX2__) && defined(__x86_64__))
#define IGS_BACKWARD_AVX2_HELPERS 1
#ifndef IGS_TARGET_AVX2
#define IGS_TARGET_AVX2
#endif
// Byte i of entry m: the index of the i-th set bit of m (left-packing table).
struct PackTable {
    uint64_t entry[256];
    constexpr PackTable() : entry() {
        for (int m = 0; m < 256; ++m) {
            uint64_t e = 0;
            int n = 0;
            for (int b = 0; b < 8; ++b)
                if ((m >> b) & 1) e |= static_cast<uint64_t>(b) << (8 * n++);
            entry[m] = e;
        }
    }
};
constexpr PackTable kPack{};

// Bits 0, 2, 4, ... of x gathered into bits 0 .. 15.
IGS_ALWAYS_INLINE uint32_t even_bits(uint32_t x) {
    x &= 0x55555555u;
    x = (x | (x >> 1)) & 0x33333333u;
    x = (x | (x >> 2)) & 0x0f0f0f0fu;
    x = (x | (x >> 4)) & 0x00ff00ffu;
    return (x | (x >> 8)) & 0x0000ffffu;
}

// Appends j0 + i for every set bit i of the 8-bit m; writes 8 entries, keeps popcount(m).
IGS_TARGET_AVX2 IGS_ALWAYS_INLINE void append8(int32_t* IGS_RESTRICT list, int& n, int j0, uint32_t m) {
    const __m256i idx = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(kPack.entry[m])));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(list + n), _mm256_add_epi32(idx, _mm256_set1_epi32(j0)));
    n += __builtin_popcount(m);
}

// used_lists_scalar for 16-texel rows (two octets), 16 Gaussians per step: the scalar form
// was 8% of the backward at 1024^2 with 10K Gaussians and more on longer lists. Lists are
// written 8 entries at a time, so each needs 8 slots of slack past L (stride >= L + 8).
// A plain call, once per row: an always-inline AVX2 function cannot be inlined into the
// target-less templates between it and the AVX2 entry point.
IGS_TARGET_AVX2 void used_lists_pairs(const uint8_t* IGS_RESTRICT bits, int L, int32_t* IGS_RESTRICT used,
                                      int stride, int* IGS_RESTRICT n_used) {
    int n0 = 0, n1 = 0;
    int32_t* IGS_RESTRICT u0 = used;
    int32_t* IGS_RESTRICT u1 = used + stride;
    int j = 0;
    for (; j + 16 <= L; j += 16) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bits + 2 * j));
        const uint32_t nz =
            ~static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_setzero_si256())));
        const uint32_t m0 = even_bits(nz), m1 = even_bits(nz >> 1);
        append8(u0, n0, j, m0 & 0xffu);
        append8(u0, n0, j + 8, m0 >> 8);
        append8(u1, n1, j, m1 & 0xffu);
        append8(u1, n1, j + 8, m1 >> 8);
    }
    n_used[0] = n0;
    n_used[1] = n1;
    used_lists_scalar<2>(bits, j, L, used, stride, n_used);
}
// One tile row of dL/dout, texel-major (src[x * C + c]), into channel-major rows of LN lanes
// (dst[c * LN + x]): 8x8 blocks of texels x channels transposed in registers (unpack, shuffle,
// 128-bit permute), the channels past the last block of eight copied one by one. Returns the
// texels done (whole octets); the caller copies the rest. Against the scalar copy (2304 loads
// and stores per 16x16x9 tile), 2 threads: backward -4.6% at 1024^2 with 2.5K Gaussians,
// -0.7% with 10K (there the time goes to waiting for dL/dout, which software prefetching of
// the next tile did not shorten either).
IGS_TARGET_AVX2 int transpose_octets_avx2(const float* IGS_RESTRICT src, int nx, int C, int LN,
                                          float* IGS_RESTRICT dst) {
    int x0 = 0;
    for (; x0 + 8 <= nx; x0 += 8) {
        const float* s = src + static_cast<int64_t>(x0) * C;
        int c0 = 0;
        for (; c0 + 8 <= C; c0 += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(s + static_cast<int64_t>(i) * C + c0);
            __m256 t[8], u[8];
            for (int i = 0; i < 8; i += 2) {
                t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
                t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
            }
            for (int h = 0; h < 8; h += 4) {  // texels h .. h+3, channel c in lane c % 4
                u[h] = _mm256_shuffle_ps(t[h], t[h + 2], 0x44);
                u[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], 0xEE);
                u[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
                u[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
            }
            float* d = dst + static_cast<size_t>(c0) * LN + x0;
            for (int q = 0; q < 4; ++q) {
                _mm256_storeu_ps(d + static_cast<size_t>(q) * LN,
                                 _mm256_permute2f128_ps(u[q], u[q + 4], 0x20));
                _mm256_storeu_ps(d + static_cast<size_t>(q + 4) * LN,
                                 _mm256_permute2f128_ps(u[q], u[q + 4], 0x31));
            }
        }
        for (; c0 < C; ++c0)
            for (int i = 0; i < 8; ++i)
                dst[static_cast<size_t>(c0) * LN + x0 + i] = s[static_cast<int64_t>(i) * C + c0];
    }
    return x0;
}
#else
#define IGS_BACKWARD_AVX2_HELPERS 0
#endif

template <int NO, bool kAvx2>
IGS_ALWAYS_INLINE void used_lists(const uint8_t* IGS_RESTRICT bits, int L, int32_t* IGS_RESTRICT used,
                                  int stride, int* IGS_RESTRICT n_used) {
#if IGS_BACKWARD_AVX2_HELPERS
    if constexpr (kAvx2 && NO == 2) {
        used_lists_pairs(bits, L, used, stride, n_used);
        return;
    }
#endif
    for (int o = 0; o < NO; ++o) n_used[o] = 0;
    used_lists_scalar<NO>(bits, 0, L, used, stride, n_used);
}

template <int LN, int CC, bool kAvx2>
IGS_ALWAYS_INLINE void backward_tile_fast(const Gaussian* table, const Params& p, const Shape& s,
                                          const TileGrid& grid, const TileLists& lists, int64_t t,
                                          const float* grad_out, const int64_t* sel_offsets,
                                          const uint8_t* sel_masks, float* pair_grad, BackwardScratch& sc) {
    constexpr int NO = LN / kOct;  // octets per row
    const int C = CC > 0 ? CC : p.channels;
    const int K = s.k;
    const int D = kGeom + C;
    const int M = kMoments + C;
    const TileRect rect = tile_rect(grid, t);
    const int64_t off = lists.offsets[t];
    const int32_t* list = lists.indices + off;
    const int L = static_cast<int>(lists.offsets[t + 1] - off);
    if (L == 0) return;

    constexpr int B = band_rows<LN>();
    constexpr int JS = B * LN;  // one Gaussian's block of U, V, G, Q
    sc.soa.gather(table, p.colour, C, list, L);
    const size_t LL = static_cast<size_t>(L) * JS;
    float* U = grow(sc.U, LL);
    float* V = grow(sc.V, LL);
    float* G = grow(sc.G, LL);  // G, then w = G / den (octet_terms)
    float* Q = grow(sc.Q, LL);
    uint32_t* rowmask = grow(sc.rowmask, static_cast<size_t>(L) * NO);  // [j][octet]: band rows used
    float* gTile = grow(sc.gT, static_cast<size_t>(rect.ny) * C * LN);
    float* P = grow(sc.P, static_cast<size_t>(L) * kOct);  // P_j of one octet (octet_terms)
    float* px = grow(sc.px, LN);
    float* lanes = grow(sc.lanes, static_cast<size_t>(L) * M * LN);
    uint8_t* touched = grow(sc.touched, L);
    const int stride = L + 8;                                         // slack for used_lists' 8-wide writes
    int32_t* used = grow(sc.used, static_cast<size_t>(NO) * stride);  // [octet][stride]
    for (int x = 0; x < LN; ++x) px[x] = texel_centre(rect.x0 + x);

    // A tile listing at most K Gaussians kept all of them at every texel (kernels.h).
    const bool select = L > K;
    int n_used[NO] = {};
    if (!select) {
        for (int o = 0; o < NO; ++o) {
            n_used[o] = L;
            for (int j = 0; j < L; ++j) used[o * stride + j] = j;
        }
        for (int j = 0; j < L; ++j) touched[j] = 1;
    } else {
        // Which Gaussians some texel of the tile kept, found up front in one pass over the
        // selection rather than with a branch per row and Gaussian in the row loop.
        // Rows OR-ed as flat byte runs first: that loop vectorises, a per-Gaussian one did not.
        const uint8_t* bits = sel_masks + sel_offsets[t];
        const size_t row_bytes = static_cast<size_t>(L) * NO;
        uint8_t* any = grow(sc.any, row_bytes);
        std::memcpy(any, bits, row_bytes);
        for (int yy = 1; yy < rect.ny; ++yy) {
            const uint8_t* r = bits + static_cast<size_t>(yy) * row_bytes;
            for (size_t i = 0; i < row_bytes; ++i) any[i] |= r[i];
        }
        for (int j = 0; j < L; ++j) {
            uint8_t b = 0;
            for (int o = 0; o < NO; ++o) b |= any[static_cast<size_t>(j) * NO + o];
            touched[j] = b;
        }
    }
    // dL/dout of the whole tile, channel-major so channels stream lane-wise. Transposed before
    // the row loop, not per row: the rows read it back an octet at a time, and a vector load
    // of eight scalar stores still in the store buffer cannot be forwarded and stalls.
    for (int yy = 0; yy < rect.ny; ++yy) {
        float* gT = gTile + static_cast<size_t>(yy) * C * LN;
        const float* src = grad_out + (static_cast<int64_t>(rect.y0 + yy) * grid.width + rect.x0) * C;
        for (int c = 0; c < C; ++c)
            std::fill(gT + static_cast<size_t>(c) * LN + rect.nx, gT + static_cast<size_t>(c + 1) * LN, 0.0f);
        int x = 0;
#if IGS_BACKWARD_AVX2_HELPERS
        if constexpr (kAvx2) x = transpose_octets_avx2(src, rect.nx, C, LN, gT);
#endif
        for (; x < rect.nx; ++x)
            for (int c = 0; c < C; ++c)
                gT[static_cast<size_t>(c) * LN + x] = src[static_cast<int64_t>(x) * C + c];
    }

    // Band by band: pass 1 walks the rows (used lists; U, V, G; w and gq per Gaussian and
    // texel), pass 2 the Gaussians, each over the rows it was used in with its sums in registers.
    const float* colour = sc.soa.colour.data();
    for (int b0 = 0; b0 < rect.ny; b0 += B) {
        const int nb = std::min(B, rect.ny - b0);
        std::fill(rowmask, rowmask + static_cast<size_t>(L) * NO, 0u);
        for (int r = 0; r < nb; ++r) {
            const int yy = b0 + r;
            const float py = texel_centre(rect.y0 + yy);
            const float* gT = gTile + static_cast<size_t>(yy) * C * LN;
            // Lane bits of (Gaussian j, octet o) at row_bits[j * NO + o]; all set without selection.
            const uint8_t* row_bits =
                select ? sel_masks + sel_offsets[t] + static_cast<int64_t>(yy) * L * NO : nullptr;
            if (select) used_lists<NO, kAvx2>(row_bits, L, used, stride, n_used);
            for (int o = 0; o < NO; ++o) {
                const int x0 = o * kOct;
                const int32_t* uo = used + o * stride;
                const int n = n_used[o];
                const size_t at = static_cast<size_t>(r) * LN + x0;
                for (int u = 0; u < n; ++u) {
                    const size_t j = static_cast<size_t>(uo[u]);
                    const uint32_t kept = select ? row_bits[j * NO + o] : 0xffu;
                    geometry_octet(sc.soa.at(static_cast<int>(j)), px + x0, py, kept, U + j * JS + at,
                                   V + j * JS + at, G + j * JS + at);
                    rowmask[j * NO + o] |= 1u << r;
                }
                Oct S = splat(0.0f);
                for (int u = 0; u < n; ++u) S += load(G + static_cast<size_t>(uo[u]) * JS + at);
                octet_terms<LN, CC, JS>(uo, n, G + at, Q + at, colour, C, gT + x0, S + splat(s.eps), P);
            }
        }
        const bool first = b0 == 0;
        const float* gBand = gTile + static_cast<size_t>(b0) * C * LN;
        for (int j = 0; j < L; ++j) {
            if (!touched[j]) continue;
            float* acc = lanes + static_cast<size_t>(j) * M * LN;
            const size_t jb = static_cast<size_t>(j) * JS;
            for (int o = 0; o < NO; ++o) {
                const uint32_t rows = rowmask[static_cast<size_t>(j) * NO + o];
                if (rows == 0 && !first) continue;
                const int x0 = o * kOct;
                moments_rows<LN>(rows, first, U + jb + x0, V + jb + x0, Q + jb + x0, sc.soa.ax[j],
                                 sc.soa.ay[j], acc + x0);
                colour_rows<LN, CC>(rows, first, G + jb + x0, gBand + x0, C,
                                    acc + static_cast<size_t>(kMoments) * LN + x0);
            }
        }
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

#define IGS_BACKWARD_TILE_ARGS                                                                            \
    const Gaussian *table, const Params &p, const Shape &s, const TileGrid &grid, const TileLists &lists, \
        int64_t t, const float *grad_out, const int64_t *sel_offsets, const uint8_t *sel_masks,           \
        float *pair_grad, BackwardScratch &sc

#define IGS_BACKWARD_TILE_CALL(LN, CC)                                                               \
    backward_tile_fast<LN, CC, kAvx2>(table, p, s, grid, lists, t, grad_out, sel_offsets, sel_masks, \
                                      pair_grad, sc)

// The default 16-texel tiles get copies for the usual channel counts (a material's 9, and the
// 3, 4, 6 and 8 of partial stacks): with C known, the per-Gaussian channel loops unroll into
// straight code with constant offsets. 9 channels at 1024^2 with 10K Gaussians: -8% on the
// backward (2 threads, same process). Same operations in the same order, so the same bytes
// where nothing fuses (the baseline; see IGS_FUSED for the AVX2 copy).
template <bool kAvx2>
IGS_ALWAYS_INLINE void backward_tile_lanes(IGS_BACKWARD_TILE_ARGS) {
    switch (lanes_for(s.tile)) {
        case 8:
            IGS_BACKWARD_TILE_CALL(8, 0);
            break;
        case 16:
            switch (p.channels) {
                case 3:
                    IGS_BACKWARD_TILE_CALL(16, 3);
                    break;
                case 4:
                    IGS_BACKWARD_TILE_CALL(16, 4);
                    break;
                case 6:
                    IGS_BACKWARD_TILE_CALL(16, 6);
                    break;
                case 8:
                    IGS_BACKWARD_TILE_CALL(16, 8);
                    break;
                case 9:
                    IGS_BACKWARD_TILE_CALL(16, 9);
                    break;
                default:
                    IGS_BACKWARD_TILE_CALL(16, 0);
                    break;
            }
            break;
        case 32:
            IGS_BACKWARD_TILE_CALL(32, 0);
            break;
        default:
            IGS_BACKWARD_TILE_CALL(64, 0);
            break;
    }
}
#undef IGS_BACKWARD_TILE_CALL

#if defined(__AVX2__)
constexpr bool kBaselineHasAvx2 = true;  // built with -mavx2 -mfma: the baseline is the AVX2 code
#else
constexpr bool kBaselineHasAvx2 = false;
#endif

// The AVX2 backward lets the compiler fuse multiply-adds (FMA); the rest of the build compiles
// with -ffp-contract=off. 2 threads, backward: -7% at 512^2 and 1024^2 with 10K Gaussians,
// -13% at 1024^2 with 2.5K (same process, same inputs). Which products fuse is the compiler's
// choice per instance of the templates, so the gradients are no longer the same bytes as the
// SSE baseline's, nor across channel-count copies, only close to them (the tests hold them to
// 1e-5 relative); they are still the same bytes run after run, for any thread count, and on
// every machine with AVX2, with or without AVX-512. Written out with fmaf per lane instead,
// to fix which products fuse, it ran slower than not fusing at all. The forward never fuses:
// its G and hence the top-K must equal the simple path's and the decoder's bit for bit.
#if defined(__GNUC__) && !defined(__clang__)
#define IGS_FUSED __attribute__((optimize("fp-contract=fast")))
#else
#define IGS_FUSED
#endif
#if defined(__AVX2__) && defined(__FMA__)
#define IGS_BASELINE_FUSED IGS_FUSED  // IGS_NATIVE_SIMD=avx2: fused like the AVX2 copy
#else
#define IGS_BASELINE_FUSED
#endif

IGS_BASELINE_FUSED void backward_tile_baseline(IGS_BACKWARD_TILE_ARGS) {
    backward_tile_lanes<kBaselineHasAvx2>(table, p, s, grid, lists, t, grad_out, sel_offsets, sel_masks,
                                          pair_grad, sc);
}

#if IGS_AVX2_VARIANT
__attribute__((target("avx2,fma"))) IGS_FUSED void backward_tile_avx2(IGS_BACKWARD_TILE_ARGS) {
    backward_tile_lanes<true>(table, p, s, grid, lists, t, grad_out, sel_offsets, sel_masks, pair_grad, sc);
}
#endif

// One texel at a time through the header functions, as a CUDA thread would.
void backward_tile_simple(const Gaussian* table, const Params& p, const Shape& s, const TileGrid& grid,
                          const TileLists& lists, int64_t t, const float* grad_out,
                          const int64_t* sel_offsets, const uint8_t* sel_masks, float* pair_grad) {
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
        write_pair(pair_grad + (off + j) * D, table[list[j]], mom[j],
                   dcol.data() + static_cast<size_t>(j) * C, C);
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
              const int64_t* sel_offsets, const uint8_t* sel_masks, const Grads& out, bool fast) {
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
                fast_tile(table.data(), p, s, grid, lists, t, grad_out, sel_offsets, sel_masks, pair_grad,
                          sc);
            else
                backward_tile_simple(table.data(), p, s, grid, lists, t, grad_out, sel_offsets, sel_masks,
                                     pair_grad);
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
