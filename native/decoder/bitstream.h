// Version 2 bit streams (docs/FORMAT-v2.md "Bit streams"): a section of u32 words, little
// endian; bit b of the stream is bit (b & 31) of word (b >> 5). Reads only; the caller has
// checked the section's length against the bits it reads, so no read leaves the section.
#pragma once

#include <cstdint>

#include "decoder.h"

namespace igs_decoder_impl {

class BitStream {
public:
    BitStream(const uint8_t* section, uint64_t words) : p_(section), words_(words) {}

    uint64_t words() const { return words_; }
    uint32_t word(uint64_t j) const { return load32(p_ + 4 * j); }

    // The field of width w (1 ..= 32) at bit offset o. A field that crosses a word boundary
    // takes its high bits from the next word (only then is the shift below 32 - s < 32).
    uint32_t field(uint64_t o, unsigned w) const {
        const uint64_t j = o >> 5;
        const unsigned s = static_cast<unsigned>(o & 31);
        uint32_t v = word(j) >> s;
        if (s + w > 32) v |= word(j + 1) << (32 - s);
        return w == 32 ? v : v & ((1u << w) - 1u);
    }

    // True when the bits of the last word at and above `used_bits` (the stream's length) are all
    // zero, as the format requires; an empty or word-filling stream has none.
    bool tail_is_zero(uint64_t used_bits) const {
        const unsigned r = static_cast<unsigned>(used_bits & 31);
        if (r == 0 || words_ == 0) return true;
        return (word(words_ - 1) >> r) == 0;
    }

private:
    const uint8_t* p_;
    uint64_t words_;
};

// Consecutive fields of one stream, read from a starting bit onwards.
class BitReader {
public:
    BitReader(const BitStream& s, uint64_t bit) : s_(s), bit_(bit) {}
    uint32_t take(unsigned w) {
        const uint32_t v = s_.field(bit_, w);
        bit_ += w;
        return v;
    }

private:
    const BitStream& s_;
    uint64_t bit_;
};

}  // namespace igs_decoder_impl
