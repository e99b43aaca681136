// cub::DeviceScan::ExclusiveSum for the CPU emulator (../../igs_emu.h), with CUB's two-call
// protocol: a null temp_storage asks for the scratch size and does no work.
#pragma once

#include <type_traits>

#include "../../cuda_runtime.h"

namespace cub {

struct DeviceScan {
    template <class In, class Out>
    static cudaError_t ExclusiveSum(void* temp_storage, size_t& temp_bytes, In in, Out out, int count,
                                    cudaStream_t = nullptr) {
        if (temp_storage == nullptr) {
            temp_bytes = 1;  // callers must still allocate and pass something, as with CUB
            return cudaSuccess;
        }
        if (temp_bytes < 1 || count < 0) return cudaErrorInvalidValue;
        using T = std::remove_cv_t<std::remove_reference_t<decltype(*in)>>;
        T running{};
        for (int i = 0; i < count; ++i) {
            const T v = in[i];  // read before the write: in and out may alias
            out[i] = running;
            running += v;
        }
        return cudaSuccess;
    }
};

}  // namespace cub
