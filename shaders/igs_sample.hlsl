// igs_sample.hlsl: sample a baked .igs material directly from its buffers (HLSL SM 5.0+; DXC for
// D3D12, DXC -spirv or glslang -D for Vulkan).
//
// The rendering contract is DESIGN.md ("The rendering contract"); the bytes are docs/FORMAT.md
// (version 1) and docs/FORMAT-v2.md (version 2). The file's version and every file parameter
// (W, H, C, T, K, eps, N, index_bits; for version 2 also R and the record's bit widths) are read
// from the header buffer at run time, so one compiled shader serves every file of either version.
// See shaders/README.md for binding and cost.
//
// Configuration (define before including; defaults in brackets):
//   IGS_FORMAT_VERSION [0]            0: read both versions (the header's `version` picks the
//                                     path); 1 or 2: compile that version's reader only (the
//                                     header's version is not read: bind only files of that version)
//   IGS_SPACE [space0]                D3D12 register space of the four buffers
//   IGS_REG_HEADER [t0]               file bytes 0 .. at least the end of the channel table
//   IGS_REG_GAUSSIANS [t1]            version 1: the Gaussian buffer; version 2: the records
//   IGS_REG_TILE_OFFSETS [t2]         the tile offsets section (version 2: bit-packed)
//   IGS_REG_TILE_INDICES [t3]         version 1: the tile indices section (version 2 has none:
//                                     bind a 16-byte dummy; not declared with IGS_FORMAT_VERSION 2)
//   IGS_VK_SET [0], IGS_VK_BINDING_HEADER [0], IGS_VK_BINDING_GAUSSIANS [1],
//   IGS_VK_BINDING_TILE_OFFSETS [2], IGS_VK_BINDING_TILE_INDICES [3]
//                                     Vulkan set/bindings ([[vk::binding]], ignored by DXIL)
//   IGS_ONE_BUFFER                    bind the whole file once as the header buffer instead; the
//                                     section offsets then come from the header
//   IGS_MAX_K [32]                    compile-time cap on the header's K (registers per texel)
//   IGS_MAX_CHANNELS [16]             compile-time cap on C; lower it to the stacks you ship
//   IGS_FOOTPRINT_VARIANCE [1/12]     variance (screen pixels^2) of one pixel's footprint; 1/12
//                                     is a one-pixel box, the filter mips are built with
//   IGS_FOOTPRINT_PEAK_SCALE [1]      1: convolved Gaussians keep their mass (peak scaled down);
//                                     0: keep peak 1 (see README, "Footprint filtering")
//   IGS_FOOTPRINT_MIN_K [0]           footprint sampling keeps max(K, this) Gaussians (capped at
//                                     IGS_MAX_K): a wide footprint covers more than K; 0 = file's K
// The host must reject files with K > IGS_MAX_K or C > IGS_MAX_CHANNELS, and validate files as
// FORMAT.md / FORMAT-v2.md say before binding them: the shader trusts the header, the tile lists
// (version 1), and the home-tile order, tile offsets and reach rule (version 2).

#ifndef IGS_SAMPLE_HLSL
#define IGS_SAMPLE_HLSL

#ifndef IGS_FORMAT_VERSION
#define IGS_FORMAT_VERSION 0
#endif
#if IGS_FORMAT_VERSION != 0 && IGS_FORMAT_VERSION != 1 && IGS_FORMAT_VERSION != 2
#error "IGS_FORMAT_VERSION must be 0 (both), 1 or 2"
#endif
#define IGS_READS_V1 (IGS_FORMAT_VERSION != 2)  // the tile index buffer and list reads exist

