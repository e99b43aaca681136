// cub::DeviceRadixSort::SortPairs for the CPU emulator (../../igs_emu.h): a stable sort on the
// key bits [begin_bit, end_bit) only, as CUB documents it, with CUB's two-call protocol.
#pragma once

#include <algorithm>
#include <numeric>
#include <vector>

#include "../../cuda_runtime.h"

namespace cub {

struct DeviceRadixSort {
    template <class K, class V>
    static cudaError_t SortPairs(void* temp_storage, size_t& temp_bytes, const K* keys_in, K* keys_out,
                                 const V* values_in, V* values_out, int count, int begin_bit = 0,
                                 int end_bit = sizeof(K) * 8, cudaStream_t = nullptr) {
        if (temp_storage == nullptr) {
            temp_bytes = 1;
            return cudaSuccess;
        }
        const int width = end_bit - begin_bit;
        if (temp_bytes < 1 || count < 0 || begin_bit < 0 || width < 0 ||
            end_bit > static_cast<int>(sizeof(K) * 8))
            return cudaErrorInvalidValue;
        const unsigned long long mask = width >= 64 ? ~0ull : (1ull << width) - 1;
        auto digit = [&](int i) { return (static_cast<unsigned long long>(keys_in[i]) >> begin_bit) & mask; };
        std::vector<int> order(static_cast<size_t>(count));
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return digit(a) < digit(b); });
        for (int i = 0; i < count; ++i) {
            keys_out[i] = keys_in[order[i]];
            values_out[i] = values_in[order[i]];
        }
        return cudaSuccess;
    }
};

}  // namespace cub
