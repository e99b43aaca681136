// Deterministic mutation fuzzer for the C decoder API, built with ASan + UBSan by
// tests/test_sanitizers.py:
//
//   fuzz_decoder FILE.igs [ITERATIONS] [SEED]
//
// Decodes a real baked file through every entry point, then decodes thousands of mutated and
// truncated copies of it. Each buffer is a heap block of exactly its size, so any read past the
// end lands in ASan's redzone. Every mutation must be refused with a code, or be accepted and
// then decode to finite values; some mutations have a known answer (stale CRC, bytes appended,
// truncation) and are held to it. Exit status 0 when all of that held.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "igs_decoder.h"

namespace {

int g_failures = 0;

void check(bool ok, const char* what, uint64_t iteration) {
    if (ok) return;
    std::fprintf(stderr, "fuzz_decoder: iteration %llu: %s\n",
                 static_cast<unsigned long long>(iteration), what);
    if (++g_failures > 20) std::exit(1);
}

// xorshift64*: the same mutations on every platform and run.
struct Rng {
    uint64_t s;
    uint64_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545F4914F6CDD1DULL;
    }
    uint64_t below(uint64_t n) { return n ? next() % n : 0; }
    float uniform(float lo, float hi) {
        return lo + (hi - lo) * static_cast<float>(next() >> 40) / static_cast<float>(1 << 24);
    }
};

