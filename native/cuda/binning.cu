// Per-step Gaussian table and tile binning on the device.
//
// Binning: count the tiles each Gaussian meets, exclusive-scan the counts into per-Gaussian
// write offsets, emit one (tile, Gaussian) pair per hit in Gaussian-major order, stable radix
// sort the pairs by tile, then find where each tile's run starts. Every tile test is
// igs::for_each_tile_of (native/include/igs/tiles.h), the same float64 code the CPU binning
// and its tests run, so the lists agree bit for bit with tiles.build_tile_lists.
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include "launch.cuh"

namespace igs {
namespace cuda {
namespace {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t items) {
    return static_cast<unsigned>((items + kThreads - 1) / kThreads);
}

__global__ void prepare_kernel(const float* __restrict__ means, const float* __restrict__ theta,
                               const float* __restrict__ inv_scale, int64_t n, Gaussian* __restrict__ table) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    // cos/sin in double, rounded once to float: the correctly rounded value in all but
    // astronomically rare cases, so the table sits as close to the float64 contract as a
    // float table can (the CPU's cosf differs from it by 1 ulp for ~1% of angles).
    const double t = static_cast<double>(theta[i]);
    Gaussian g;
    g.mx = means[2 * i];
    g.my = means[2 * i + 1];
    g.cs = static_cast<float>(cos(t));
    g.sn = static_cast<float>(sin(t));
    g.ax = inv_scale[2 * i];
    g.ay = inv_scale[2 * i + 1];
    table[i] = g;
}

// counts has n + 1 entries; the last is 0 so the exclusive scan's last output is the total.
__global__ void count_kernel(const float* __restrict__ means, const float* __restrict__ inv_scale, int64_t n,
                             TileGrid grid, int64_t* __restrict__ counts) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i > n) return;
    int64_t hits = 0;
    if (i < n)
        for_each_tile_of(grid, means[2 * i], means[2 * i + 1], inv_scale[2 * i], inv_scale[2 * i + 1],
                         [&](int) { ++hits; });
    counts[i] = hits;
}

// Pairs of Gaussian i go to [offsets[i], offsets[i+1]) in the row-major tile order the visit
// produces; the sort below is stable, so Gaussian-major input gives ascending lists per tile.
__global__ void emit_kernel(const float* __restrict__ means, const float* __restrict__ inv_scale, int64_t n,
                            TileGrid grid, const int64_t* __restrict__ offsets, uint32_t* __restrict__ keys,
                            int32_t* __restrict__ values) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int64_t at = offsets[i];
    const int32_t gi = static_cast<int32_t>(i);
    for_each_tile_of(grid, means[2 * i], means[2 * i + 1], inv_scale[2 * i], inv_scale[2 * i + 1],
                     [&](int t) {
                         keys[at] = static_cast<uint32_t>(t);
                         values[at] = gi;
                         ++at;
                     });
}

// Thread p looks at the boundary between sorted pairs p - 1 and p (p in [0, pairs]) and
// writes the start of every tile whose run begins there, empty tiles included, so each
// tile_offsets entry is written exactly once and tile_offsets[tiles] = pairs.
__global__ void ranges_kernel(const uint32_t* __restrict__ keys, int64_t pairs, int64_t tiles,
                              int64_t* __restrict__ tile_offsets) {
    const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (p > pairs) return;
    const int64_t before = p == 0 ? -1 : static_cast<int64_t>(keys[p - 1]);
    const int64_t here = p == pairs ? tiles : static_cast<int64_t>(keys[p]);
    for (int64_t t = before + 1; t <= here; ++t) tile_offsets[t] = p;
}

// Bits the radix sort must look at: enough for the largest tile id.
int key_bits(int64_t tiles) {
    int bits = 1;
    while (bits < 32 && (int64_t(1) << bits) < tiles) ++bits;
    return bits;
}

// One layout for measuring and for use: counts [n + 1], then CUB's scan scratch.
cudaError_t count_layout(int64_t n, Carve& c, int64_t** counts, void** cub_temp, size_t* cub_bytes) {
    *counts = c.take<int64_t>(static_cast<size_t>(n) + 1);
    *cub_bytes = 0;
    const cudaError_t e =
        cub::DeviceScan::ExclusiveSum(nullptr, *cub_bytes, static_cast<const int64_t*>(nullptr),
                                      static_cast<int64_t*>(nullptr), static_cast<int>(n + 1));
    *cub_temp = c.take<unsigned char>(*cub_bytes);
    return e;
}

// keys [P], sorted keys [P], unsorted values [P], then CUB's sort scratch; the sorted
// values go straight into the caller's `indices`.
cudaError_t fill_layout(int64_t pairs, int64_t tiles, Carve& c, uint32_t** keys, uint32_t** keys_sorted,
                        int32_t** values, void** cub_temp, size_t* cub_bytes) {
    *keys = c.take<uint32_t>(static_cast<size_t>(pairs));
    *keys_sorted = c.take<uint32_t>(static_cast<size_t>(pairs));
    *values = c.take<int32_t>(static_cast<size_t>(pairs));
    *cub_bytes = 0;
    const cudaError_t e = cub::DeviceRadixSort::SortPairs(
        nullptr, *cub_bytes, static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr),
        static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), static_cast<int>(pairs), 0,
        key_bits(tiles));
    *cub_temp = c.take<unsigned char>(*cub_bytes);
    return e;
}

}  // namespace
}  // namespace cuda
}  // namespace igs

using namespace igs::cuda;

