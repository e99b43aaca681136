// Backward: one block per tile, one thread per texel, as in the forward.
//
// Phase 1 (per texel): read the K indices the forward kept (ascending), re-evaluate their G
// with the same table (bit-identical to the forward's), and run igs::blend_backward for
// dL/dG_k and the colour weights w_k.
// Phase 2 (per tile list entry): the block stages the tile's list in shared-memory chunks and
// walks it in order. Each thread advances a cursor through its own ascending selection, so at
// list entry j it knows in O(1) whether it kept j. A warp that has no lane keeping j skips it
// (__any_sync); otherwise every lane forms its contribution (zero if it did not keep j) to
// the six GeomMoments sums and the C colour sums, the warp adds them with __shfl_down_sync,
// and lane 0 turns the moments into parameter gradients (igs::moments_to_grad, linear in the
// moments) and atomically adds them. That is one atomic per (warp, Gaussian, value) instead of
// one per (texel, Gaussian, value).
#include "igs/texel.h"
#include "launch.cuh"

namespace igs {
namespace cuda {
namespace {

__global__ void __launch_bounds__(1024)
    backward_kernel(const Gaussian* __restrict__ table, const float* __restrict__ colour, int channels,
                    TileGrid grid, const int64_t* __restrict__ tile_offsets,
                    const int32_t* __restrict__ tile_indices, int k, float eps,
                    const float* __restrict__ grad_out, const float* __restrict__ image,
                    const int32_t* __restrict__ topk, float* __restrict__ grad_means,
                    float* __restrict__ grad_theta, float* __restrict__ grad_inv_scale,
                    float* __restrict__ grad_colour) {
    Gaussian* chunk = reinterpret_cast<Gaussian*>(igs_shared);
    int32_t* chunk_id = reinterpret_cast<int32_t*>(chunk + blockDim.x);
    const int t = blockIdx.x;
    const TexelSlot ts = texel_slot(grid, t, threadIdx.x);
    const float px = texel_centre(ts.x), py = texel_centre(ts.y);
    const int64_t start = tile_offsets[t];
    const int32_t* list = tile_indices + start;
    const int L = static_cast<int>(tile_offsets[t + 1] - start);
    if (L == 0) return;  // uniform over the block: nothing to differentiate, no barrier skipped
    const bool lane0 = (threadIdx.x & 31) == 0;

    int n = 0;
    int32_t idx[kMaxK];
    float G[kMaxK], dLdG[kMaxK], w[kMaxK];
    const float* g_texel = nullptr;
    if (ts.inside) {
        const int64_t texel = static_cast<int64_t>(ts.y) * grid.width + ts.x;
        const int32_t* row = topk + texel * k;
        for (int q = 0; q < k; ++q)
            if (row[q] >= 0) idx[n++] = row[q];
        float s = 0.0f;
        for (int q = 0; q < n; ++q) {
            G[q] = eval(table[idx[q]], px, py);
            s += G[q];
        }
        g_texel = grad_out + texel * channels;
        blend_backward(n, idx, G, colour, channels, s, eps, image + texel * channels, g_texel, dLdG, w);
    }

    int cursor = 0;  // next entry of idx[] not yet matched against the list
    // idx[cursor] in a register: the arrays live in local memory, and this is compared at every
    // list entry while the cursor moves only n <= K times. List indices are >= 0.
    int32_t want = n > 0 ? idx[0] : -1;
    for (int base = 0; base < L; base += blockDim.x) {
        const int m = min(static_cast<int>(blockDim.x), L - base);
        __syncthreads();
        if (static_cast<int>(threadIdx.x) < m) {
            const int32_t gi = list[base + threadIdx.x];
            chunk_id[threadIdx.x] = gi;
            chunk[threadIdx.x] = table[gi];
        }
        __syncthreads();
        for (int q = 0; q < m; ++q) {
            const int32_t gi = chunk_id[q];
            const bool mine = want == gi;
            if (!__any_sync(kFullMask, mine)) continue;  // warp-uniform
            const Gaussian gs = chunk[q];
            GeomMoments mo = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
            float wk = 0.0f;
            if (mine) {
                texel_geom_backward(gs, px, py, G[cursor], dLdG[cursor], mo);
                wk = w[cursor];
                ++cursor;
                want = cursor < n ? idx[cursor] : -1;
            }
            mo.su = warp_sum(mo.su);
            mo.sv = warp_sum(mo.sv);
            mo.suv = warp_sum(mo.suv);
            mo.svu = warp_sum(mo.svu);
            mo.suu = warp_sum(mo.suu);
            mo.svv = warp_sum(mo.svv);
            if (lane0) {
                const GeomGrad gg = moments_to_grad(gs, mo);
                atomicAdd(grad_means + 2 * static_cast<int64_t>(gi), gg.mx);
                atomicAdd(grad_means + 2 * static_cast<int64_t>(gi) + 1, gg.my);
                atomicAdd(grad_theta + gi, gg.theta);
                atomicAdd(grad_inv_scale + 2 * static_cast<int64_t>(gi), gg.ax);
                atomicAdd(grad_inv_scale + 2 * static_cast<int64_t>(gi) + 1, gg.ay);
            }
            float* dc = grad_colour + static_cast<int64_t>(gi) * channels;
            for (int c = 0; c < channels; ++c) {
                // dL/dc_k = w_k g, as blend_backward defines w_k.
                const float v = warp_sum(mine ? wk * g_texel[c] : 0.0f);
                if (lane0) atomicAdd(dc + c, v);
            }
        }
    }
}

}  // namespace
}  // namespace cuda
}  // namespace igs

using namespace igs::cuda;

extern "C" IGS_CUDA_API int igs_cuda_backward(const float* table, const float* colour, int64_t n,
                                              int channels, int height, int width, int tile, int k, float eps,
                                              const int64_t* tile_offsets, const int32_t* indices,
                                              const float* grad_out, const float* image, const int32_t* topk,
                                              float* grad_means, float* grad_theta, float* grad_inv_scale,
                                              float* grad_colour, void* stream) {
    const int s = check_render(n, channels, height, width, tile, k, eps);
    if (s != IGS_CUDA_OK) return s;
    const igs::TileGrid grid = igs::make_tile_grid(height, width, tile);
    const int64_t tiles = tile_count(grid);
    if (tiles == 0 || n == 0) return IGS_CUDA_OK;  // nothing listed, gradients stay as given
    if (tiles > kInt32Max) return IGS_CUDA_ERR_TOO_MANY;
    if (!table || !colour || !tile_offsets || !indices || !grad_out || !image || !topk || !grad_means ||
        !grad_theta || !grad_inv_scale || !grad_colour)
        return IGS_CUDA_ERR_ARGUMENT;
    const int threads = threads_for(tile);
    const size_t shared = static_cast<size_t>(threads) * (sizeof(igs::Gaussian) + sizeof(int32_t));
    IGS_LAUNCH(backward_kernel, static_cast<unsigned>(tiles), threads, shared,
               static_cast<cudaStream_t>(stream))
    (reinterpret_cast<const igs::Gaussian*>(table), colour, channels, grid, tile_offsets, indices, k, eps,
     grad_out, image, topk, grad_means, grad_theta, grad_inv_scale, grad_colour);
    return launch_status();
}
