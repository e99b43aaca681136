// CPU forward/backward of the rendering contract over plain float32 buffers.
//
// Buffers are C-contiguous: means [N,2], theta [N], inv_scale [N,2], colour [N,C],
// image / grad_out [H,W,C], topk [H*W,K] (global Gaussian indices, ascending within a
// texel, -1 padding when a tile lists fewer than K Gaussians).
//
// Determinism: every texel is computed by one thread, every (tile, Gaussian) gradient
// partial by one thread, and partials are summed per Gaussian in tile order by a fixed
// loop. Output bytes therefore do not depend on the thread count or the schedule.
#pragma once

#include <cstdint>
#include <vector>

#include "igs/tiles.h"

namespace igs {
namespace cpu {

struct Params {
    const float* means;      // [N, 2]
    const float* theta;      // [N]
    const float* inv_scale;  // [N, 2]
    const float* colour;     // [N, C]
    int64_t count;
    int channels;
};

struct Shape {
    int height, width, tile, k;
    float eps;
};

struct TileLists {
    const int64_t* offsets;  // [tiles + 1]
    const int32_t* indices;  // [offsets[tiles]], ascending within each tile
};

struct Grads {
    float* means;      // [N, 2]
    float* theta;      // [N]
    float* inv_scale;  // [N, 2]
    float* colour;     // [N, C]
};

// Row-major tile lists, ascending Gaussian index within a tile; equal to
// igs_tex.render.tiles.build_tile_lists.
void bin_tiles(const float* means, const float* inv_scale, int64_t count, const TileGrid& grid,
               std::vector<int64_t>& offsets, std::vector<int32_t>& indices);

// fast = false runs the per-texel header functions literally (what a CUDA thread does);
// fast = true is the vectorised tile kernel. Both implement the same contract.
void forward(const Params& p, const Shape& s, const TileLists& lists, float* image,
             int32_t* topk, bool fast);

// Grads are overwritten. image and topk must come from forward() with the same inputs;
// returns false (grads unspecified) when topk names a Gaussian its texel's tile does not list.
bool backward(const Params& p, const Shape& s, const TileLists& lists, const float* grad_out,
              const float* image, const int32_t* topk, const Grads& out, bool fast);

// G of each saved top-K entry (0 for padding), for tests and debugging.
void topk_weights(const Params& p, const Shape& s, const int32_t* topk, float* weights);

}  // namespace cpu
}  // namespace igs
