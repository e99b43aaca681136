// C API of the CUDA renderer: raw device pointers in, status codes out.
//
// Plain C on purpose: igs_tex/render/cuda.py loads the library with ctypes, so the build
// needs nvcc and nothing else (no Python headers, pybind11 or ninja on the GPU machine), and
// every buffer is allocated by the caller (torch's caching allocator), never in here.
//
// All pointers are device pointers, C-contiguous, float32 unless named otherwise:
//   means [N,2], theta [N], inv_scale [N,2], colour [N,C], image / grad_out [H,W,C],
//   table [N,6] (the per-step Gaussian table igs::Gaussian: mx, my, cos, sin, ax, ay).
// `stream` is a cudaStream_t passed as void* so this header needs no CUDA include.
// Every call is asynchronous on `stream` except where it says otherwise.
#pragma once

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define IGS_CUDA_API __declspec(dllexport)
#else
#define IGS_CUDA_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

// Bumped whenever a signature below changes; cuda.py refuses a library built for another.
#define IGS_CUDA_ABI_VERSION 1

// 0 is success, positive values are cudaError_t codes, negative values are ours.
enum igs_cuda_status {
    IGS_CUDA_OK = 0,
    IGS_CUDA_ERR_ARGUMENT = -1,  // a size is negative, a pointer is null, C < 1
    IGS_CUDA_ERR_TILE = -2,      // tile outside [1, 32] (one thread per texel of a tile)
    IGS_CUDA_ERR_K = -3,         // k outside [1, igs::kMaxK]
    IGS_CUDA_ERR_TOO_MANY = -4,  // N or the (tile, Gaussian) pair count exceeds 2^31 - 1
    IGS_CUDA_ERR_WORKSPACE = -5  // workspace smaller than the *_workspace call asked for
};

IGS_CUDA_API int igs_cuda_abi_version(void);
// Static text for any status this API returned (cudaGetErrorString for positive codes).
IGS_CUDA_API const char* igs_cuda_status_string(int status);
// Number of visible devices, or a negative cudaError_t code (e.g. no driver).
IGS_CUDA_API int igs_cuda_device_count(void);
// cudaSetDevice for this library's runtime. The library links the CUDA runtime statically, so
// its current device is its own, not torch's: the caller selects the device of its tensors
// before each group of calls.
IGS_CUDA_API int igs_cuda_set_device(int device);

// table[i] = {mx, my, cos theta, sin theta, ax, ay}: cos/sin once per step, not per texel.
IGS_CUDA_API int igs_cuda_prepare(const float* means, const float* theta, const float* inv_scale, int64_t n,
                                  float* table, void* stream);

// Tile binning, two calls because the pair count must reach the host to size buffers:
//   1. igs_cuda_bin_count: per-Gaussian tile counts and their exclusive scan into
//      gaussian_offsets [N+1]; gaussian_offsets[N] is the pair count P.
//   2. the caller reads P, allocates indices [P] (int32) and tile_offsets [tiles+1] (int64);
//      igs_cuda_bin_fill emits (tile, Gaussian) pairs, stable-radix-sorts them by tile and
//      writes the tile ranges. Lists come out ascending in Gaussian index, equal to
//      igs_tex.render.tiles.build_tile_lists and to the CPU igs::cpu::bin_tiles.
// The *_workspace calls give the scratch size in bytes (synchronous, launch nothing).
IGS_CUDA_API int igs_cuda_bin_count_workspace(int64_t n, size_t* bytes);
IGS_CUDA_API int igs_cuda_bin_count(const float* means, const float* inv_scale, int64_t n, int height,
                                    int width, int tile, int64_t* gaussian_offsets, void* workspace,
                                    size_t workspace_bytes, void* stream);
IGS_CUDA_API int igs_cuda_bin_fill_workspace(int64_t pairs, int height, int width, int tile, size_t* bytes);
IGS_CUDA_API int igs_cuda_bin_fill(const float* means, const float* inv_scale, int64_t n, int height,
                                   int width, int tile, const int64_t* gaussian_offsets, int64_t pairs,
                                   int64_t* tile_offsets, int32_t* indices, void* workspace,
                                   size_t workspace_bytes, void* stream);

// image [H,W,C] and topk [H*W, k]: the global indices each texel kept, ascending, -1 padded
// (the layout of the CPU selection_topk()). The backward reads the selection from topk.
IGS_CUDA_API int igs_cuda_forward(const float* table, const float* colour, int64_t n, int channels,
                                  int height, int width, int tile, int k, float eps,
                                  const int64_t* tile_offsets, const int32_t* indices, float* image,
                                  int32_t* topk, void* stream);

// Gradients are ADDED to grad_* (zero them first). image and topk come from igs_cuda_forward
// with the same inputs. Summation order follows atomics, so the last bits vary run to run.
IGS_CUDA_API int igs_cuda_backward(const float* table, const float* colour, int64_t n, int channels,
                                   int height, int width, int tile, int k, float eps,
                                   const int64_t* tile_offsets, const int32_t* indices, const float* grad_out,
                                   const float* image, const int32_t* topk, float* grad_means,
                                   float* grad_theta, float* grad_inv_scale, float* grad_colour,
                                   void* stream);

#ifdef __cplusplus
}  // extern "C"
#endif
