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

// Unordered top-K for candidates that arrive in ascending index order (tile lists are
// ascending). A newcomer has a higher index than everything kept, so it enters only when
// its G is strictly larger than the worst kept G: one compare rejects most candidates, and
// the worst slot is searched again only after a replacement.
struct TopKStream {
    int k = 0, n = 0, worst = 0;
    float g[kMaxK];
    int idx[kMaxK];

    IGS_HD void reset(int k_) {
        k = k_;
        n = 0;
        worst = 0;
    }

    IGS_HD void find_worst() {
        int w = 0;
        for (int s = 1; s < n; ++s)
            if (ranks_before(g[w], idx[w], g[s], idx[s])) w = s;
        worst = w;
    }

    IGS_HD void push(float gv, int iv) {
        if (n < k) {
            g[n] = gv;
            idx[n] = iv;
            ++n;
            if (n == k) find_worst();
            return;
        }
        if (!(gv > g[worst])) return;
        g[worst] = gv;
        idx[worst] = iv;
        find_worst();
    }

    // Kept entries by ascending index (the order in which kernels save and blend them).
    IGS_HD void sort_by_index() {
        for (int a = 1; a < n; ++a) {
            const float gv = g[a];
            const int iv = idx[a];
            int b = a;
            while (b > 0 && idx[b - 1] > iv) {
                g[b] = g[b - 1];
                idx[b] = idx[b - 1];
                --b;
            }
            g[b] = gv;
            idx[b] = iv;
        }
    }
};

}  // namespace igs
