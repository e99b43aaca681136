// igs_sample.glsl: sample a baked .igs material directly from its buffers (GLSL 4.50, Vulkan or GL).
//
// The rendering contract is DESIGN.md ("The rendering contract"); the bytes are docs/FORMAT.md.
// Every file parameter (W, H, C, T, K, eps, N, index_bits) is read from the header buffer at run
// time, so one compiled shader serves every file. See shaders/README.md for binding and cost.
//
// Configuration (define before including; defaults in brackets):
//   IGS_SET [0]                     descriptor set (Vulkan only; ignored by OpenGL)
//   IGS_BINDING_HEADER [0]          file bytes 0 .. at least the end of the channel table
//   IGS_BINDING_GAUSSIANS [1]       the Gaussian buffer section
//   IGS_BINDING_TILE_OFFSETS [2]    the tile offsets section
//   IGS_BINDING_TILE_INDICES [3]    the tile indices section
//   IGS_ONE_BUFFER                  bind the whole file once at IGS_BINDING_HEADER instead; the
//                                   section offsets then come from the header
//   IGS_MAX_K [32]                  compile-time cap on the header's K (registers held per texel)
//   IGS_MAX_CHANNELS [16]           compile-time cap on C; lower it to the stacks you ship
//   IGS_FOOTPRINT_VARIANCE [1/12]   variance (screen pixels^2) of one pixel's footprint; 1/12 is
//                                   the variance of a one-pixel box, the filter mips are built with
//   IGS_FOOTPRINT_PEAK_SCALE [1]    1: convolved Gaussians keep their mass (peak scaled down);
//                                   0: keep peak 1 (see README, "Footprint filtering")
//   IGS_FOOTPRINT_MIN_K [0]         footprint sampling keeps max(K, this) Gaussians (capped at
//                                   IGS_MAX_K): a wide footprint covers more than K; 0 = file's K
// The host must reject files with K > IGS_MAX_K or C > IGS_MAX_CHANNELS, and validate files as
// FORMAT.md says before binding them: the shader trusts the header and the tile lists.

#ifndef IGS_SAMPLE_GLSL
#define IGS_SAMPLE_GLSL

#ifndef IGS_SET
#define IGS_SET 0
#endif
#ifndef IGS_BINDING_HEADER
#define IGS_BINDING_HEADER 0
#endif
#ifndef IGS_BINDING_GAUSSIANS
#define IGS_BINDING_GAUSSIANS 1
#endif
#ifndef IGS_BINDING_TILE_OFFSETS
#define IGS_BINDING_TILE_OFFSETS 2
#endif
#ifndef IGS_BINDING_TILE_INDICES
#define IGS_BINDING_TILE_INDICES 3
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

// OpenGL GLSL rejects `set`; glslang defines VULKAN when compiling for Vulkan (-V).
#ifdef VULKAN
#define IGS_LAYOUT(b) layout(std430, set = IGS_SET, binding = b)
#else
#define IGS_LAYOUT(b) layout(std430, binding = b)
#endif

#ifdef IGS_ONE_BUFFER
IGS_LAYOUT(IGS_BINDING_HEADER) readonly buffer IgsFileBuffer { uint igsFileWords[]; };
#define IGS_HEADER_WORD(i) igsFileWords[i]
#define IGS_GAUSSIAN_WORD(i) igsFileWords[i]
#define IGS_OFFSET_WORD(i) igsFileWords[i]
#define IGS_INDEX_WORD(i) igsFileWords[i]
#else
IGS_LAYOUT(IGS_BINDING_HEADER) readonly buffer IgsHeaderBuffer { uint igsHeaderWords[]; };
IGS_LAYOUT(IGS_BINDING_GAUSSIANS) readonly buffer IgsGaussianBuffer { uint igsGaussianWords[]; };
IGS_LAYOUT(IGS_BINDING_TILE_OFFSETS) readonly buffer IgsTileOffsetBuffer { uint igsTileOffsetWords[]; };
IGS_LAYOUT(IGS_BINDING_TILE_INDICES) readonly buffer IgsTileIndexBuffer { uint igsTileIndexWords[]; };
#define IGS_HEADER_WORD(i) igsHeaderWords[i]
#define IGS_GAUSSIAN_WORD(i) igsGaussianWords[i]
#define IGS_OFFSET_WORD(i) igsTileOffsetWords[i]
#define IGS_INDEX_WORD(i) igsTileIndexWords[i]
#endif