#ifndef IGS_SPACE
#define IGS_SPACE space0
#endif
#ifndef IGS_REG_HEADER
#define IGS_REG_HEADER t0
#endif
#ifndef IGS_REG_GAUSSIANS
#define IGS_REG_GAUSSIANS t1
#endif
#ifndef IGS_REG_TILE_OFFSETS
#define IGS_REG_TILE_OFFSETS t2
#endif
#ifndef IGS_REG_TILE_INDICES
#define IGS_REG_TILE_INDICES t3
#endif
#ifndef IGS_VK_SET
#define IGS_VK_SET 0
#endif
#ifndef IGS_VK_BINDING_HEADER
#define IGS_VK_BINDING_HEADER 0
#endif
#ifndef IGS_VK_BINDING_GAUSSIANS
#define IGS_VK_BINDING_GAUSSIANS 1
#endif
#ifndef IGS_VK_BINDING_TILE_OFFSETS
#define IGS_VK_BINDING_TILE_OFFSETS 2
#endif
#ifndef IGS_VK_BINDING_TILE_INDICES
#define IGS_VK_BINDING_TILE_INDICES 3
#endif
#ifndef IGS_MAX_K
#define IGS_MAX_K 32
#endif
#ifndef IGS_MAX_CHANNELS
#define IGS_MAX_CHANNELS 16
#endif
#ifndef IGS_FOOTPRINT_VARIANCE
#define IGS_FOOTPRINT_VARIANCE (1.0 / 12.0)
#endif
#ifndef IGS_FOOTPRINT_PEAK_SCALE
#define IGS_FOOTPRINT_PEAK_SCALE 1
#endif
#ifndef IGS_FOOTPRINT_MIN_K
#define IGS_FOOTPRINT_MIN_K 0
#endif

// Raw buffers: no stride to agree on, and D3D12 binds them as plain R32_TYPELESS SRVs.
#ifdef IGS_ONE_BUFFER
[[vk::binding(IGS_VK_BINDING_HEADER, IGS_VK_SET)]]
ByteAddressBuffer igsFileBuffer : register(IGS_REG_HEADER, IGS_SPACE);
#define IGS_HEADER_WORD(i) igsFileBuffer.Load((i) << 2)
#define IGS_GAUSSIAN_WORD(i) igsFileBuffer.Load((i) << 2)
#define IGS_OFFSET_WORD(i) igsFileBuffer.Load((i) << 2)
#define IGS_INDEX_WORD(i) igsFileBuffer.Load((i) << 2)
#else
[[vk::binding(IGS_VK_BINDING_HEADER, IGS_VK_SET)]]
ByteAddressBuffer igsHeaderBuffer : register(IGS_REG_HEADER, IGS_SPACE);
[[vk::binding(IGS_VK_BINDING_GAUSSIANS, IGS_VK_SET)]]
ByteAddressBuffer igsGaussianBuffer : register(IGS_REG_GAUSSIANS, IGS_SPACE);
[[vk::binding(IGS_VK_BINDING_TILE_OFFSETS, IGS_VK_SET)]]
ByteAddressBuffer igsTileOffsetBuffer : register(IGS_REG_TILE_OFFSETS, IGS_SPACE);
#define IGS_HEADER_WORD(i) igsHeaderBuffer.Load((i) << 2)
#define IGS_GAUSSIAN_WORD(i) igsGaussianBuffer.Load((i) << 2)
#define IGS_OFFSET_WORD(i) igsTileOffsetBuffer.Load((i) << 2)
#if IGS_READS_V1
[[vk::binding(IGS_VK_BINDING_TILE_INDICES, IGS_VK_SET)]]
ByteAddressBuffer igsTileIndexBuffer : register(IGS_REG_TILE_INDICES, IGS_SPACE);
#define IGS_INDEX_WORD(i) igsTileIndexBuffer.Load((i) << 2)
#endif
#endif

static const uint IGS_WRAP = 0;   // p = frac(uv) * size: the field repeats (seams unless baked tileable)
static const uint IGS_CLAMP = 1;  // p clamped to the edge texel centres, like CLAMP + bilinear

// Semantic codes of the channel table (FORMAT.md).
static const uint IGS_SEM_OTHER = 0;
static const uint IGS_SEM_BASECOLOR_R = 1;
static const uint IGS_SEM_BASECOLOR_G = 2;
static const uint IGS_SEM_BASECOLOR_B = 3;
static const uint IGS_SEM_NORMAL_X = 4;
static const uint IGS_SEM_NORMAL_Y = 5;
static const uint IGS_SEM_NORMAL_Z = 6;
static const uint IGS_SEM_AO = 7;
static const uint IGS_SEM_ROUGHNESS = 8;
static const uint IGS_SEM_METALNESS = 9;

