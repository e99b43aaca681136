// Version 2 (docs/FORMAT-v2.md): validation in the order of its "Validation" section, the
// record decode of "Records" (one rounded f32 operation per statement, as igs_tex/format_v2.py's
// dequantize does them), then version 1 style tile lists by the listing rule (lists_v2.cpp).
//
// The one place this order has to bend: record_bits (a step 4 header field) is the sum of the
// channel table's colour_bits, so the channel table's length (step 5) is checked first and the
// colour widths read from it before record_bits is compared; the other step 5 lengths follow.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "bitstream.h"
#include "decoder.h"

namespace igs_decoder_impl {

namespace {

constexpr uint64_t kHeaderSize = 80;
constexpr uint32_t kMaxReach = 8;
constexpr uint32_t kF32PiBits = 0x40490FDBu;
const char* const kSectionNames[4] = {"channel table", "metadata", "records", "tile offsets"};

// 2^e as an f32, built from its bits: exact for the normal exponents used here (-24 ..= -1).
float pow2(int e) {
    return igs::bits_float(static_cast<uint32_t>(e + 127) << 23);
}

uint32_t bit_length(uint32_t n) {
    uint32_t b = 0;
    for (; n; n >>= 1) ++b;
    return b;
}

uint64_t words_for(uint64_t bits) {
    return (bits + 31) / 32;
}

// The record fields' widths (FORMAT-v2 "Fixed header" bytes 36..42 and the channel table).
struct Layout {
    uint32_t mean_bits, theta_bits, exp_bits, mant_bits;
    int exp_min;
    uint32_t colour_bits[IGS_MAX_CHANNELS];
    uint32_t record_bits;
};

// minifloat(q) of FORMAT-v2 "Records": an exact construction, normal by the header rule on E.
float minifloat(uint32_t q, const Layout& L) {
    const uint32_t e = q >> L.mant_bits;
    const uint32_t m = q & ((1u << L.mant_bits) - 1u);
    const uint32_t biased = static_cast<uint32_t>(static_cast<int>(e) + L.exp_min + 127);
    return igs::bits_float((biased << 23) | (m << (23 - L.mant_bits)));
}

}  // namespace

igs_error parse_v2(const uint8_t* data, uint64_t size, igs_decoder& d, Detail& detail) {
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
    if (version != 2)
        return detail.fail(IGS_ERR_BAD_VERSION,
                           "unsupported version %u (this decoder reads versions %d to %d)", version,
                           IGS_FORMAT_VERSION_MIN, IGS_FORMAT_VERSION_MAX);
    const uint16_t header_size = load16(data + 6);
    if (header_size != kHeaderSize)
        return detail.fail(IGS_ERR_BAD_HEADER, "header size %u, version 2 has %llu", header_size,
                           ull(kHeaderSize));

    // 2. Sections against the buffer; 3. integrity.
    Section sec[4];
    igs_error e = check_sections(data, size, kHeaderSize, 48, 4, kSectionNames, sec, detail);
    if (e != IGS_SUCCESS) return e;
    if ((e = check_crc(data, size, detail)) != IGS_SUCCESS) return e;

    // 4. Header fields against their rules.
    const uint32_t width = load32(data + 8), height = load32(data + 12);
    const uint32_t channels = load16(data + 16), tile = load16(data + 18);
    const uint32_t k = load16(data + 20), reach = load16(data + 22);
    const float eps = loadf(data + 24);
    const uint32_t n = load32(data + 28), tile_count = load32(data + 32);
    Layout L{};
    L.mean_bits = data[36];
    L.theta_bits = data[37];
    L.exp_bits = data[38];
    L.mant_bits = data[39];
    L.exp_min = static_cast<int8_t>(data[40]);
    const uint32_t offset_bits = data[41];
    const uint32_t record_bits = load16(data + 42);
    const uint32_t flags = load32(data + 44);
    if (width < 1 || width > kMaxSide || height < 1 || height > kMaxSide)
        return detail.fail(IGS_ERR_BAD_HEADER, "image size %ux%u is outside 1..16384", width, height);
    if (channels < 1 || channels > IGS_MAX_CHANNELS)
        return detail.fail(IGS_ERR_BAD_HEADER, "channel count %u is outside 1..16", channels);
    if (tile < 1 || tile > kMaxTile)
        return detail.fail(IGS_ERR_BAD_HEADER, "tile size %u is outside 1..256", tile);
    if (k < 1 || k > IGS_MAX_K) return detail.fail(IGS_ERR_BAD_HEADER, "K %u is outside 1..32", k);
    if (reach < 1 || reach > kMaxReach)
        return detail.fail(IGS_ERR_BAD_HEADER, "reach %u is outside 1..8", reach);
    if (!(std::isfinite(eps) && eps > 0.0f))
        return detail.fail(IGS_ERR_BAD_HEADER, "epsilon %g must be finite and > 0", eps);
    if (n > kMaxGaussians)
        return detail.fail(IGS_ERR_BAD_HEADER, "gaussian count %u exceeds the limit %u", n, kMaxGaussians);
    const uint32_t tiles_x = (width + tile - 1) / tile, tiles_y = (height + tile - 1) / tile;
    const uint64_t want_tiles = static_cast<uint64_t>(tiles_x) * tiles_y;
    if (tile_count != want_tiles)
        return detail.fail(IGS_ERR_BAD_HEADER, "tile count %u, but a %ux%u image in %u-texel tiles has %llu",
                           tile_count, width, height, tile, ull(want_tiles));
    if (L.mean_bits < 1 || L.mean_bits > 24)
        return detail.fail(IGS_ERR_BAD_HEADER, "mean bits %u outside 1..24", L.mean_bits);
    if (L.theta_bits < 1 || L.theta_bits > 16)
        return detail.fail(IGS_ERR_BAD_HEADER, "theta bits %u outside 1..16", L.theta_bits);
    if (L.exp_bits < 1 || L.exp_bits > 8)
        return detail.fail(IGS_ERR_BAD_HEADER, "scale exponent bits %u outside 1..8", L.exp_bits);
    if (L.mant_bits > 16)
        return detail.fail(IGS_ERR_BAD_HEADER, "scale mantissa bits %u outside 0..16", L.mant_bits);
    const int top_exponent = L.exp_min + (1 << L.exp_bits) - 1;
    if (L.exp_min < -126 || top_exponent > 127)
        return detail.fail(IGS_ERR_BAD_HEADER,
                           "scale exponent min %d gives exponents %d..%d, outside -126..127", L.exp_min,
                           L.exp_min, top_exponent);
    const uint32_t want_offset_bits = std::max(1u, bit_length(n));
    if (offset_bits != want_offset_bits)
        return detail.fail(IGS_ERR_BAD_HEADER, "offset bits %u, but %u Gaussians need %u", offset_bits, n,
                           want_offset_bits);
    if (flags != 0)
        return detail.fail(IGS_ERR_BAD_HEADER, "flags 0x%x: no flags are defined in version 2", flags);

    // 5 (the channel table), then record_bits against the widths it declares, then the rest of 5.
    if (sec[0].length != kChannelEntrySize * channels)
        return detail.fail(IGS_ERR_BAD_SECTION_SIZE,
                           "channel table section is %llu bytes but %u channels need %llu",
                           ull(sec[0].length), channels, ull(kChannelEntrySize * channels));
    const uint8_t* table = data + sec[0].offset;
    uint32_t want_record_bits = 2 * L.mean_bits + L.theta_bits + 2 * (L.exp_bits + L.mant_bits);
    for (uint32_t c = 0; c < channels; ++c) {
        L.colour_bits[c] = table[kChannelEntrySize * c + 1];
        want_record_bits += L.colour_bits[c];
    }
    if (record_bits != want_record_bits)
        return detail.fail(IGS_ERR_BAD_HEADER, "record bits %u, but the field widths add up to %u",
                           record_bits, want_record_bits);
    L.record_bits = record_bits;
    const uint64_t record_stream_bits = static_cast<uint64_t>(n) * record_bits;
    const uint64_t offset_stream_bits = (static_cast<uint64_t>(tile_count) + 1) * offset_bits;
    const uint64_t want_records = 4 * words_for(record_stream_bits);
    const uint64_t want_offsets = 4 * words_for(offset_stream_bits);
    if (sec[2].length != want_records)
        return detail.fail(IGS_ERR_BAD_SECTION_SIZE,
                           "records section is %llu bytes but %u records of %u bits need %llu",
                           ull(sec[2].length), n, record_bits, ull(want_records));
    if (sec[3].length != want_offsets)
        return detail.fail(IGS_ERR_BAD_SECTION_SIZE,
                           "tile offsets section is %llu bytes but %u entries of %u bits need %llu",
                           ull(sec[3].length), tile_count + 1, offset_bits, ull(want_offsets));

    // 6. Channel table.
    float colour_lo[IGS_MAX_CHANNELS], colour_step[IGS_MAX_CHANNELS];
    for (uint32_t c = 0; c < channels; ++c) {
        const uint8_t* ent = table + kChannelEntrySize * c;
        if (ent[0] >= kSemanticCodes)
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE, "channel %u: unknown semantic code %u", c, ent[0]);
        if (ent[2] || ent[3])
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE, "channel %u: reserved bytes are not zero", c);
        if (L.colour_bits[c] < 1 || L.colour_bits[c] > 16)
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE, "channel %u: colour bits %u outside 1..16", c,
                               L.colour_bits[c]);
        const float vlo = loadf(ent + 4), vhi = loadf(ent + 8);
        const float clo = loadf(ent + 12), cst = loadf(ent + 16);
        if (!(std::isfinite(vlo) && std::isfinite(vhi) && std::isfinite(clo) && std::isfinite(cst)))
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE,
                               "channel %u: value range [%g, %g], colour_lo %g and colour_step %g "
                               "must be finite",
                               c, vlo, vhi, clo, cst);
        if (!(vhi >= vlo))
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE,
                               "channel %u: value range [%g, %g] must have value_hi >= value_lo", c, vlo,
                               vhi);
        if (is_subnormal(clo) || is_subnormal(cst))
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE,
                               "channel %u: colour_lo %g and colour_step %g must be zero or normal "
                               "(not subnormal)",
                               c, clo, cst);
        if (!(cst >= 0.0f))
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE, "channel %u: colour_step %g is negative", c, cst);
        // Magnitudes of at least 2^-102 keep every decoded colour zero or normal (sums of such
        // values are multiples of 2^-125), and the largest code must decode to a finite f32.
        const float kTiny = std::ldexp(1.0f, -102);
        if ((clo != 0.0f && std::fabs(clo) < kTiny) || (cst != 0.0f && cst < kTiny))
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE,
                               "channel %u: colour_lo %g and colour_step %g must be zero or of magnitude "
                               ">= 2^-102",
                               c, clo, cst);
        const float top_m = static_cast<float>((1u << L.colour_bits[c]) - 1u) * cst;
        const float top = clo + top_m;
        if (!std::isfinite(top))
            return detail.fail(IGS_ERR_BAD_CHANNEL_TABLE,
                               "channel %u: the largest colour code decodes to %g (not finite)", c, top);
        d.semantic[c] = ent[0];
        d.value_lo[c] = vlo;
        d.value_hi[c] = vhi;
        colour_lo[c] = clo;
        colour_step[c] = cst;
    }

    // 7. Metadata.
    if ((e = check_metadata(data, sec[1], d, detail)) != IGS_SUCCESS) return e;

    // 8. Records: the stream's unused bits, then every record decoded (FORMAT-v2 "Records") and
    // held to the reach rule.
    const BitStream records(data + sec[2].offset, sec[2].length / 4);
    if (!records.tail_is_zero(record_stream_bits))
        return detail.fail(IGS_ERR_BAD_GAUSSIAN, "records: unused bits of the last word are not zero");
    const float sx = static_cast<float>(width) * pow2(-static_cast<int>(L.mean_bits));
    const float sy = static_cast<float>(height) * pow2(-static_cast<int>(L.mean_bits));
    const float theta_step = igs::bits_float(kF32PiBits) * pow2(-static_cast<int>(L.theta_bits));
    const uint32_t scale_bits = L.exp_bits + L.mant_bits;
    const double reach_texels = static_cast<double>(reach) * tile;
    d.gaussians.resize(n);
    d.theta.resize(n);
    d.colour.resize(static_cast<size_t>(n) * channels);
    for (uint32_t i = 0; i < n; ++i) {
        BitReader r(records, static_cast<uint64_t>(i) * record_bits);
        const uint32_t qx = r.take(L.mean_bits), qy = r.take(L.mean_bits);
        const uint32_t qt = r.take(L.theta_bits);
        const uint32_t qa = r.take(scale_bits), qb = r.take(scale_bits);
        igs::Gaussian& G = d.gaussians[i];
        G.mx = static_cast<float>(qx) * sx;
        G.my = static_cast<float>(qy) * sy;
        const float th = static_cast<float>(qt) * theta_step;
        G.cs = std::cos(th);  // as version 1 and the native kernels' prepare_gaussians
        G.sn = std::sin(th);
        G.ax = minifloat(qa, L);
        G.ay = minifloat(qb, L);
        d.theta[i] = th;
        float* col = d.colour.data() + static_cast<size_t>(i) * channels;
        for (uint32_t c = 0; c < channels; ++c) {
            const float m = static_cast<float>(r.take(L.colour_bits[c])) * colour_step[c];
            col[c] = colour_lo[c] + m;
        }
        // min(a_x, a_y) * R * T > 3, exact: a 24-bit significand times an integer <= 2048 needs
        // at most 35 bits, so the double product is not rounded.
        const float am = std::min(G.ax, G.ay);
        if (!(static_cast<double>(am) * reach_texels > 3.0))
            return detail.fail(IGS_ERR_BAD_GAUSSIAN,
                               "record %u: radius 3 / %.9g is not below reach * tile = %u texels", i,
                               static_cast<double>(am), reach * tile);
    }

    // 9. Tile offsets, then every record against its home tile's range.
    const BitStream offset_stream(data + sec[3].offset, sec[3].length / 4);
    std::vector<uint32_t> home(static_cast<size_t>(tile_count) + 1);
    for (uint64_t t = 0; t <= tile_count; ++t) home[t] = offset_stream.field(t * offset_bits, offset_bits);
    if (home[0] != 0) return detail.fail(IGS_ERR_BAD_TILE_LIST, "tile offsets start at %u, not 0", home[0]);
    if (home[tile_count] != n)
        return detail.fail(IGS_ERR_BAD_TILE_LIST, "last tile offset is %u but the gaussian count is %u",
                           home[tile_count], n);
    for (uint32_t t = 0; t < tile_count; ++t)
        if (home[t + 1] < home[t])
            return detail.fail(IGS_ERR_BAD_TILE_LIST, "tile offsets decrease at tile %u: %u then %u", t,
                               home[t], home[t + 1]);
    if (!offset_stream.tail_is_zero(offset_stream_bits))
        return detail.fail(IGS_ERR_BAD_TILE_LIST, "tile offsets: unused bits of the last word are not zero");
    for (uint32_t t = 0; t < tile_count; ++t) {
        for (uint32_t i = home[t]; i < home[t + 1]; ++i) {
            // floor(m / T) = floor(m) / T (integer division) for m >= 0, exactly; m < W <= 16384.
            const igs::Gaussian& G = d.gaussians[i];
            const uint32_t hx = std::min(static_cast<uint32_t>(G.mx) / tile, tiles_x - 1);
            const uint32_t hy = std::min(static_cast<uint32_t>(G.my) / tile, tiles_y - 1);
            const uint32_t h = hy * tiles_x + hx;
            if (h != t)
                return detail.fail(IGS_ERR_BAD_TILE_LIST,
                                   "record %u lies outside its home tile's range: its mean (%.9g, "
                                   "%.9g) is in tile %u, but it is stored among tile %u's records",
                                   i, static_cast<double>(G.mx), static_cast<double>(G.my), h, t);
        }
    }

    d.version = 2;
    d.width = width;
    d.height = height;
    d.channels = channels;
    d.tile = tile;
    d.k = k;
    d.reach = reach;
    d.gaussian_count = n;
    d.tile_count = tile_count;
    d.index_bits = 0;  // no stored tile index: the lists are the decoder's own
    d.tiles_x = tiles_x;
    d.tiles_y = tiles_y;
    d.eps = eps;
    return build_tile_lists(d, home, detail);
}

}  // namespace igs_decoder_impl