const uint IGS_WRAP = 0u;   // p = frac(uv) * size: the field repeats (seams unless baked tileable)
const uint IGS_CLAMP = 1u;  // p clamped to the edge texel centres, like CLAMP_TO_EDGE + bilinear

// Semantic codes of the channel table (FORMAT.md).
const uint IGS_SEM_OTHER = 0u;
const uint IGS_SEM_BASECOLOR_R = 1u;
const uint IGS_SEM_BASECOLOR_G = 2u;
const uint IGS_SEM_BASECOLOR_B = 3u;
const uint IGS_SEM_NORMAL_X = 4u;
const uint IGS_SEM_NORMAL_Y = 5u;
const uint IGS_SEM_NORMAL_Z = 6u;
const uint IGS_SEM_AO = 7u;
const uint IGS_SEM_ROUGHNESS = 8u;
const uint IGS_SEM_METALNESS = 9u;

struct IgsHeader {
    uint width;
    uint height;
    uint channels;
    uint tile;
    uint k;          // already capped at IGS_MAX_K
    uint indexBits;
    uint count;
    uint wordsPerGaussian;
    float eps;
    uint tilesX;
    uint channelBase;   // word of the channel table in the header buffer
    uint gaussianBase;  // word offsets of the sections in their buffers: 0 unless IGS_ONE_BUFFER
    uint offsetBase;
    uint indexBase;
};

// All channels of one sample; entries >= header.channels are 0.
struct IgsValue {
    float c[IGS_MAX_CHANNELS];
};

struct IgsGaussian {
    vec2 mean;
    float theta;
    vec2 invScale;
};

IgsHeader igsLoadHeader() {
    IgsHeader h;
    uint w4 = IGS_HEADER_WORD(4u);
    uint w5 = IGS_HEADER_WORD(5u);
    h.width = IGS_HEADER_WORD(2u);
    h.height = IGS_HEADER_WORD(3u);
    h.channels = min(w4 & 0xFFFFu, uint(IGS_MAX_CHANNELS));
    h.tile = w4 >> 16;
    h.k = min(w5 & 0xFFFFu, uint(IGS_MAX_K));
    h.indexBits = w5 >> 16;
    h.eps = uintBitsToFloat(IGS_HEADER_WORD(6u));
    h.count = IGS_HEADER_WORD(7u);
    h.wordsPerGaussian = IGS_HEADER_WORD(10u) & 0xFFFFu;
    h.tilesX = (h.width + h.tile - 1u) / h.tile;
    h.channelBase = IGS_HEADER_WORD(11u) >> 2;
#ifdef IGS_ONE_BUFFER
    h.gaussianBase = IGS_HEADER_WORD(15u) >> 2;
    h.offsetBase = IGS_HEADER_WORD(17u) >> 2;
    h.indexBase = IGS_HEADER_WORD(19u) >> 2;
#else
    h.gaussianBase = 0u;
    h.offsetBase = 0u;
    h.indexBase = 0u;
#endif
    return h;
}

// FORMAT.md "Decoding": every line one rounded f32 operation. `precise` stops the compiler fusing
// a decode multiply into a later add (p - mean, lo + m), which would change the bits.
IgsGaussian igsLoadGeometry(IgsHeader h, uint i) {
    const float K16 = uintBitsToFloat(0x37800080u);
    const float THETA_STEP = uintBitsToFloat(0x38490FDBu);
    uint base = h.gaussianBase + i * h.wordsPerGaussian;
    uint w0 = IGS_GAUSSIAN_WORD(base);
    uint w1 = IGS_GAUSSIAN_WORD(base + 1u);
    uint w2 = IGS_GAUSSIAN_WORD(base + 2u);
    precise float sx = float(h.width) * K16;
    precise float sy = float(h.height) * K16;
    IgsGaussian g;
    precise float mx = float(w0 & 0xFFFFu) * sx;
    precise float my = float(w0 >> 16) * sy;
    precise float th = float(w1 & 0xFFFFu) * THETA_STEP;
    g.mean = vec2(mx, my);
    g.theta = th;
    g.invScale = vec2(unpackHalf2x16(w1).y, unpackHalf2x16(w2).x);
    return g;
}

