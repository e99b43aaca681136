// Version 1 (docs/FORMAT.md): validation in the order of its "Validation" section (the order
// igs_tex/igsfile.py uses, so both name the same first defect), then the parameter decode of
// "Decoding (normative, bit-exact)": one rounded f32 operation per statement, in its order.
#include <cfloat>
#include <cmath>
#include <cstring>

#include "decoder.h"

namespace igs_decoder_impl {

namespace {

constexpr uint64_t kHeaderSize = 84;
constexpr uint32_t kMaxIndexCount = (1u << 30) - 1;
constexpr uint32_t kMaxGaussians16BitIndex = 65536;
constexpr uint16_t kHalfMinNormal = 0x0400;
constexpr uint16_t kHalfMaxFinite = 0x7BFF;
const char* const kSectionNames[5] = {"channel table", "metadata", "gaussian buffer", "tile offsets",
                                      "tile indices"};

float k16() {
    return igs::bits_float(0x37800080u);
}  // f32(1 / 65535)
float theta_step() {
    return igs::bits_float(0x38490FDBu);
}  // f32(pi) * 2^-16

// Exact binary16 -> binary32 for the positive normal halves validation admits.
float half_to_float(uint16_t h) {
    const uint32_t exponent = (h >> 10) & 0x1F;
    const uint32_t mantissa = h & 0x3FF;
    return igs::bits_float(((exponent + 127 - 15) << 23) | (mantissa << 13));
}

}  // namespace

igs_error parse_v1(const uint8_t* data, uint64_t size, igs_decoder& d, Detail& detail) {
    // 1. Identity.
    if (size < kHeaderSize + kCrcSize)
        return detail.fail(IGS_ERR_TRUNCATED,
                           "truncated: header and CRC need %llu bytes but the buffer has %llu",
                           ull(kHeaderSize + kCrcSize), ull(size));
    if (std::memcmp(data, "IGSF", 4) != 0)
        return detail.fail(IGS_ERR_BAD_MAGIC,
                           "not an .igs file: magic is %02x %02x %02x %02x, expected 49 47 53 46", data[0],
                           data[1], data[2], data[3]);
    const uint16_t version = load16(data + 4);
    if (version != 1)
        return detail.fail(IGS_ERR_BAD_VERSION,
                           "unsupported version %u (this decoder reads versions %d to %d)", version,
                           IGS_FORMAT_VERSION_MIN, IGS_FORMAT_VERSION_MAX);
    const uint16_t header_size = load16(data + 6);
    if (header_size != kHeaderSize)
        return detail.fail(IGS_ERR_BAD_HEADER, "header size %u, version 1 has %llu", header_size,
                           ull(kHeaderSize));

    // 2. Sections against the buffer; 3. integrity.
    Section sec[5];
    igs_error e = check_sections(data, size, kHeaderSize, 44, 5, kSectionNames, sec, detail);
    if (e != IGS_SUCCESS) return e;
    if ((e = check_crc(data, size, detail)) != IGS_SUCCESS) return e;

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
        return detail.fail(IGS_ERR_BAD_HEADER, "gaussian count %u exceeds the limit %u", n, kMaxGaussians);
    const uint32_t want_bits = n <= kMaxGaussians16BitIndex ? 16 : 32;
    if (index_bits != want_bits)
        return detail.fail(IGS_ERR_BAD_HEADER, "index bits %u, but %u Gaussians require %u", index_bits, n,
                           want_bits);
    const uint32_t tiles_x = (width + tile - 1) / tile, tiles_y = (height + tile - 1) / tile;
    const uint64_t want_tiles = static_cast<uint64_t>(tiles_x) * tiles_y;
    if (tile_count != want_tiles)
        return detail.fail(IGS_ERR_BAD_HEADER, "tile count %u, but a %ux%u image in %u-texel tiles has %llu",
                           tile_count, width, height, tile, ull(want_tiles));
    if (index_count > kMaxIndexCount)
        return detail.fail(IGS_ERR_BAD_HEADER, "index count %u exceeds the limit %u", index_count,
                           kMaxIndexCount);
    const uint32_t want_wpg = (5 + channels + 1) / 2;
    if (wpg != want_wpg)
        return detail.fail(IGS_ERR_BAD_HEADER, "words per gaussian %u, but %u channels need %u", wpg,
                           channels, want_wpg);
    if (flags != 0)
        return detail.fail(IGS_ERR_BAD_HEADER, "flags 0x%04x: no flags are defined in version 1", flags);

    // 5. Section lengths against the counts (metadata is free-form).
    const uint64_t want_len[5] = {kChannelEntrySize * channels, 0, 4ull * n * wpg,
                                  4ull * (static_cast<uint64_t>(tile_count) + 1),
                                  4ull * ((static_cast<uint64_t>(index_count) * index_bits + 31) / 32)};
    for (int s = 0; s < 5; ++s) {
        if (s == 1 || sec[s].length == want_len[s]) continue;
        return detail.fail(IGS_ERR_BAD_SECTION_SIZE,
                           "%s section is %llu bytes but the header's counts need %llu "
                           "(C=%u, N=%u, tiles=%u, M=%u)",
                           kSectionNames[s], ull(sec[s].length), ull(want_len[s]), channels, n, tile_count,
                           index_count);
    }

    // 6. Channel table; each channel's colour step (FORMAT.md "Decoding", per channel).
    const float K16 = k16();
    float colour_lo[IGS_MAX_CHANNELS], colour_step[IGS_MAX_CHANNELS];
    for (uint32_t c = 0; c < channels; ++c) {
        const uint8_t* ent = data + sec[0].offset + kChannelEntrySize * c;
        if (ent[1] || ent[2] || ent[3])
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE, "channel %u: reserved bytes are not zero", c);
        if (ent[0] >= kSemanticCodes)
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE, "channel %u: unknown semantic code %u", c, ent[0]);
        const float vlo = loadf(ent + 4), vhi = loadf(ent + 8), clo = loadf(ent + 12), chi = loadf(ent + 16);
        if (!(std::isfinite(vlo) && std::isfinite(vhi) && vhi >= vlo))
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE,
                               "channel %u: value range [%g, %g] must be finite with hi >= lo", c, vlo, vhi);
        if (!(std::isfinite(clo) && std::isfinite(chi) && chi >= clo))
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE,
                               "channel %u: colour range [%g, %g] must be finite with hi >= lo", c, clo, chi);
        if (is_subnormal(clo) || is_subnormal(chi))
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE, "channel %u: colour range end %g is subnormal", c,
                               is_subnormal(clo) ? clo : chi);
        const float span = chi - clo;
        const float step = span * K16;
        if (!std::isfinite(step))
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE,
                               "channel %u: colour range [%g, %g] is wider than float32 holds", c, clo, chi);
        if (step > 0.0f && step < FLT_MIN)
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE,
                               "channel %u: colour range [%g, %g] gives a subnormal decode step", c, clo,
                               chi);
        d.semantic[c] = ent[0];
        d.value_lo[c] = vlo;
        d.value_hi[c] = vhi;
        colour_lo[c] = clo;
        colour_step[c] = step;
    }

    // 7. Metadata.
    if ((e = check_metadata(data, sec[1], d, detail)) != IGS_SUCCESS) return e;

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
            return detail.fail(IGS_ERR_BAD_TILE_LIST, "tile offsets decrease at tile %u: %u then %u", t,
                               d.offsets[t], d.offsets[t + 1]);

    // 10. Tile indices. The offsets are now monotonic from 0 to M, so every list lies in [0, M).
    const uint8_t* ti = data + sec[4].offset;
    if (index_bits == 16 && index_count % 2 == 1 && load16(ti + 2ull * index_count) != 0)
        return detail.fail(IGS_ERR_BAD_TILE_LIST, "tile indices: padding half is not zero");
    d.indices.resize(index_count);
    for (uint64_t j = 0; j < index_count; ++j) {
        const uint32_t v = index_bits == 16 ? load16(ti + 2 * j) : load32(ti + 4 * j);
        if (v >= n)
            return detail.fail(IGS_ERR_INDEX_OUT_OF_RANGE,
                               "tile index entry %llu is %u but there are only %u Gaussians", ull(j), v, n);
        d.indices[j] = static_cast<int32_t>(v);
    }
    for (uint32_t t = 0; t < tile_count; ++t)
        for (uint32_t j = d.offsets[t] + 1; j < d.offsets[t + 1]; ++j)
            if (d.indices[j] <= d.indices[j - 1])
                return detail.fail(IGS_ERR_BAD_TILE_LIST,
                                   "tile %u: list is not strictly ascending at entry %u (%d then %d)", t, j,
                                   d.indices[j - 1], d.indices[j]);

    // Parameters, FORMAT.md "Decoding": one rounded f32 operation per statement, in its order.
    const float sx = static_cast<float>(width) * K16;
    const float sy = static_cast<float>(height) * K16;
    const float tstep = theta_step();
    d.gaussians.resize(n);
    d.theta.resize(n);
    d.colour.resize(static_cast<size_t>(n) * channels);
    for (uint32_t g = 0; g < n; ++g) {
        const uint8_t* rec = gb + 4ull * wpg * g;
        igs::Gaussian& G = d.gaussians[g];
        G.mx = static_cast<float>(load16(rec + 0)) * sx;
        G.my = static_cast<float>(load16(rec + 2)) * sy;
        const float th = static_cast<float>(load16(rec + 4)) * tstep;
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

    d.version = 1;
    d.width = width;
    d.height = height;
    d.channels = channels;
    d.tile = tile;
    d.k = k;
    d.reach = 0;
    d.gaussian_count = n;
    d.tile_count = tile_count;
    d.index_count = index_count;
    d.index_bits = index_bits;
    d.tiles_x = tiles_x;
    d.tiles_y = tiles_y;
    d.eps = eps;
    return IGS_SUCCESS;
}

}  // namespace igs_decoder_impl
