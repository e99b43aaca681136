/*
 * igs_decoder.h: CPU reference decoder for .igs files (C API, C99).
 *
 * The file layouts are docs/FORMAT.md (version 1) and docs/FORMAT-v2.md (version 2), the
 * rendering contract DESIGN.md ("The rendering contract"). A decoder is created from the bytes of a
 * whole file as they are on disk, of either version; creation validates every rule of the
 * version's "Validation" section before anything is trusted, so a malformed or hostile buffer is
 * rejected with a specific error and is never read out of bounds. After creation the decoder does
 * not reference the caller's buffer, and every function below works the same for both versions
 * (a version 2 file's tile lists are built at creation by its f32 listing rule).
 *
 * Output values are the contract's blended values in normalised units (what
 * igs_tex.render.decode.decode_igs returns); igs_apply_value_range maps them to real units.
 * Images are float [h][w][C], channels in file order.
 *
 * Thread safety: a created decoder is immutable; any number of threads may call the decode and
 * sample functions on one decoder at the same time. Only igs_decoder_destroy needs exclusivity.
 *
 * Build and link: see native/README.md.
 */
#ifndef IGS_DECODER_H
#define IGS_DECODER_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && defined(IGS_DECODER_SHARED)
#if defined(IGS_DECODER_BUILD)
#define IGS_API __declspec(dllexport)
#else
#define IGS_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define IGS_API __attribute__((visibility("default")))
#else
#define IGS_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The file format versions this decoder reads: every one from MIN to MAX. IGS_FORMAT_VERSION is
 * the newest. */
#define IGS_FORMAT_VERSION_MIN 1
#define IGS_FORMAT_VERSION_MAX 2
#define IGS_FORMAT_VERSION IGS_FORMAT_VERSION_MAX
#define IGS_MAX_CHANNELS 16
#define IGS_MAX_K 32

/* The variance (texels^2) of a one-texel box filter, the filter box mips are built with; the
 * shaders' IGS_FOOTPRINT_VARIANCE default. */
#define IGS_DEFAULT_FOOTPRINT_VARIANCE (1.0f / 12.0f)

typedef enum igs_error {
    IGS_SUCCESS = 0,
    IGS_ERR_BAD_ARGUMENT = 1, /* a NULL pointer, a rect or point outside the image, ... */
    IGS_ERR_OUT_OF_MEMORY = 2,
    IGS_ERR_TRUNCATED = 3,           /* the buffer ends before the header, a section or the CRC */
    IGS_ERR_BAD_MAGIC = 4,           /* not an .igs file */
    IGS_ERR_BAD_VERSION = 5,         /* a format version this decoder does not know */
    IGS_ERR_BAD_LAYOUT = 6,          /* sections misaligned, overlapping, or bytes after the CRC */
    IGS_ERR_BAD_CRC = 7,             /* the CRC-32 does not match: the file is corrupt */
    IGS_ERR_BAD_HEADER = 8,          /* a header field outside its limits */
    IGS_ERR_BAD_SECTION_SIZE = 9,    /* a section length disagrees with the header's counts */
    IGS_ERR_BAD_CHANNEL_TABLE = 10,  /* unknown semantic, reserved bytes, bad ranges */
    IGS_ERR_BAD_METADATA = 11,       /* metadata not UTF-8 / strict JSON / an object */
    IGS_ERR_BAD_GAUSSIAN = 12,       /* an invalid inverse scale, non-zero padding (v1) or unused
                                        bits (v2), a record breaking the reach rule (v2) */
    IGS_ERR_BAD_TILE_LIST = 13,      /* tile offsets or list order violate the rules; v2: a record
                                        outside its home tile's range */
    IGS_ERR_INDEX_OUT_OF_RANGE = 14, /* a tile index entry >= the Gaussian count */
    IGS_ERR_INTERNAL = 15            /* a bug in this library; please report it */
} igs_error;

