// CPU forward/backward of the rendering contract over plain float32 buffers.
//
// Buffers are C-contiguous: means [N,2], theta [N], inv_scale [N,2], colour [N,C],
// image / grad_out [H,W,C].
//
// Determinism: every texel is computed by one thread, every (tile, Gaussian) gradient
// partial by one thread, and partials are summed per Gaussian in tile order by a fixed
// loop. Output bytes therefore do not depend on the thread count or the schedule. The forward
// gives the same bytes in every SIMD variant (see tile_data.h); the backward's AVX2 copy fuses
// multiply-adds, so its gradients differ from the SSE baseline's in the last bits
// (backward.cpp, IGS_FUSED), and are the same bytes on every machine with AVX2.
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

// The per-texel top-K the forward found, kept for the backward ("selection").
// Tiles listing at most K Gaussians keep their whole list at every texel and store nothing.
// A tile listing L > K stores rows [ny] x listed Gaussians [L] x lane bytes [lanes/8]
// (lanes = lanes_for(tile) in tile_data.h: 8, 16, 32 or 64 up to T = 64, beyond that T
// rounded up to a multiple of 8): bit x % 8 of byte x / 8 is set when texel
// (x0 + x, y0 + row) kept that Gaussian. That is L*T*T/8 bytes per tile where per-texel int32
// indices would take 4*K*T*T, and the forward produces it from its lane masks directly.
int selection_lane_bytes(int tile);
// Fills offsets [tiles + 1] (byte offset of each tile's block) and returns the total size.
int64_t selection_offsets(const Shape& s, const TileLists& lists, int64_t* offsets);
// Expands a selection to topk [H*W, K]: kept global indices, ascending, -1 padded.
void selection_topk(const Shape& s, const TileLists& lists, const int64_t* sel_offsets,
                    const uint8_t* sel_masks, int32_t* topk);

// fast = false runs the per-texel header functions literally (what a CUDA thread does);
// fast = true is the vectorised tile kernel. Both implement the same contract and make the
// same selection. sel_offsets comes from selection_offsets(); sel_masks is written.
void forward(const Params& p, const Shape& s, const TileLists& lists, float* image,
             const int64_t* sel_offsets, uint8_t* sel_masks, bool fast);

// Grads are overwritten. The selection must come from forward() with the same inputs: the
// backward reuses the forward's choices instead of selecting again and recomputes the kept
// G; it needs neither the image nor a re-blend (backward.cpp, octet_terms).
void backward(const Params& p, const Shape& s, const TileLists& lists, const float* grad_out,
              const int64_t* sel_offsets, const uint8_t* sel_masks, const Grads& out, bool fast);

// G of each saved top-K entry (0 for padding), for tests and debugging.
void topk_weights(const Params& p, const Shape& s, const int32_t* topk, float* weights);

}  // namespace cpu
}  // namespace igs