extern "C" {

IGS_CUDA_API int igs_cuda_prepare(const float* means, const float* theta, const float* inv_scale, int64_t n,
                                  float* table, void* stream) {
    if (n < 0) return IGS_CUDA_ERR_ARGUMENT;
    if (n > kInt32Max) return IGS_CUDA_ERR_TOO_MANY;
    if (n == 0) return IGS_CUDA_OK;
    if (!means || !theta || !inv_scale || !table) return IGS_CUDA_ERR_ARGUMENT;
    IGS_LAUNCH(prepare_kernel, blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream))
    (means, theta, inv_scale, n, reinterpret_cast<igs::Gaussian*>(table));
    return launch_status();
}

IGS_CUDA_API int igs_cuda_bin_count_workspace(int64_t n, size_t* bytes) {
    if (n < 0 || !bytes) return IGS_CUDA_ERR_ARGUMENT;
    if (n >= kInt32Max) return IGS_CUDA_ERR_TOO_MANY;
    Carve c(nullptr);
    int64_t* counts;
    void* temp;
    size_t temp_bytes;
    const cudaError_t e = count_layout(n, c, &counts, &temp, &temp_bytes);
    *bytes = c.used;
    return status_of(e);
}

IGS_CUDA_API int igs_cuda_bin_count(const float* means, const float* inv_scale, int64_t n, int height,
                                    int width, int tile, int64_t* gaussian_offsets, void* workspace,
                                    size_t workspace_bytes, void* stream) {
    int s = check_image(height, width, tile);
    if (s != IGS_CUDA_OK) return s;
    if (n < 0 || !gaussian_offsets) return IGS_CUDA_ERR_ARGUMENT;
    if (n >= kInt32Max) return IGS_CUDA_ERR_TOO_MANY;
    if (n > 0 && (!means || !inv_scale)) return IGS_CUDA_ERR_ARGUMENT;
    const cudaStream_t st = static_cast<cudaStream_t>(stream);
    Carve c(workspace);
    int64_t* counts;
    void* temp;
    size_t temp_bytes;
    cudaError_t e = count_layout(n, c, &counts, &temp, &temp_bytes);
    if (e != cudaSuccess) return status_of(e);
    if (!workspace || workspace_bytes < c.used) return IGS_CUDA_ERR_WORKSPACE;
    const igs::TileGrid grid = igs::make_tile_grid(height, width, tile);
    IGS_LAUNCH(count_kernel, blocks_for(n + 1), kThreads, 0, st)(means, inv_scale, n, grid, counts);
    s = launch_status();
    if (s != IGS_CUDA_OK) return s;
    e = cub::DeviceScan::ExclusiveSum(temp, temp_bytes, counts, gaussian_offsets, static_cast<int>(n + 1),
                                      st);
    return status_of(e);
}

IGS_CUDA_API int igs_cuda_bin_fill_workspace(int64_t pairs, int height, int width, int tile, size_t* bytes) {
    const int s = check_image(height, width, tile);
    if (s != IGS_CUDA_OK) return s;
    if (pairs < 0 || !bytes) return IGS_CUDA_ERR_ARGUMENT;
    if (pairs > kInt32Max) return IGS_CUDA_ERR_TOO_MANY;
    const igs::TileGrid grid = igs::make_tile_grid(height, width, tile);
    Carve c(nullptr);
    uint32_t *keys, *keys_sorted;
    int32_t* values;
    void* temp;
    size_t temp_bytes;
    const cudaError_t e =
        fill_layout(pairs, tile_count(grid), c, &keys, &keys_sorted, &values, &temp, &temp_bytes);
    *bytes = c.used;
    return status_of(e);
}

IGS_CUDA_API int igs_cuda_bin_fill(const float* means, const float* inv_scale, int64_t n, int height,
                                   int width, int tile, const int64_t* gaussian_offsets, int64_t pairs,
                                   int64_t* tile_offsets, int32_t* indices, void* workspace,
                                   size_t workspace_bytes, void* stream) {
    int s = check_image(height, width, tile);
    if (s != IGS_CUDA_OK) return s;
    if (n < 0 || pairs < 0) return IGS_CUDA_ERR_ARGUMENT;
    if (n >= kInt32Max || pairs > kInt32Max) return IGS_CUDA_ERR_TOO_MANY;
    const igs::TileGrid grid = igs::make_tile_grid(height, width, tile);
    const int64_t tiles = tile_count(grid);
    if (!tile_offsets) return IGS_CUDA_ERR_ARGUMENT;
    if (n > 0 && (!means || !inv_scale || !gaussian_offsets)) return IGS_CUDA_ERR_ARGUMENT;
    if (pairs > 0 && !indices) return IGS_CUDA_ERR_ARGUMENT;
    const cudaStream_t st = static_cast<cudaStream_t>(stream);
    Carve c(workspace);
    uint32_t *keys, *keys_sorted;
    int32_t* values;
    void* temp;
    size_t temp_bytes;
    cudaError_t e = fill_layout(pairs, tiles, c, &keys, &keys_sorted, &values, &temp, &temp_bytes);
    if (e != cudaSuccess) return status_of(e);
    if (pairs > 0 && (!workspace || workspace_bytes < c.used)) return IGS_CUDA_ERR_WORKSPACE;
    if (pairs > 0) {
        IGS_LAUNCH(emit_kernel, blocks_for(n), kThreads, 0, st)
        (means, inv_scale, n, grid, gaussian_offsets, keys, values);
        s = launch_status();
        if (s != IGS_CUDA_OK) return s;
        e = cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys, keys_sorted, values, indices,
                                            static_cast<int>(pairs), 0, key_bits(tiles), st);
        if (e != cudaSuccess) return status_of(e);
    }
    IGS_LAUNCH(ranges_kernel, blocks_for(pairs + 1), kThreads, 0, st)
    (keys_sorted, pairs, tiles, tile_offsets);
    return launch_status();
}

}  // extern "C"
