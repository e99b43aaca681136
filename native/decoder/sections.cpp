// What both versions' validation starts with: the section table against the buffer, the CRC,
// and the one-line error detail.
#include <cfloat>
#include <cmath>
#include <cstdarg>
#include <cstdio>

#include "decoder.h"

namespace igs_decoder_impl {

bool is_subnormal(float v) {
    return v != 0.0f && std::fabs(v) < FLT_MIN;
}

Detail::Detail(char* buf, size_t size) : buf_(buf), size_(size) {
    if (buf_ && size_) buf_[0] = '\0';
}

igs_error Detail::fail(igs_error code, const char* fmt, ...) {
    if (buf_ && size_) {
        va_list args;
        va_start(args, fmt);
        std::vsnprintf(buf_, size_, fmt, args);
        va_end(args);
    }
    return code;
}

namespace {

// CRC-32 (ISO-HDLC: reflected 0xEDB88320, init and final XOR 0xFFFFFFFF), a byte per step.
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

}  // namespace

igs_error check_sections(const uint8_t* data, uint64_t size, uint64_t header_size, uint64_t table_at,
                         int count, const char* const* names, Section* sec, Detail& detail) {
    // Before the CRC, so a short file is "truncated", not "corrupt". offset + length of two u32
    // cannot overflow 64 bits.
    uint64_t prev_end = header_size;
    const char* prev_name = "header";
    for (int s = 0; s < count; ++s) {
        sec[s].offset = load32(data + table_at + 8 * s);
        sec[s].length = load32(data + table_at + 8 * s + 4);
        const uint64_t offset = sec[s].offset, end = sec[s].offset + sec[s].length;
        if (offset % kSectionAlign)
            return detail.fail(IGS_ERR_BAD_LAYOUT, "%s offset %llu is not a multiple of 16", names[s],
                               ull(offset));
        if (offset < prev_end)
            return detail.fail(IGS_ERR_BAD_LAYOUT,
                               "%s (bytes %llu..%llu) overlaps the %s, which ends at byte %llu", names[s],
                               ull(offset), ull(end), prev_name, ull(prev_end));
        if (offset > size)
            return detail.fail(IGS_ERR_TRUNCATED,
                               "truncated or corrupt: %s starts at byte %llu, beyond the end of "
                               "the buffer (%llu bytes)",
                               names[s], ull(offset), ull(size));
        if (end + kCrcSize > size)
            return detail.fail(IGS_ERR_TRUNCATED,
                               "truncated: %s ends at byte %llu (+4 bytes of CRC) but the buffer "
                               "has %llu bytes",
                               names[s], ull(end), ull(size));
        prev_end = end;
        prev_name = names[s];
    }
    if (prev_end + kCrcSize != size)
        return detail.fail(IGS_ERR_BAD_LAYOUT,
                           "buffer has %llu bytes but the sections and CRC end at byte %llu", ull(size),
                           ull(prev_end + kCrcSize));
    return IGS_SUCCESS;
}

igs_error check_crc(const uint8_t* data, uint64_t size, Detail& detail) {
    const uint32_t stored = load32(data + size - kCrcSize);
    const uint32_t actual = crc32(data, size - kCrcSize);
    if (stored != actual)
        return detail.fail(IGS_ERR_BAD_CRC, "CRC mismatch: stored %08x, computed %08x (file corrupt)", stored,
                           actual);
    return IGS_SUCCESS;
}

}  // namespace igs_decoder_impl