struct IgsHeader {
    uint version;    // 1 or 2
    uint width;
    uint height;
    uint channels;
    uint tile;
    uint k;          // already capped at IGS_MAX_K
    uint indexBits;  // version 1 (0 in version 2)
    uint count;
    uint wordsPerGaussian;  // version 1 (0 in version 2)
    float eps;
    uint tilesX;
    uint tilesY;
    uint channelBase;   // word of the channel table in the header buffer
    uint gaussianBase;  // word offsets of the sections in their buffers: 0 unless IGS_ONE_BUFFER
    uint offsetBase;    // (gaussianBase: the Gaussian buffer, or version 2's records)
    uint indexBase;
    // Version 2 only (0 in version 1): reach R and the record layout of FORMAT-v2's header.
    uint reach;
    uint meanBits;       // P
    uint thetaBits;      // B_t
    uint scaleBits;      // B_e + B_m: width of qa and qb
    uint scaleMantBits;  // B_m
    int scaleExpMin;     // E
    uint offsetBits;     // B_o
    uint recordBits;
    uint geometryBits;   // 2 P + B_t + 2 (B_e + B_m): the first colour field's bit in a record
};

// All channels of one sample; entries >= header.channels are 0.
struct IgsValue {
    float c[IGS_MAX_CHANNELS];
};

struct IgsGaussian {
    float2 mean;
    float theta;
    float2 invScale;
};

// True when h is a version 2 file (a constant when IGS_FORMAT_VERSION fixes the version).
bool igsIsV2(IgsHeader h) {
#if IGS_FORMAT_VERSION == 0
    return h.version == 2u;
#else
    return IGS_FORMAT_VERSION == 2;
#endif
}

IgsHeader igsLoadHeader() {
    IgsHeader h;
    // Words 2..7 mean the same in both versions: W, H, C | T << 16, K | (index_bits or R) << 16,
    // eps, N.
    uint w4 = IGS_HEADER_WORD(4u);
    uint w5 = IGS_HEADER_WORD(5u);
#if IGS_FORMAT_VERSION == 0
    h.version = IGS_HEADER_WORD(1u) & 0xFFFFu;
#else
    h.version = (uint)IGS_FORMAT_VERSION;
#endif
    h.width = IGS_HEADER_WORD(2u);
    h.height = IGS_HEADER_WORD(3u);
    h.channels = min(w4 & 0xFFFFu, (uint)IGS_MAX_CHANNELS);
    h.tile = w4 >> 16;
    h.k = min(w5 & 0xFFFFu, (uint)IGS_MAX_K);
    h.eps = asfloat(IGS_HEADER_WORD(6u));
    h.count = IGS_HEADER_WORD(7u);
    h.tilesX = (h.width + h.tile - 1u) / h.tile;
    h.tilesY = (h.height + h.tile - 1u) / h.tile;
    h.channelBase = 0u;
    h.gaussianBase = 0u;
    h.offsetBase = 0u;
    h.indexBase = 0u;
    h.indexBits = 0u;
    h.wordsPerGaussian = 0u;
    h.reach = 0u;
    h.meanBits = 0u;
    h.thetaBits = 0u;
    h.scaleBits = 0u;
    h.scaleMantBits = 0u;
    h.scaleExpMin = 0;
    h.offsetBits = 0u;
    h.recordBits = 0u;
    h.geometryBits = 0u;
    if (igsIsV2(h)) {
        // FORMAT-v2 header: byte 36 P, 37 B_t, 38 B_e, 39 B_m (word 9); 40 E (i8), 41 B_o,
        // 42 record_bits (u16) (word 10); section offsets at words 12, 16, 18.
        uint w9 = IGS_HEADER_WORD(9u);
        uint w10 = IGS_HEADER_WORD(10u);
        h.reach = w5 >> 16;
        h.meanBits = w9 & 0xFFu;
        h.thetaBits = (w9 >> 8) & 0xFFu;
        h.scaleMantBits = w9 >> 24;
        h.scaleBits = ((w9 >> 16) & 0xFFu) + h.scaleMantBits;
        h.scaleExpMin = ((int)(w10 << 24)) >> 24;  // sign-extended i8 (>> of int is arithmetic)
        h.offsetBits = (w10 >> 8) & 0xFFu;
        h.recordBits = w10 >> 16;
        h.geometryBits = 2u * h.meanBits + h.thetaBits + 2u * h.scaleBits;
        h.channelBase = IGS_HEADER_WORD(12u) >> 2;
#ifdef IGS_ONE_BUFFER
        h.gaussianBase = IGS_HEADER_WORD(16u) >> 2;
        h.offsetBase = IGS_HEADER_WORD(18u) >> 2;
#endif
    } else {
        h.indexBits = w5 >> 16;
        h.wordsPerGaussian = IGS_HEADER_WORD(10u) & 0xFFFFu;
        h.channelBase = IGS_HEADER_WORD(11u) >> 2;
#ifdef IGS_ONE_BUFFER
        h.gaussianBase = IGS_HEADER_WORD(15u) >> 2;
        h.offsetBase = IGS_HEADER_WORD(17u) >> 2;
        h.indexBase = IGS_HEADER_WORD(19u) >> 2;
#endif
    }
    return h;
}

