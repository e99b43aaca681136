// Deterministic mutation fuzzer for the C decoder API, built with ASan + UBSan by
// tests/test_sanitizers.py:
//
//   fuzz_decoder FILE.igs [ITERATIONS] [SEED]
//
// Decodes a real baked file (format version 1 or 2) through every entry point, then decodes
// thousands of mutated and truncated copies of it. Each buffer is a heap block of exactly its
// size, so any read past the end lands in ASan's redzone. Every mutation must be refused with a
// code, or be accepted and then decode to finite values (version 2: where its decoded parameters
// are of a size that cannot overflow the blend, see exercise()); some mutations have a known
// answer (stale CRC, bytes appended, truncation) and are held to it. Besides byte and header
// damage, a version 2 file gets its own: tile-offset entries changed or swapped (offsets out of
// order), record means redrawn (records outside their home tile) and inverse scales lowered
// (reach-rule violations), bit-packed fields rewritten in place with the CRC refreshed.
// Exit status 0 when all of that held.
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
    std::fprintf(stderr, "fuzz_decoder: iteration %llu: %s\n", static_cast<unsigned long long>(iteration),
                 what);
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

uint32_t get16(const std::vector<uint8_t>& b, size_t at) {
    return static_cast<uint32_t>(b[at]) | (static_cast<uint32_t>(b[at + 1]) << 8);
}

// A bit field of a version 2 bit stream (FORMAT-v2 "Bit streams": LSB first in little-endian
// words) starting at byte `section`, read and written bit by bit.
uint32_t get_field(const std::vector<uint8_t>& b, size_t section, uint64_t bit, unsigned width) {
    uint32_t v = 0;
    for (unsigned j = 0; j < width; ++j) {
        const uint64_t at = bit + j;
        v |= static_cast<uint32_t>((b[section + at / 8] >> (at % 8)) & 1u) << j;
    }
    return v;
}

void put_field(std::vector<uint8_t>& b, size_t section, uint64_t bit, unsigned width, uint32_t v) {
    for (unsigned j = 0; j < width; ++j) {
        const uint64_t at = bit + j;
        uint8_t& byte = b[section + at / 8];
        byte = static_cast<uint8_t>((byte & ~(1u << (at % 8))) | (((v >> j) & 1u) << (at % 8)));
    }
}

// What the mutations of a version 2 file need to know of its layout (read from its header).
struct LayoutV2 {
    uint32_t n, tiles, mean_bits, theta_bits, scale_bits, offset_bits, record_bits;
    size_t records, offsets;  // section offsets
};

void refresh_crc(std::vector<uint8_t>& b) {
    if (b.size() >= 8) put32(b, b.size() - 4, crc32(b.data(), b.size() - 4));
}

bool all_finite(const float* v, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (!std::isfinite(v[i])) return false;
    return true;
}

// Version 1 colours lie in their finite colour range; a version 2 channel's colour_lo +
// q * colour_step may overflow to infinity (FORMAT-v2.md sets no bound), and then the blend is
// not finite either. Finite outputs are required where every parameter is finite and colours
// stay below 1e30 (K of them times G <= 1 cannot overflow).
bool parameters_bounded(const igs_decoder* d, const igs_info& info) {
    std::unique_ptr<float[]> p(new float[5 + info.channel_count]);
    for (uint32_t i = 0; i < info.gaussian_count; ++i) {
        if (igs_decoder_gaussian(d, i, p.get()) != IGS_SUCCESS) return false;
        for (uint32_t j = 0; j < 5 + info.channel_count; ++j)
            if (!std::isfinite(p[j]) || (j >= 5 && std::fabs(p[j]) > 1e30f)) return false;
    }
    return true;
}

