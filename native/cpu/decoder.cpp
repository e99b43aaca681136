// CPU reference decoder behind the C API of igs_decoder.h.
//
// Creation validates the buffer in the order of docs/FORMAT.md "Validation" (the order
// igs_tex/igsfile.py uses, so both name the same first defect), then dequantises every Gaussian
// once into the per-texel math's Gaussian struct. Decoding is the rendering contract per texel
// with the header functions of native/include/igs: the same eval / select / sort / blend
// sequence as the native forward's simple path, so the two give identical bytes. Image and rect
// decoding only reorder when each G is computed (a tile row at a time, so the evaluation
// vectorises), not how.
//
// Build with -ffp-contract=off (never -ffast-math): FORMAT.md's parameter decode is one rounded
// f32 operation per line, and a fused multiply-add would change the bits.
#include "igs_decoder.h"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "igs/gaussian.h"
#include "igs/texel.h"
#include "igs/topk.h"

struct igs_decoder {
    uint32_t width = 0, height = 0, channels = 0, tile = 0, k = 0;
    uint32_t gaussian_count = 0, tile_count = 0, index_count = 0, index_bits = 0, tiles_x = 0;
    float eps = 0.0f;
    uint8_t semantic[IGS_MAX_CHANNELS] = {};
    float value_lo[IGS_MAX_CHANNELS] = {}, value_hi[IGS_MAX_CHANNELS] = {};
    std::string metadata;
    std::vector<igs::Gaussian> gaussians;  // [N]: mean, cos/sin(theta), inverse scales
    std::vector<float> theta;              // [N], kept for igs_decoder_gaussian
    std::vector<float> colour;             // [N, C]
    std::vector<uint32_t> offsets;         // [tile_count + 1]
    std::vector<int32_t> indices;          // [M]; N <= 2^26 so every index fits
};

