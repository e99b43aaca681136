// igs::TopKFixed<K> against igs::TopKSorted (native/include/igs/topk.h) on random candidate
// streams: the CUDA forward picks one or the other by K, so they must keep the same entries in
// the same order, bit for bit. Streams draw G from a few values (many exact ties), include 0,
// come in shuffled index order, and some carry NaN. Prints "ok <cases>" or the first mismatch.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include "igs/topk.h"

namespace {

template <int K>
bool same(const std::vector<std::pair<float, int>>& stream, int case_no) {
    igs::TopKSorted ref;
    ref.reset(K);
    igs::TopKFixed<K> got;
    got.reset(K);
    for (const auto& c : stream) {
        ref.push(c.first, c.second);
        got.push(c.first, c.second);
        bool ok = ref.n == got.n;
        for (int q = 0; ok && q < ref.n; ++q)
            ok = std::memcmp(&ref.g[q], &got.g[q], sizeof(float)) == 0 && ref.idx[q] == got.idx[q];
        if (!ok) {
            std::printf("mismatch: K=%d case %d after pushing (%g, %d): n %d vs %d\n", K, case_no, c.first,
                        c.second, ref.n, got.n);
            return false;
        }
    }
    return true;
}

template <int K>
bool run(std::mt19937& rng, int cases) {
    for (int t = 0; t < cases; ++t) {
        const int length = static_cast<int>(rng() % 40);
        const int levels = 1 + static_cast<int>(rng() % 6);  // few distinct values: many ties
        const bool with_nan = rng() % 5 == 0;
        std::vector<std::pair<float, int>> stream;
        for (int i = 0; i < length; ++i) {
            float g = static_cast<float>(rng() % levels) / static_cast<float>(levels);
            if (with_nan && rng() % 7 == 0) g = std::nanf("");
            stream.emplace_back(g, i);
        }
        std::shuffle(stream.begin(), stream.end(), rng);
        if (!same<K>(stream, t)) return false;
    }
    return true;
}

}  // namespace

int main() {
    std::mt19937 rng(20261127);
    const int cases = 4000;
    const bool ok = run<1>(rng, cases) && run<2>(rng, cases) && run<3>(rng, cases) && run<7>(rng, cases) &&
                    run<10>(rng, cases) && run<16>(rng, cases) && run<32>(rng, cases);
    if (!ok) return 1;
    std::printf("ok %d\n", 7 * cases);
    return 0;
}