// Every entry point on an accepted decoder, with outputs in exactly sized heap blocks.
void exercise(const igs_decoder* d, Rng& rng, uint64_t it, bool full_image) {
    igs_info info;
    check(igs_decoder_info(d, &info) == IGS_SUCCESS, "igs_decoder_info failed", it);
    const uint32_t W = info.width, H = info.height, C = info.channel_count;
    check(info.version == 1 || info.version == 2, "info.version is neither 1 nor 2", it);
    check((info.version == 2) == (info.reach != 0), "info.reach disagrees with the version", it);
    const bool bounded = info.version == 1 || parameters_bounded(d, info);
    auto finite = [bounded](const float* v, size_t n) { return !bounded || all_finite(v, n); };
    check(info.metadata != nullptr && std::strlen(info.metadata) == info.metadata_size,
          "metadata not NUL-terminated at metadata_size", it);
    if (full_image) {
        const size_t n = static_cast<size_t>(W) * H * C;
        std::unique_ptr<float[]> img(new float[n]);
        check(igs_decode_image(d, img.get(), n, static_cast<uint32_t>(1 + it % 3)) == IGS_SUCCESS,
              "igs_decode_image failed", it);
        check(finite(img.get(), n), "non-finite decoded value", it);
        check(igs_apply_value_range(d, img.get(), static_cast<size_t>(W) * H) == IGS_SUCCESS,
              "igs_apply_value_range failed", it);
    }
    const uint32_t x0 = static_cast<uint32_t>(rng.below(W)), y0 = static_cast<uint32_t>(rng.below(H));
    const uint32_t w = 1 + static_cast<uint32_t>(rng.below(W - x0)),
                   h = 1 + static_cast<uint32_t>(rng.below(H - y0));
    std::unique_ptr<float[]> rect(new float[static_cast<size_t>(w) * h * C]);
    check(igs_decode_rect(d, x0, y0, w, h, rect.get(), static_cast<size_t>(w) * h * C, 2) == IGS_SUCCESS,
          "igs_decode_rect failed", it);
    check(igs_decode_rect(d, x0, y0, w, h, rect.get(), static_cast<size_t>(w) * h * C - 1, 1) ==
              IGS_ERR_BAD_ARGUMENT,
          "short rect buffer accepted", it);
    check(igs_decode_rect(d, x0, y0, W - x0 + 1, h, rect.get(), 0, 1) == IGS_ERR_BAD_ARGUMENT,
          "rect past the right edge accepted", it);
    std::unique_ptr<float[]> one(new float[C]);
    std::unique_ptr<float[]> params(new float[5 + C]);
    check(igs_decode_texel(d, W - 1, H - 1, one.get()) == IGS_SUCCESS, "igs_decode_texel failed", it);
    check(igs_decode_texel(d, W, 0, one.get()) == IGS_ERR_BAD_ARGUMENT, "texel x = W accepted", it);
    if (info.gaussian_count) {
        check(igs_decoder_gaussian(d, info.gaussian_count - 1, params.get()) == IGS_SUCCESS,
              "igs_decoder_gaussian failed", it);
        check(info.version == 2 || all_finite(params.get(), 5 + C), "non-finite parameter", it);
    }
    check(igs_decoder_gaussian(d, info.gaussian_count, params.get()) == IGS_ERR_BAD_ARGUMENT,
          "gaussian index N accepted", it);
    const float edges[][2] = {{0, 0},
                              {static_cast<float>(W), static_cast<float>(H)},
                              {rng.uniform(0, static_cast<float>(W)), rng.uniform(0, static_cast<float>(H))}};
    for (const auto& p : edges) {
        check(igs_sample_point(d, p[0], p[1], one.get()) == IGS_SUCCESS, "igs_sample_point failed", it);
        check(finite(one.get(), C), "non-finite point sample", it);
    }
    check(igs_sample_point(d, -0.001f, 0, one.get()) == IGS_ERR_BAD_ARGUMENT, "point x < 0 accepted", it);
    check(igs_sample_point(d, NAN, 0, one.get()) == IGS_ERR_BAD_ARGUMENT, "NaN point accepted", it);
    const float uvs[][2] = {{rng.uniform(-3, 3), rng.uniform(-3, 3)}, {-1e-9f, 1.0f}, {1e30f, -1e30f}};
    for (const auto& uv : uvs) {
        for (int mode = 0; mode < 2; ++mode) {
            check(
                igs_sample_uv(d, uv[0], uv[1], static_cast<igs_address_mode>(mode), one.get()) == IGS_SUCCESS,
                "igs_sample_uv failed", it);
            float F[3];
            check(igs_footprint_from_uv_derivatives(d, rng.uniform(-0.1f, 0.1f), rng.uniform(-0.1f, 0.1f),
                                                    rng.uniform(-0.1f, 0.1f), rng.uniform(-0.1f, 0.1f),
                                                    IGS_DEFAULT_FOOTPRINT_VARIANCE, F) == IGS_SUCCESS,
                  "igs_footprint_from_uv_derivatives failed", it);
            const igs_footprint_options opt{static_cast<uint32_t>(rng.below(40)),
                                            static_cast<uint32_t>(mode)};
            check(igs_sample_footprint(d, uv[0], uv[1], static_cast<igs_address_mode>(mode), F,
                                       mode ? &opt : nullptr, one.get()) == IGS_SUCCESS,
                  "igs_sample_footprint failed", it);
            check(finite(one.get(), C), "non-finite footprint sample", it);
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
    check(finite(one.get(), C), "non-finite sample under the largest footprint", it);
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
    check(igs_decoder_create(base.data(), base.size(), nullptr) == IGS_ERR_BAD_ARGUMENT, "NULL out accepted",
          0);
    check(igs_decoder_info(nullptr, nullptr) == IGS_ERR_BAD_ARGUMENT, "NULL decoder accepted", 0);
    igs_decoder_destroy(nullptr);

    // Version 1: header 84 bytes, five (offset, length) pairs from byte 44; version 2: 80 bytes,
    // four pairs from byte 48 (FORMAT.md / FORMAT-v2.md "Fixed header").
    const bool v2 = get16(base, 4) == 2;
    const size_t header_end = v2 ? 80 : 84;
    const size_t table_at = v2 ? 48 : 44, table_words = v2 ? 8 : 10;
    const size_t gauss_off = get32(base, table_at + 16);
    const size_t offsets_off = get32(base, table_at + 24), offsets_len = get32(base, table_at + 28);
    const size_t index_off = v2 ? 0 : get32(base, 76), index_len = v2 ? 0 : get32(base, 80);
    LayoutV2 L{};
    if (v2) {
        L.n = get32(base, 28);
        L.tiles = get32(base, 32);
        L.mean_bits = base[36];
        L.theta_bits = base[37];
        L.scale_bits = base[38] + base[39];
        L.offset_bits = base[41];
        L.record_bits = get16(base, 42);
        L.records = gauss_off;
        L.offsets = offsets_off;
    }
    std::map<int, uint64_t> outcomes;
    uint64_t v2_semantic = 0;  // version 2 mutations of offsets and record fields
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
                const size_t at = table_at + 4 * rng.below(table_words);
                const uint32_t old = get32(b, at);
                const uint32_t choices[] = {
                    static_cast<uint32_t>(rng.next()), old + 16, old - 16, old + 4, 0, 0xFFFFFFF0u,
                    static_cast<uint32_t>(b.size()),   old * 2};
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
            case 5:        // a tile offset to a random or nearby value
                if (v2) {  // offsets out of order: an entry changed, or two entries swapped
                    const uint32_t w = L.offset_bits;
                    const uint64_t t = rng.below(L.tiles + 1), u = rng.below(L.tiles + 1);
                    const uint32_t a = get_field(b, L.offsets, t * w, w),
                                   c = get_field(b, L.offsets, u * w, w);
                    const uint32_t mask = w == 32 ? 0xFFFFFFFFu : (1u << w) - 1;
                    if (rng.below(2)) {
                        put_field(b, L.offsets, t * w, w, c);
                        put_field(b, L.offsets, u * w, w, a);
                    } else {
                        const uint32_t deltas[] = {1, 2, mask, mask - 1, static_cast<uint32_t>(rng.next())};
                        put_field(b, L.offsets, t * w, w, (a + deltas[rng.below(5)]) & mask);
                    }
                    ++v2_semantic;
                } else if (offsets_len >= 4) {
                    const size_t at = offsets_off + 4 * rng.below(offsets_len / 4);
                    put32(b, at,
                          rng.below(2) ? static_cast<uint32_t>(rng.next())
                                       : get32(b, at) + 1 - 2 * rng.below(2));
                }
                refresh_crc(b);
                break;
            case 6:               // a tile index or Gaussian word to a random value
                if (v2 && L.n) {  // a record's mean redrawn, or an inverse scale lowered
                    const uint64_t rec = rng.below(L.n) * L.record_bits;
                    const uint32_t P = L.mean_bits, S = L.scale_bits;
                    switch (rng.below(3)) {
                        case 0:  // often outside its home tile
                            put_field(b, L.records, rec + P * rng.below(2), P,
                                      static_cast<uint32_t>(rng.below(1ull << P)));
                            break;
                        case 1: {  // the exponent lowered: often a radius beyond reach * tile
                            const uint64_t at = rec + 2 * P + L.theta_bits + S * rng.below(2);
                            const uint32_t q = get_field(b, L.records, at, S);
                            put_field(b, L.records, at, S, q >> (1 + rng.below(S)));
                            break;
                        }
                        default:  // any field of any record to a random value
                            put_field(b, L.records, rng.below(static_cast<uint64_t>(L.n) * L.record_bits - 7),
                                      8, static_cast<uint32_t>(rng.next()));
                    }
                    ++v2_semantic;
                } else if (index_len >= 4 && rng.below(2)) {
                    put32(b, index_off + 4 * rng.below(index_len / 4), static_cast<uint32_t>(rng.next()));
                } else if (offsets_off > gauss_off + 4) {
                    put32(b, gauss_off + 4 * rng.below((offsets_off - gauss_off) / 4),
                          static_cast<uint32_t>(rng.next()));
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
            check(detail[0] != '\0' && std::strchr(detail, '\n') == nullptr, "detail empty or multi-line",
                  it);
            check(std::strncmp(igs_error_string(e), "IGS_ERR_", 8) == 0, "error string", it);
            continue;
        }
        buf.reset();  // the decoder must not read the file bytes after creation
        exercise(m, rng, it, it % 4 == 0);
        igs_decoder_destroy(m);
    }

    std::printf("version %d | iterations %llu", v2 ? 2 : 1, static_cast<unsigned long long>(iterations));
    if (v2)
        std::printf(" | offset and record-field mutations %llu",
                    static_cast<unsigned long long>(v2_semantic));
    for (const auto& kv : outcomes)
        std::printf(" | %s: %llu", igs_error_string(static_cast<igs_error>(kv.first)),
                    static_cast<unsigned long long>(kv.second));
    std::printf("\n");
    check(outcomes[IGS_SUCCESS] > iterations / 50, "too few mutations accepted to exercise decoding", 0);
    check(outcomes.size() >= 8, "too few distinct error codes reached", 0);
    return g_failures ? 1 : 0;
}
