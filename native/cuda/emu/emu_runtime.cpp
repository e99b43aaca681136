// Scheduler of the CPU emulator (igs_emu.h): the threads of a block are fibers on one OS
// thread, run round-robin in thread order; blocks run one after another.
//
// A fiber starts through makecontext/swapcontext and afterwards switches with
// _setjmp/_longjmp, which unlike swapcontext do not save the signal mask (a system call per
// switch, and the backward switches at every warp operation).
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <vector>

#include "cuda_runtime.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

namespace igs {
namespace cuda {
// The kernels' dynamic shared memory (launch.cuh declares it extern). One block runs at a
// time, so one buffer serves every block.
__attribute__((aligned(16))) unsigned char igs_shared[48 * 1024];
}  // namespace cuda
}  // namespace igs

namespace igs_emu {

dim3 block_idx, block_dim, grid_dim;

namespace {

constexpr size_t kMaxSharedBytes = sizeof(igs::cuda::igs_shared);
constexpr unsigned kMaxThreads = 1024;
constexpr unsigned kFullMask = 0xffffffffu;
// Kernel threads keep top-K arrays and a few scalars; 64 KiB is far more than they use, and
// a guard page below each stack turns an overflow into a crash instead of corruption.
constexpr size_t kStackBytes = 64 * 1024;

enum class Wait { Running, Barrier, Warp, Done };
enum class WarpOp { None, Any, ShflFloat, ShflInt };

struct Fiber {
    char* stack = nullptr;
    void* asan_fake_stack = nullptr;
    ucontext_t start;
    jmp_buf resume;
    bool started = false;
    Wait wait = Wait::Running;
    unsigned index = 0;
};

struct WarpState {
    unsigned lanes = 0;    // threads of the block in this warp
    unsigned arrived = 0;  // lanes waiting at the current operation
    unsigned exited = 0;
    WarpOp op = WarpOp::None;
    unsigned delta = 0;
    float f_in[32], f_out[32];
    int i_in[32], i_out[32];
};

struct Block {
    std::vector<Fiber> fibers;
    std::vector<WarpState> warps;
    unsigned live = 0, at_barrier = 0;
    unsigned current = 0;
    jmp_buf scheduler;
    ucontext_t scheduler_ctx;
    BlockBody body = nullptr;
    void* context = nullptr;
    bool failed = false;
};

Block g_block;
int g_last_error = cudaSuccess;
char g_failure[512] = "unspecified launch failure";
std::vector<char*> g_stacks;

Fiber& me() {
    return g_block.fibers[g_block.current];
}

// AddressSanitizer (tests/test_cuda_emulated.py builds the emulator with it) must be told of
// every switch between the scheduler's stack and a fiber's, or it takes the jumps for stack
// corruption: false reports, and a shadow clear over the whole distance at every _longjmp.
#if defined(__SANITIZE_ADDRESS__)
const void* g_scheduler_stack = nullptr;  // learnt at the first switch into a fiber
size_t g_scheduler_stack_bytes = 0;
void* g_scheduler_fake_stack = nullptr;

void asan_to_fiber(Fiber& f) {
    __sanitizer_start_switch_fiber(&g_scheduler_fake_stack, f.stack, kStackBytes);
}
void asan_in_fiber(Fiber& f) {
    __sanitizer_finish_switch_fiber(f.asan_fake_stack, &g_scheduler_stack, &g_scheduler_stack_bytes);
}
void asan_to_scheduler(Fiber& f, bool for_good) {
    __sanitizer_start_switch_fiber(for_good ? nullptr : &f.asan_fake_stack, g_scheduler_stack,
                                   g_scheduler_stack_bytes);
}
void asan_in_scheduler() {
    __sanitizer_finish_switch_fiber(g_scheduler_fake_stack, nullptr, nullptr);
}
#else
void asan_to_fiber(Fiber&) {}
void asan_in_fiber(Fiber&) {}
void asan_to_scheduler(Fiber&, bool) {}
void asan_in_scheduler() {}
#endif

void record_failure(const char* format, va_list args) {
    char what[384];
    vsnprintf(what, sizeof what, format, args);
    snprintf(g_failure, sizeof g_failure,
             "unspecified launch failure (CPU emulator: block %u, thread %u: %s)", block_idx.x,
             g_block.current, what);
    g_block.failed = true;
}

// Records what went wrong and leaves the fiber for good: the scheduler abandons the block.
[[noreturn]] void fail(const char* format, ...) {
    va_list args;
    va_start(args, format);
    record_failure(format, args);
    va_end(args);
    asan_to_scheduler(me(), true);
    _longjmp(g_block.scheduler, 1);
}

void yield() {
    if (_setjmp(me().resume) == 0) {
        asan_to_scheduler(me(), false);
        _longjmp(g_block.scheduler, 1);
    }
    asan_in_fiber(me());
}

void fiber_main() {
    asan_in_fiber(me());
    g_block.body(g_block.context);
    Fiber& f = me();
    f.wait = Wait::Done;
    --g_block.live;
    WarpState& w = g_block.warps[f.index / 32];
    ++w.exited;
    if (w.arrived > 0)
        fail("returned while %u lanes of its warp wait at a full-mask warp operation", w.arrived);
    if (g_block.at_barrier > 0) fail("returned while %u threads wait at __syncthreads", g_block.at_barrier);
    asan_to_scheduler(f, true);
    _longjmp(g_block.scheduler, 1);  // never return: uc_link would resume a stale context
}

// fail() for the scheduler itself, which has no fiber to leave.
void deadlock(const char* format, ...) {
    va_list args;
    va_start(args, format);
    record_failure(format, args);
    va_end(args);
}

char* stack_for(unsigned i) {
    while (g_stacks.size() <= i) {
        const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
        void* p =
            mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return nullptr;
        mprotect(p, page, PROT_NONE);
        g_stacks.push_back(static_cast<char*>(p) + page);
    }
    return g_stacks[i];
}

const char* wait_name(Wait w) {
    switch (w) {
        case Wait::Barrier:
            return "__syncthreads";
        case Wait::Warp:
            return "a warp operation";
        default:
            return "nothing";
    }
}

// Runs the current block to its end. Returns false on a failure (g_failure says which).
bool run_block(unsigned threads) {
    Block& b = g_block;
    b.fibers.assign(threads, Fiber());
    b.warps.assign((threads + 31) / 32, WarpState());
    for (unsigned i = 0; i < threads; ++i) {
        b.fibers[i].index = i;
        ++b.warps[i / 32].lanes;
    }
    b.live = threads;
    b.at_barrier = 0;
    b.failed = false;
    // Shared memory starts as NaNs, so a thread reading what no thread wrote shows in results.
    memset(igs::cuda::igs_shared, 0xff, kMaxSharedBytes);
    for (;;) {
        bool ran = false;
        for (unsigned i = 0; i < threads; ++i) {
            Fiber& f = b.fibers[i];
            if (f.wait != Wait::Running) continue;
            ran = true;
            b.current = i;
            if (_setjmp(b.scheduler) == 0) {
                if (!f.started) {
                    f.started = true;
                    f.stack = stack_for(i);
                    if (!f.stack) {
                        snprintf(g_failure, sizeof g_failure, "CPU emulator: no memory for stacks");
                        return false;
                    }
                    getcontext(&f.start);
                    f.start.uc_stack.ss_sp = f.stack;
                    f.start.uc_stack.ss_size = kStackBytes;
                    f.start.uc_link = nullptr;
                    makecontext(&f.start, fiber_main, 0);
                    asan_to_fiber(f);
                    swapcontext(&b.scheduler_ctx, &f.start);
                } else {
                    asan_to_fiber(f);
                    _longjmp(f.resume, 1);
                }
            }
            asan_in_scheduler();  // every way back from a fiber lands here
            if (b.failed) return false;
        }
        if (b.live == 0) return true;
        if (!ran) {
            // Everyone left waits and nobody can release them.
            unsigned first = 0;
            while (b.fibers[first].wait == Wait::Done) ++first;
            b.current = first;
            deadlock(
                "deadlock: %u threads still wait (this one at %s, %u at __syncthreads, %u "
                "returned)",
                b.live, wait_name(b.fibers[first].wait), b.at_barrier, threads - b.live);
            return false;
        }
    }
}

// One warp operation: every lane deposits its input, the last to arrive computes all outputs
// and releases the others. A lane reads its output before it can arrive at the next operation,
// so one set of buffers per warp suffices.
WarpState& warp_arrive(unsigned mask, WarpOp op, unsigned delta) {
    Fiber& f = me();
    WarpState& w = g_block.warps[f.index / 32];
    if (mask != kFullMask) fail("warp operation with mask %#x: the emulator models full masks only", mask);
    if (w.lanes != 32)
        fail("full-mask warp operation in a warp of %u threads (block size not a multiple of 32)", w.lanes);
    if (w.exited > 0) fail("full-mask warp operation after %u lanes of the warp returned", w.exited);
    if (w.arrived == 0) {
        w.op = op;
        w.delta = delta;
    } else if (w.op != op || w.delta != delta) {
        fail("lanes of warp %u are at different warp operations", f.index / 32);
    }
    return w;
}

void warp_wait_or_release(WarpState& w) {
    Fiber& f = me();
    if (++w.arrived < 32) {
        f.wait = Wait::Warp;
        yield();
        return;
    }
    switch (w.op) {
        case WarpOp::Any: {
            int any = 0;
            for (int l = 0; l < 32; ++l) any |= w.i_in[l] != 0;
            for (int l = 0; l < 32; ++l) w.i_out[l] = any;
            break;
        }
        case WarpOp::ShflFloat:
            // Lanes whose source lane is past the warp keep their own value, as in CUDA.
            for (unsigned l = 0; l < 32; ++l) w.f_out[l] = l + w.delta < 32 ? w.f_in[l + w.delta] : w.f_in[l];
            break;
        case WarpOp::ShflInt:
            for (unsigned l = 0; l < 32; ++l) w.i_out[l] = l + w.delta < 32 ? w.i_in[l + w.delta] : w.i_in[l];
            break;
        case WarpOp::None:
            break;
    }
    w.arrived = 0;
    const unsigned first = f.index / 32 * 32;
    for (unsigned l = 0; l < 32; ++l) g_block.fibers[first + l].wait = Wait::Running;
}

float* inputs(WarpState& w, float) {
    return w.f_in;
}
int* inputs(WarpState& w, int) {
    return w.i_in;
}
const float* outputs(const WarpState& w, float) {
    return w.f_out;
}
const int* outputs(const WarpState& w, int) {
    return w.i_out;
}

template <class T>
T warp_exchange(unsigned mask, WarpOp op, unsigned delta, T value) {
    WarpState& w = warp_arrive(mask, op, delta);
    const unsigned lane = me().index % 32;
    inputs(w, value)[lane] = value;
    warp_wait_or_release(w);
    return outputs(w, value)[lane];
}

}  // namespace

dim3 thread_idx() {
    const unsigned i = g_block.current;
    return dim3(i % block_dim.x, i / block_dim.x % block_dim.y, i / (block_dim.x * block_dim.y));
}

void sync_threads() {
    Block& b = g_block;
    if (b.live != b.fibers.size())
        fail("__syncthreads after %u threads of the block returned",
             static_cast<unsigned>(b.fibers.size()) - b.live);
    if (++b.at_barrier < b.live) {
        me().wait = Wait::Barrier;
        yield();
        return;
    }
    b.at_barrier = 0;
    for (Fiber& f : b.fibers)
        if (f.wait == Wait::Barrier) f.wait = Wait::Running;
}

int any_sync(unsigned mask, int predicate) {
    return warp_exchange(mask, WarpOp::Any, 0, predicate);
}

float shfl_down_sync(unsigned mask, float value, unsigned delta) {
    return warp_exchange(mask, WarpOp::ShflFloat, delta, value);
}

int shfl_down_sync(unsigned mask, int value, unsigned delta) {
    return warp_exchange(mask, WarpOp::ShflInt, delta, value);
}

void set_last_error(int error) {
    if (error != cudaSuccess) g_last_error = error;
}

int run_grid(dim3 grid, dim3 block, size_t shared_bytes, BlockBody body, void* context) {
    const unsigned long long threads = 1ull * block.x * block.y * block.z;
    if (threads == 0 || threads > kMaxThreads || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
        grid.y > 65535 || grid.z > 65535)
        return cudaErrorInvalidConfiguration;
    // Beyond 48 KiB a kernel must opt in (cudaFuncSetAttribute), which native/cuda never does.
    if (shared_bytes > kMaxSharedBytes) return cudaErrorInvalidValue;
    grid_dim = grid;
    block_dim = block;
    g_block.body = body;
    g_block.context = context;
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x) {
                block_idx = dim3(x, y, z);
                if (!run_block(static_cast<unsigned>(threads))) return cudaErrorLaunchFailure;
            }
    return cudaSuccess;
}

}  // namespace igs_emu

cudaError_t cudaGetLastError() {
    const int e = igs_emu::g_last_error;
    igs_emu::g_last_error = cudaSuccess;
    return static_cast<cudaError_t>(e);
}

const char* cudaGetErrorString(cudaError_t error) {
    switch (error) {
        case cudaSuccess:
            return "no error";
        case cudaErrorInvalidValue:
            return "invalid argument";
        case cudaErrorInvalidConfiguration:
            return "invalid configuration argument";
        case cudaErrorLaunchFailure:
            return igs_emu::g_failure;
    }
    return "unrecognized error code";
}

cudaError_t cudaGetDeviceCount(int* count) {
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    return device == 0 ? cudaSuccess : cudaErrorInvalidValue;
}
