// Metadata (both versions): UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above
// U+10FFFF) and strict JSON (RFC 8259) whose top level is an object.
#include <cstring>
#include <vector>

#include "decoder.h"

namespace igs_decoder_impl {

namespace {

// JSON nesting deeper than this is refused: Python's json (the reference reader) stops near
// 1000 levels with a RecursionError, and no metadata needs more.
constexpr int kMaxJsonDepth = 1000;

bool valid_utf8(const uint8_t* p, uint64_t n, uint64_t& bad_at) {
    for (uint64_t i = 0; i < n;) {
        const uint8_t c = p[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        int len = 0;
        uint8_t lo = 0x80, hi = 0xBF;  // the range the second byte may take
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;  // overlong
            if (c == 0xED) hi = 0x9F;  // UTF-16 surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;  // overlong
            if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
        }
        bool ok = len != 0 && n - i >= static_cast<uint64_t>(len) && p[i + 1] >= lo && p[i + 1] <= hi;
        for (int b = 2; ok && b < len; ++b) ok = (p[i + b] & 0xC0) == 0x80;
        if (!ok) {
            bad_at = i;
            return false;
        }
        i += static_cast<uint64_t>(len);
    }
    return true;
}

// An iterative checker (its own container stack), so hostile nesting cannot exhaust the call
// stack.
class Json {
public:
    Json(const uint8_t* p, uint64_t n) : begin_(p), p_(p), end_(p + n) {}

    bool object() {
        space();
        if (p_ == end_ || *p_ != '{') return fail("top level is not an object");
        std::vector<uint8_t> open;  // '{' or '[' of every container we are inside
        for (;;) {
            // A value starts here.
            space();
            if (p_ == end_) return fail("unexpected end of input, expected a value");
            const uint8_t c = *p_;
            if (c == '{' || c == '[') {
                if (static_cast<int>(open.size()) >= kMaxJsonDepth)
                    return fail("nested deeper than 1000 levels");
                ++p_;
                space();
                const uint8_t close = c == '{' ? '}' : ']';
                if (p_ < end_ && *p_ == close) {
                    ++p_;  // empty container: a complete value
                } else {
                    open.push_back(c);
                    if (c == '{' && !key()) return false;
                    continue;  // its first element
                }
            } else if (c == '"') {
                if (!string()) return false;
            } else if (c == '-' || (c >= '0' && c <= '9')) {
                if (!number()) return false;
            } else if (c == 't' || c == 'f' || c == 'n') {
                if (!literal(c == 't' ? "true" : c == 'f' ? "false" : "null")) return false;
            } else {
                return fail(c == 'N' || c == 'I' ? "NaN/Infinity are not strict JSON" : "invalid value");
            }
            // A value is complete: close containers until one continues with ','.
            for (;;) {
                space();
                if (open.empty()) return p_ == end_ ? true : fail("extra data after the object");
                if (p_ == end_) return fail("unexpected end of input inside a container");
                const uint8_t top = open.back();
                if (*p_ == ',') {
                    ++p_;
                    if (top == '{') {
                        space();
                        if (!key()) return false;
                    }
                    break;
                }
                if (*p_ != (top == '{' ? '}' : ']'))
                    return fail(top == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
                ++p_;
                open.pop_back();
            }
        }
    }

    const char* what() const { return what_; }
    uint64_t where() const { return static_cast<uint64_t>(p_ - begin_); }

private:
    bool fail(const char* what) {
        what_ = what;
        return false;
    }
    void space() {
        while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
    }
    bool key() {
        if (p_ == end_ || *p_ != '"') return fail("expected a string key");
        if (!string()) return false;
        space();
        if (p_ == end_ || *p_ != ':') return fail("expected ':' after a key");
        ++p_;
        return true;
    }
    static bool hex(uint8_t c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    }
    bool string() {
        ++p_;  // the opening quote
        while (p_ < end_) {
            const uint8_t c = *p_++;
            if (c == '"') return true;
            if (c < 0x20) {
                --p_;
                return fail("control character in a string");
            }
            if (c != '\\') continue;
            if (p_ == end_) break;
            const uint8_t e = *p_;
            if (e == 'u') {
                if (end_ - p_ < 5 || !hex(p_[1]) || !hex(p_[2]) || !hex(p_[3]) || !hex(p_[4]))
                    return fail("bad \\u escape");
                p_ += 5;
            } else if (e != 0 && std::strchr("\"\\/bfnrt", e)) {
                ++p_;
            } else {
                return fail("bad escape");
            }
        }
        return fail("unterminated string");
    }
    bool digits() {
        if (p_ == end_ || *p_ < '0' || *p_ > '9') return fail("expected a digit");
        while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
        return true;
    }
    bool number() {
        if (*p_ == '-') ++p_;
        if (p_ < end_ && *p_ == '0') {
            ++p_;  // no leading zeros
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
            return fail("invalid literal");
        p_ += n;
        return true;
    }

    const uint8_t* begin_;
    const uint8_t* p_;
    const uint8_t* end_;
    const char* what_ = "";
};

}  // namespace

igs_error check_metadata(const uint8_t* data, const Section& sec, igs_decoder& d, Detail& detail) {
    if (sec.length == 0) {
        d.metadata = "{}";
        return IGS_SUCCESS;
    }
    const uint8_t* meta = data + sec.offset;
    uint64_t bad_at = 0;
    if (!valid_utf8(meta, sec.length, bad_at))
        return detail.fail(IGS_ERR_BAD_METADATA, "metadata is not valid UTF-8 (byte %llu)", ull(bad_at));
    Json json(meta, sec.length);
    if (!json.object())
        return detail.fail(IGS_ERR_BAD_METADATA, "metadata is not valid JSON: %s at byte %llu", json.what(),
                           ull(json.where()));
    d.metadata.assign(reinterpret_cast<const char*>(meta), static_cast<size_t>(sec.length));
    return IGS_SUCCESS;
}

}  // namespace igs_decoder_impl
