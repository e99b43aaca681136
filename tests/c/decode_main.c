/* Decodes an .igs file through the C API only and writes the stack as raw float32 [H][W][C].
 *
 *   decode_main IN.igs OUT.raw [THREADS]
 *
 * Prints "W H C N K" on success. Also checks from C that igs_decode_texel and igs_decode_rect
 * agree with the full image and that a truncated buffer is refused, so a C caller's view of
 * the API (plain C99, igs_decoder.h only) is exercised end to end. Exit status 0 on success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "igs_decoder.h"

static int fail(const char* what, igs_error e) {
    fprintf(stderr, "decode_main: %s: %s\n", what, igs_error_string(e));
    return 1;
}

int main(int argc, char** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s IN.igs OUT.raw [THREADS]\n", argv[0]);
        return 2;
    }
    FILE* f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char* data = (unsigned char*)malloc(size > 0 ? (size_t)size : 1);
    if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "decode_main: cannot read %s\n", argv[1]);
        return 1;
    }
    fclose(f);
    uint32_t threads = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 0;

    igs_decoder* dec = NULL;
    char detail[256];
    igs_error e = igs_decoder_create(data, (size_t)size - 1, &dec);
    if (e != IGS_ERR_TRUNCATED || dec != NULL)
        return fail("a buffer one byte short was not refused as truncated", e);
    e = igs_decoder_create_detailed(data, (size_t)size, &dec, detail, sizeof detail);
    if (e != IGS_SUCCESS) {
        fprintf(stderr, "decode_main: %s\n", detail);
        return fail("igs_decoder_create", e);
    }
    free(data); /* the decoder keeps no reference to the file bytes */

    igs_info info;
    e = igs_decoder_info(dec, &info);
    if (e != IGS_SUCCESS) return fail("igs_decoder_info", e);
    size_t count = (size_t)info.width * info.height * info.channel_count;
    float* image = (float*)malloc(count * sizeof(float));
    if (!image) return fail("malloc", IGS_ERR_OUT_OF_MEMORY);
    e = igs_decode_image(dec, image, count - 1, threads);
    if (e != IGS_ERR_BAD_ARGUMENT) return fail("a too small output buffer was not refused", e);
    e = igs_decode_image(dec, image, count, threads);
    if (e != IGS_SUCCESS) return fail("igs_decode_image", e);

    /* Spot checks: a texel and a rect in the interior must equal the full image bit for bit. */
    uint32_t C = info.channel_count;
    float texel[IGS_MAX_CHANNELS];
    uint32_t tx = info.width / 2, ty = info.height / 3;
    e = igs_decode_texel(dec, tx, ty, texel);
    if (e != IGS_SUCCESS) return fail("igs_decode_texel", e);
    if (memcmp(texel, image + ((size_t)ty * info.width + tx) * C, C * sizeof(float)) != 0) {
        fprintf(stderr, "decode_main: texel (%u, %u) differs from the image\n", tx, ty);
        return 1;
    }
    uint32_t rw = info.width > 3 ? 3 : info.width, rh = info.height > 2 ? 2 : info.height;
    float rect[3 * 2 * IGS_MAX_CHANNELS];
    e = igs_decode_rect(dec, info.width - rw, info.height - rh, rw, rh, rect, sizeof rect / sizeof rect[0],
                        1);
    if (e != IGS_SUCCESS) return fail("igs_decode_rect", e);
    for (uint32_t y = 0; y < rh; ++y) {
        const float* row = image + ((size_t)(info.height - rh + y) * info.width + info.width - rw) * C;
        if (memcmp(rect + (size_t)y * rw * C, row, rw * C * sizeof(float)) != 0) {
            fprintf(stderr, "decode_main: rect row %u differs from the image\n", y);
            return 1;
        }
    }

    FILE* o = fopen(argv[2], "wb");
    if (!o || fwrite(image, sizeof(float), count, o) != count || fclose(o) != 0) {
        perror(argv[2]);
        return 1;
    }
    printf("%u %u %u %u %u\n", info.width, info.height, info.channel_count, info.gaussian_count, info.k);
    free(image);
    igs_decoder_destroy(dec);
    return 0;
}
