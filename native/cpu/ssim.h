// The training loss L1 + lambda (1 - SSIM) and its gradient, fused in one streaming pass.
//
// SSIM follows Wang et al. 2004 as igs_tex.metrics.ssim_map does: 11-tap Gaussian
// window (sigma 1.5), K1 0.01, K2 0.03, data range 1, 'valid' windows; float32 maps, double
// sums. In PyTorch the loss (grouped convolutions, abs, means and their autograd) took ten
// times longer than rendering on a 2-core CPU; here the render's statistics are blurred row by
// row through 11-row ring buffers that stay in L2, the target's are computed once per fit, and
// the L1 term rides along in the same pass.
#pragma once

#include <cstdint>
#include <vector>

namespace igs {
namespace cpu {

// The target side of the loss, prepared once per fit: planar target, its window means and
// window means of squares (the blurs of y and y^2 never change while fitting).
struct LossTarget {
    int height = 0, width = 0, channels = 0;
    std::vector<float> y;   // [C][H*W]
    std::vector<float> mu;  // [C][(H-10)*(W-10)]
    std::vector<float> e2;  // [C][(H-10)*(W-10)]
    // Planar staging of the render and its gradient, kept between steps so their pages are
    // not faulted in again every call. A LossTarget therefore serves one caller at a time.
    mutable std::vector<float> x_planar, grad_planar;
};

// y: [H, W, C] interleaved. Requires H >= 11 and W >= 11.
LossTarget prepare_loss_target(const float* y, int height, int width, int channels);

struct ChannelTerms {
    double l1;    // mean |x - y| over the channel
    double l2;    // mean (x - y)^2 over the channel
    double ssim;  // mean SSIM over the channel's valid windows
};

// x: [H, W, C] interleaved render. Fills terms[C]; when grad is not null writes
//   grad[p, c] = l1_scale[c] sign(x - y) + l2_scale[c] 2 (x - y) + ssim_scale[c] d ssim_c / d x
// (sign(0) = 0, as torch's abs backward), so the caller picks the weighting.
void loss_terms(const LossTarget& target, const float* x, const float* l1_scale, const float* l2_scale,
                const float* ssim_scale, ChannelTerms* terms, float* grad);

// Per-channel mean SSIM of x against y and, when grad_out is not null, d ssim_c / d x.
void ssim_channels(const float* x, const float* y, int height, int width, int channels, double* ssim_out,
                   float* grad_out);

}  // namespace cpu
}  // namespace igs
