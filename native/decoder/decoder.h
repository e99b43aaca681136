// Internal to the decoder library (not installed): the decoder object and what its parts share.
//
//   sections.cpp   byte loads, section table, CRC-32, the error detail (both versions)
//   metadata.cpp   UTF-8 and strict-JSON check of the metadata section (both versions)
//   header_v1.cpp  docs/FORMAT.md validation and parameter decode
//   header_v2.cpp  docs/FORMAT-v2.md validation and parameter decode (bit streams: bitstream.h)
//   lists_v2.cpp   version 2: the normative f32 listing rule -> version 1 style tile lists
//   evaluate.cpp   the rendering contract per texel, rect decoding, sampling
//   api.cpp        the C functions of igs_decoder.h
//
// Whatever the version, a created decoder holds the same thing: dequantised Gaussians and one
// strictly ascending list of Gaussian indices per tile, so evaluation never looks at the version.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "igs/gaussian.h"
#include "igs_decoder.h"

struct igs_decoder {
    uint32_t version = 0;
    uint32_t width = 0, height = 0, channels = 0, tile = 0, k = 0;
    uint32_t reach = 0;  // version 2 only (0 in version 1)
    uint32_t gaussian_count = 0, tile_count = 0, index_count = 0, index_bits = 0;
    uint32_t tiles_x = 0, tiles_y = 0;
    float eps = 0.0f;
    uint8_t semantic[IGS_MAX_CHANNELS] = {};
    float value_lo[IGS_MAX_CHANNELS] = {}, value_hi[IGS_MAX_CHANNELS] = {};
    std::string metadata;
    std::vector<igs::Gaussian> gaussians;  // [N]: mean, cos/sin(theta), inverse scales
    std::vector<float> theta;              // [N], kept for igs_decoder_gaussian
    std::vector<float> colour;             // [N, C]
    std::vector<uint32_t> offsets;         // [tile_count + 1] into indices
    std::vector<int32_t> indices;          // [index_count]; N <= 2^26 so every index fits
};

namespace igs_decoder_impl {

constexpr uint64_t kCrcSize = 4;
constexpr uint64_t kChannelEntrySize = 20;
constexpr uint64_t kSectionAlign = 16;
constexpr uint32_t kMaxSide = 16384;
constexpr uint32_t kMaxTile = 256;
constexpr uint32_t kMaxGaussians = 1u << 26;
constexpr int kSemanticCodes = 10;

// Little-endian loads byte by byte: correct on any host and at any alignment.
inline uint16_t load16(const uint8_t* p) {
    return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
inline uint32_t load32(const uint8_t* p) {
    return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
           (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
inline float loadf(const uint8_t* p) {
    return igs::bits_float(load32(p));
}

inline unsigned long long ull(uint64_t v) {
    return static_cast<unsigned long long>(v);
}

bool is_subnormal(float v);

// Where creation writes its one-line description of the first defect.
class Detail {
public:
    Detail(char* buf, size_t size);
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    igs_error
    fail(igs_error code, const char* fmt, ...);

private:
    char* buf_;
    size_t size_;
};

struct Section {
    uint64_t offset, length;
};

// Validation step 2 of both versions: `count` (offset, length) u32 pairs at byte `table_at`,
// checked in order against the buffer (aligned, after the previous section, inside the buffer
// with room for the CRC) and the CRC right after the last one.
igs_error check_sections(const uint8_t* data, uint64_t size, uint64_t header_size, uint64_t table_at,
                         int count, const char* const* names, Section* out, Detail& detail);

// Step 3 of both versions: the CRC-32 in the last 4 bytes over everything before it.
igs_error check_crc(const uint8_t* data, uint64_t size, Detail& detail);

// Step 7 of both versions: metadata is empty or UTF-8 strict JSON with an object at the top;
// on success d.metadata holds it ("{}" when empty).
igs_error check_metadata(const uint8_t* data, const Section& sec, igs_decoder& d, Detail& detail);

// The whole of one version's validation and parameter decode (version 2: and its tile lists).
// On failure d may be partly filled; the caller discards it.
igs_error parse_v1(const uint8_t* data, uint64_t size, igs_decoder& d, Detail& detail);
igs_error parse_v2(const uint8_t* data, uint64_t size, igs_decoder& d, Detail& detail);

// Version 2: d.offsets / d.indices from the listing rule over the tiles within d.reach of each
// Gaussian's home tile. home_offsets: the file's tile offsets (records per home tile).
igs_error build_tile_lists(igs_decoder& d, const std::vector<uint32_t>& home_offsets, Detail& detail);

// Evaluation (evaluate.cpp). Points and tiles are the caller's to check.
uint32_t tile_of(const igs_decoder& d, uint32_t x, uint32_t y);
uint32_t tile_of_point(const igs_decoder& d, float px, float py);
bool point_inside(const igs_decoder& d, float px, float py);
bool footprint_valid(const float* F);
void address(const igs_decoder& d, float u, float v, igs_address_mode mode, float& px, float& py);
void evaluate_point(const igs_decoder& d, uint32_t tile, float px, float py, float* out);
void evaluate_footprint(const igs_decoder& d, uint32_t tile, float px, float py, const float F[3], int k,
                        bool keep_peak, float* out);
igs_error decode_blocks(const igs_decoder& d, uint32_t x0, uint32_t y0, uint32_t w, uint32_t h, float* out,
                        uint32_t threads);

}  // namespace igs_decoder_impl
