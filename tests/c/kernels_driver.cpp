// Drives the native training kernels (native/cpu: bin_tiles, forward, backward, selection,
// topk_weights, ssim) on random inputs, for tests/test_sanitizers.py, which builds this with
// ASan + UBSan. Every buffer is a heap block of exactly the size the kernels' contract gives,
// so an overrun is a redzone hit. Besides "no sanitizer report", the paths that must agree are
// held to it: fast vs simple (same top-K sets, image within 1e-6), baseline vs AVX2 and one
// vs three threads (identical bytes), SSIM(x, x) = 1.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "kernels.h"
#include "ssim.h"
#include "tile_data.h"

namespace {

int g_failures = 0;

void check(bool ok, const char* what, int config) {
    if (ok) return;
    std::fprintf(stderr, "kernels_driver: config %d: %s\n", config, what);
    ++g_failures;
}

// A vector-like block of exactly n elements (std::vector may over-allocate, hiding overruns).
template <class T>
struct Exact {
    explicit Exact(size_t n_) : n(n_), p(new T[n_ ? n_ : 1]()) {}
    T* data() { return p.get(); }
    const T* data() const { return p.get(); }
    T& operator[](size_t i) { return p[i]; }
    size_t n;
    std::unique_ptr<T[]> p;
};

template <class T>
Exact<T> copy(const std::vector<T>& v) {
    Exact<T> out(v.size());
    std::copy(v.begin(), v.end(), out.data());
    return out;
}

struct Config {
    int height, width, tile, k, channels, count;
};

struct Run {
    std::vector<float> image;
    std::vector<uint8_t> masks;
    std::vector<int32_t> topk;  // the selection as indices: the masks' padding lanes may differ
    std::vector<float> grads;
};

Run run(const Config& c, const std::vector<float>& means, const std::vector<float>& theta,
        const std::vector<float>& inv, const std::vector<float>& colour, const std::vector<float>& grad_out,
        bool fast, int id) {
    using namespace igs::cpu;
    const igs::TileGrid grid = igs::make_tile_grid(c.height, c.width, c.tile);
    const size_t tiles = static_cast<size_t>(grid.tiles_x) * grid.tiles_y;
    Exact<float> m = copy(means), th = copy(theta), iv = copy(inv), col = copy(colour);

    std::vector<int64_t> offs_v;
    std::vector<int32_t> idx_v;
    bin_tiles(m.data(), iv.data(), c.count, grid, offs_v, idx_v);
    check(offs_v.size() == tiles + 1 && offs_v.back() == static_cast<int64_t>(idx_v.size()),
          "bin_tiles: offsets do not cover the indices", id);
    Exact<int64_t> offs = copy(offs_v);
    Exact<int32_t> idx = copy(idx_v);

    const Params p{m.data(), th.data(), iv.data(), col.data(), c.count, c.channels};
    const Shape s{c.height, c.width, c.tile, c.k, 1e-7f};
    const TileLists lists{offs.data(), idx.data()};
    Exact<int64_t> sel_off(tiles + 1);
    const int64_t total = selection_offsets(s, lists, sel_off.data());
    Exact<uint8_t> masks(static_cast<size_t>(total));
    const size_t texels = static_cast<size_t>(c.height) * c.width;
    Exact<float> image(texels * c.channels);
    forward(p, s, lists, image.data(), sel_off.data(), masks.data(), fast);

    Exact<int32_t> topk(texels * c.k);
    selection_topk(s, lists, sel_off.data(), masks.data(), topk.data());
    Exact<float> weights(texels * c.k);
    topk_weights(p, s, topk.data(), weights.data());
    for (size_t i = 0; i < texels * c.k; ++i)
        check(topk[i] >= -1 && topk[i] < c.count && std::isfinite(weights[i]),
              "topk index or weight out of range", id);

    Exact<float> go = copy(grad_out);
    Exact<float> dm(means.size()), dth(theta.size()), dinv(inv.size()), dcol(colour.size());
    backward(p, s, lists, go.data(), sel_off.data(), masks.data(),
             Grads{dm.data(), dth.data(), dinv.data(), dcol.data()}, fast);

    Run r;
    r.image.assign(image.data(), image.data() + image.n);
    r.masks.assign(masks.data(), masks.data() + masks.n);
    r.topk.assign(topk.data(), topk.data() + topk.n);
    for (auto* g : {&dm, &dth, &dinv, &dcol}) r.grads.insert(r.grads.end(), g->data(), g->data() + g->n);
    for (float v : r.image) check(std::isfinite(v), "non-finite image value", id);
    for (float v : r.grads) check(std::isfinite(v), "non-finite gradient", id);
    return r;
}

bool same_bytes(const Run& a, const Run& b) {
    return a.image == b.image && a.masks == b.masks && a.topk == b.topk && a.grads.size() == b.grads.size() &&
           (a.grads.empty() || std::memcmp(a.grads.data(), b.grads.data(), a.grads.size() * 4) == 0);
}

}  // namespace

