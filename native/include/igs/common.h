// Shared definitions for the header-only igs math (DESIGN.md, "rendering contract").
//
// Every function in native/include/igs is marked IGS_HD so that the CUDA kernels can
// call exactly the code the CPU tests exercise. Nothing here may depend on torch,
// pybind11 or the C++ standard library beyond <cstdint>/<cstring>.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define IGS_HD __host__ __device__
#else
#define IGS_HD
#endif

namespace igs {

// Top-K state lives in registers / on the stack, so its capacity is fixed at compile time;
// the K actually used is a runtime argument (stored in the .igs header, never assumed).
constexpr int kMaxK = 32;

IGS_HD inline uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
#endif
}

IGS_HD inline float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
#endif
}

// x - x is 0 only for finite x (inf - inf and NaN - NaN are NaN). Written this way because
// std::isfinite is not callable from device code and this compiles to two instructions.
IGS_HD inline bool is_finite(double x) {
    return x - x == 0.0;
}

}  // namespace igs
