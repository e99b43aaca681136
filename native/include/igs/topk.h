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
