// Internal to the CPU kernels: per-step Gaussian table, per-tile SoA gather, tile geometry.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "igs/gaussian.h"
#include "kernels.h"

namespace igs {
namespace cpu {

// Row buffers never alias; saying so lets the compiler vectorise without runtime checks
// (with them it kept picking the scalar fallback).
#if defined(_MSC_VER)
#define IGS_RESTRICT __restrict
#else
#define IGS_RESTRICT __restrict__
#endif

// Texel lanes per tile row, padded so the per-row loops have no scalar remainder; padded lanes
// are computed and thrown away. The fast kernels are instantiated for 8, 16, 32 and 64 lanes
// only, and the saved selection's row stride is lanes / 8 bytes, so tiles up to 64 round up to
// one of those widths: a 24-texel tile laid out with 24 lanes but run with 64 wrote 8 bytes per
// row into a 3-byte slot (heap overflow, found by tests/test_sanitizers.py).
inline int lanes_for(int tile) {
    if (tile <= 8) return 8;
    if (tile <= 16) return 16;
    if (tile <= 32) return 32;
    if (tile <= 64) return 64;
    return (tile + 7) & ~7;  // beyond kMaxFastTile only the simple path runs
}

// Larger tiles run the simple per-texel path (their rows would not fit the lane buffers).
constexpr int kMaxFastTile = 64;

// The row kernels are written once and compiled twice on x86-64 with GCC/Clang: for the
// baseline ISA the wheel targets and for AVX2, picked at run time (simd_avx2()). Everything
// below a per-tile entry point is force-inlined so it is compiled for that entry's ISA.
// Both variants give identical bytes: no FMA contraction (-ffp-contract=off), no
// reassociation, and every SIMD lane computes exactly the scalar expression.
#if defined(__GNUC__)
#define IGS_ALWAYS_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define IGS_ALWAYS_INLINE __forceinline
#else
#define IGS_ALWAYS_INLINE inline
#endif

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__AVX2__)
#define IGS_AVX2_VARIANT 1
#define IGS_TARGET_AVX2 __attribute__((target("avx2")))
#else
#define IGS_AVX2_VARIANT 0
#endif

// The forward also has an AVX-512 variant (forward_rows.inc), for CPUs with F, VL, BW and DQ.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__AVX512DQ__)
#define IGS_AVX512_VARIANT 1
#else
#define IGS_AVX512_VARIANT 0
#endif

// Threads of every parallel region here, set apart from the process-wide OpenMP setting:
// torch ships a libgomp with the same soname, so torch.set_num_threads(1) (which a caller may
// do to quiet torch's own pool) would otherwise make these kernels single-threaded too.
// Default: all processors OpenMP reports available.
int thread_count();
void set_thread_count(int n);  // n < 1: back to the default

// True when the AVX2 variant exists, the CPU has AVX2, and set_simd() has not turned it off.
bool simd_avx2();
// The same for the AVX-512 variant of the forward.
bool simd_avx512();
// "auto" (default: the widest the CPU has), "avx2" (no AVX-512) or "baseline"; returns false
// for an unknown name. Every variant gives identical bytes.
bool set_simd(const char* name);
const char* simd_name();

// cos/sin once per Gaussian per step instead of once per texel.
inline std::vector<Gaussian> prepare_gaussians(const Params& p) {
    std::vector<Gaussian> table(static_cast<size_t>(p.count));
    const int64_t n = p.count;
#pragma omp parallel for schedule(static) num_threads(thread_count())
    for (int64_t i = 0; i < n; ++i) {
        Gaussian& g = table[i];
        g.mx = p.means[2 * i];
        g.my = p.means[2 * i + 1];
        g.cs = std::cos(p.theta[i]);
        g.sn = std::sin(p.theta[i]);
        g.ax = p.inv_scale[2 * i];
        g.ay = p.inv_scale[2 * i + 1];
    }
    return table;
}

struct TileRect {
    int x0, y0, nx, ny;
};

inline TileRect tile_rect(const TileGrid& grid, int64_t t) {
    TileRect r;
    r.x0 = static_cast<int>(t % grid.tiles_x) * grid.tile;
    r.y0 = static_cast<int>(t / grid.tiles_x) * grid.tile;
    r.nx = std::min(grid.tile, grid.width - r.x0);
    r.ny = std::min(grid.tile, grid.height - r.y0);
    return r;
}

// The tile's Gaussians gathered contiguously (structure of arrays) so the per-row loops
// stream through them instead of chasing indices into the full table.
struct TileSoA {
    int count = 0;
    std::vector<float> mx, my, cs, sn, ax, ay, colour;  // colour: [count, C]

