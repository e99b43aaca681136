// Run-time settings of the CPU kernels (tile_data.h): SIMD variant and thread count.
#include <atomic>
#include <cstring>

#include "tile_data.h"

namespace igs {
namespace cpu {
namespace {

std::atomic<bool> g_allow_avx2{true};
std::atomic<int> g_threads{0};  // 0: default

bool cpu_has_avx2() {
#if IGS_AVX2_VARIANT
    static const bool has = __builtin_cpu_supports("avx2");
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

void set_thread_count(int n) { g_threads = n < 1 ? 0 : n; }

bool simd_avx2() { return g_allow_avx2.load(std::memory_order_relaxed) && cpu_has_avx2(); }

bool set_simd(const char* name) {
    if (std::strcmp(name, "auto") == 0) g_allow_avx2 = true;
    else if (std::strcmp(name, "baseline") == 0) g_allow_avx2 = false;
    else return false;
    return true;
}

const char* simd_name() {
#if defined(__AVX2__)
    return "avx2 (whole build)";
#else
    return simd_avx2() ? "avx2" : "baseline";
#endif
}

}  // namespace cpu
}  // namespace igs
