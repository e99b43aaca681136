// Forward: one block per tile, one thread per texel.
//
// The tile's list is walked in chunks of blockDim Gaussians: the block stages a chunk of
// table entries in shared memory (each thread loads one), then every thread evaluates the
// whole chunk at its texel centre and pushes it into its own top-K. This is, call for call,
// igs::select_texel + igs::blend (native/include/igs/texel.h), which is what the CPU
// "simple" path runs; only the staging differs.
//
// The top-K is igs::TopKFixed<K> (registers) for the K of kFixedK, else igs::TopKSorted
// (local memory); both make the same comparisons, so the choice changes no result.
#include "igs/texel.h"
#include "launch.cuh"

namespace igs {
namespace cuda {
namespace {

// One kernel instance per K up to here; above it the run-time K version. 16 keeps the top-K's
// 32 registers inside the 64 a thread may use at 1024 threads a block.
constexpr int kFixedK = 16;

template <int K>
struct Selection {
    using type = TopKFixed<K>;
};
template <>
struct Selection<0> {
    using type = TopKSorted;
};

template <int K>
__global__ void __launch_bounds__(1024)
    forward_kernel(const Gaussian* __restrict__ table, const float* __restrict__ colour, int channels,
                   TileGrid grid, const int64_t* __restrict__ tile_offsets,
                   const int32_t* __restrict__ tile_indices, int k, float eps, float* __restrict__ image,
                   int32_t* __restrict__ topk) {
    Gaussian* chunk = reinterpret_cast<Gaussian*>(igs_shared);
    const int t = blockIdx.x;
    const TexelSlot ts = texel_slot(grid, t, threadIdx.x);
    const float px = texel_centre(ts.x), py = texel_centre(ts.y);
    const int64_t start = tile_offsets[t];
    const int32_t* list = tile_indices + start;
    const int L = static_cast<int>(tile_offsets[t + 1] - start);

    typename Selection<K>::type top;
    top.reset(k);
    for (int base = 0; base < L; base += blockDim.x) {
        const int m = min(static_cast<int>(blockDim.x), L - base);
        __syncthreads();  // the previous chunk is no longer being read
        if (static_cast<int>(threadIdx.x) < m) chunk[threadIdx.x] = table[list[base + threadIdx.x]];
        __syncthreads();
        if (ts.inside)
            // Pushed under list positions: lists ascend in Gaussian index, so ranking ties by
            // position is the contract's "ties to the lower index".
            for (int q = 0; q < m; ++q) top.push(eval(chunk[q], px, py), base + q);
    }
    if (!ts.inside) return;  // no barrier follows

    // Copied out under constant indices, so a register top-K stays in registers.
    constexpr int kCap = decltype(top)::kCapacity;
    float g[kCap];
    int32_t pos[kCap], idx[kCap];
#pragma unroll
    for (int q = 0; q < kCap; ++q) {
        g[q] = q < top.n ? top.g[q] : 0.0f;
        pos[q] = q < top.n ? top.idx[q] : 0;
        idx[q] = -1;
    }
    // Blended in list (= ascending index) order, as the CPU forward and the decoder blend: the
    // same sums in the same order. Saved in that order too (the CPU selection_topk layout), so
    // the backward can walk the tile list and its selection together in one pass.
    // n <= kCap always; spelled out so the host compiler can see the arrays are never overrun.
    const int n = top.n < kCap ? top.n : kCap;
    sort_by_index(n, g, pos);
    for (int q = 0; q < n; ++q) idx[q] = list[pos[q]];
    const int64_t texel = static_cast<int64_t>(ts.y) * grid.width + ts.x;
    blend(n, idx, g, colour, channels, eps, image + texel * channels);
    int32_t* row = topk + texel * k;
    for (int q = 0; q < n; ++q) row[q] = idx[q];
    for (int q = n; q < k; ++q) row[q] = -1;
}

struct ForwardArgs {
    const Gaussian* table;
    const float* colour;
    int channels;
    TileGrid grid;
    const int64_t* tile_offsets;
    const int32_t* indices;
    int k;
    float eps;
    float* image;
    int32_t* topk;
};

template <int K>
int launch_forward(const ForwardArgs& a, unsigned tiles, int threads, size_t shared, cudaStream_t stream) {
    IGS_LAUNCH(forward_kernel<K>, tiles, threads, shared, stream)
    (a.table, a.colour, a.channels, a.grid, a.tile_offsets, a.indices, a.k, a.eps, a.image, a.topk);
    return launch_status();
}

// launch_forward<k> for k <= kFixedK, the run-time version (K = 0) above.
template <int K>
int dispatch_forward(const ForwardArgs& a, unsigned tiles, int threads, size_t shared, cudaStream_t stream) {
    if (a.k == K) return launch_forward<K>(a, tiles, threads, shared, stream);
    if constexpr (K < kFixedK) return dispatch_forward<K + 1>(a, tiles, threads, shared, stream);
    return launch_forward<0>(a, tiles, threads, shared, stream);
}

}  // namespace
}  // namespace cuda
}  // namespace igs

using namespace igs::cuda;

extern "C" IGS_CUDA_API int igs_cuda_forward(const float* table, const float* colour, int64_t n, int channels,
                                             int height, int width, int tile, int k, float eps,
                                             const int64_t* tile_offsets, const int32_t* indices,
                                             float* image, int32_t* topk, void* stream) {
    const int s = check_render(n, channels, height, width, tile, k, eps);
    if (s != IGS_CUDA_OK) return s;
    const igs::TileGrid grid = igs::make_tile_grid(height, width, tile);
    const int64_t tiles = tile_count(grid);
    if (tiles == 0) return IGS_CUDA_OK;
    if (tiles > kInt32Max) return IGS_CUDA_ERR_TOO_MANY;
    if (!tile_offsets || !image || !topk) return IGS_CUDA_ERR_ARGUMENT;
    if (n > 0 && (!table || !colour || !indices)) return IGS_CUDA_ERR_ARGUMENT;
    const int threads = threads_for(tile);
    const size_t shared = static_cast<size_t>(threads) * sizeof(igs::Gaussian);
    const ForwardArgs args{reinterpret_cast<const igs::Gaussian*>(table),
                           colour,
                           channels,
                           grid,
                           tile_offsets,
                           indices,
                           k,
                           eps,
                           image,
                           topk};
    return dispatch_forward<1>(args, static_cast<unsigned>(tiles), threads, shared,
                               static_cast<cudaStream_t>(stream));
}
