// SSIM (Wang et al. 2004: 11-tap Gaussian window, sigma 1.5, K1 0.01, K2 0.03, data range 1,
// 'valid' windows) and its gradient with respect to the first image, for the training loss.
//
// The fitter's loss is L1 + 0.1 (1 - SSIM); in PyTorch the SSIM's grouped convolutions cost
// more than rendering itself on a 2-core CPU, so the loss gets a native twin of
// igs_tex.report.metrics.ssim_map. Same window, same formula, float32 maps, double sums.
#pragma once

#include <cstdint>

namespace igs {
namespace cpu {

// x, y: [H, W, C] interleaved. Writes per-channel mean SSIM to ssim_out [C] and, when
// grad_out is not null, d(mean SSIM of channel c)/d x into grad_out [H, W, C].
// Requires H >= 11 and W >= 11.
void ssim_channels(const float* x, const float* y, int height, int width, int channels,
                   double* ssim_out, float* grad_out);

}  // namespace cpu
}  // namespace igs
