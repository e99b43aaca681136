// Internal to native/cuda: argument checks, launch geometry and warp helpers shared by the
// kernels. No contract math lives here; that is native/include/igs (DESIGN.md, "Reference
// and fast paths").
#pragma once

#include <cuda_runtime.h>  // native/cuda/emu/cuda_runtime.h in the CPU emulator build

#include <cstddef>
#include <cstdint>

#include "igs/common.h"
#include "igs/gaussian.h"
#include "igs/tiles.h"
#include "igs_cuda.cuh"

// kernel<<<blocks, threads, shared, stream>>>, spelled so that a host compiler can read it too:
// the CPU emulator (native/cuda/emu, IGS_CUDA_EMULATOR) runs the same kernel sources.
#if defined(__CUDACC__)
#define IGS_LAUNCH(kernel, blocks, threads, shared, stream) kernel<<<blocks, threads, shared, stream>>>
#elif defined(IGS_CUDA_EMULATOR)
#define IGS_LAUNCH(kernel, blocks, threads, shared, stream) ::igs_emu::launch(kernel, blocks, threads, shared)
#else
#error "native/cuda builds with nvcc, or with a host compiler and -DIGS_CUDA_EMULATOR"
#endif

namespace igs {
namespace cuda {

// The C API hands the Gaussian table around as float [N, 6].
static_assert(sizeof(Gaussian) == 6 * sizeof(float), "igs::Gaussian must be six packed floats");

// One thread per texel of a tile and a block holds at most 1024 threads.
constexpr int kMaxTile = 32;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kInt32Max = 2147483647;

inline int status_of(cudaError_t e) {
    return e == cudaSuccess ? IGS_CUDA_OK : static_cast<int>(e);
}

// A launch error (bad configuration, no device) shows up here; faults inside the kernel
// surface at the caller's next synchronising call, as for any asynchronous CUDA work.
inline int launch_status() {
    return status_of(cudaGetLastError());
}

// Blocks are whole warps: the backward's __shfl_down_sync / __any_sync use the full mask, and
// a warp that hardware leaves partially populated would make that undefined. Threads past
// tile * tile own no texel and only help stage Gaussians.
inline int threads_for(int tile) {
    return (tile * tile + 31) / 32 * 32;
}

inline int check_image(int height, int width, int tile) {
    if (height < 0 || width < 0) return IGS_CUDA_ERR_ARGUMENT;
    if (tile < 1 || tile > kMaxTile) return IGS_CUDA_ERR_TILE;
    return IGS_CUDA_OK;
}

inline int check_render(int64_t n, int channels, int height, int width, int tile, int k, float eps) {
    const int s = check_image(height, width, tile);
    if (s != IGS_CUDA_OK) return s;
    if (n < 0 || channels < 1 || !(eps >= 0.0f)) return IGS_CUDA_ERR_ARGUMENT;
    if (n > kInt32Max) return IGS_CUDA_ERR_TOO_MANY;
    if (k < 1 || k > kMaxK) return IGS_CUDA_ERR_K;
    return IGS_CUDA_OK;
}

inline int64_t tile_count(const TileGrid& g) {
    return static_cast<int64_t>(g.tiles_x) * g.tiles_y;
}

// Carves aligned sub-buffers out of one caller-provided workspace; with base == nullptr it
// only measures, so the *_workspace queries and the real calls share one layout.
struct Carve {
    char* base;
    size_t used = 0;
    explicit Carve(void* b) : base(static_cast<char*>(b)) {}
    template <class T>
    T* take(size_t count) {
        used = (used + 255) / 256 * 256;
        T* p = base ? reinterpret_cast<T*>(base + used) : nullptr;
        used += count * sizeof(T);
        return p;
    }
};

// The texel a thread owns inside tile `t`.
struct TexelSlot {
    int x, y;     // image coordinates
    bool inside;  // false for padding threads and for the cut-off part of edge tiles
};

__device__ inline TexelSlot texel_slot(const TileGrid& g, int t, int thread) {
    TexelSlot s;
    const int tx = t % g.tiles_x, ty = t / g.tiles_x;
    s.x = tx * g.tile + thread % g.tile;
    s.y = ty * g.tile + thread / g.tile;
    s.inside = thread < g.tile * g.tile && s.x < g.width && s.y < g.height;
    return s;
}

// Sum over the 32 lanes; the total lands in lane 0 (other lanes hold partial sums).
__device__ inline float warp_sum(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(kFullMask, v, offset);
    return v;
}

// Dynamic shared memory, declared once per translation unit with the same type everywhere.
extern __shared__ __align__(16) unsigned char igs_shared[];

}  // namespace cuda
}  // namespace igs