// ---------------------------------------------------------------------------------------------
// Version 2 bit streams (FORMAT-v2 "Bit streams"): bit b of a stream is bit b & 31 of word b >> 5.

// Word and bit of entry `index` of `width` bits: index * width split so that nothing overflows
// 32 bits (a records stream can hold more than 2^32 bits).
uint2 igsBitPosition(uint index, uint width) {
    uint low = (index & 31u) * width;
    return uint2((index >> 5) * width + (low >> 5), low & 31u);
}

uint igsFieldMask(uint v, uint width) {
    return width >= 32u ? v : v & ((1u << width) - 1u);
}

// The `width`-bit field (1 ..= 32) at bit `bit` (any value) after word `word` of the records;
// the second word is read only when the field straddles into it.
uint igsRecordField(IgsHeader h, uint word, uint bit, uint width) {
    uint wi = h.gaussianBase + word + (bit >> 5);
    uint s = bit & 31u;
    uint v = IGS_GAUSSIAN_WORD(wi) >> s;
    if (s + width > 32u) {
        v |= IGS_GAUSSIAN_WORD(wi + 1u) << (32u - s);
    }
    return igsFieldMask(v, width);
}

// offsets[t] of version 2: entry t of offset_bits bits.
uint igsTileOffsetV2(IgsHeader h, uint t) {
    uint2 at = igsBitPosition(t, h.offsetBits);
    uint wi = h.offsetBase + at.x;
    uint v = IGS_OFFSET_WORD(wi) >> at.y;
    if (at.y + h.offsetBits > 32u) {
        v |= IGS_OFFSET_WORD(wi + 1u) << (32u - at.y);
    }
    return igsFieldMask(v, h.offsetBits);
}

// Sequential reader over the records stream: each word is loaded once. `cur` holds word `word`,
// the next field starts at its bit `bit` (0 ..= 31).
struct IgsBitReader {
    uint word;
    uint bit;
    uint cur;
};

IgsBitReader igsRecordReader(IgsHeader h, uint i) {
    uint2 at = igsBitPosition(i, h.recordBits);
    IgsBitReader r;
    r.word = h.gaussianBase + at.x;
    r.bit = at.y;
    r.cur = IGS_GAUSSIAN_WORD(r.word);
    return r;
}

// Reads the next `width`-bit field. When a field ends on a word boundary the next word is loaded
// for the field after it: used for the geometry fields only, which a colour field always follows
// inside the record, so that word exists.
uint igsReadField(inout IgsBitReader r, uint width) {
    uint v = r.cur >> r.bit;
    uint end = r.bit + width;
    if (end >= 32u) {
        r.word += 1u;
        uint next = IGS_GAUSSIAN_WORD(r.word);
        if (end > 32u) {  // straddles: r.bit > 0 here, so the shift is 1 ..= 31
            v |= next << (32u - r.bit);
        }
        r.cur = next;
        end -= 32u;
    }
    r.bit = end;
    return igsFieldMask(v, width);
}

// minifloat(q) of FORMAT-v2 "Records": the f32 with exponent e + E and the top B_m mantissa bits m.
float igsMinifloat(IgsHeader h, uint q) {
    uint e = q >> h.scaleMantBits;
    uint m = q & ((1u << h.scaleMantBits) - 1u);
    uint bits = ((uint)((int)e + h.scaleExpMin + 127) << 23) | (m << (23u - h.scaleMantBits));
    return asfloat(bits);
}

// theta_step = f32(pi) * 2^-B_t, exact (2^-B_t built from bits).
float igsThetaStepV2(IgsHeader h) {
    precise float step = asfloat(0x40490FDBu) * asfloat((127u - h.thetaBits) << 23);
    return step;
}