namespace {

constexpr uint64_t kHeaderSize = 84;
constexpr uint64_t kCrcSize = 4;
constexpr uint64_t kChannelEntrySize = 20;
constexpr uint64_t kSectionAlign = 16;
constexpr uint32_t kMaxSide = 16384;
constexpr uint32_t kMaxTile = 256;
constexpr uint32_t kMaxGaussians = 1u << 26;
constexpr uint32_t kMaxIndexCount = (1u << 30) - 1;
constexpr uint32_t kMaxGaussians16BitIndex = 65536;
constexpr int kSemanticCodes = 10;
constexpr uint16_t kHalfMinNormal = 0x0400;
constexpr uint16_t kHalfMaxFinite = 0x7BFF;
// JSON nesting deeper than this is refused: Python's json (the reference reader) stops near
// 1000 levels with a RecursionError, and no metadata needs more.
constexpr int kMaxJsonDepth = 1000;
const char* const kSectionNames[5] = {"channel table", "metadata", "gaussian buffer",
                                      "tile offsets", "tile indices"};

// Little-endian loads byte by byte: correct on any host and at any alignment.
uint16_t load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t load32(const uint8_t* p) {
    return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
           (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
float loadf(const uint8_t* p) { return igs::bits_float(load32(p)); }

float k16() { return igs::bits_float(0x37800080u); }         // f32(1 / 65535)
float theta_step() { return igs::bits_float(0x38490FDBu); }  // f32(pi) * 2^-16

uint32_t crc32(const uint8_t* p, uint64_t n) {
    static const struct Table {
        uint32_t v[256];
        Table() {
            for (uint32_t i = 0; i < 256; ++i) {
                uint32_t c = i;
                for (int b = 0; b < 8; ++b) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
                v[i] = c;
            }
        }
    } table;
    uint32_t c = 0xFFFFFFFFu;
    for (uint64_t i = 0; i < n; ++i) c = table.v[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

// Exact binary16 -> binary32 for the positive normal halves validation admits.
float half_to_float(uint16_t h) {
    const uint32_t exponent = (h >> 10) & 0x1F;
    const uint32_t mantissa = h & 0x3FF;
    return igs::bits_float(((exponent + 127 - 15) << 23) | (mantissa << 13));
}

bool is_subnormal(float v) { return v != 0.0f && std::fabs(v) < FLT_MIN; }

unsigned long long ull(uint64_t v) { return static_cast<unsigned long long>(v); }

class Detail {
public:
    Detail(char* buf, size_t size) : buf_(buf), size_(size) {
        if (buf_ && size_) buf_[0] = '\0';
    }
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    igs_error fail(igs_error code, const char* fmt, ...) {
        if (buf_ && size_) {
            va_list args;
            va_start(args, fmt);
            std::vsnprintf(buf_, size_, fmt, args);
            va_end(args);
        }
        return code;
    }

private:
    char* buf_;
    size_t size_;
};

// ---------------------------------------------------------------------------------------------
// Metadata: UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF) and strict
// JSON (RFC 8259) whose top level is an object.

bool valid_utf8(const uint8_t* p, uint64_t n, uint64_t& bad_at) {
    uint64_t i = 0;
    while (i < n) {
        const uint8_t c = p[i];
        int len;
        uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
        if (c < 0x80) {
            ++i;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;       // overlong
            else if (c == 0xED) hi = 0x9F;  // surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;       // overlong
            else if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
        } else {
            bad_at = i;
            return false;
        }
        if (n - i < static_cast<uint64_t>(len) || p[i + 1] < lo || p[i + 1] > hi) {
            bad_at = i;
            return false;
        }
        for (int b = 2; b < len; ++b) {
            if ((p[i + b] & 0xC0) != 0x80) {
                bad_at = i;
                return false;
            }
        }
        i += len;
    }
    return true;
}

class JsonChecker {
public:
    JsonChecker(const uint8_t* p, uint64_t n) : p_(p), end_(p + n), begin_(p) {}

    // Iterative (explicit container stack), so hostile nesting cannot exhaust the call stack.
    bool check_object() {
        skip_ws();
        if (p_ == end_ || *p_ != '{') return error("top level is not an object");
        std::vector<char> stack;
        for (;;) {
            // A value starts here.
            skip_ws();
            if (p_ == end_) return error("unexpected end of input, expected a value");
            const uint8_t c = *p_;
            bool done_value = true;
            if (c == '{' || c == '[') {
                if (static_cast<int>(stack.size()) >= kMaxJsonDepth)
                    return error("nested deeper than 1000 levels");
                stack.push_back(static_cast<char>(c));
                ++p_;
                skip_ws();
                if (p_ < end_ && *p_ == (c == '{' ? '}' : ']')) {
                    ++p_;
                    stack.pop_back();
                } else if (c == '{') {
                    if (!member_key()) return false;
                    done_value = false;
                } else {
                    done_value = false;
                }
            } else if (c == '"') {
                if (!string()) return false;
            } else if (c == '-' || (c >= '0' && c <= '9')) {
                if (!number()) return false;
            } else if (c == 't') {
                if (!literal("true")) return false;
            } else if (c == 'f') {
                if (!literal("false")) return false;
            } else if (c == 'n') {
                if (!literal("null")) return false;
            } else {
                return error(c == 'N' || c == 'I' ? "NaN/Infinity are not strict JSON" : "invalid value");
            }
            if (!done_value) continue;
            // After a complete value: close containers or move to the next element.
            for (;;) {
                skip_ws();
                if (stack.empty()) {
                    if (p_ != end_) return error("extra data after the object");
                    return true;
                }
                if (p_ == end_) return error("unexpected end of input inside a container");
                const char top = stack.back();
                if (*p_ == ',') {
                    ++p_;
                    if (top == '{') {
                        skip_ws();
                        if (!member_key()) return false;
                    }
                    break;  // next value
                }
                if (*p_ == (top == '{' ? '}' : ']')) {
                    ++p_;
                    stack.pop_back();
                    continue;
                }
                return error(top == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
            }
        }
    }

    const char* what() const { return what_; }
    uint64_t where() const { return static_cast<uint64_t>(p_ - begin_); }

private:
    bool error(const char* what) {
        what_ = what;
        return false;
    }
    void skip_ws() {
        while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
    }
    bool member_key() {
        if (p_ == end_ || *p_ != '"') return error("expected a string key");
        if (!string()) return false;
        skip_ws();
        if (p_ == end_ || *p_ != ':') return error("expected ':' after a key");
        ++p_;
        return true;
    }
    static bool hex(uint8_t c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    }
    bool string() {
        ++p_;  // opening quote
        while (p_ < end_) {
            const uint8_t c = *p_;
            if (c == '"') {
                ++p_;
                return true;
            }
            if (c < 0x20) return error("control character in a string");
            if (c == '\\') {
                ++p_;
                if (p_ == end_) break;
                const uint8_t e = *p_;
                if (e == 'u') {
                    if (end_ - p_ < 5 || !hex(p_[1]) || !hex(p_[2]) || !hex(p_[3]) || !hex(p_[4]))
                        return error("bad \\u escape");
                    p_ += 5;
                    continue;
                }
                if (!std::strchr("\"\\/bfnrt", e) || e == 0) return error("bad escape");
            }
            ++p_;
        }
        return error("unterminated string");
    }
    bool digits() {
        if (p_ == end_ || *p_ < '0' || *p_ > '9') return error("expected a digit");
        while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
        return true;
    }
    bool number() {
        if (*p_ == '-') ++p_;
        if (p_ < end_ && *p_ == '0') {
            ++p_;
        } else if (!digits()) {
            return false;
        }
        if (p_ < end_ && *p_ == '.') {
            ++p_;
            if (!digits()) return false;
        }
        if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
            ++p_;
            if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
            if (!digits()) return false;
        }
        return true;
    }
    bool literal(const char* word) {
        const size_t n = std::strlen(word);
        if (static_cast<size_t>(end_ - p_) < n || std::memcmp(p_, word, n) != 0)
            return error("invalid literal");
        p_ += n;
        return true;
    }

    const uint8_t* p_;
    const uint8_t* end_;
    const uint8_t* begin_;
    const char* what_ = "";
};

// ---------------------------------------------------------------------------------------------
// Validation and parameter decode

struct Section {
    uint64_t offset, length;
};

igs_error parse(const uint8_t* data, uint64_t size, igs_decoder& d, Detail& detail) {
    // 1. Identity.
    if (size < kHeaderSize + kCrcSize)
        return detail.fail(IGS_ERR_TRUNCATED,
                           "truncated: header and CRC need %llu bytes but the buffer has %llu",
                           ull(kHeaderSize + kCrcSize), ull(size));
    if (std::memcmp(data, "IGSF", 4) != 0)
        return detail.fail(IGS_ERR_BAD_MAGIC,
                           "not an .igs file: magic is %02x %02x %02x %02x, expected 49 47 53 46",
                           data[0], data[1], data[2], data[3]);
    const uint16_t version = load16(data + 4);
    if (version != IGS_FORMAT_VERSION)
        return detail.fail(IGS_ERR_BAD_VERSION, "unsupported version %u (this decoder knows %d)",
                           version, IGS_FORMAT_VERSION);
    const uint16_t header_size = load16(data + 6);
    if (header_size != kHeaderSize)
        return detail.fail(IGS_ERR_BAD_HEADER, "header size %u, version 1 has %llu", header_size,
                           ull(kHeaderSize));

    // 2. Section table against the buffer, before the CRC: a short file is "truncated", not
    // "corrupt". All arithmetic in 64 bits: offset + length of two u32 cannot overflow.
    Section sec[5];
    uint64_t prev_end = kHeaderSize;
    const char* prev_name = "header";
    for (int s = 0; s < 5; ++s) {
        sec[s].offset = load32(data + 44 + 8 * s);
        sec[s].length = load32(data + 48 + 8 * s);
        const uint64_t offset = sec[s].offset, end = sec[s].offset + sec[s].length;
        if (offset % kSectionAlign)
            return detail.fail(IGS_ERR_BAD_LAYOUT, "%s offset %llu is not a multiple of 16",
                               kSectionNames[s], ull(offset));
        if (offset < prev_end)
            return detail.fail(IGS_ERR_BAD_LAYOUT,
                               "%s (bytes %llu..%llu) overlaps the %s, which ends at byte %llu",
                               kSectionNames[s], ull(offset), ull(end), prev_name, ull(prev_end));
        if (offset > size)
            return detail.fail(IGS_ERR_TRUNCATED,
                               "truncated or corrupt: %s starts at byte %llu, beyond the end of "
                               "the buffer (%llu bytes)",
                               kSectionNames[s], ull(offset), ull(size));
        if (end + kCrcSize > size)
            return detail.fail(IGS_ERR_TRUNCATED,
                               "truncated: %s ends at byte %llu (+4 bytes of CRC) but the buffer "
                               "has %llu bytes",
                               kSectionNames[s], ull(end), ull(size));
        prev_end = end;
        prev_name = kSectionNames[s];
    }
    if (prev_end + kCrcSize != size)
        return detail.fail(IGS_ERR_BAD_LAYOUT,
                           "buffer has %llu bytes but the sections and CRC end at byte %llu",
                           ull(size), ull(prev_end + kCrcSize));

    // 3. Integrity.
    const uint32_t stored_crc = load32(data + size - kCrcSize);
    const uint32_t actual_crc = crc32(data, size - kCrcSize);
    if (stored_crc != actual_crc)
        return detail.fail(IGS_ERR_BAD_CRC, "CRC mismatch: stored %08x, computed %08x (file corrupt)",
                           stored_crc, actual_crc);

    // 4. Header fields against their limits.
    const uint32_t width = load32(data + 8), height = load32(data + 12);
    const uint32_t channels = load16(data + 16), tile = load16(data + 18);
    const uint32_t k = load16(data + 20), index_bits = load16(data + 22);
    const float eps = loadf(data + 24);
    const uint32_t n = load32(data + 28), tile_count = load32(data + 32);
    const uint32_t index_count = load32(data + 36);
    const uint32_t wpg = load16(data + 40), flags = load16(data + 42);
    if (width < 1 || width > kMaxSide || height < 1 || height > kMaxSide)
        return detail.fail(IGS_ERR_BAD_HEADER, "image size %ux%u is outside 1..16384", width, height);
    if (channels < 1 || channels > IGS_MAX_CHANNELS)
        return detail.fail(IGS_ERR_BAD_HEADER, "channel count %u is outside 1..16", channels);
    if (tile < 1 || tile > kMaxTile)
        return detail.fail(IGS_ERR_BAD_HEADER, "tile size %u is outside 1..256", tile);
    if (k < 1 || k > IGS_MAX_K) return detail.fail(IGS_ERR_BAD_HEADER, "K %u is outside 1..32", k);
    if (!(std::isfinite(eps) && eps > 0.0f))
        return detail.fail(IGS_ERR_BAD_HEADER, "epsilon %g must be finite and > 0", eps);
    if (n > kMaxGaussians)
        return detail.fail(IGS_ERR_BAD_HEADER, "gaussian count %u exceeds the limit %u", n,
                           kMaxGaussians);
    const uint32_t want_bits = n <= kMaxGaussians16BitIndex ? 16 : 32;
    if (index_bits != want_bits)
        return detail.fail(IGS_ERR_BAD_HEADER, "index bits %u, but %u Gaussians require %u",
                           index_bits, n, want_bits);
    const uint32_t tiles_x = (width + tile - 1) / tile, tiles_y = (height + tile - 1) / tile;
    const uint64_t want_tiles = static_cast<uint64_t>(tiles_x) * tiles_y;
    if (tile_count != want_tiles)
        return detail.fail(IGS_ERR_BAD_HEADER,
                           "tile count %u, but a %ux%u image in %u-texel tiles has %llu", tile_count,
                           width, height, tile, ull(want_tiles));
    if (index_count > kMaxIndexCount)
        return detail.fail(IGS_ERR_BAD_HEADER, "index count %u exceeds the limit %u", index_count,
                           kMaxIndexCount);
    const uint32_t want_wpg = (5 + channels + 1) / 2;
    if (wpg != want_wpg)
        return detail.fail(IGS_ERR_BAD_HEADER, "words per gaussian %u, but %u channels need %u",
                           wpg, channels, want_wpg);
    if (flags != 0)
        return detail.fail(IGS_ERR_BAD_HEADER, "flags 0x%04x: no flags are defined in version 1",
                           flags);

    // 5. Section lengths against the counts (metadata is free-form).
    const uint64_t want_len[5] = {
        kChannelEntrySize * channels, 0, 4ull * n * wpg, 4ull * (static_cast<uint64_t>(tile_count) + 1),
        4ull * ((static_cast<uint64_t>(index_count) * index_bits + 31) / 32)};
    for (int s = 0; s < 5; ++s) {
        if (s == 1) continue;
        if (sec[s].length != want_len[s])
            return detail.fail(IGS_ERR_BAD_SECTION_SIZE,
                               "%s section is %llu bytes but the header's counts need %llu "
                               "(C=%u, N=%u, tiles=%u, M=%u)",
                               kSectionNames[s], ull(sec[s].length), ull(want_len[s]), channels, n,
                               tile_count, index_count);
    }

    // 6. Channel table.
    for (uint32_t c = 0; c < channels; ++c) {
        const uint8_t* e = data + sec[0].offset + kChannelEntrySize * c;
        if (e[1] || e[2] || e[3])
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE, "channel %u: reserved bytes are not zero", c);
        if (e[0] >= kSemanticCodes)
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE, "channel %u: unknown semantic code %u", c,
                               e[0]);
        const float vlo = loadf(e + 4), vhi = loadf(e + 8), clo = loadf(e + 12), chi = loadf(e + 16);
        if (!(std::isfinite(vlo) && std::isfinite(vhi) && vhi >= vlo))
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE,
                               "channel %u: value range [%g, %g] must be finite with hi >= lo", c,
                               vlo, vhi);
        if (!(std::isfinite(clo) && std::isfinite(chi) && chi >= clo))
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE,
                               "channel %u: colour range [%g, %g] must be finite with hi >= lo", c,
                               clo, chi);
        if (is_subnormal(clo) || is_subnormal(chi))
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE,
                               "channel %u: colour range end %g is subnormal", c,
                               is_subnormal(clo) ? clo : chi);
        const float span = chi - clo;
        const float step = span * k16();
        if (!std::isfinite(step))
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE,
                               "channel %u: colour range [%g, %g] is wider than float32 holds", c,
                               clo, chi);
        if (step > 0.0f && step < FLT_MIN)
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE,
                               "channel %u: colour range [%g, %g] gives a subnormal decode step", c,
                               clo, chi);
        d.semantic[c] = e[0];
        d.value_lo[c] = vlo;
        d.value_hi[c] = vhi;
    }

    // 7. Metadata.
    const uint8_t* meta = data + sec[1].offset;
    const uint64_t meta_len = sec[1].length;
    if (meta_len) {
        uint64_t bad_at = 0;
        if (!valid_utf8(meta, meta_len, bad_at))
            return detail.fail(IGS_ERR_BAD_METADATA, "metadata is not valid UTF-8 (byte %llu)",
                               ull(bad_at));
        JsonChecker json(meta, meta_len);
        if (!json.check_object())
            return detail.fail(IGS_ERR_BAD_METADATA,
                               "metadata is not valid JSON: %s at byte %llu", json.what(),
                               ull(json.where()));
        d.metadata.assign(reinterpret_cast<const char*>(meta), static_cast<size_t>(meta_len));
    } else {
        d.metadata = "{}";
    }

    // 8. Gaussian buffer: padding halves and inverse scales.
    const uint8_t* gb = data + sec[2].offset;
    const bool padded = (5 + channels) % 2 == 1;
    for (uint32_t g = 0; g < n; ++g) {
        const uint8_t* rec = gb + 4ull * wpg * g;
        if (padded && load16(rec + 2 * (5 + channels)) != 0)
            return detail.fail(IGS_ERR_BAD_GAUSSIAN, "gaussian %u: padding half is not zero", g);
        for (int axis = 0; axis < 2; ++axis) {
            const uint16_t h = load16(rec + 2 * (3 + axis));
            if (h < kHalfMinNormal || h > kHalfMaxFinite)
                return detail.fail(IGS_ERR_BAD_GAUSSIAN,
                                   "gaussian %u: inverse scale %c is fp16 0x%04x; it must be a "
                                   "positive normal finite fp16 (0x0400..0x7bff)",
                                   g, "xy"[axis], h);
        }
    }

    // 9. Tile offsets.
    const uint8_t* to = data + sec[3].offset;
    d.offsets.resize(static_cast<size_t>(tile_count) + 1);
    for (uint64_t t = 0; t <= tile_count; ++t) d.offsets[t] = load32(to + 4 * t);
    if (d.offsets[0] != 0)
        return detail.fail(IGS_ERR_BAD_TILE_LIST, "tile offsets start at %u, not 0", d.offsets[0]);
    if (d.offsets[tile_count] != index_count)
        return detail.fail(IGS_ERR_BAD_TILE_LIST, "last tile offset is %u but index count is %u",
                           d.offsets[tile_count], index_count);
    for (uint32_t t = 0; t < tile_count; ++t)
        if (d.offsets[t + 1] < d.offsets[t])
            return detail.fail(IGS_ERR_BAD_TILE_LIST, "tile offsets decrease at tile %u: %u then %u",
                               t, d.offsets[t], d.offsets[t + 1]);

    // 10. Tile indices. The offsets are now monotonic from 0 to M, so every list lies in [0, M).
    const uint8_t* ti = data + sec[4].offset;
    if (index_bits == 16 && index_count % 2 == 1 && load16(ti + 2ull * index_count) != 0)
        return detail.fail(IGS_ERR_BAD_TILE_LIST, "tile indices: padding half is not zero");
    d.indices.resize(index_count);
    for (uint64_t j = 0; j < index_count; ++j) {
        const uint32_t v = index_bits == 16 ? load16(ti + 2 * j) : load32(ti + 4 * j);
        if (v >= n)
            return detail.fail(IGS_ERR_INDEX_OUT_OF_RANGE,
                               "tile index entry %llu is %u but there are only %u Gaussians", ull(j),
                               v, n);
        d.indices[j] = static_cast<int32_t>(v);
    }
    for (uint32_t t = 0; t < tile_count; ++t)
        for (uint32_t j = d.offsets[t] + 1; j < d.offsets[t + 1]; ++j)
            if (d.indices[j] <= d.indices[j - 1])
                return detail.fail(IGS_ERR_BAD_TILE_LIST,
                                   "tile %u: list is not strictly ascending at entry %u (%d then %d)",
                                   t, j, d.indices[j - 1], d.indices[j]);

    // Parameters, FORMAT.md "Decoding": one rounded f32 operation per statement, in its order.
    const float K16 = k16();
    const float sx = static_cast<float>(width) * K16;
    const float sy = static_cast<float>(height) * K16;
    float colour_lo[IGS_MAX_CHANNELS], colour_step[IGS_MAX_CHANNELS];
    for (uint32_t c = 0; c < channels; ++c) {
        const uint8_t* e = data + sec[0].offset + kChannelEntrySize * c;
        colour_lo[c] = loadf(e + 12);
        const float dc = loadf(e + 16) - colour_lo[c];
        colour_step[c] = dc * K16;
    }
    d.gaussians.resize(n);
    d.theta.resize(n);
    d.colour.resize(static_cast<size_t>(n) * channels);
    for (uint32_t g = 0; g < n; ++g) {
        const uint8_t* rec = gb + 4ull * wpg * g;
        igs::Gaussian& G = d.gaussians[g];
        G.mx = static_cast<float>(load16(rec + 0)) * sx;
        G.my = static_cast<float>(load16(rec + 2)) * sy;
        const float th = static_cast<float>(load16(rec + 4)) * theta_step();
        // std::cos/std::sin of a float, as the native kernels' prepare_gaussians computes them.
        G.cs = std::cos(th);
        G.sn = std::sin(th);
        G.ax = half_to_float(load16(rec + 6));
        G.ay = half_to_float(load16(rec + 8));
        d.theta[g] = th;
        float* col = d.colour.data() + static_cast<size_t>(g) * channels;
        for (uint32_t c = 0; c < channels; ++c) {
            const float m = static_cast<float>(load16(rec + 2 * (5 + c))) * colour_step[c];
            col[c] = colour_lo[c] + m;
        }
    }

    d.width = width;
    d.height = height;
    d.channels = channels;
    d.tile = tile;
    d.k = k;
    d.gaussian_count = n;
    d.tile_count = tile_count;
    d.index_count = index_count;
    d.index_bits = index_bits;
    d.tiles_x = tiles_x;
    d.eps = eps;
    return IGS_SUCCESS;
}

