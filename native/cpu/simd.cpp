// Run-time choice between the baseline and AVX2 builds of the row kernels (tile_data.h).
#include <atomic>
#include <cstring>

#include "tile_data.h"

namespace igs {
namespace cpu {
namespace {

std::atomic<bool> g_allow_avx2{true};

bool cpu_has_avx2() {
#if IGS_AVX2_VARIANT
    static const bool has = __builtin_cpu_supports("avx2");
    return has;
#else
    return false;
#endif
}

}  // namespace

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