// Channel c's colour range as (lo, step): lo + q * step is the stored colour.
vec2 igsColourRange(IgsHeader h, uint c) {
    const float K16 = uintBitsToFloat(0x37800080u);
    uint e = h.channelBase + 5u * c;
    float lo = uintBitsToFloat(IGS_HEADER_WORD(e + 3u));
    float hi = uintBitsToFloat(IGS_HEADER_WORD(e + 4u));
    precise float d = hi - lo;
    precise float stp = d * K16;
    return vec2(lo, stp);
}

// Channel c's value range as (lo, hi): real = lo + v * (hi - lo).
vec2 igsValueRange(IgsHeader h, uint c) {
    uint e = h.channelBase + 5u * c;
    return vec2(uintBitsToFloat(IGS_HEADER_WORD(e + 1u)), uintBitsToFloat(IGS_HEADER_WORD(e + 2u)));
}

uint igsSemantic(IgsHeader h, uint c) {
    return IGS_HEADER_WORD(h.channelBase + 5u * c) & 0xFFu;
}

// First channel with the given semantic code, or -1.
int igsFindChannel(IgsHeader h, uint semantic) {
    for (uint c = 0u; c < h.channels; ++c) {
        if (igsSemantic(h, c) == semantic) {
            return int(c);
        }
    }
    return -1;
}

// Gaussian colour: half 5 + c of the record.
float igsLoadColour(IgsHeader h, uint i, uint c, vec2 range) {
    uint hf = 5u + c;
    uint w = IGS_GAUSSIAN_WORD(h.gaussianBase + i * h.wordsPerGaussian + (hf >> 1));
    uint q = (w >> ((hf & 1u) << 4)) & 0xFFFFu;
    precise float m = float(q) * range.y;
    precise float col = range.x + m;
    return col;
}

uint igsListEntry(IgsHeader h, uint e) {
    if (h.indexBits == 16u) {
        return (IGS_INDEX_WORD(h.indexBase + (e >> 1)) >> ((e & 1u) << 4)) & 0xFFFFu;
    }
    return IGS_INDEX_WORD(h.indexBase + e);
}