/* Channel semantic codes of the channel table (FORMAT.md). */
typedef enum igs_semantic {
    IGS_SEMANTIC_OTHER = 0,
    IGS_SEMANTIC_BASECOLOR_R = 1,
    IGS_SEMANTIC_BASECOLOR_G = 2,
    IGS_SEMANTIC_BASECOLOR_B = 3,
    IGS_SEMANTIC_NORMAL_X = 4,
    IGS_SEMANTIC_NORMAL_Y = 5,
    IGS_SEMANTIC_NORMAL_Z = 6,
    IGS_SEMANTIC_AO = 7,
    IGS_SEMANTIC_ROUGHNESS = 8,
    IGS_SEMANTIC_METALNESS = 9
} igs_semantic;

/* Texture addressing for igs_sample_uv / igs_sample_footprint, as shaders/igs_sample.glsl does:
 * WRAP: p = frac(uv) * (W, H);  CLAMP: p = clamp(uv * (W, H), 0.5, (W, H) - 0.5). */
typedef enum igs_address_mode { IGS_ADDRESS_WRAP = 0, IGS_ADDRESS_CLAMP = 1 } igs_address_mode;

typedef struct igs_info {
    uint32_t width, height;  /* texels */
    uint32_t channel_count;  /* C, 1..16: every output texel is C floats */
    uint32_t tile;           /* T */
    uint32_t k;              /* K: Gaussians blended per texel */
    uint32_t gaussian_count; /* N */
    uint32_t tile_count;
    uint32_t index_count;               /* M: total tile-list entries (v2: of the lists built at creation) */
    uint32_t index_bits;                /* 16 or 32; 0 for version 2 (it stores no tile index) */
    float eps;                          /* the blend's epsilon */
    uint8_t semantic[IGS_MAX_CHANNELS]; /* igs_semantic code of each channel */
    float value_lo[IGS_MAX_CHANNELS];   /* real = value_lo + v * (value_hi - value_lo) */
    float value_hi[IGS_MAX_CHANNELS];
    const char* metadata; /* the metadata JSON, NUL-terminated ("{}" when empty); owned by
                             the decoder, valid until igs_decoder_destroy */
    size_t metadata_size; /* bytes of metadata, without the NUL */
    uint32_t version;     /* the file's format version, 1 or 2 */
    uint32_t reach;       /* version 2: R, tiles a Gaussian reaches from its home tile; 0 in v1 */
} igs_info;

/* Footprint sampling options; NULL means the shaders' defaults (all fields 0). */
typedef struct igs_footprint_options {
    uint32_t min_k;     /* keep max(K, min_k) Gaussians (capped at 32); 0: the file's K.
                           The shaders' IGS_FOOTPRINT_MIN_K. */
    uint32_t keep_peak; /* 0: convolved Gaussians keep their mass (peak scaled down, default);
                           1: keep peak 1. The shaders' IGS_FOOTPRINT_PEAK_SCALE = !keep_peak. */
} igs_footprint_options;

typedef struct igs_decoder igs_decoder;

/* "IGS_ERR_..." name of the code with a short description; never NULL. */
IGS_API const char* igs_error_string(igs_error code);

/* Validates the whole file (FORMAT.md "Validation", all ten steps, or FORMAT-v2.md "Validation",
 * all nine) and decodes its parameters; for version 2 also builds the tile lists.
 * data: the file bytes, size: their count. On success *out holds a new decoder; on failure
 * *out is set to NULL. */
IGS_API igs_error igs_decoder_create(const void* data, size_t size, igs_decoder** out);

/* The same; on failure also writes a one-line, NUL-terminated description naming the field,
 * section or entry at fault into detail (at most detail_size bytes; detail may be NULL). */
IGS_API igs_error igs_decoder_create_detailed(const void* data, size_t size, igs_decoder** out, char* detail,
                                              size_t detail_size);

/* Accepts NULL. */
IGS_API void igs_decoder_destroy(igs_decoder* decoder);

IGS_API igs_error igs_decoder_info(const igs_decoder* decoder, igs_info* out);

/* Decoded parameters of Gaussian i, bit-exact per FORMAT.md "Decoding" (version 2: FORMAT-v2.md
 * "Records"; i is the record index, records being in home-tile order): out[0..4] = mean_x,
 * mean_y, theta, inv_scale_x, inv_scale_y, out[5 .. 5 + C) = colour. out holds 5 + C floats. */