int main() {
    using namespace igs::cpu;
    // Tiles 7/13/16 (fast path), 80 (> kMaxFastTile: simple path even when fast is asked for);
    // K 1, 4, 10, 16, 32 (every top-K helper); sizes off the tile grid; an empty set.
    std::vector<Config> configs = {
        {37, 29, 16, 10, 3, 60},  {48, 64, 16, 32, 9, 150}, {20, 70, 7, 1, 1, 40},  {33, 33, 13, 4, 16, 90},
        {90, 100, 80, 10, 2, 70}, {24, 24, 16, 16, 5, 120}, {17, 19, 16, 10, 2, 0}, {1, 1, 16, 3, 1, 5},
    };
    std::mt19937 gen(1234);
    // Plus a random sweep, tile sizes at the edges of the lane layout (1, 8, 9, 64, 65).
    const int tiles[] = {1, 3, 8, 9, 16, 24, 64, 65};
    for (int i = 0; i < 24; ++i)
        configs.push_back({1 + static_cast<int>(gen() % 70), 1 + static_cast<int>(gen() % 70),
                           tiles[gen() % 8], 1 + static_cast<int>(gen() % 32),
                           1 + static_cast<int>(gen() % 16), static_cast<int>(gen() % 200)});
    int id = 0;
    for (const Config& c : configs) {
        ++id;
        std::uniform_real_distribution<float> u01(0.0f, 1.0f);
        std::vector<float> means(2 * c.count), theta(c.count), inv(2 * c.count), colour(c.count * c.channels);
        for (int i = 0; i < c.count; ++i) {
            means[2 * i] = -4.0f + (c.width + 8.0f) * u01(gen);
            means[2 * i + 1] = -4.0f + (c.height + 8.0f) * u01(gen);
            theta[i] = 7.0f * u01(gen) - 2.0f;
            inv[2 * i] = 1.0f / (0.6f + 8.0f * u01(gen));
            inv[2 * i + 1] = 1.0f / (0.6f + 8.0f * u01(gen));
            for (int ch = 0; ch < c.channels; ++ch) colour[i * c.channels + ch] = u01(gen);
        }
        if (c.count > 12) {  // exact ties: identical Gaussians, the lower index must win
            for (int j = 1; j < 6; ++j) {
                means[2 * j] = means[0];
                means[2 * j + 1] = means[1];
                theta[j] = theta[0];
                inv[2 * j] = inv[0];
                inv[2 * j + 1] = inv[1];
            }
        }
        std::normal_distribution<float> n01(0.0f, 1.0f);
        std::vector<float> grad_out(static_cast<size_t>(c.height) * c.width * c.channels);
        for (float& g : grad_out) g = n01(gen);

        set_thread_count(3);
        set_simd("auto");
        const Run fast = run(c, means, theta, inv, colour, grad_out, true, id);
        const Run simple = run(c, means, theta, inv, colour, grad_out, false, id);
        check(fast.topk == simple.topk, "fast and simple paths selected differently", id);
        float worst = 0.0f;
        for (size_t i = 0; i < fast.image.size(); ++i)
            worst = std::fmax(worst, std::fabs(fast.image[i] - simple.image[i]));
        check(worst <= 1e-6f, "fast and simple images differ by more than 1e-6", id);
        set_simd("baseline");
        check(same_bytes(run(c, means, theta, inv, colour, grad_out, true, id), fast),
              "baseline and AVX2 kernels gave different bytes", id);
        set_simd("auto");
        set_thread_count(1);
        check(same_bytes(run(c, means, theta, inv, colour, grad_out, true, id), fast),
              "one and three threads gave different bytes", id);
        set_thread_count(0);
    }

    // SSIM and its gradient, odd sizes and channel counts; SSIM(x, x) must be 1.
    const int sizes[][3] = {{11, 11, 1}, {23, 17, 3}, {40, 31, 9}};
    for (const auto& sz : sizes) {
        ++id;
        const size_t n = static_cast<size_t>(sz[0]) * sz[1] * sz[2];
        Exact<float> x(n), y(n), grad(n);
        Exact<double> ssim(static_cast<size_t>(sz[2]));
        std::uniform_real_distribution<float> u01(0.0f, 1.0f);
        for (size_t i = 0; i < n; ++i) {
            y[i] = u01(gen);
            x[i] = std::fmin(1.0f, std::fmax(0.0f, y[i] + 0.1f * (u01(gen) - 0.5f)));
        }
        ssim_channels(x.data(), y.data(), sz[0], sz[1], sz[2], ssim.data(), grad.data());
        for (int ch = 0; ch < sz[2]; ++ch) check(ssim[ch] > 0.0 && ssim[ch] < 1.0, "ssim out of (0, 1)", id);
        for (size_t i = 0; i < n; ++i) check(std::isfinite(grad[i]), "non-finite ssim gradient", id);
        ssim_channels(y.data(), y.data(), sz[0], sz[1], sz[2], ssim.data(), nullptr);
        for (int ch = 0; ch < sz[2]; ++ch) check(std::fabs(ssim[ch] - 1.0) < 1e-6, "ssim(y, y) != 1", id);
    }
    std::printf("kernels_driver: %d configurations, %d failures\n", id, g_failures);
    return g_failures ? 1 : 0;
}
