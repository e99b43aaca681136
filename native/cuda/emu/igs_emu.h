// The CUDA execution model on the CPU, for running native/cuda's kernels where there is no GPU.
//
// The kernel sources are compiled unchanged by a host C++ compiler (igs_tex/render/cuda.py,
// build_emulator): this header gives them the CUDA keywords, built-in indices, barriers, warp
// operations and atomics they use, and emu_runtime.cpp runs every thread of a block as a fiber
// on one OS thread. A fiber runs until it waits (a barrier, a warp operation), so a missing
// __syncthreads shows up as a wrong result every time rather than once in a million runs on a
// GPU. What the hardware would leave undefined is reported as a launch failure instead: a
// barrier some threads of the block never reach, a full-mask warp operation with lanes that
// returned or sit at another operation, a warp not filled by the block, more than 1024
// threads or 48 KiB of dynamic shared memory per block.
//
// Not modelled: timing, memory coalescing, register pressure, the order of atomics (here the
// fibers' order; it changes the last bits of float sums only), and floating-point contraction
// (the host build uses -ffp-contract=off, the nvcc build --fmad=false, so neither fuses).
#pragma once

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include <tuple>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __shared__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
    dim3() = default;
    dim3(unsigned x_, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace igs_emu {

extern dim3 block_idx, block_dim, grid_dim;
dim3 thread_idx();  // of the fiber running now

void sync_threads();
int any_sync(unsigned mask, int predicate);
float shfl_down_sync(unsigned mask, float value, unsigned delta);
int shfl_down_sync(unsigned mask, int value, unsigned delta);

using BlockBody = void (*)(void* context);
// Runs body(context) once per thread of every block; returns a cudaError_t value.
int run_grid(dim3 grid, dim3 block, size_t shared_bytes, BlockBody body, void* context);
void set_last_error(int error);

// kernel<<<grid, block, shared, stream>>>(args...) as launch(kernel, grid, block, shared)(args...).
// Arguments are converted to the kernel's parameter types once, before any thread runs, as
// the CUDA runtime copies them into the parameter buffer.
template <class... P>
struct Launch {
    void (*kernel)(P...);
    dim3 grid, block;
    size_t shared;

    template <class... A>
    void operator()(A&&... args) const {
        struct Call {
            void (*kernel)(P...);
            std::tuple<P...> params;
            static void run(void* self) {
                Call* c = static_cast<Call*>(self);
                std::apply(c->kernel, c->params);
            }
        } call{kernel, std::tuple<P...>(std::forward<A>(args)...)};
        set_last_error(run_grid(grid, block, shared, &Call::run, &call));
    }
};

template <class... P>
Launch<P...> launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t shared) {
    return Launch<P...>{kernel, grid, block, shared};
}

}  // namespace igs_emu

#define threadIdx (::igs_emu::thread_idx())
#define blockIdx (::igs_emu::block_idx)
#define blockDim (::igs_emu::block_dim)
#define gridDim (::igs_emu::grid_dim)

inline void __syncthreads() {
    igs_emu::sync_threads();
}
inline int __any_sync(unsigned mask, int predicate) {
    return igs_emu::any_sync(mask, predicate);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = 32) {
    (void)width;  // the kernels only shuffle across whole warps
    return igs_emu::shfl_down_sync(mask, value, delta);
}
// Fibers share one OS thread and never switch inside a plain function, so a read-modify-write
// is atomic here.
inline float atomicAdd(float* address, float value) {
    const float old = *address;
    *address = old + value;
    return old;
}
inline int min(int a, int b) {
    return a < b ? a : b;
}