// FORMAT.md "Decoding": every line one rounded f32 operation. `precise` stops the compiler fusing
// a decode multiply into a later add (p - mean, lo + m), which would change the bits.
IgsGaussian igsLoadGeometryV1(IgsHeader h, uint i) {
    float K16 = asfloat(0x37800080u);
    float THETA_STEP = asfloat(0x38490FDBu);
    uint base = h.gaussianBase + i * h.wordsPerGaussian;
    uint w0 = IGS_GAUSSIAN_WORD(base);
    uint w1 = IGS_GAUSSIAN_WORD(base + 1u);
    uint w2 = IGS_GAUSSIAN_WORD(base + 2u);
    precise float sx = (float)h.width * K16;
    precise float sy = (float)h.height * K16;
    precise float mx = (float)(w0 & 0xFFFFu) * sx;
    precise float my = (float)(w0 >> 16) * sy;
    precise float th = (float)(w1 & 0xFFFFu) * THETA_STEP;
    IgsGaussian g;
    g.mean = float2(mx, my);
    g.theta = th;
    // f16tof32 reads the low 16 bits: half 3 is the high half of word 1, half 4 the low of word 2.
    g.invScale = float2(f16tof32(w1 >> 16), f16tof32(w2 & 0xFFFFu));
    return g;
}

// FORMAT-v2 "Records", every line one rounded f32 operation (`precise`: NoContraction). Means and
// inverse scales of record i, which the listing rule needs; theta is left to igsThetaV2 (decoded
// only for the records that are listed) and its code returned in qt.
IgsGaussian igsLoadRecordV2(IgsHeader h, uint i, out uint qt) {
    IgsBitReader r = igsRecordReader(h, i);
    uint qx = igsReadField(r, h.meanBits);
    uint qy = igsReadField(r, h.meanBits);
    qt = igsReadField(r, h.thetaBits);
    uint qa = igsReadField(r, h.scaleBits);
    uint qb = igsReadField(r, h.scaleBits);
    float pow2P = asfloat((127u - h.meanBits) << 23);  // 2^-P, exact
    precise float sx = (float)h.width * pow2P;
    precise float sy = (float)h.height * pow2P;
    precise float mx = (float)qx * sx;
    precise float my = (float)qy * sy;
    precise float ax = igsMinifloat(h, qa);
    precise float ay = igsMinifloat(h, qb);
    IgsGaussian g;
    g.mean = float2(mx, my);
    g.theta = 0.0;
    g.invScale = float2(ax, ay);
    return g;
}

float igsThetaV2(IgsHeader h, uint qt) {
    float step = igsThetaStepV2(h);
    precise float th = (float)qt * step;
    return th;
}

// Decoded geometry of Gaussian i (mean, theta, inverse scales), either version.
IgsGaussian igsLoadGeometry(IgsHeader h, uint i) {
    if (igsIsV2(h)) {
        uint qt;
        IgsGaussian g = igsLoadRecordV2(h, i, qt);
        g.theta = igsThetaV2(h, qt);
        return g;
    }
    return igsLoadGeometryV1(h, i);
}

// The listing rule of FORMAT-v2 (normative, f32): is a Gaussian listed in the tile whose texel
// box is [box.x, box.y] x [box.z, box.w] (exact integers as f32)? Every operation rounded
// separately (`precise`), so each decoder lists exactly the same Gaussians.
bool igsListedV2(IgsGaussian g, float4 box) {
    precise float ex = max(max(box.x - g.mean.x, g.mean.x - box.y), 0.0);
    precise float ey = max(max(box.z - g.mean.y, g.mean.y - box.w), 0.0);
    float am = min(g.invScale.x, g.invScale.y);
    precise float u = ex * am;
    precise float v = ey * am;
    precise float s = u * u + v * v;
    return s <= 9.0;
}

// Channel c's colour range as (lo, step): lo + q * step is the stored colour. Version 1 stores
// colour_hi and derives the step; version 2 stores colour_step itself.
float2 igsColourRange(IgsHeader h, uint c) {
    float K16 = asfloat(0x37800080u);
    uint e = h.channelBase + 5u * c;
    float lo = asfloat(IGS_HEADER_WORD(e + 3u));
    float hi = asfloat(IGS_HEADER_WORD(e + 4u));
    if (igsIsV2(h)) {
        return float2(lo, hi);
    }
    precise float d = hi - lo;
    precise float stp = d * K16;
    return float2(lo, stp);
}

// Width of channel c's colour code: version 2's colour_bits (byte 1 of the entry), 16 in version 1.
uint igsColourBits(IgsHeader h, uint c) {
    if (igsIsV2(h)) {
        return (IGS_HEADER_WORD(h.channelBase + 5u * c) >> 8) & 0xFFu;
    }
    return 16u;
}

