// Everything one texel does: evaluate its tile's Gaussians, keep the top K, blend, and the
// blend's backward. A CUDA kernel with one thread per texel is these functions in sequence;
// the CPU "simple" path is exactly that, and the CPU fast path is checked against it.
#pragma once

#include "common.h"
#include "gaussian.h"
#include "topk.h"

namespace igs {

// Evaluates the Gaussians of a tile list (ascending global indices) at texel centre
// (px, py) and pushes them into a top-K accumulator (TopKSorted) under their
// list positions j; list[j] is the Gaussian. Ranking ties by position is ranking by index.
template <class TopK>
IGS_HD inline void select_texel(const Gaussian* gaussians, const int32_t* list, int count, float px, float py,
                                TopK& top) {
    for (int j = 0; j < count; ++j) top.push(eval(gaussians[list[j]], px, py), j);
}

// out[c] = sum_k G_k colour[idx_k][c] / (S + eps) with S = sum_k G_k; returns S.
IGS_HD inline float blend(int n, const int32_t* idx, const float* G, const float* colour, int channels,
                          float eps, float* out) {
    float s = 0.0f;
    for (int k = 0; k < n; ++k) s += G[k];
    const float den = s + eps;
    for (int c = 0; c < channels; ++c) {
        float acc = 0.0f;
        for (int k = 0; k < n; ++k) acc += G[k] * colour[static_cast<int64_t>(idx[k]) * channels + c];
        out[c] = acc / den;
    }
    return s;
}

// Backward of blend for one texel, g = dL/dout [C]:
//   out = N / (S + eps),  N = sum G_k c_k,  S = sum G_k
//   dL/dc_k = w_k g                 with w_k = G_k / (S + eps)
//   dL/dG_k = g . (c_k - out) / (S + eps)     (d out / d G_k = c_k/(S+eps) - N/(S+eps)^2)
// c_k - out is formed before the dot product: near convergence c_k ~ out and the
// difference of two separately rounded dot products would lose it.
IGS_HD inline void blend_backward(int n, const int32_t* idx, const float* G, const float* colour,
                                  int channels, float s, float eps, const float* out, const float* g,
                                  float* dLdG, float* w) {
    const float inv = 1.0f / (s + eps);
    for (int k = 0; k < n; ++k) {
        const float* ck = colour + static_cast<int64_t>(idx[k]) * channels;
        float dot = 0.0f;
        for (int c = 0; c < channels; ++c) dot += g[c] * (ck[c] - out[c]);
        dLdG[k] = dot * inv;
        w[k] = G[k] * inv;
    }
}

// Chains one texel's dL/dG_k into the running moments of Gaussian k (see GeomMoments).
IGS_HD inline void texel_geom_backward(const Gaussian& gs, float px, float py, float G, float dLdG,
                                       GeomMoments& m) {
    float u, v;
    rotate_offset(gs, px, py, u, v);
    moments_add(m, grad_exponent(G, dLdG), u, v, u * gs.ax, v * gs.ay);
}

}  // namespace igs
