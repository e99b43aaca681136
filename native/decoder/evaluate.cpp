// Evaluation: the rendering contract per texel with the header functions of native/include/igs,
// the same eval / select / sort / blend sequence as the native forward's simple path, so the two
// give identical bytes. Image and rect decoding only reorder when each G is computed (a tile row
// at a time, so the evaluation vectorises), not how. Every file version arrives here as the same
// thing: dequantised Gaussians and strictly ascending per-tile lists.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

#include "decoder.h"
#include "igs/texel.h"
#include "igs/topk.h"

namespace igs_decoder_impl {

namespace {

// The kept entries blended in list (= ascending index) order, as the native forward does.
void blend_kept(const igs_decoder& d, const int32_t* list, igs::TopKSorted& top, float* out) {
    igs::sort_by_index(top.n, top.g, top.idx);
    int32_t idx[igs::kMaxK];
    for (int q = 0; q < top.n; ++q) idx[q] = list[top.idx[q]];
    igs::blend(top.n, idx, top.g, d.colour.data(), static_cast<int>(d.channels), d.eps, out);
}

// G_i convolved with N(0, F), in the Gaussian's own frame, operation for operation as
// igsWeightFootprint in shaders/igs_sample.glsl.
float footprint_weight(const igs::Gaussian& g, float px, float py, const float F[3], bool keep_peak) {
    float u, v;
    igs::rotate_offset(g, px, py, u, v);
    const float c = g.cs, s = g.sn;
    const float sxx = 1.0f / (g.ax * g.ax);
    const float syy = 1.0f / (g.ay * g.ay);
    const float cc = c * c, ss = s * s, cs = c * s;
    const float fuu = cc * F[0] + 2.0f * cs * F[1] + ss * F[2];
    const float fvv = ss * F[0] - 2.0f * cs * F[1] + cc * F[2];
    const float fuv = (cc - ss) * F[1] + cs * (F[2] - F[0]);
    const float detF = std::max(F[0] * F[2] - F[1] * F[1], 0.0f);
    const float muu = sxx + fuu;
    const float mvv = syy + fvv;
    const float det = sxx * syy + sxx * fvv + syy * fuu + detF;
    const float q = (mvv * u * u - 2.0f * fuv * u * v + muu * v * v) / det;
    // A positive semi-definite form can still round a hair below zero.
    const float e = igs::exp_nonpos(std::min(-0.5f * q, 0.0f));
    return keep_peak ? e : std::sqrt(sxx * syy / det) * e;
}

// One row of a tile block: G of every listed Gaussian at every texel of the row first (a loop
// over texels the compiler vectorises; per lane exactly igs::eval's operations, so the same
// bits), then per texel the selection and blend of evaluate_point on that column.
struct RowScratch {
    std::vector<float> G;   // [L][n]
    std::vector<float> px;  // [n]
};

// Lists longer than this times the row width go through evaluate_point instead: a valid file
// may list all 2^26 Gaussians in one tile, and [L][n] must stay a small buffer.
constexpr size_t kMaxRowScratch = size_t(1) << 20;

void decode_tile_rows(const igs_decoder& d, uint32_t tile, uint32_t xa, uint32_t xb, uint32_t ya, uint32_t yb,
                      float* out, size_t row_stride, RowScratch& sc) {
    const uint32_t first = d.offsets[tile];
    const int32_t* list = d.indices.data() + first;
    const int count = static_cast<int>(d.offsets[tile + 1] - first);
    const size_t n = xb - xa;
    const size_t C = d.channels;
    if (static_cast<size_t>(count) * n > kMaxRowScratch) {
        for (uint32_t y = ya; y < yb; ++y)
            for (uint32_t x = xa; x < xb; ++x)
                evaluate_point(d, tile, igs::texel_centre(static_cast<int>(x)),
                               igs::texel_centre(static_cast<int>(y)),
                               out + (y - ya) * row_stride + (x - xa) * C);
        return;
    }
    sc.G.resize(static_cast<size_t>(count) * n);
    sc.px.resize(n);
    for (size_t x = 0; x < n; ++x) sc.px[x] = igs::texel_centre(static_cast<int>(xa + x));
    const bool keep_all = count <= static_cast<int>(d.k);
    float column[igs::kMaxK];
    for (uint32_t y = ya; y < yb; ++y) {
        const float py = igs::texel_centre(static_cast<int>(y));
        const float* px = sc.px.data();
        for (int j = 0; j < count; ++j) {
            const igs::Gaussian g = d.gaussians[list[j]];
            float* Gj = sc.G.data() + static_cast<size_t>(j) * n;
            for (size_t x = 0; x < n; ++x) Gj[x] = igs::eval(g, px[x], py);
        }
        float* row = out + (y - ya) * row_stride;
        for (size_t x = 0; x < n; ++x) {
            const float* Gx = sc.G.data() + x;
            if (keep_all) {
                for (int j = 0; j < count; ++j) column[j] = Gx[static_cast<size_t>(j) * n];
                igs::blend(count, list, column, d.colour.data(), static_cast<int>(C), d.eps, row + x * C);
                continue;
            }
            igs::TopKSorted top;
            top.reset(static_cast<int>(d.k));
            for (int j = 0; j < count; ++j) top.push(Gx[static_cast<size_t>(j) * n], j);
            blend_kept(d, list, top, row + x * C);
        }
    }
}

}  // namespace

uint32_t tile_of(const igs_decoder& d, uint32_t x, uint32_t y) {
    return (y / d.tile) * d.tiles_x + x / d.tile;
}

// Tile of a texel-space point inside [0, W] x [0, H]: the right and bottom edges belong to the
// last texel, as in the shaders.
uint32_t tile_of_point(const igs_decoder& d, float px, float py) {
    const uint32_t x = std::min(static_cast<uint32_t>(px), d.width - 1);
    const uint32_t y = std::min(static_cast<uint32_t>(py), d.height - 1);
    return tile_of(d, x, y);
}

bool point_inside(const igs_decoder& d, float px, float py) {
    return std::isfinite(px) && std::isfinite(py) && px >= 0.0f && py >= 0.0f &&
           px <= static_cast<float>(d.width) && py <= static_cast<float>(d.height);
}

// igsTexelCoord of shaders/igs_sample.glsl, in the same f32 operations.
void address(const igs_decoder& d, float u, float v, igs_address_mode mode, float& px, float& py) {
    const float w = static_cast<float>(d.width), h = static_cast<float>(d.height);
    if (mode == IGS_ADDRESS_CLAMP) {
        px = std::min(std::max(u * w, 0.5f), w - 0.5f);
        py = std::min(std::max(v * h, 0.5f), h - 0.5f);
        return;
    }
    px = (u - std::floor(u)) * w;
    py = (v - std::floor(v)) * h;
    // frac of a tiny negative value rounds to 1.0: that point is the left/top edge.
    if (px >= w) px = 0.0f;
    if (py >= h) py = 0.0f;
}

bool footprint_valid(const float* F) {
    if (!F || !std::isfinite(F[0]) || !std::isfinite(F[1]) || !std::isfinite(F[2])) return false;
    // Beyond 1e18 texels^2 (a footprint a billion texels wide) the f32 algebra overflows.
    if (F[0] < 0.0f || F[2] < 0.0f || F[0] > 1e18f || F[2] > 1e18f) return false;
    // Rank-one footprints (one non-zero derivative) reach det = 0 only up to rounding.
    const double det = static_cast<double>(F[0]) * F[2];
    return static_cast<double>(F[1]) * F[1] <= det * (1.0 + 1e-4) + 1e-30;
}

// The contract at point (px, py) whose tile is `tile`.
void evaluate_point(const igs_decoder& d, uint32_t tile, float px, float py, float* out) {
    const uint32_t first = d.offsets[tile];
    const int32_t* list = d.indices.data() + first;
    const int count = static_cast<int>(d.offsets[tile + 1] - first);
    if (count <= static_cast<int>(d.k)) {
        // Every listed Gaussian is kept and blended in list order: the same values and order
        // the selection below ends with, without its insertion sort (most tiles list <= K).
        float G[igs::kMaxK];
        for (int j = 0; j < count; ++j) G[j] = igs::eval(d.gaussians[list[j]], px, py);
        igs::blend(count, list, G, d.colour.data(), static_cast<int>(d.channels), d.eps, out);
        return;
    }
    igs::TopKSorted top;
    top.reset(static_cast<int>(d.k));
    igs::select_texel(d.gaussians.data(), list, count, px, py, top);
    blend_kept(d, list, top, out);
}

void evaluate_footprint(const igs_decoder& d, uint32_t tile, float px, float py, const float F[3], int k,
                        bool keep_peak, float* out) {
    const uint32_t first = d.offsets[tile];
    const int32_t* list = d.indices.data() + first;
    const int count = static_cast<int>(d.offsets[tile + 1] - first);
    igs::TopKSorted top;
    top.reset(k);
    for (int j = 0; j < count; ++j) top.push(footprint_weight(d.gaussians[list[j]], px, py, F, keep_peak), j);
    blend_kept(d, list, top, out);
}

// Runs the rect in tile-aligned blocks handed out dynamically: tiles differ in list length.
igs_error decode_blocks(const igs_decoder& d, uint32_t x0, uint32_t y0, uint32_t w, uint32_t h, float* out,
                        uint32_t threads) {
    const uint32_t T = d.tile;
    const uint32_t bx0 = x0 / T, bx1 = (x0 + w - 1) / T, by0 = y0 / T, by1 = (y0 + h - 1) / T;
    const uint64_t blocks_x = bx1 - bx0 + 1;
    const uint64_t blocks = blocks_x * (by1 - by0 + 1);
    const uint64_t C = d.channels;
    std::atomic<uint64_t> next{0};
    std::atomic<bool> out_of_memory{false};
    // An exception must not leave a worker thread (std::terminate), so each catches its own.
    auto worker = [&]() {
        try {
            RowScratch sc;
            for (uint64_t b; (b = next.fetch_add(1, std::memory_order_relaxed)) < blocks;) {
                const uint32_t tx = bx0 + static_cast<uint32_t>(b % blocks_x);
                const uint32_t ty = by0 + static_cast<uint32_t>(b / blocks_x);
                const uint32_t xa = std::max(tx * T, x0), xb = std::min(tx * T + T, x0 + w);
                const uint32_t ya = std::max(ty * T, y0), yb = std::min(ty * T + T, y0 + h);
                decode_tile_rows(d, ty * d.tiles_x + tx, xa, xb, ya, yb,
                                 out + (static_cast<uint64_t>(ya - y0) * w + (xa - x0)) * C,
                                 static_cast<size_t>(w) * C, sc);
            }
        } catch (...) {
            out_of_memory = true;
            next = blocks;  // the others stop at their next block
        }
    };
    uint64_t n = threads ? threads : std::max(1u, std::thread::hardware_concurrency());
    n = std::min<uint64_t>({n, blocks, 1024});
    std::vector<std::thread> pool;
    for (uint64_t i = 1; i < n; ++i) {
        try {
            pool.emplace_back(worker);
        } catch (...) {
            break;  // fewer threads than asked for still decodes everything
        }
    }
    worker();
    for (auto& t : pool) t.join();
    return out_of_memory ? IGS_ERR_OUT_OF_MEMORY : IGS_SUCCESS;
}

}  // namespace igs_decoder_impl