// Channel c's value range as (lo, hi): real = lo + v * (hi - lo).
float2 igsValueRange(IgsHeader h, uint c) {
    uint e = h.channelBase + 5u * c;
    return float2(asfloat(IGS_HEADER_WORD(e + 1u)), asfloat(IGS_HEADER_WORD(e + 2u)));
}

uint igsSemantic(IgsHeader h, uint c) {
    return IGS_HEADER_WORD(h.channelBase + 5u * c) & 0xFFu;
}

// First channel with the given semantic code, or -1.
int igsFindChannel(IgsHeader h, uint semantic) {
    for (uint c = 0u; c < h.channels; ++c) {
        if (igsSemantic(h, c) == semantic) {
            return (int)c;
        }
    }
    return -1;
}

// Colour of Gaussian i in channel c, whose code is `bits` wide at bit `bit` of a version 2
// record (version 1: half 5 + c of the record; bit and bits unused).
float igsLoadColourAt(IgsHeader h, uint i, uint c, uint bit, uint bits, float2 range) {
    uint q;
    if (igsIsV2(h)) {
        uint2 at = igsBitPosition(i, h.recordBits);
        q = igsRecordField(h, at.x, at.y + bit, bits);
    } else {
        uint hf = 5u + c;
        uint w = IGS_GAUSSIAN_WORD(h.gaussianBase + i * h.wordsPerGaussian + (hf >> 1));
        q = (w >> ((hf & 1u) << 4)) & 0xFFFFu;
    }
    precise float m = (float)q * range.y;
    precise float col = range.x + m;
    return col;
}

// Gaussian colour, either version (range from igsColourRange). Version 2 finds the field by
// adding up the widths of the channels before c; the sampler keeps a running sum instead.
float igsLoadColour(IgsHeader h, uint i, uint c, float2 range) {
    uint bit = h.geometryBits;
    if (igsIsV2(h)) {
        for (uint j = 0u; j < c; ++j) {
            bit += igsColourBits(h, j);
        }
    }
    return igsLoadColourAt(h, i, c, bit, igsColourBits(h, c), range);
}

#if IGS_READS_V1
uint igsListEntry(IgsHeader h, uint e) {
    if (h.indexBits == 16u) {
        return (IGS_INDEX_WORD(h.indexBase + (e >> 1)) >> ((e & 1u) << 4)) & 0xFFFFu;
    }
    return IGS_INDEX_WORD(h.indexBase + e);
}
#endif

// Same expression order as the torch reference (p - m first, then rotate, then scale), so both
// round alike and near-equal weights rarely swap places in the top-K.
float igsWeight(IgsGaussian g, float2 p) {
    float2 d = p - g.mean;
    float c = cos(g.theta);
    float s = sin(g.theta);
    float u = (c * d.x + s * d.y) * g.invScale.x;
    float v = (c * d.y - s * d.x) * g.invScale.y;
    return exp(-0.5 * (u * u + v * v));
}

// G_i convolved with a footprint Gaussian of covariance F = (Fxx, Fxy, Fyy) in texels^2.
// Worked in the Gaussian's own frame: there Sigma = diag(1/a_x^2, 1/a_y^2) and every term of the
// determinant is a sum of non-negative products, so thin Gaussians lose no precision (the
// world-frame adjugate form cancels badly at high anisotropy).
float igsWeightFootprint(IgsGaussian g, float2 p, float3 F) {
    float2 d = p - g.mean;
    float c = cos(g.theta);
    float s = sin(g.theta);
    float u = c * d.x + s * d.y;
    float v = c * d.y - s * d.x;
    float sxx = 1.0 / (g.invScale.x * g.invScale.x);
    float syy = 1.0 / (g.invScale.y * g.invScale.y);
    float cc = c * c;
    float ss = s * s;
    float cs = c * s;
    float fuu = cc * F.x + 2.0 * cs * F.y + ss * F.z;
    float fvv = ss * F.x - 2.0 * cs * F.y + cc * F.z;
    float fuv = (cc - ss) * F.y + cs * (F.z - F.x);
    float detF = max(F.x * F.z - F.y * F.y, 0.0);
    float muu = sxx + fuu;
    float mvv = syy + fvv;
    float det = sxx * syy + sxx * fvv + syy * fuu + detF;
    float q = (mvv * u * u - 2.0 * fuv * u * v + muu * v * v) / det;
#if IGS_FOOTPRINT_PEAK_SCALE
    return sqrt(sxx * syy / det) * exp(-0.5 * q);
#else
    return exp(-0.5 * q);
#endif
}