IGS_API igs_error igs_decoder_gaussian(const igs_decoder* decoder, uint32_t i, float* out);

/* The whole stack: out is float [H][W][C]; out_count is the number of floats out can hold
 * (at least W * H * C). threads: worker threads, 0 = all cores. */
IGS_API igs_error igs_decode_image(const igs_decoder* decoder, float* out, size_t out_count,
                                   uint32_t threads);

/* Texels x0 .. x0 + w - 1, y0 .. y0 + h - 1 into out float [h][w][C] (out_count >= w * h * C).
 * The rect must lie inside the image; w or h 0 decodes nothing. */
IGS_API igs_error igs_decode_rect(const igs_decoder* decoder, uint32_t x0, uint32_t y0, uint32_t w,
                                  uint32_t h, float* out, size_t out_count, uint32_t threads);

/* Texel (x, y) of the base level, sampled at its centre (x + 0.5, y + 0.5): exactly what
 * igs_decode_image stores there. out holds C floats. */
IGS_API igs_error igs_decode_texel(const igs_decoder* decoder, uint32_t x, uint32_t y, float* out);

/* The contract at texel-space point (px, py) in [0, W] x [0, H] (the shaders' igsSampleTexel):
 * the Gaussians of the tile holding the point, evaluated at the point itself. */
IGS_API igs_error igs_sample_point(const igs_decoder* decoder, float px, float py, float* out);

/* Texture-style sampling at uv with the given addressing (the shaders' igsSample(uv, mode)).
 * uv must be finite. */
IGS_API igs_error igs_sample_uv(const igs_decoder* decoder, float u, float v, igs_address_mode mode,
                                float* out);

/* Filtered sampling (DESIGN.md "Filtering beyond the paper"; the shaders' igsSampleGrad):
 * every Gaussian's covariance Sigma_i is replaced by Sigma_i + F, F = footprint covariance in
 * texels^2 as {Fxx, Fxy, Fyy}, symmetric positive semi-definite, Fxx and Fyy at most 1e18
 * (IGS_ERR_BAD_ARGUMENT otherwise). Build F with
 * igs_footprint_from_uv_derivatives or igs_footprint_for_mip_level. options may be NULL. */
IGS_API igs_error igs_sample_footprint(const igs_decoder* decoder, float u, float v, igs_address_mode mode,
                                       const float footprint[3], const igs_footprint_options* options,
                                       float* out);

/* The same at a texel-space point (the shaders' igsSampleTexelFootprint). */
IGS_API igs_error igs_sample_point_footprint(const igs_decoder* decoder, float px, float py,
                                             const float footprint[3], const igs_footprint_options* options,
                                             float* out);

/* F = variance * (jx jx^T + jy jy^T) with jx = (dudx * W, dvdx * H), jy = (dudy * W, dvdy * H):
 * a screen pixel's footprint in texels, as the shaders' igsFootprint computes it. Pass
 * IGS_DEFAULT_FOOTPRINT_VARIANCE as variance unless you mean otherwise. */
IGS_API igs_error igs_footprint_from_uv_derivatives(const igs_decoder* decoder, float dudx, float dvdx,
                                                    float dudy, float dvdy, float variance, float out[3]);

/* The footprint of one texel of mip level `level` (level 0 = base, 1 = half size, ...; fractional
 * levels allowed, -16 <= level <= 16): what igs_footprint_from_uv_derivatives gives for
 * uv derivatives of 2^level texels along x and y with the default variance, i.e.
 * F = (4^level / 12) * I. */
IGS_API igs_error igs_footprint_for_mip_level(float level, float out[3]);

/* Maps blended values to the channels' real units in place, FORMAT.md's three rounded steps:
 * real = value_lo + v * (value_hi - value_lo). values holds texel_count * C floats. */
IGS_API igs_error igs_apply_value_range(const igs_decoder* decoder, float* values, size_t texel_count);

#ifdef __cplusplus
}
#endif

#endif /* IGS_DECODER_H */
