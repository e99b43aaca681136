// Per-texel top-K selection (DESIGN.md: keep the K listed Gaussians with the largest G,
// ties to the lower index). Ranking is on the float32 G values themselves, never on the
// exponent: two different exponents can round to the same G, and then the index decides.
#pragma once

#include "common.h"

namespace igs {

// True when (ga, ia) ranks strictly before (gb, ib).
IGS_HD inline bool ranks_before(float ga, int ia, float gb, int ib) {
    return ga > gb || (ga == gb && ia < ib);
}

// Kept in rank order (largest G first), accepts candidates in any index order.
struct TopKSorted {
    static constexpr int kCapacity = kMaxK;  // entries g/idx hold; k of them are used
    int k = 0, n = 0;
    float g[kMaxK];
    int idx[kMaxK];

    IGS_HD void reset(int k_) {
        k = k_;
        n = 0;
    }

    IGS_HD void push(float gv, int iv) {
        if (n == k && !ranks_before(gv, iv, g[n - 1], idx[n - 1])) return;
        int pos = n < k ? n : k - 1;
        while (pos > 0 && ranks_before(gv, iv, g[pos - 1], idx[pos - 1])) {
            g[pos] = g[pos - 1];
            idx[pos] = idx[pos - 1];
            --pos;
        }
        g[pos] = gv;
        idx[pos] = iv;
        if (n < k) ++n;
    }
};

// TopKSorted for a K fixed at compile time, step for step the same comparisons on the same
// values (so the same selection, NaN input included). Every array index is a constant once the
// loops are unrolled, which lets a GPU keep g/idx in registers: a run-time K forces them into
// (per-thread, L1-cached) local memory, read on every candidate of the forward's inner loop.
template <int K>
struct TopKFixed {
    static_assert(K >= 1 && K <= kMaxK, "K outside [1, kMaxK]");
    static constexpr int kCapacity = K;
    int n = 0;
    float g[K];
    int idx[K];

    IGS_HD void reset(int /*k: equal to K, checked by the caller*/) {
        n = 0;
        // Unused slots are only copied onto themselves by push(), but never read uninitialised.
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
        for (int p = 0; p < K; ++p) {
            g[p] = 0.0f;
            idx[p] = 0;
        }
    }

    IGS_HD void push(float gv, int iv) {
        if (n == K && !ranks_before(gv, iv, g[K - 1], idx[K - 1])) return;
        // TopKSorted's insertion walk, bottom up, with the slot it starts from (n, or K-1 when
        // full) and the point where it stops turned into predicates.
        const int start = n < K ? n : K - 1;
        bool moving = true;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
        for (int p = K - 1; p >= 0; --p) {
            const bool act = moving && p <= start;
            const bool up = act && p > 0 && ranks_before(gv, iv, g[p - 1], idx[p - 1]);
            g[p] = up ? g[p - 1] : (act ? gv : g[p]);
            idx[p] = up ? idx[p - 1] : (act ? iv : idx[p]);
            moving = moving && (p > start || up);
        }
        if (n < K) ++n;
    }
};

// Reorders n kept entries by ascending index (list position), the order in which kernels
// blend and save them so a backward can walk them together with the tile list.
IGS_HD inline void sort_by_index(int n, float* g, int* idx) {
    for (int a = 1; a < n; ++a) {
        const float gv = g[a];
        const int iv = idx[a];
        int b = a;
        for (; b > 0 && idx[b - 1] > iv; --b) {
            g[b] = g[b - 1];
            idx[b] = idx[b - 1];
        }
        g[b] = gv;
        idx[b] = iv;
    }
}

}  // namespace igs