// The contract at texel-space point p (already addressed, inside [0, W] x [0, H]), optionally with
// a footprint covariance F. Top-K lives in registers, sorted by (G descending, index ascending);
// candidates come in ascending index, so a newcomer never wins a tie, which is the contract's tie
// rule. Version 1: one run, the tile's stored list. Version 2: 2R + 1 runs of records, one per row
// of home tiles within R of the texel's tile (rows ascending, so indices ascending), each record
// tested with the listing rule.
IgsValue igsEvaluate(IgsHeader h, float2 p, bool footprint, float3 F) {
    float topG[IGS_MAX_K];
    uint topI[IGS_MAX_K];
    [unroll]
    for (uint j0 = 0u; j0 < (uint)IGS_MAX_K; ++j0) {
        topG[j0] = -1.0;  // below any G, which is >= 0
        topI[j0] = 0xFFFFFFFFu;
    }
    float kth = -1.0;  // G of the K-th kept entry: the bar a newcomer must beat
    uint k = h.k;
    if (footprint) {
        k = min(max(k, (uint)IGS_FOOTPRINT_MIN_K), (uint)IGS_MAX_K);
    }

    uint x = min((uint)p.x, h.width - 1u);
    uint y = min((uint)p.y, h.height - 1u);
    uint tx = x / h.tile;
    uint ty = y / h.tile;
    bool v2 = igsIsV2(h);
    // Runs: rows rowFirst ..= rowLast; version 2 takes home tiles colFirst ..= colLast of each.
    uint rowFirst = ty;
    uint rowLast = ty;
    uint colFirst = tx;
    uint colLast = tx;
    float4 box = float4(0.0, 0.0, 0.0, 0.0);  // the tile's texel box for the listing rule: x0, x1, y0, y1
    if (v2) {
        rowFirst = ty >= h.reach ? ty - h.reach : 0u;
        rowLast = min(ty + h.reach, h.tilesY - 1u);
        colFirst = tx >= h.reach ? tx - h.reach : 0u;
        colLast = min(tx + h.reach, h.tilesX - 1u);
        box = float4((float)(tx * h.tile), (float)min(tx * h.tile + h.tile, h.width),
                     (float)(ty * h.tile), (float)min(ty * h.tile + h.tile, h.height));
    }
    [loop]
    for (uint row = rowFirst; row <= rowLast; ++row) {
        uint first;
        uint last;
        if (v2) {
            first = igsTileOffsetV2(h, row * h.tilesX + colFirst);
            last = igsTileOffsetV2(h, row * h.tilesX + colLast + 1u);
        } else {
            uint t = ty * h.tilesX + tx;
            first = IGS_OFFSET_WORD(h.offsetBase + t);
            last = IGS_OFFSET_WORD(h.offsetBase + t + 1u);
        }
        [loop]
        for (uint e = first; e < last; ++e) {
            uint i = e;
            IgsGaussian g;
            if (v2) {
                uint qt;
                g = igsLoadRecordV2(h, i, qt);
                if (!igsListedV2(g, box)) {
                    continue;
                }
                g.theta = igsThetaV2(h, qt);
            } else {
#if IGS_READS_V1
                i = igsListEntry(h, e);
                g = igsLoadGeometryV1(h, i);
#endif
            }
            float w;
            if (footprint) {
                w = igsWeightFootprint(g, p, F);
            } else {
                w = igsWeight(g, p);
            }
            if (w > kth) {
                float cw = w;
                uint ci = i;
                [unroll]
                for (uint j = 0u; j < (uint)IGS_MAX_K; ++j) {
                    if (j >= k) {
                        break;
                    }
                    bool ahead = cw > topG[j] || (cw == topG[j] && ci < topI[j]);
                    if (ahead) {
                        float tw = topG[j];
                        uint ti = topI[j];
                        topG[j] = cw;
                        topI[j] = ci;
                        cw = tw;
                        ci = ti;
                    }
                    if (j + 1u == k) {
                        kth = topG[j];
                    }
                }
            }
        }
    }

    float wsum = 0.0;
    [unroll]
    for (uint j1 = 0u; j1 < (uint)IGS_MAX_K; ++j1) {
        wsum += max(topG[j1], 0.0);  // empty slots hold -1
    }
    float inv = 1.0 / (wsum + h.eps);
    // Channels in a runtime loop, slots unrolled inside: topG/topI stay in registers (static
    // indices) and the code grows with K, not with K * C.
    IgsValue r;
    [unroll]
    for (uint c0 = 0u; c0 < (uint)IGS_MAX_CHANNELS; ++c0) {
        r.c[c0] = 0.0;
    }
    uint bit = h.geometryBits;  // version 2: channel c's field in a record
    [loop]
    for (uint c = 0u; c < h.channels; ++c) {
        float2 range = igsColourRange(h, c);
        uint bits = igsColourBits(h, c);
        float acc = 0.0;
        [unroll]
        for (uint j2 = 0u; j2 < (uint)IGS_MAX_K; ++j2) {
            if (topG[j2] > 0.0) {
                acc += topG[j2] * igsLoadColourAt(h, topI[j2], c, bit, bits, range);
            }
        }
        r.c[c] = acc * inv;
        bit += bits;
    }
    return r;
}

