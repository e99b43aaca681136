// Run-time settings of the CPU kernels (tile_data.h): SIMD variant and thread count.
#include <atomic>
#include <cstring>

#include "tile_data.h"

namespace igs {
namespace cpu {
namespace {

// Widest variant set_simd() allows: 0 baseline, 1 AVX2, 2 AVX-512.
std::atomic<int> g_max_level{2};
std::atomic<int> g_threads{0};  // 0: default

// With FMA: the AVX2 backward fuses multiply-adds (backward.cpp). Every AVX2 CPU of Intel
// and AMD has it; the check keeps an odd one on the baseline instead of faulting.
bool cpu_has_avx2() {
#if IGS_AVX2_VARIANT
    static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return has;
#else
    return false;
#endif
}

bool cpu_has_avx512() {
#if IGS_AVX512_VARIANT
    static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                            __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
    return has;
#else
    return false;
#endif
}

}  // namespace

int thread_count() {
    const int n = g_threads.load(std::memory_order_relaxed);
    if (n > 0) return n;
#ifdef _OPENMP
    return omp_get_num_procs();
#else
    return 1;
#endif
}

void set_thread_count(int n) {
    g_threads = n < 1 ? 0 : n;
}

bool simd_avx2() {
    return g_max_level.load(std::memory_order_relaxed) >= 1 && cpu_has_avx2();
}

bool simd_avx512() {
    return g_max_level.load(std::memory_order_relaxed) >= 2 && cpu_has_avx512();
}

bool set_simd(const char* name) {
    if (std::strcmp(name, "auto") == 0)
        g_max_level = 2;
    else if (std::strcmp(name, "avx2") == 0)
        g_max_level = 1;
    else if (std::strcmp(name, "baseline") == 0)
        g_max_level = 0;
    else
        return false;
    return true;
}

const char* simd_name() {
    if (simd_avx512()) return "avx512 (forward), avx2";
#if defined(__AVX2__)
    return "avx2 (whole build)";
#else
    return simd_avx2() ? "avx2" : "baseline";
#endif
}

}  // namespace cpu
}  // namespace igs