    void gather(const Gaussian* table, const float* col, int channels, const int32_t* list, int n) {
        count = n;
        if (static_cast<int>(mx.size()) < n) {
            for (auto* v : {&mx, &my, &cs, &sn, &ax, &ay}) v->resize(n);
        }
        if (colour.size() < static_cast<size_t>(n) * channels)
            colour.resize(static_cast<size_t>(n) * channels);
        for (int j = 0; j < n; ++j) {
            const Gaussian& g = table[list[j]];
            mx[j] = g.mx;
            my[j] = g.my;
            cs[j] = g.cs;
            sn[j] = g.sn;
            ax[j] = g.ax;
            ay[j] = g.ay;
            const float* src = col + static_cast<int64_t>(list[j]) * channels;
            std::copy(src, src + channels, colour.data() + static_cast<size_t>(j) * channels);
        }
    }

    Gaussian at(int j) const { return Gaussian{mx[j], my[j], cs[j], sn[j], ax[j], ay[j]}; }
};

template <class T>
inline T* grow(std::vector<T>& v, size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
}

// Blends one row: out = sum_j G[j] c_j / (sum_j G[j] + eps) over the listed rows `used` of G;
// zeroed G add exactly nothing. Channel-outer so accumulators stay in registers, four
// channels at a time so four independent add chains overlap (one chain waits on itself).
// The forward writes the image with it (texel-major, nx texels at out[x * C + c]); the
// backward recomputes `out` with it, bit for bit, into a channel-major row (out[c * LN + x],
// kChannelMajor) instead of reading the image back from memory.
template <int LN, bool kChannelMajor>
IGS_ALWAYS_INLINE void blend_row(const float* IGS_RESTRICT G, const int32_t* IGS_RESTRICT used, int n_used,
                                 const float* IGS_RESTRICT colour, int C, float eps, int nx,
                                 float* IGS_RESTRICT out) {
    float den[LN];
    for (int x = 0; x < LN; ++x) den[x] = 0.0f;
    for (int u = 0; u < n_used; ++u) {
        const float* IGS_RESTRICT Gj = G + static_cast<size_t>(used[u]) * LN;
        for (int x = 0; x < LN; ++x) den[x] += Gj[x];
    }
    for (int x = 0; x < LN; ++x) den[x] += eps;
    int c = 0;
    for (; c + 4 <= C; c += 4) {
        float a0[LN], a1[LN], a2[LN], a3[LN];
        for (int x = 0; x < LN; ++x) a0[x] = a1[x] = a2[x] = a3[x] = 0.0f;
        for (int u = 0; u < n_used; ++u) {
            const float* IGS_RESTRICT Gj = G + static_cast<size_t>(used[u]) * LN;
            const float* IGS_RESTRICT cj = colour + static_cast<size_t>(used[u]) * C + c;
            const float c0 = cj[0], c1 = cj[1], c2 = cj[2], c3 = cj[3];
            for (int x = 0; x < LN; ++x) {
                a0[x] += Gj[x] * c0;
                a1[x] += Gj[x] * c1;
                a2[x] += Gj[x] * c2;
                a3[x] += Gj[x] * c3;
            }
        }
        // Written out rather than through a helper taking a0..a3 by pointer: a pointer makes
        // the accumulators escape to memory, and the loop above then spills every add.
        if constexpr (kChannelMajor) {
            // This form vectorises (one base pointer); four separately indexed stores did not.
            for (int x = 0; x < LN; ++x) {
                float* o = out + c * LN + x;
                o[0] = a0[x] / den[x];
                o[LN] = a1[x] / den[x];
                o[2 * LN] = a2[x] / den[x];
                o[3 * LN] = a3[x] / den[x];
            }
        } else {
            for (int x = 0; x < LN; ++x) {  // lane-wise first: vector divides
                a0[x] = a0[x] / den[x];
                a1[x] = a1[x] / den[x];
                a2[x] = a2[x] / den[x];
                a3[x] = a3[x] / den[x];
            }
            for (int x = 0; x < nx; ++x) {
                float* o = out + static_cast<int64_t>(x) * C + c;
                o[0] = a0[x];
                o[1] = a1[x];
                o[2] = a2[x];
                o[3] = a3[x];
            }
        }
    }
    for (; c < C; ++c) {
        float acc[LN];
        for (int x = 0; x < LN; ++x) acc[x] = 0.0f;
        for (int u = 0; u < n_used; ++u) {
            const float* IGS_RESTRICT Gj = G + static_cast<size_t>(used[u]) * LN;
            const float cv = colour[static_cast<size_t>(used[u]) * C + c];
            for (int x = 0; x < LN; ++x) acc[x] += Gj[x] * cv;
        }
        if constexpr (kChannelMajor) {
            for (int x = 0; x < LN; ++x) out[c * LN + x] = acc[x] / den[x];
        } else {
            for (int x = 0; x < LN; ++x) acc[x] = acc[x] / den[x];
            for (int x = 0; x < nx; ++x) out[static_cast<int64_t>(x) * C + c] = acc[x];
        }
    }
}

}  // namespace cpu
}  // namespace igs