// ---------------------------------------------------------------------------------------------
// Evaluation

uint32_t tile_of(const igs_decoder& d, uint32_t x, uint32_t y) {
    return (y / d.tile) * d.tiles_x + x / d.tile;
}

// The kept entries blended in list (= ascending index) order, as the native forward does.
void blend_kept(const igs_decoder& d, const int32_t* list, igs::TopKSorted& top, float* out) {
    igs::sort_by_index(top.n, top.g, top.idx);
    int32_t idx[igs::kMaxK];
    for (int q = 0; q < top.n; ++q) idx[q] = list[top.idx[q]];
    igs::blend(top.n, idx, top.g, d.colour.data(), static_cast<int>(d.channels), d.eps, out);
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

// G_i convolved with N(0, F), in the Gaussian's own frame, operation for operation as
// igsWeightFootprint in shaders/igs_sample.glsl.
float footprint_weight(const igs::Gaussian& g, float px, float py, const float F[3],
                       bool keep_peak) {
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

void evaluate_footprint(const igs_decoder& d, uint32_t tile, float px, float py, const float F[3],
                        int k, bool keep_peak, float* out) {
    const uint32_t first = d.offsets[tile];
    const int32_t* list = d.indices.data() + first;
    const int count = static_cast<int>(d.offsets[tile + 1] - first);
    igs::TopKSorted top;
    top.reset(k);
    for (int j = 0; j < count; ++j)
        top.push(footprint_weight(d.gaussians[list[j]], px, py, F, keep_peak), j);
    blend_kept(d, list, top, out);
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

void decode_tile_rows(const igs_decoder& d, uint32_t tile, uint32_t xa, uint32_t xb, uint32_t ya,
                      uint32_t yb, float* out, size_t row_stride, RowScratch& sc) {
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

// Runs the rect in tile-aligned blocks handed out dynamically: tiles differ in list length.
igs_error decode_blocks(const igs_decoder& d, uint32_t x0, uint32_t y0, uint32_t w, uint32_t h,
                        float* out, uint32_t threads) {
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

}  // namespace

extern "C" {

const char* igs_error_string(igs_error code) {
    switch (code) {
        case IGS_SUCCESS: return "IGS_SUCCESS (no error)";
        case IGS_ERR_BAD_ARGUMENT: return "IGS_ERR_BAD_ARGUMENT (invalid argument)";
        case IGS_ERR_OUT_OF_MEMORY: return "IGS_ERR_OUT_OF_MEMORY (allocation failed)";
        case IGS_ERR_TRUNCATED: return "IGS_ERR_TRUNCATED (buffer ends before the file does)";
        case IGS_ERR_BAD_MAGIC: return "IGS_ERR_BAD_MAGIC (not an .igs file)";
        case IGS_ERR_BAD_VERSION: return "IGS_ERR_BAD_VERSION (unsupported format version)";
        case IGS_ERR_BAD_LAYOUT: return "IGS_ERR_BAD_LAYOUT (sections misplaced or trailing bytes)";
        case IGS_ERR_BAD_CRC: return "IGS_ERR_BAD_CRC (CRC-32 mismatch: file corrupt)";
        case IGS_ERR_BAD_HEADER: return "IGS_ERR_BAD_HEADER (header field outside its limits)";
        case IGS_ERR_BAD_SECTION_SIZE:
            return "IGS_ERR_BAD_SECTION_SIZE (section length disagrees with the header's counts)";
        case IGS_ERR_BAD_CHANNEL_TABLE: return "IGS_ERR_BAD_CHANNEL_TABLE (invalid channel entry)";
        case IGS_ERR_BAD_METADATA: return "IGS_ERR_BAD_METADATA (metadata is not a JSON object)";
        case IGS_ERR_BAD_GAUSSIAN: return "IGS_ERR_BAD_GAUSSIAN (invalid Gaussian record)";
        case IGS_ERR_BAD_TILE_LIST: return "IGS_ERR_BAD_TILE_LIST (invalid tile offsets or list order)";
        case IGS_ERR_INDEX_OUT_OF_RANGE:
            return "IGS_ERR_INDEX_OUT_OF_RANGE (tile index >= Gaussian count)";
        case IGS_ERR_INTERNAL: return "IGS_ERR_INTERNAL (bug in the decoder)";
    }
    return "IGS_ERR_UNKNOWN (not an igs_error code)";
}

igs_error igs_decoder_create_detailed(const void* data, size_t size, igs_decoder** out,
                                      char* detail, size_t detail_size) {
    Detail det(detail, detail_size);
    if (!out) return det.fail(IGS_ERR_BAD_ARGUMENT, "out is NULL");
    *out = nullptr;
    if (!data && size) return det.fail(IGS_ERR_BAD_ARGUMENT, "data is NULL");
    try {
        igs_decoder* d = new igs_decoder();
        const uint8_t* bytes = data ? static_cast<const uint8_t*>(data) : reinterpret_cast<const uint8_t*>("");
        const igs_error e = parse(bytes, size, *d, det);
        if (e != IGS_SUCCESS) {
            delete d;
            return e;
        }
        *out = d;
        return IGS_SUCCESS;
    } catch (const std::bad_alloc&) {
        return det.fail(IGS_ERR_OUT_OF_MEMORY, "out of memory while decoding the parameters");
    } catch (...) {
        return det.fail(IGS_ERR_INTERNAL, "unexpected exception");
    }
}

igs_error igs_decoder_create(const void* data, size_t size, igs_decoder** out) {
    return igs_decoder_create_detailed(data, size, out, nullptr, 0);
}

void igs_decoder_destroy(igs_decoder* decoder) { delete decoder; }

igs_error igs_decoder_info(const igs_decoder* d, igs_info* out) {
    if (!d || !out) return IGS_ERR_BAD_ARGUMENT;
    std::memset(out, 0, sizeof *out);
    out->width = d->width;
    out->height = d->height;
    out->channel_count = d->channels;
    out->tile = d->tile;
    out->k = d->k;
    out->gaussian_count = d->gaussian_count;
    out->tile_count = d->tile_count;
    out->index_count = d->index_count;
    out->index_bits = d->index_bits;
    out->eps = d->eps;
    for (uint32_t c = 0; c < d->channels; ++c) {
        out->semantic[c] = d->semantic[c];
        out->value_lo[c] = d->value_lo[c];
        out->value_hi[c] = d->value_hi[c];
    }
    out->metadata = d->metadata.c_str();
    out->metadata_size = d->metadata.size();
    return IGS_SUCCESS;
}

igs_error igs_decoder_gaussian(const igs_decoder* d, uint32_t i, float* out) {
    if (!d || !out || i >= d->gaussian_count) return IGS_ERR_BAD_ARGUMENT;
    const igs::Gaussian& g = d->gaussians[i];
    out[0] = g.mx;
    out[1] = g.my;
    out[2] = d->theta[i];
    out[3] = g.ax;
    out[4] = g.ay;
    std::memcpy(out + 5, d->colour.data() + static_cast<size_t>(i) * d->channels,
                sizeof(float) * d->channels);
    return IGS_SUCCESS;
}

igs_error igs_decode_rect(const igs_decoder* d, uint32_t x0, uint32_t y0, uint32_t w, uint32_t h,
                          float* out, size_t out_count, uint32_t threads) {
    if (!d) return IGS_ERR_BAD_ARGUMENT;
    if (static_cast<uint64_t>(x0) + w > d->width || static_cast<uint64_t>(y0) + h > d->height)
        return IGS_ERR_BAD_ARGUMENT;
    if (w == 0 || h == 0) return IGS_SUCCESS;
    if (!out || out_count / d->channels / w < h) return IGS_ERR_BAD_ARGUMENT;
    try {
        return decode_blocks(*d, x0, y0, w, h, out, threads);
    } catch (const std::bad_alloc&) {
        return IGS_ERR_OUT_OF_MEMORY;
    } catch (...) {
        return IGS_ERR_INTERNAL;
    }
}

igs_error igs_decode_image(const igs_decoder* d, float* out, size_t out_count, uint32_t threads) {
    if (!d) return IGS_ERR_BAD_ARGUMENT;
    return igs_decode_rect(d, 0, 0, d->width, d->height, out, out_count, threads);
}

igs_error igs_decode_texel(const igs_decoder* d, uint32_t x, uint32_t y, float* out) {
    if (!d || !out || x >= d->width || y >= d->height) return IGS_ERR_BAD_ARGUMENT;
    evaluate_point(*d, tile_of(*d, x, y), igs::texel_centre(static_cast<int>(x)),
                   igs::texel_centre(static_cast<int>(y)), out);
    return IGS_SUCCESS;
}

igs_error igs_sample_point(const igs_decoder* d, float px, float py, float* out) {
    if (!d || !out || !point_inside(*d, px, py)) return IGS_ERR_BAD_ARGUMENT;
    evaluate_point(*d, tile_of_point(*d, px, py), px, py, out);
    return IGS_SUCCESS;
}

igs_error igs_sample_uv(const igs_decoder* d, float u, float v, igs_address_mode mode, float* out) {
    if (!d || !out || !std::isfinite(u) || !std::isfinite(v)) return IGS_ERR_BAD_ARGUMENT;
    if (mode != IGS_ADDRESS_WRAP && mode != IGS_ADDRESS_CLAMP) return IGS_ERR_BAD_ARGUMENT;
    float px, py;
    address(*d, u, v, mode, px, py);
    evaluate_point(*d, tile_of_point(*d, px, py), px, py, out);
    return IGS_SUCCESS;
}

igs_error igs_sample_point_footprint(const igs_decoder* d, float px, float py,
                                     const float footprint[3], const igs_footprint_options* options,
                                     float* out) {
    if (!d || !out || !point_inside(*d, px, py) || !footprint_valid(footprint))
        return IGS_ERR_BAD_ARGUMENT;
    const uint32_t min_k = options ? options->min_k : 0;
    const int k = static_cast<int>(std::min<uint32_t>(std::max(d->k, min_k), IGS_MAX_K));
    evaluate_footprint(*d, tile_of_point(*d, px, py), px, py, footprint, k,
                       options && options->keep_peak, out);
    return IGS_SUCCESS;
}

igs_error igs_sample_footprint(const igs_decoder* d, float u, float v, igs_address_mode mode,
                               const float footprint[3], const igs_footprint_options* options,
                               float* out) {
    if (!d || !out || !std::isfinite(u) || !std::isfinite(v)) return IGS_ERR_BAD_ARGUMENT;
    if (mode != IGS_ADDRESS_WRAP && mode != IGS_ADDRESS_CLAMP) return IGS_ERR_BAD_ARGUMENT;
    float px, py;
    address(*d, u, v, mode, px, py);
    return igs_sample_point_footprint(d, px, py, footprint, options, out);
}

igs_error igs_footprint_from_uv_derivatives(const igs_decoder* d, float dudx, float dvdx,
                                            float dudy, float dvdy, float variance, float out[3]) {
    if (!d || !out || !std::isfinite(variance) || variance < 0.0f) return IGS_ERR_BAD_ARGUMENT;
    const float w = static_cast<float>(d->width), h = static_cast<float>(d->height);
    const float jxx = dudx * w, jxy = dvdx * h;
    const float jyx = dudy * w, jyy = dvdy * h;
    out[0] = variance * (jxx * jxx + jyx * jyx);
    out[1] = variance * (jxx * jxy + jyx * jyy);
    out[2] = variance * (jxy * jxy + jyy * jyy);
    return footprint_valid(out) ? IGS_SUCCESS : IGS_ERR_BAD_ARGUMENT;
}

igs_error igs_footprint_for_mip_level(float level, float out[3]) {
    if (!out || !std::isfinite(level) || level < -16.0f || level > 16.0f) return IGS_ERR_BAD_ARGUMENT;
    const float side = std::exp2(level);
    const float variance = IGS_DEFAULT_FOOTPRINT_VARIANCE * (side * side);
    out[0] = variance;
    out[1] = 0.0f;
    out[2] = variance;
    return IGS_SUCCESS;
}

igs_error igs_apply_value_range(const igs_decoder* d, float* values, size_t texel_count) {
    if (!d || (!values && texel_count)) return IGS_ERR_BAD_ARGUMENT;
    const uint32_t C = d->channels;
    for (size_t t = 0; t < texel_count; ++t) {
        for (uint32_t c = 0; c < C; ++c) {
            float& v = values[t * C + c];
            const float span = d->value_hi[c] - d->value_lo[c];
            const float m = v * span;
            v = d->value_lo[c] + m;
        }
    }
    return IGS_SUCCESS;
}

}  // extern "C"