uint32_t crc32(const uint8_t* p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; ++i) {
        c ^= p[i];
        for (int b = 0; b < 8; ++b) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

void put32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
    if (at + 4 > b.size()) return;
    for (int i = 0; i < 4; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

uint32_t get32(const std::vector<uint8_t>& b, size_t at) {
    return static_cast<uint32_t>(b[at]) | (static_cast<uint32_t>(b[at + 1]) << 8) |
           (static_cast<uint32_t>(b[at + 2]) << 16) | (static_cast<uint32_t>(b[at + 3]) << 24);
}

void refresh_crc(std::vector<uint8_t>& b) {
    if (b.size() >= 8) put32(b, b.size() - 4, crc32(b.data(), b.size() - 4));
}

bool all_finite(const float* v, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (!std::isfinite(v[i])) return false;
    return true;
}

// Every entry point on an accepted decoder, with outputs in exactly sized heap blocks.
void exercise(const igs_decoder* d, Rng& rng, uint64_t it, bool full_image) {
    igs_info info;
    check(igs_decoder_info(d, &info) == IGS_SUCCESS, "igs_decoder_info failed", it);
    const uint32_t W = info.width, H = info.height, C = info.channel_count;
    check(info.metadata != nullptr && std::strlen(info.metadata) == info.metadata_size,
          "metadata not NUL-terminated at metadata_size", it);
    if (full_image) {
        const size_t n = static_cast<size_t>(W) * H * C;
        std::unique_ptr<float[]> img(new float[n]);
        check(igs_decode_image(d, img.get(), n, static_cast<uint32_t>(1 + it % 3)) == IGS_SUCCESS,
              "igs_decode_image failed", it);
        check(all_finite(img.get(), n), "non-finite decoded value", it);
        check(igs_apply_value_range(d, img.get(), static_cast<size_t>(W) * H) == IGS_SUCCESS,
              "igs_apply_value_range failed", it);
    }
    const uint32_t x0 = static_cast<uint32_t>(rng.below(W)), y0 = static_cast<uint32_t>(rng.below(H));
    const uint32_t w = 1 + static_cast<uint32_t>(rng.below(W - x0)), h = 1 + static_cast<uint32_t>(rng.below(H - y0));
    std::unique_ptr<float[]> rect(new float[static_cast<size_t>(w) * h * C]);
    check(igs_decode_rect(d, x0, y0, w, h, rect.get(), static_cast<size_t>(w) * h * C, 2) == IGS_SUCCESS,
          "igs_decode_rect failed", it);
    check(igs_decode_rect(d, x0, y0, w, h, rect.get(), static_cast<size_t>(w) * h * C - 1, 1) ==
              IGS_ERR_BAD_ARGUMENT, "short rect buffer accepted", it);
    check(igs_decode_rect(d, x0, y0, W - x0 + 1, h, rect.get(), 0, 1) == IGS_ERR_BAD_ARGUMENT,
          "rect past the right edge accepted", it);
    std::unique_ptr<float[]> one(new float[C]);
    std::unique_ptr<float[]> params(new float[5 + C]);
    check(igs_decode_texel(d, W - 1, H - 1, one.get()) == IGS_SUCCESS, "igs_decode_texel failed", it);
    check(igs_decode_texel(d, W, 0, one.get()) == IGS_ERR_BAD_ARGUMENT, "texel x = W accepted", it);
    if (info.gaussian_count) {
        check(igs_decoder_gaussian(d, info.gaussian_count - 1, params.get()) == IGS_SUCCESS,
              "igs_decoder_gaussian failed", it);
        check(all_finite(params.get(), 5 + C), "non-finite parameter", it);
    }
    check(igs_decoder_gaussian(d, info.gaussian_count, params.get()) == IGS_ERR_BAD_ARGUMENT,
          "gaussian index N accepted", it);
    const float edges[][2] = {{0, 0}, {static_cast<float>(W), static_cast<float>(H)},
                              {rng.uniform(0, static_cast<float>(W)), rng.uniform(0, static_cast<float>(H))}};
    for (const auto& p : edges) {
        check(igs_sample_point(d, p[0], p[1], one.get()) == IGS_SUCCESS, "igs_sample_point failed", it);
        check(all_finite(one.get(), C), "non-finite point sample", it);
    }
    check(igs_sample_point(d, -0.001f, 0, one.get()) == IGS_ERR_BAD_ARGUMENT, "point x < 0 accepted", it);
    check(igs_sample_point(d, NAN, 0, one.get()) == IGS_ERR_BAD_ARGUMENT, "NaN point accepted", it);
    const float uvs[][2] = {{rng.uniform(-3, 3), rng.uniform(-3, 3)}, {-1e-9f, 1.0f}, {1e30f, -1e30f}};
    for (const auto& uv : uvs) {
        for (int mode = 0; mode < 2; ++mode) {
            check(igs_sample_uv(d, uv[0], uv[1], static_cast<igs_address_mode>(mode), one.get()) ==
                      IGS_SUCCESS, "igs_sample_uv failed", it);
            float F[3];
            check(igs_footprint_from_uv_derivatives(d, rng.uniform(-0.1f, 0.1f), rng.uniform(-0.1f, 0.1f),
                                                    rng.uniform(-0.1f, 0.1f), rng.uniform(-0.1f, 0.1f),
                                                    IGS_DEFAULT_FOOTPRINT_VARIANCE, F) == IGS_SUCCESS,
                  "igs_footprint_from_uv_derivatives failed", it);
            const igs_footprint_options opt{static_cast<uint32_t>(rng.below(40)), static_cast<uint32_t>(mode)};
            check(igs_sample_footprint(d, uv[0], uv[1], static_cast<igs_address_mode>(mode), F,
                                       mode ? &opt : nullptr, one.get()) == IGS_SUCCESS,
                  "igs_sample_footprint failed", it);
            check(all_finite(one.get(), C), "non-finite footprint sample", it);
        }
    }
    check(igs_sample_uv(d, INFINITY, 0, IGS_ADDRESS_WRAP, one.get()) == IGS_ERR_BAD_ARGUMENT,
          "infinite uv accepted", it);
    float F[3];
    check(igs_footprint_for_mip_level(rng.uniform(0, 6), F) == IGS_SUCCESS, "mip footprint failed", it);
    check(igs_sample_point_footprint(d, 0.5f, 0.5f, F, nullptr, one.get()) == IGS_SUCCESS,
          "igs_sample_point_footprint failed", it);
    const float huge_F[3] = {1e18f, -1e18f, 1e18f};  // the largest accepted footprint
    check(igs_sample_point_footprint(d, 0.5f, 0.5f, huge_F, nullptr, one.get()) == IGS_SUCCESS,
          "largest footprint refused", it);
    check(all_finite(one.get(), C), "non-finite sample under the largest footprint", it);
    const float bad_F[3] = {1.0f, 2.0f, 1.0f};
    check(igs_sample_point_footprint(d, 0.5f, 0.5f, bad_F, nullptr, one.get()) == IGS_ERR_BAD_ARGUMENT,
          "indefinite footprint accepted", it);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s FILE.igs [ITERATIONS] [SEED]\n", argv[0]);
        return 2;
    }
    const uint64_t iterations = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 3000;
    Rng rng{argc > 3 ? std::strtoull(argv[3], nullptr, 10) | 1 : 0x1234567ULL};
    std::FILE* f = std::fopen(argv[1], "rb");
    if (!f) {
        std::perror(argv[1]);
        return 2;
    }
    std::vector<uint8_t> base;
    for (int c; (c = std::fgetc(f)) != EOF;) base.push_back(static_cast<uint8_t>(c));
    std::fclose(f);

    // The unmutated file: accepted, and every entry point works on it.
    igs_decoder* d = nullptr;
    char detail[256];
    if (igs_decoder_create_detailed(base.data(), base.size(), &d, detail, sizeof detail) != IGS_SUCCESS) {
        std::fprintf(stderr, "fuzz_decoder: the base file is refused: %s\n", detail);
        return 1;
    }
    exercise(d, rng, 0, true);
    igs_decoder_destroy(d);
    check(igs_decoder_create(nullptr, 10, &d) == IGS_ERR_BAD_ARGUMENT, "NULL data accepted", 0);
    check(igs_decoder_create(base.data(), base.size(), nullptr) == IGS_ERR_BAD_ARGUMENT, "NULL out accepted", 0);
    check(igs_decoder_info(nullptr, nullptr) == IGS_ERR_BAD_ARGUMENT, "NULL decoder accepted", 0);
    igs_decoder_destroy(nullptr);

    const size_t header_end = 84;
    const size_t gauss_off = get32(base, 60), offsets_off = get32(base, 68), offsets_len = get32(base, 72);
    const size_t index_off = get32(base, 76), index_len = get32(base, 80);
    std::map<int, uint64_t> outcomes;
    for (uint64_t it = 1; it <= iterations; ++it) {
        std::vector<uint8_t> b = base;
        int expect = -1;  // a known answer, when the mutation has one
        switch (it % 8) {
            case 0:  // 1-4 byte flips anywhere, CRC refreshed so the checks behind it run
                for (uint64_t n = 1 + rng.below(4); n; --n) b[rng.below(b.size() - 4)] ^= 1 + rng.below(255);
                refresh_crc(b);
                break;
            case 1:  // a random header half-word
                b[2 * rng.below(header_end / 2)] = static_cast<uint8_t>(rng.next());
                b[2 * rng.below(header_end / 2) + 1] = static_cast<uint8_t>(rng.next());
                refresh_crc(b);
                break;
            case 2: {  // a section-table word to a random, nearby or extreme value
                const size_t at = 44 + 4 * rng.below(10);
                const uint32_t old = get32(b, at);
                const uint32_t choices[] = {static_cast<uint32_t>(rng.next()), old + 16, old - 16, old + 4,
                                            0, 0xFFFFFFF0u, static_cast<uint32_t>(b.size()), old * 2};
                put32(b, at, choices[rng.below(8)]);
                refresh_crc(b);
                break;
            }
            case 3: {  // truncation, sometimes with a CRC valid for the shorter buffer
                b.resize(rng.below(b.size()));
                if (rng.below(2)) refresh_crc(b);
                expect = IGS_ERR_TRUNCATED;
                break;
            }
            case 4:  // payload damage behind an intact header: only the CRC can catch it
                b[header_end + rng.below(b.size() - 4 - header_end)] ^= 1 + rng.below(255);
                expect = IGS_ERR_BAD_CRC;
                break;
            case 5:  // a tile offset to a random or nearby value
                if (offsets_len >= 4) {
                    const size_t at = offsets_off + 4 * rng.below(offsets_len / 4);
                    put32(b, at, rng.below(2) ? static_cast<uint32_t>(rng.next()) : get32(b, at) + 1 - 2 * rng.below(2));
                }
                refresh_crc(b);
                break;
            case 6:  // a tile index or Gaussian word to a random value
                if (index_len >= 4 && rng.below(2)) {
                    put32(b, index_off + 4 * rng.below(index_len / 4), static_cast<uint32_t>(rng.next()));
                } else if (offsets_off > gauss_off + 4) {
                    put32(b, gauss_off + 4 * rng.below((offsets_off - gauss_off) / 4), static_cast<uint32_t>(rng.next()));
                }
                refresh_crc(b);
                break;
            default:  // bytes after the CRC
                b.resize(b.size() + 1 + rng.below(40), static_cast<uint8_t>(rng.next()));
                refresh_crc(b);
                expect = IGS_ERR_BAD_LAYOUT;
                break;
        }
        // Exactly b.size() bytes on the heap: one byte further is ASan's redzone.
        std::unique_ptr<uint8_t[]> buf(new uint8_t[b.size() ? b.size() : 1]);
        if (!b.empty()) std::memcpy(buf.get(), b.data(), b.size());
        igs_decoder* m = reinterpret_cast<igs_decoder*>(&b);  // must be overwritten
        const igs_error e = igs_decoder_create_detailed(buf.get(), b.size(), &m, detail, sizeof detail);
        ++outcomes[e];
        if (expect >= 0) check(e == expect, "mutation with a known answer got another code", it);
        if (e != IGS_SUCCESS) {
            check(m == nullptr, "refused but *out is not NULL", it);
            check(detail[0] != '\0' && std::strchr(detail, '\n') == nullptr, "detail empty or multi-line", it);
            check(std::strncmp(igs_error_string(e), "IGS_ERR_", 8) == 0, "error string", it);
            continue;
        }
        buf.reset();  // the decoder must not read the file bytes after creation
        exercise(m, rng, it, it % 4 == 0);
        igs_decoder_destroy(m);
    }

    std::printf("iterations %llu", static_cast<unsigned long long>(iterations));
    for (const auto& kv : outcomes)
        std::printf(" | %s: %llu", igs_error_string(static_cast<igs_error>(kv.first)),
                    static_cast<unsigned long long>(kv.second));
    std::printf("\n");
    check(outcomes[IGS_SUCCESS] > iterations / 50, "too few mutations accepted to exercise decoding", 0);
    check(outcomes.size() >= 8, "too few distinct error codes reached", 0);
    return g_failures ? 1 : 0;
}