float2 igsTexelCoord(IgsHeader h, float2 uv, uint mode) {
    float2 size = float2((float)h.width, (float)h.height);
    if (mode == IGS_CLAMP) {
        return clamp(uv * size, float2(0.5, 0.5), size - float2(0.5, 0.5));
    }
    float2 p = (uv - floor(uv)) * size;
    // frac(uv) of a tiny negative uv rounds to 1.0: that point is the left/top edge, not outside.
    return float2(p.x >= size.x ? 0.0 : p.x, p.y >= size.y ? 0.0 : p.y);
}

// Footprint covariance in texels^2 from uv derivatives along screen x and y.
float3 igsFootprint(IgsHeader h, float2 ddxUv, float2 ddyUv) {
    float2 size = float2((float)h.width, (float)h.height);
    float2 jx = ddxUv * size;
    float2 jy = ddyUv * size;
    float k = (float)IGS_FOOTPRINT_VARIANCE;
    return k * float3(jx.x * jx.x + jy.x * jy.x, jx.x * jx.y + jy.x * jy.y, jx.y * jx.y + jy.y * jy.y);
}

IgsValue igsSampleTexel(IgsHeader h, float2 p) {
    return igsEvaluate(h, p, false, float3(0.0, 0.0, 0.0));
}

IgsValue igsSampleTexelFootprint(IgsHeader h, float2 p, float3 F) {
    return igsEvaluate(h, p, true, F);
}

// Texel (x, y) of the base level, exactly what a decode pass stores.
IgsValue igsDecodeTexel(IgsHeader h, uint2 xy) {
    return igsEvaluate(h, float2(xy) + float2(0.5, 0.5), false, float3(0.0, 0.0, 0.0));
}

IgsValue igsSample(float2 uv, uint mode) {
    IgsHeader h = igsLoadHeader();
    return igsEvaluate(h, igsTexelCoord(h, uv, mode), false, float3(0.0, 0.0, 0.0));
}

IgsValue igsSample(float2 uv) {
    return igsSample(uv, IGS_WRAP);
}

IgsValue igsSampleGrad(float2 uv, float2 ddxUv, float2 ddyUv, uint mode) {
    IgsHeader h = igsLoadHeader();
    return igsEvaluate(h, igsTexelCoord(h, uv, mode), true, igsFootprint(h, ddxUv, ddyUv));
}

IgsValue igsSampleGrad(float2 uv, float2 ddxUv, float2 ddyUv) {
    return igsSampleGrad(uv, ddxUv, ddyUv, IGS_WRAP);
}

// Blended (normalised) values to the channels' real units, FORMAT.md's three rounded steps.
IgsValue igsToReal(IgsHeader h, IgsValue v) {
    [unroll]
    for (uint c = 0u; c < (uint)IGS_MAX_CHANNELS; ++c) {
        if (c < h.channels) {
            float2 vr = igsValueRange(h, c);
            precise float d = vr.y - vr.x;
            precise float m = v.c[c] * d;
            precise float real = vr.x + m;
            v.c[c] = real;
        }
    }
    return v;
}

// Channel c of v, or `fallback` when c < 0 (semantic absent from the file).
float igsChannel(IgsValue v, int c, float fallback) {
    if (c < 0) {
        return fallback;
    }
    return v.c[c];
}

#endif  // IGS_SAMPLE_HLSL
