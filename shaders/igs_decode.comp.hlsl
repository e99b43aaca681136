// igs_decode.comp.hlsl: decode a whole .igs stack, one thread per texel. Entry point `main`.
// Reads version 1 and version 2 files (the header's version picks the reader; IGS_FORMAT_VERSION
// 1 or 2 compiles one only: see igs_sample.hlsl and shaders/README.md for each version's bindings).
// Dispatch ceil(W / 8) x ceil(H / 8) x 1 groups. With T = 16 an 8x8 group lies inside one tile,
// so its threads walk the same list (version 2: the same runs of records) in lockstep.
//
// Outputs (configure with macros; the include's macros apply too):
//   IGS_DECODE_BUFFER [1]       RWByteAddressBuffer of f32, texel (x, y) channel c at word
//                               (y * W + x) * C + c; register IGS_REG_DECODE_OUT [u0],
//                               Vulkan binding IGS_VK_BINDING_DECODE_OUT [4]: the contract's
//                               blended (normalised) values, as the reference decoders return them
//   IGS_DECODE_REAL_UNITS [0]   1: store real units (channel value ranges applied) instead
//   IGS_DECODE_IMAGES [0]       also write three images in real units, grouped for a PBR shader:
//                               base colour (r, g, b, 1)  [u1] / Vulkan binding [5]
//                               normal      (x, y, z, 1)  [u2] / [6]
//                               ORM (ao, roughness, metalness, 1) [u3] / [7]
//                               (macros IGS_REG_IMAGE_* and IGS_VK_BINDING_IMAGE_*)
//                               absent channels: base colour 0, normal (0.5, 0.5, 1), ao 1,
//                               roughness 1, metalness 0
//   IGS_IMAGE_FORMAT [rgba8]    Vulkan storage format, rgba8 or rgba16f, a bare token (D3D12
//                               takes the format from the UAV). rgba8 clamps to [0, 1]: signed
//                               value ranges need rgba16f

#ifndef IGS_DECODE_BUFFER
#define IGS_DECODE_BUFFER 1
#endif
#ifndef IGS_DECODE_REAL_UNITS
#define IGS_DECODE_REAL_UNITS 0
#endif
#ifndef IGS_DECODE_IMAGES
#define IGS_DECODE_IMAGES 0
#endif
#ifndef IGS_REG_DECODE_OUT
#define IGS_REG_DECODE_OUT u0
#endif
#ifndef IGS_VK_BINDING_DECODE_OUT
#define IGS_VK_BINDING_DECODE_OUT 4
#endif
#ifndef IGS_REG_IMAGE_BASECOLOR
#define IGS_REG_IMAGE_BASECOLOR u1
#endif
#ifndef IGS_REG_IMAGE_NORMAL
#define IGS_REG_IMAGE_NORMAL u2
#endif
#ifndef IGS_REG_IMAGE_ORM
#define IGS_REG_IMAGE_ORM u3
#endif
#ifndef IGS_VK_BINDING_IMAGE_BASECOLOR
#define IGS_VK_BINDING_IMAGE_BASECOLOR 5
#endif
#ifndef IGS_VK_BINDING_IMAGE_NORMAL
#define IGS_VK_BINDING_IMAGE_NORMAL 6
#endif
#ifndef IGS_VK_BINDING_IMAGE_ORM
#define IGS_VK_BINDING_IMAGE_ORM 7
#endif
#ifndef IGS_IMAGE_FORMAT
#define IGS_IMAGE_FORMAT rgba8
#endif

// DXC spells the Vulkan image format [[vk::image_format("rgba8")]]; glslang only knows
// [[spv::format_rgba8]] (and warns on the other), so pick by compiler. DXC defines __HLSL_VERSION.
#define IGS_STR_(x) #x
#define IGS_STR(x) IGS_STR_(x)
#define IGS_CAT_(a, b) a##b
#define IGS_CAT(a, b) IGS_CAT_(a, b)
#ifdef __HLSL_VERSION
#define IGS_IMAGE_ATTR [[vk::image_format(IGS_STR(IGS_IMAGE_FORMAT))]]
#else
#define IGS_IMAGE_ATTR [[IGS_CAT(spv::format_, IGS_IMAGE_FORMAT)]]
#endif

#include "igs_sample.hlsl"

#if IGS_DECODE_BUFFER
[[vk::binding(IGS_VK_BINDING_DECODE_OUT, IGS_VK_SET)]]
RWByteAddressBuffer igsDecoded : register(IGS_REG_DECODE_OUT, IGS_SPACE);
#endif

#if IGS_DECODE_IMAGES
[[vk::binding(IGS_VK_BINDING_IMAGE_BASECOLOR, IGS_VK_SET)]] IGS_IMAGE_ATTR
RWTexture2D<float4> igsBaseColorImage : register(IGS_REG_IMAGE_BASECOLOR, IGS_SPACE);
[[vk::binding(IGS_VK_BINDING_IMAGE_NORMAL, IGS_VK_SET)]] IGS_IMAGE_ATTR
RWTexture2D<float4> igsNormalImage : register(IGS_REG_IMAGE_NORMAL, IGS_SPACE);
[[vk::binding(IGS_VK_BINDING_IMAGE_ORM, IGS_VK_SET)]] IGS_IMAGE_ATTR
RWTexture2D<float4> igsOrmImage : register(IGS_REG_IMAGE_ORM, IGS_SPACE);
#endif

[numthreads(8, 8, 1)]
void main(uint3 id : SV_DispatchThreadID) {
    IgsHeader h = igsLoadHeader();
    uint2 xy = id.xy;
    if (xy.x >= h.width || xy.y >= h.height) {
        return;
    }
    IgsValue v = igsDecodeTexel(h, xy);

#if IGS_DECODE_BUFFER
    IgsValue stored = v;
#if IGS_DECODE_REAL_UNITS
    stored = igsToReal(h, v);
#endif
    // Raw header C, not the capped one, so the layout matches the file even if a host forgot
    // to check C <= IGS_MAX_CHANNELS (the extra channels are then not written).
    uint cs = IGS_HEADER_WORD(4u) & 0xFFFFu;
    uint base = (xy.y * h.width + xy.x) * cs;
    [unroll]
    for (uint c = 0u; c < (uint)IGS_MAX_CHANNELS; ++c) {
        if (c < h.channels) {
            igsDecoded.Store((base + c) << 2, asuint(stored.c[c]));
        }
    }
#endif

#if IGS_DECODE_IMAGES
    IgsValue real = igsToReal(h, v);
    igsBaseColorImage[xy] = float4(
        igsChannel(real, igsFindChannel(h, IGS_SEM_BASECOLOR_R), 0.0),
        igsChannel(real, igsFindChannel(h, IGS_SEM_BASECOLOR_G), 0.0),
        igsChannel(real, igsFindChannel(h, IGS_SEM_BASECOLOR_B), 0.0), 1.0);
    igsNormalImage[xy] = float4(
        igsChannel(real, igsFindChannel(h, IGS_SEM_NORMAL_X), 0.5),
        igsChannel(real, igsFindChannel(h, IGS_SEM_NORMAL_Y), 0.5),
        igsChannel(real, igsFindChannel(h, IGS_SEM_NORMAL_Z), 1.0), 1.0);
    igsOrmImage[xy] = float4(
        igsChannel(real, igsFindChannel(h, IGS_SEM_AO), 1.0),
        igsChannel(real, igsFindChannel(h, IGS_SEM_ROUGHNESS), 1.0),
        igsChannel(real, igsFindChannel(h, IGS_SEM_METALNESS), 0.0), 1.0);
#endif
}
