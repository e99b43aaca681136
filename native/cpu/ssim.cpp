#include "ssim.h"

#include "tile_data.h"  // thread_count(), simd_avx2(), IGS_ALWAYS_INLINE

#include <algorithm>
#include <cmath>
#include <vector>

namespace igs {
namespace cpu {
namespace {

constexpr int kTaps = 11;
constexpr int kRadius = kTaps / 2;
constexpr int kMaps = 3;  // statistics of the render blurred per step: x, x^2, x*y

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

const Window& window() {
    static const Window win;
    return win;
}

// Eleven taps into one register accumulator. The window is symmetric, so mirrored taps are
// added before their shared weight multiplies them: 6 multiplies instead of 11 (about a
// quarter fewer operations in the kernel's hottest loop); the sum order differs from the
// reference convolution by float rounding only. The loop over texels has no dependency between
// iterations, so it vectorises with one load per tap.
IGS_ALWAYS_INLINE float taps11(const float* const r[kTaps], int x, const float* __restrict w) {
    float a = w[kRadius] * r[kRadius][x];
#pragma GCC unroll 5
    for (int i = 0; i < kRadius; ++i) a += w[i] * (r[i][x] + r[kTaps - 1 - i][x]);
    return a;
}

// Across rows: dst[x] = sum_i w[i] rows[i][x].
IGS_ALWAYS_INLINE void blur_rows(const float* const rows[kTaps], int n, float* __restrict dst,
                                 const float* __restrict w) {
#pragma GCC ivdep
    for (int x = 0; x < n; ++x) dst[x] = taps11(rows, x, w);
}

// 'valid' blur along a row: src [ow + 10] -> dst [ow].
IGS_ALWAYS_INLINE void blur_row(const float* src, int ow, float* __restrict dst, const float* __restrict w) {
    const float* rows[kTaps];
    for (int i = 0; i < kTaps; ++i) rows[i] = src + i;
    blur_rows(rows, ow, dst, w);
}

// Transpose of blur_row (the window is symmetric): src [ow] with 10 zeros on both sides
// (padded[10 + x] = src[x]) spread back over dst [ow + 10], as a gather so it vectorises.
// Terms come in the order the reference's scatter adds them: src[x], src[x - 1], ...
IGS_ALWAYS_INLINE void spread_row(const float* padded, int w_out, float* __restrict dst,
                                  const float* __restrict w) {
    const float* rows[kTaps];
    for (int i = 0; i < kTaps; ++i) rows[i] = padded + 2 * kRadius - i;
    blur_rows(rows, w_out, dst, w);
}

// Eight running double sums in a fixed lane order: a long serial chain of double additions
// cost more than the blurs; the result still depends only on the data.
IGS_ALWAYS_INLINE double sum_lanes(const float* __restrict v, int n) {
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) lane[j] += v[i + j];
    for (int j = 0; i < n; ++i, ++j) lane[j] += v[i];
    return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

int ring_slot(int row) {
    return ((row % kTaps) + kTaps) % kTaps;
}

struct Scratch {
    std::vector<float> p, s;    // [W]: product row, SSIM row
    std::vector<float> ring;    // [3][11][OW]: blurs along the last 11 input rows
    std::vector<float> dring;   // [3][11][OW]: dS/dstat of the last 11 output rows (0 outside)
    std::vector<float> stat;    // [3][OW]: blurs across rows of one output row, then dS/dstat
    std::vector<float> padded;  // [OW + 20]: a row of the transposed vertical blur, zero-padded
    std::vector<float> full;    // [3][W]: transposes of a finished input row
    int ow = 0;
    void size(int w, int out_w) {
        ow = out_w;
        p.resize(w);
        s.resize(w);
        ring.resize(static_cast<size_t>(kMaps) * kTaps * ow);
        dring.resize(static_cast<size_t>(kMaps) * kTaps * ow);
        stat.resize(static_cast<size_t>(kMaps) * ow);
        padded.assign(static_cast<size_t>(ow) + 4 * kRadius, 0.f);
        full.resize(static_cast<size_t>(kMaps) * w);
    }
    float* ring_row(int m, int row) {
        return ring.data() + (m * kTaps + ring_slot(row)) * static_cast<size_t>(ow);
    }
    float* d_row(int m, int row) {
        return dring.data() + (m * kTaps + ring_slot(row)) * static_cast<size_t>(ow);
    }
};

struct Channel {
    const LossTarget* t;
    const float* x;  // planar render [C][H*W]
    int c;
    float l1_scale, l2_scale, ssim_scale;
    float* grad;  // planar [C][H*W], or null
    Scratch* sc;
    double l1 = 0.0, l2 = 0.0, ssim = 0.0;
};

IGS_ALWAYS_INLINE const float* render_row(const Channel& ch, int r) {
    return ch.x + (static_cast<int64_t>(ch.c) * ch.t->height + r) * ch.t->width;
}

IGS_ALWAYS_INLINE const float* target_row(const Channel& ch, int r) {
    return ch.t->y.data() + (static_cast<int64_t>(ch.c) * ch.t->height + r) * ch.t->width;
}

// Input row r enters the ring: blurs of x, x^2 and x*y along the row; its L1 is summed here,
// where every row passes exactly once.
IGS_ALWAYS_INLINE void take_row(Channel& ch, int r, const float* w) {
    const int W = ch.t->width, ow = W - 2 * kRadius;
    Scratch& sc = *ch.sc;
    const float* yr = target_row(ch, r);
    const float* xr = render_row(ch, r);
    float* p = sc.p.data();
    blur_row(xr, ow, sc.ring_row(0, r), w);
    for (int i = 0; i < W; ++i) p[i] = xr[i] * xr[i];
    blur_row(p, ow, sc.ring_row(1, r), w);
    for (int i = 0; i < W; ++i) p[i] = xr[i] * yr[i];
    blur_row(p, ow, sc.ring_row(2, r), w);
    for (int i = 0; i < W; ++i) p[i] = std::fabs(xr[i] - yr[i]);
    ch.l1 += sum_lanes(p, W);
    for (int i = 0; i < W; ++i) p[i] = (xr[i] - yr[i]) * (xr[i] - yr[i]);
    ch.l2 += sum_lanes(p, W);
}

// Input row r: every output row whose window covers it (r - 10 .. r) has its dS/dstat in the
// ring. Transpose both blurs and write
//   grad = l1_scale sign(x - y) + ssim_scale (G^T[dmu] + 2 x G^T[dexx] + y G^T[dexy]).
IGS_ALWAYS_INLINE void finish_row(Channel& ch, int r, const float* w) {
    const int W = ch.t->width, ow = W - 2 * kRadius;
    Scratch& sc = *ch.sc;
    float* pad = sc.padded.data() + 2 * kRadius;
    for (int m = 0; m < kMaps; ++m) {
        // Rows r - 10 .. r in that order: the order the reference's scatter adds them.
        const float* rows[kTaps];
        float wr[kTaps];
        for (int i = 0; i < kTaps; ++i) {
            rows[i] = sc.d_row(m, r - 2 * kRadius + i);
            wr[i] = w[2 * kRadius - i];
        }
        blur_rows(rows, ow, pad, wr);
        spread_row(sc.padded.data(), W, sc.full.data() + static_cast<size_t>(m) * W, w);
    }
    const float* yr = target_row(ch, r);
    const float* xr = render_row(ch, r);
    const float *gm = sc.full.data(), *gxx = gm + W, *gxy = gxx + W;
    float* g = ch.grad + (static_cast<int64_t>(ch.c) * ch.t->height + r) * W;
    const float a = ch.l1_scale, a2 = 2.f * ch.l2_scale, b = ch.ssim_scale;
#pragma GCC ivdep
    for (int i = 0; i < W; ++i) {
        const float d = xr[i] - yr[i];
        const float sgn = d > 0.f ? 1.f : (d < 0.f ? -1.f : 0.f);
        g[i] = (a * sgn + a2 * d) + b * (gm[i] + 2.f * xr[i] * gxx[i] + yr[i] * gxy[i]);
    }
}

IGS_ALWAYS_INLINE void channel_pass(Channel& ch) {
    const LossTarget& t = *ch.t;
    const int H = t.height, W = t.width, ow = W - 2 * kRadius, oh = H - 2 * kRadius;
    const int64_t m_count = static_cast<int64_t>(oh) * ow;
    const float* w = window().w;
    Scratch& sc = *ch.sc;
    const float c1 = 0.01f * 0.01f, c2 = 0.03f * 0.03f;
    const float inv_m = 1.0f / static_cast<float>(m_count);
    const float* mu_y = t.mu.data() + ch.c * m_count;
    const float* e_yy = t.e2.data() + ch.c * m_count;
    float* mx = sc.stat.data();
    float* exx = mx + ow;
    float* exy = exx + ow;
    float* srow = sc.s.data();
    // Output rows before the first are zero in the gradient ring.
    std::fill(sc.dring.begin(), sc.dring.end(), 0.f);

    for (int r = 0; r < 2 * kRadius; ++r) take_row(ch, r, w);
    for (int oy = 0; oy < oh; ++oy) {
        take_row(ch, oy + 2 * kRadius, w);
        for (int m = 0; m < kMaps; ++m) {
            const float* rows[kTaps];
            for (int i = 0; i < kTaps; ++i) rows[i] = sc.ring_row(m, oy + i);
            blur_rows(rows, ow, sc.stat.data() + static_cast<size_t>(m) * ow, w);
        }
        const float* uyr = mu_y + static_cast<int64_t>(oy) * ow;
        const float* eyr = e_yy + static_cast<int64_t>(oy) * ow;
#pragma GCC ivdep
        for (int x = 0; x < ow; ++x) {
            const float ux = mx[x], uy = uyr[x];
            const float sxx = exx[x] - ux * ux, syy = eyr[x] - uy * uy, sxy = exy[x] - ux * uy;
            const float a1 = 2.f * ux * uy + c1, a2 = 2.f * sxy + c2;
            const float b1 = ux * ux + uy * uy + c1, b2 = sxx + syy + c2;
            const float den = b1 * b2;
            const float s = (a1 * a2) / den;
            srow[x] = s;
            // S = A1 A2 / (B1 B2) with A2, B2 depending on mu_x through the variances; the
            // statistic rows are reused for dS/dmu_x, dS/dE[x^2], dS/dE[xy] (each / M).
            const float d_mu = (2.f * uy * a2 - 2.f * uy * a1) / den - s * (2.f * ux / b1 - 2.f * ux / b2);
            mx[x] = d_mu * inv_m;
            exx[x] = (-s / b2) * inv_m;
            exy[x] = (2.f * a1 / den) * inv_m;
        }
        ch.ssim += sum_lanes(srow, ow);
        if (!ch.grad) continue;
        for (int m = 0; m < kMaps; ++m)
            std::copy(sc.stat.begin() + static_cast<size_t>(m) * ow,
                      sc.stat.begin() + static_cast<size_t>(m + 1) * ow, sc.d_row(m, oy));
        finish_row(ch, oy, w);
    }
    if (ch.grad) {
        for (int r = oh; r < H; ++r) {
            for (int m = 0; m < kMaps; ++m) std::fill(sc.d_row(m, r), sc.d_row(m, r) + ow, 0.f);
            finish_row(ch, r, w);
        }
    }
    ch.l1 /= static_cast<double>(static_cast<int64_t>(H) * W);
    ch.l2 /= static_cast<double>(static_cast<int64_t>(H) * W);
    ch.ssim /= static_cast<double>(m_count);
}

void channel_pass_baseline(Channel& ch) {
    channel_pass(ch);
}

#if IGS_AVX2_VARIANT
IGS_TARGET_AVX2 void channel_pass_avx2(Channel& ch) {
    channel_pass(ch);
}
#endif

}  // namespace

LossTarget prepare_loss_target(const float* y, int height, int width, int channels) {
    LossTarget t;
    t.height = height;
    t.width = width;
    t.channels = channels;
    const int64_t n = static_cast<int64_t>(height) * width;
    const int ow = width - 2 * kRadius, oh = height - 2 * kRadius;
    const int64_t m = static_cast<int64_t>(oh) * ow;
    t.y.resize(static_cast<size_t>(n * channels));
    t.mu.resize(static_cast<size_t>(m * channels));
    t.e2.resize(static_cast<size_t>(m * channels));
    const float* w = window().w;
#pragma omp parallel for schedule(dynamic, 1) num_threads(thread_count())
    for (int c = 0; c < channels; ++c) {
        float* yc = t.y.data() + c * n;
        for (int64_t i = 0; i < n; ++i) yc[i] = y[i * channels + c];
        std::vector<float> sq(static_cast<size_t>(width)), tmp(static_cast<size_t>(height) * ow),
            tmp2(static_cast<size_t>(height) * ow);
        for (int r = 0; r < height; ++r) {
            const float* yr = yc + static_cast<int64_t>(r) * width;
            for (int i = 0; i < width; ++i) sq[i] = yr[i] * yr[i];
            blur_row(yr, ow, tmp.data() + static_cast<size_t>(r) * ow, w);
            blur_row(sq.data(), ow, tmp2.data() + static_cast<size_t>(r) * ow, w);
        }
        float* mu = t.mu.data() + c * m;
        float* e2 = t.e2.data() + c * m;
        // The same blur across rows as the render's statistics get (taps11), so both sides of
        // the SSIM terms round alike.
        for (int oy = 0; oy < oh; ++oy) {
            const float* rows_y[kTaps];
            const float* rows_y2[kTaps];
            for (int i = 0; i < kTaps; ++i) {
                rows_y[i] = tmp.data() + static_cast<size_t>(oy + i) * ow;
                rows_y2[i] = tmp2.data() + static_cast<size_t>(oy + i) * ow;
            }
            blur_rows(rows_y, ow, mu + static_cast<int64_t>(oy) * ow, w);
            blur_rows(rows_y2, ow, e2 + static_cast<int64_t>(oy) * ow, w);
        }
    }
    return t;
}

void loss_terms(const LossTarget& target, const float* x, const float* l1_scale, const float* l2_scale,
                const float* ssim_scale, ChannelTerms* terms, float* grad) {
    auto* pass = &channel_pass_baseline;
#if IGS_AVX2_VARIANT
    if (simd_avx2()) pass = &channel_pass_avx2;
#endif
    const int C = target.channels;
    const int64_t n = static_cast<int64_t>(target.height) * target.width;
    // Channel rows are walked one channel at a time; read straight from the interleaved
    // image, every row would touch a cache line per texel, C times over (measured: the
    // strided loads and stores cost more than all the blurs). One planar copy each way is
    // far less memory traffic.
    std::vector<float>& xs = target.x_planar;
    std::vector<float>& gs = target.grad_planar;
    xs.resize(static_cast<size_t>(n * C));
    if (grad) gs.resize(static_cast<size_t>(n * C));
    const int threads = thread_count();
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; ++i)
        for (int c = 0; c < C; ++c) xs[c * n + i] = x[i * C + c];
            // One channel per thread: each channel's sums run in one fixed order, so the result does
            // not depend on the thread count.
#pragma omp parallel num_threads(std::max(1, std::min(threads, C)))
    {
        Scratch sc;
        sc.size(target.width, target.width - 2 * kRadius);
#pragma omp for schedule(dynamic, 1)
        for (int c = 0; c < C; ++c) {
            Channel ch{
                &target, xs.data(), c, l1_scale[c], l2_scale[c], ssim_scale[c], grad ? gs.data() : nullptr,
                &sc};
            pass(ch);
            terms[c] = {ch.l1, ch.l2, ch.ssim};
        }
    }
    if (!grad) return;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; ++i)
        for (int c = 0; c < C; ++c) grad[i * C + c] = gs[c * n + i];
}

void ssim_channels(const float* x, const float* y, int height, int width, int channels, double* ssim_out,
                   float* grad_out) {
    const LossTarget t = prepare_loss_target(y, height, width, channels);
    std::vector<float> zero(static_cast<size_t>(channels), 0.f), one(static_cast<size_t>(channels), 1.f);
    std::vector<ChannelTerms> terms(static_cast<size_t>(channels));
    loss_terms(t, x, zero.data(), zero.data(), one.data(), terms.data(), grad_out);
    for (int c = 0; c < channels; ++c) ssim_out[c] = terms[c].ssim;
}

}  // namespace cpu
}  // namespace igs
