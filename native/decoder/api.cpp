// The C API of igs_decoder.h over the decoder's parts (see decoder.h for the map).
//
// Build with -ffp-contract=off (never -ffast-math): both formats' parameter decode is one rounded
// f32 operation per line, and a fused multiply-add would change the bits.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>

#include "decoder.h"
#include "igs/texel.h"

using namespace igs_decoder_impl;

namespace {

// Which version's reader takes the buffer: as igs_tex.igsfile.from_bytes decides, version 2 when
// the first 6 bytes say so, else version 1's (which then names what is wrong).
bool is_version_2(const uint8_t* data, uint64_t size) {
    return size >= 6 && std::memcmp(data, "IGSF", 4) == 0 && load16(data + 4) == 2;
}

}  // namespace

extern "C" {

const char* igs_error_string(igs_error code) {
    switch (code) {
        case IGS_SUCCESS:
            return "IGS_SUCCESS (no error)";
        case IGS_ERR_BAD_ARGUMENT:
            return "IGS_ERR_BAD_ARGUMENT (invalid argument)";
        case IGS_ERR_OUT_OF_MEMORY:
            return "IGS_ERR_OUT_OF_MEMORY (allocation failed)";
        case IGS_ERR_TRUNCATED:
            return "IGS_ERR_TRUNCATED (buffer ends before the file does)";
        case IGS_ERR_BAD_MAGIC:
            return "IGS_ERR_BAD_MAGIC (not an .igs file)";
        case IGS_ERR_BAD_VERSION:
            return "IGS_ERR_BAD_VERSION (unsupported format version)";
        case IGS_ERR_BAD_LAYOUT:
            return "IGS_ERR_BAD_LAYOUT (sections misplaced or trailing bytes)";
        case IGS_ERR_BAD_CRC:
            return "IGS_ERR_BAD_CRC (CRC-32 mismatch: file corrupt)";
        case IGS_ERR_BAD_HEADER:
            return "IGS_ERR_BAD_HEADER (header field outside its limits)";
        case IGS_ERR_BAD_SECTION_SIZE:
            return "IGS_ERR_BAD_SECTION_SIZE (section length disagrees with the header's counts)";
        case IGS_ERR_BAD_CHANNEL_TABLE:
            return "IGS_ERR_BAD_CHANNEL_TABLE (invalid channel entry)";
        case IGS_ERR_BAD_METADATA:
            return "IGS_ERR_BAD_METADATA (metadata is not a JSON object)";
        case IGS_ERR_BAD_GAUSSIAN:
            return "IGS_ERR_BAD_GAUSSIAN (invalid Gaussian record)";
        case IGS_ERR_BAD_TILE_LIST:
            return "IGS_ERR_BAD_TILE_LIST (invalid tile offsets or list order)";
        case IGS_ERR_INDEX_OUT_OF_RANGE:
            return "IGS_ERR_INDEX_OUT_OF_RANGE (tile index >= Gaussian count)";
        case IGS_ERR_INTERNAL:
            return "IGS_ERR_INTERNAL (bug in the decoder)";
    }
    return "IGS_ERR_UNKNOWN (not an igs_error code)";
}

igs_error igs_decoder_create_detailed(const void* data, size_t size, igs_decoder** out, char* detail,
                                      size_t detail_size) {
    Detail det(detail, detail_size);
    if (!out) return det.fail(IGS_ERR_BAD_ARGUMENT, "out is NULL");
    *out = nullptr;
    if (!data && size) return det.fail(IGS_ERR_BAD_ARGUMENT, "data is NULL");
    igs_decoder* d = nullptr;
    try {
        d = new igs_decoder();
        const uint8_t* bytes =
            data ? static_cast<const uint8_t*>(data) : reinterpret_cast<const uint8_t*>("");
        const igs_error e =
            is_version_2(bytes, size) ? parse_v2(bytes, size, *d, det) : parse_v1(bytes, size, *d, det);
        if (e != IGS_SUCCESS) {
            delete d;
            return e;
        }
        *out = d;
        return IGS_SUCCESS;
    } catch (const std::bad_alloc&) {
        delete d;
        return det.fail(IGS_ERR_OUT_OF_MEMORY, "out of memory while decoding the parameters");
    } catch (...) {
        delete d;
        return det.fail(IGS_ERR_INTERNAL, "unexpected exception");
    }
}

igs_error igs_decoder_create(const void* data, size_t size, igs_decoder** out) {
    return igs_decoder_create_detailed(data, size, out, nullptr, 0);
}

void igs_decoder_destroy(igs_decoder* decoder) {
    delete decoder;
}

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
    out->version = d->version;
    out->reach = d->reach;
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

igs_error igs_decode_rect(const igs_decoder* d, uint32_t x0, uint32_t y0, uint32_t w, uint32_t h, float* out,
                          size_t out_count, uint32_t threads) {
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

igs_error igs_sample_point_footprint(const igs_decoder* d, float px, float py, const float footprint[3],
                                     const igs_footprint_options* options, float* out) {
    if (!d || !out || !point_inside(*d, px, py) || !footprint_valid(footprint)) return IGS_ERR_BAD_ARGUMENT;
    const uint32_t min_k = options ? options->min_k : 0;
    const int k = static_cast<int>(std::min<uint32_t>(std::max(d->k, min_k), IGS_MAX_K));
    evaluate_footprint(*d, tile_of_point(*d, px, py), px, py, footprint, k, options && options->keep_peak,
                       out);
    return IGS_SUCCESS;
}

igs_error igs_sample_footprint(const igs_decoder* d, float u, float v, igs_address_mode mode,
                               const float footprint[3], const igs_footprint_options* options, float* out) {
    if (!d || !out || !std::isfinite(u) || !std::isfinite(v)) return IGS_ERR_BAD_ARGUMENT;
    if (mode != IGS_ADDRESS_WRAP && mode != IGS_ADDRESS_CLAMP) return IGS_ERR_BAD_ARGUMENT;
    float px, py;
    address(*d, u, v, mode, px, py);
    return igs_sample_point_footprint(d, px, py, footprint, options, out);
}

igs_error igs_footprint_from_uv_derivatives(const igs_decoder* d, float dudx, float dvdx, float dudy,
                                            float dvdy, float variance, float out[3]) {
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
