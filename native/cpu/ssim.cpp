#include "ssim.h"

#include "tile_data.h"  // thread_count(): torch's bundled libgomp shares the OpenMP thread ICV

#include <cmath>
#include <vector>

namespace igs {
namespace cpu {
namespace {

constexpr int kTaps = 11;
constexpr int kRadius = kTaps / 2;

struct Window {
    float w[kTaps];
    Window() {
        // Normalised in double, then rounded once: matches metrics._window's float64 -> float32.
        double acc[kTaps], sum = 0.0;
        for (int i = 0; i < kTaps; ++i) {
            double t = (i - kRadius) / 1.5;
            acc[i] = std::exp(-0.5 * t * t);
            sum += acc[i];
        }
        for (int i = 0; i < kTaps; ++i) w[i] = static_cast<float>(acc[i] / sum);
    }
};

// 'valid' separable blur: src [h, w] -> dst [h - 10, w - 10]; tmp holds [h, w - 10].
void blur_valid(const float* __restrict src, int h, int w, float* __restrict tmp,
                float* __restrict dst, const Window& k) {
    const int ow = w - 2 * kRadius, oh = h - 2 * kRadius;
    for (int y = 0; y < h; ++y) {
        const float* s = src + static_cast<int64_t>(y) * w;
        float* t = tmp + static_cast<int64_t>(y) * ow;
        // Taps outer, texels inner: contiguous loops the compiler vectorises (same sum order).
        for (int x = 0; x < ow; ++x) t[x] = 0.f;
        for (int i = 0; i < kTaps; ++i) {
            const float wi = k.w[i];
            const float* si = s + i;
            for (int x = 0; x < ow; ++x) t[x] += wi * si[x];
        }
    }
    for (int y = 0; y < oh; ++y) {
        float* d = dst + static_cast<int64_t>(y) * ow;
        for (int x = 0; x < ow; ++x) d[x] = 0.f;
        for (int i = 0; i < kTaps; ++i) {
            const float* t = tmp + static_cast<int64_t>(y + i) * ow;
            const float wi = k.w[i];
            for (int x = 0; x < ow; ++x) d[x] += wi * t[x];
        }
    }
}

// Transpose of blur_valid (the window is symmetric): src [h - 10, w - 10] -> dst [h, w],
// spreading each map value back over the texels its window covered.
void blur_transpose(const float* __restrict src, int h, int w, float* __restrict tmp,
                    float* __restrict dst, const Window& k) {
    const int ow = w - 2 * kRadius, oh = h - 2 * kRadius;
    for (int64_t i = 0; i < static_cast<int64_t>(h) * ow; ++i) tmp[i] = 0.f;
    for (int y = 0; y < oh; ++y) {
        const float* s = src + static_cast<int64_t>(y) * ow;
        for (int i = 0; i < kTaps; ++i) {
            float* t = tmp + static_cast<int64_t>(y + i) * ow;
            const float wi = k.w[i];
            for (int x = 0; x < ow; ++x) t[x] += wi * s[x];
        }
    }
    for (int y = 0; y < h; ++y) {
        const float* t = tmp + static_cast<int64_t>(y) * ow;
        float* d = dst + static_cast<int64_t>(y) * w;
        for (int x = 0; x < w; ++x) d[x] = 0.f;
        for (int i = 0; i < kTaps; ++i) {
            const float wi = k.w[i];
            float* di = d + i;
            for (int x = 0; x < ow; ++x) di[x] += wi * t[x];
        }
    }
}

}  // namespace

void ssim_channels(const float* x, const float* y, int height, int width, int channels,
                   double* ssim_out, float* grad_out) {
    static const Window win;
    const float c1 = 0.01f * 0.01f, c2 = 0.03f * 0.03f;
    const int64_t n = static_cast<int64_t>(height) * width;
    const int oh = height - 2 * kRadius, ow = width - 2 * kRadius;
    const int64_t m = static_cast<int64_t>(oh) * ow;

#pragma omp parallel for schedule(dynamic, 1) num_threads(thread_count())
    for (int c = 0; c < channels; ++c) {
        // Planar scratch per channel: the five statistics, then the three gradient maps.
        std::vector<float> px(n), py(n), prod(n), tmp(static_cast<int64_t>(height) * ow);
        std::vector<float> mx(m), my(m), exx(m), eyy(m), exy(m);
        for (int64_t i = 0; i < n; ++i) {
            px[i] = x[i * channels + c];
            py[i] = y[i * channels + c];
        }
        blur_valid(px.data(), height, width, tmp.data(), mx.data(), win);
        blur_valid(py.data(), height, width, tmp.data(), my.data(), win);
        for (int64_t i = 0; i < n; ++i) prod[i] = px[i] * px[i];
        blur_valid(prod.data(), height, width, tmp.data(), exx.data(), win);
        for (int64_t i = 0; i < n; ++i) prod[i] = py[i] * py[i];
        blur_valid(prod.data(), height, width, tmp.data(), eyy.data(), win);
        for (int64_t i = 0; i < n; ++i) prod[i] = px[i] * py[i];
        blur_valid(prod.data(), height, width, tmp.data(), exy.data(), win);

        double sum = 0.0;
        const float inv_m = 1.0f / static_cast<float>(m);
        // Reuse the statistic maps for d/dmu_x, d/dE[x^2], d/dE[xy] (each pre-scaled by 1/M).
        for (int64_t i = 0; i < m; ++i) {
            const float ux = mx[i], uy = my[i];
            const float sxx = exx[i] - ux * ux, syy = eyy[i] - uy * uy, sxy = exy[i] - ux * uy;
            const float a1 = 2.f * ux * uy + c1, a2 = 2.f * sxy + c2;
            const float b1 = ux * ux + uy * uy + c1, b2 = sxx + syy + c2;
            const float den = b1 * b2;
            const float s = (a1 * a2) / den;
            sum += s;
            if (grad_out) {
                // S = A1 A2 / (B1 B2) with A2, B2 depending on mu_x through the variances.
                const float d_mu = (2.f * uy * a2 - 2.f * uy * a1) / den - s * (2.f * ux / b1 - 2.f * ux / b2);
                mx[i] = d_mu * inv_m;
                exx[i] = (-s / b2) * inv_m;
                exy[i] = (2.f * a1 / den) * inv_m;
            }
        }
        ssim_out[c] = sum / static_cast<double>(m);
        if (!grad_out) continue;
        // dS/dx(p) = G^T[dmu](p) + 2 x(p) G^T[dexx](p) + y(p) G^T[dexy](p)
        std::vector<float> gm(n), gxx(n), gxy(n);
        blur_transpose(mx.data(), height, width, tmp.data(), gm.data(), win);
        blur_transpose(exx.data(), height, width, tmp.data(), gxx.data(), win);
        blur_transpose(exy.data(), height, width, tmp.data(), gxy.data(), win);
        for (int64_t i = 0; i < n; ++i)
            grad_out[i * channels + c] = gm[i] + 2.f * px[i] * gxx[i] + py[i] * gxy[i];
    }
}

}  // namespace cpu
}  // namespace igs