// Same expression order as the torch reference (p - m first, then rotate, then scale), so both
// round alike and near-equal weights rarely swap places in the top-K.
float igsWeight(IgsGaussian g, vec2 p) {
    vec2 d = p - g.mean;
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
float igsWeightFootprint(IgsGaussian g, vec2 p, vec3 F) {
    vec2 d = p - g.mean;
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
// the list is ascending, so a newcomer never wins a tie, which is the contract's tie rule.
IgsValue igsEvaluate(IgsHeader h, vec2 p, bool footprint, vec3 F) {
    float topG[IGS_MAX_K];
    uint topI[IGS_MAX_K];
    for (uint j = 0u; j < uint(IGS_MAX_K); ++j) {
        topG[j] = -1.0;  // below any G, which is >= 0
        topI[j] = 0xFFFFFFFFu;
    }
    float kth = -1.0;  // G of the K-th kept entry: the bar a newcomer must beat
    uint k = h.k;
    if (footprint) {
        k = min(max(k, uint(IGS_FOOTPRINT_MIN_K)), uint(IGS_MAX_K));
    }

    uint x = min(uint(p.x), h.width - 1u);
    uint y = min(uint(p.y), h.height - 1u);
    uint t = (y / h.tile) * h.tilesX + x / h.tile;
    uint first = IGS_OFFSET_WORD(h.offsetBase + t);
    uint last = IGS_OFFSET_WORD(h.offsetBase + t + 1u);
    for (uint e = first; e < last; ++e) {
        uint i = igsListEntry(h, e);
        IgsGaussian g = igsLoadGeometry(h, i);
        float w = footprint ? igsWeightFootprint(g, p, F) : igsWeight(g, p);
        if (w > kth) {
            float cw = w;
            uint ci = i;
            for (uint j = 0u; j < uint(IGS_MAX_K); ++j) {
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

    float wsum = 0.0;
    for (uint j = 0u; j < uint(IGS_MAX_K); ++j) {
        wsum += max(topG[j], 0.0);  // empty slots hold -1
    }
    float inv = 1.0 / (wsum + h.eps);
    // Channels in a runtime loop, slots unrolled inside: topG/topI stay in registers (static
    // indices) and the code grows with K, not with K * C.
    IgsValue r;
    for (uint c = 0u; c < uint(IGS_MAX_CHANNELS); ++c) {
        r.c[c] = 0.0;
    }
    for (uint c = 0u; c < h.channels; ++c) {
        vec2 range = igsColourRange(h, c);
        float acc = 0.0;
        for (uint j = 0u; j < uint(IGS_MAX_K); ++j) {
            if (topG[j] > 0.0) {
                acc += topG[j] * igsLoadColour(h, topI[j], c, range);
            }
        }
        r.c[c] = acc * inv;
    }
    return r;
}

vec2 igsTexelCoord(IgsHeader h, vec2 uv, uint mode) {
    vec2 size = vec2(float(h.width), float(h.height));
    if (mode == IGS_CLAMP) {
        return clamp(uv * size, vec2(0.5), size - vec2(0.5));
    }
    vec2 p = (uv - floor(uv)) * size;
    // frac(uv) of a tiny negative uv rounds to 1.0: that point is the left/top edge, not outside.
    return mix(p, vec2(0.0), greaterThanEqual(p, size));
}

// Footprint covariance in texels^2 from uv derivatives along screen x and y.
vec3 igsFootprint(IgsHeader h, vec2 ddxUv, vec2 ddyUv) {
    vec2 size = vec2(float(h.width), float(h.height));
    vec2 jx = ddxUv * size;
    vec2 jy = ddyUv * size;
    float k = float(IGS_FOOTPRINT_VARIANCE);
    return k * vec3(jx.x * jx.x + jy.x * jy.x, jx.x * jx.y + jy.x * jy.y, jx.y * jx.y + jy.y * jy.y);
}

IgsValue igsSampleTexel(IgsHeader h, vec2 p) {
    return igsEvaluate(h, p, false, vec3(0.0));
}

IgsValue igsSampleTexelFootprint(IgsHeader h, vec2 p, vec3 F) {
    return igsEvaluate(h, p, true, F);
}

// Texel (x, y) of the base level, exactly what a decode pass stores.
IgsValue igsDecodeTexel(IgsHeader h, uvec2 xy) {
    return igsEvaluate(h, vec2(xy) + vec2(0.5), false, vec3(0.0));
}

IgsValue igsSample(vec2 uv, uint mode) {
    IgsHeader h = igsLoadHeader();
    return igsEvaluate(h, igsTexelCoord(h, uv, mode), false, vec3(0.0));
}

IgsValue igsSample(vec2 uv) {
    return igsSample(uv, IGS_WRAP);
}

IgsValue igsSampleGrad(vec2 uv, vec2 ddxUv, vec2 ddyUv, uint mode) {
    IgsHeader h = igsLoadHeader();
    return igsEvaluate(h, igsTexelCoord(h, uv, mode), true, igsFootprint(h, ddxUv, ddyUv));
}

IgsValue igsSampleGrad(vec2 uv, vec2 ddxUv, vec2 ddyUv) {
    return igsSampleGrad(uv, ddxUv, ddyUv, IGS_WRAP);
}

// Blended (normalised) values to the channels' real units, FORMAT.md's three rounded steps.
IgsValue igsToReal(IgsHeader h, IgsValue v) {
    for (uint c = 0u; c < uint(IGS_MAX_CHANNELS); ++c) {
        if (c < h.channels) {
            vec2 vr = igsValueRange(h, c);
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
    return c < 0 ? fallback : v.c[c];
}

#endif  // IGS_SAMPLE_GLSL
