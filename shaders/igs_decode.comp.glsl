#version 450
// igs_decode.comp.glsl: decode a whole .igs stack, one invocation per texel. Reads version 1
// and version 2 files (the header's version picks the reader; IGS_FORMAT_VERSION 1 or 2 compiles
// one only: see igs_sample.glsl and shaders/README.md for the bindings of each version).
// Dispatch ceil(W / 8) x ceil(H / 8) x 1 workgroups. With T = 16 an 8x8 group lies inside one
// tile, so its invocations walk the same list (version 2: the same runs of records) in lockstep.
//
// Outputs (configure with macros; the include's macros apply too):
//   IGS_DECODE_BUFFER [1]       float storage buffer, texel (x, y) channel c at (y * W + x) * C + c,
//                               binding IGS_BINDING_DECODE_OUT [4]: the contract's blended
//                               (normalised) values, as the reference decoders return them
//   IGS_DECODE_REAL_UNITS [0]   1: store real units (channel value ranges applied) instead
//   IGS_DECODE_IMAGES [0]       also write three images in real units, grouped for a PBR shader:
//                               base colour (r, g, b, 1)  binding IGS_BINDING_IMAGE_BASECOLOR [5]
//                               normal      (x, y, z, 1)  binding IGS_BINDING_IMAGE_NORMAL [6]
//                               ORM         (ao, roughness, metalness, 1) IGS_BINDING_IMAGE_ORM [7]
//                               absent channels: base colour 0, normal (0.5, 0.5, 1), ao 1,
//                               roughness 1, metalness 0
//   IGS_IMAGE_FORMAT [rgba8]    rgba8 or rgba16f (rgba8 clamps to [0, 1]: signed ranges need 16f)

#extension GL_GOOGLE_include_directive : enable

#ifndef IGS_DECODE_BUFFER
#define IGS_DECODE_BUFFER 1
#endif
#ifndef IGS_DECODE_REAL_UNITS
#define IGS_DECODE_REAL_UNITS 0
#endif
#ifndef IGS_DECODE_IMAGES
#define IGS_DECODE_IMAGES 0
#endif
#ifndef IGS_BINDING_DECODE_OUT
#define IGS_BINDING_DECODE_OUT 4
#endif
#ifndef IGS_BINDING_IMAGE_BASECOLOR
#define IGS_BINDING_IMAGE_BASECOLOR 5
#endif
#ifndef IGS_BINDING_IMAGE_NORMAL
#define IGS_BINDING_IMAGE_NORMAL 6
#endif
#ifndef IGS_BINDING_IMAGE_ORM
#define IGS_BINDING_IMAGE_ORM 7
#endif
#ifndef IGS_IMAGE_FORMAT
#define IGS_IMAGE_FORMAT rgba8
#endif

#include "igs_sample.glsl"

layout(local_size_x = 8, local_size_y = 8, local_size_z = 1) in;

#ifdef VULKAN
#define IGS_OUT_LAYOUT(b) set = IGS_SET, binding = b
#else
#define IGS_OUT_LAYOUT(b) binding = b
#endif

#if IGS_DECODE_BUFFER
layout(std430, IGS_OUT_LAYOUT(IGS_BINDING_DECODE_OUT)) writeonly buffer IgsDecodeOut { float igsDecoded[]; };
#endif

#if IGS_DECODE_IMAGES
layout(IGS_OUT_LAYOUT(IGS_BINDING_IMAGE_BASECOLOR), IGS_IMAGE_FORMAT) writeonly uniform image2D igsBaseColorImage;
layout(IGS_OUT_LAYOUT(IGS_BINDING_IMAGE_NORMAL), IGS_IMAGE_FORMAT) writeonly uniform image2D igsNormalImage;
layout(IGS_OUT_LAYOUT(IGS_BINDING_IMAGE_ORM), IGS_IMAGE_FORMAT) writeonly uniform image2D igsOrmImage;
#endif

void main() {
    IgsHeader h = igsLoadHeader();
    uvec2 xy = gl_GlobalInvocationID.xy;
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
    // to check C <= IGS_MAX_CHANNELS (the extra channels then read 0).
    uint cs = IGS_HEADER_WORD(4u) & 0xFFFFu;
    uint base = (xy.y * h.width + xy.x) * cs;
    for (uint c = 0u; c < uint(IGS_MAX_CHANNELS); ++c) {
        if (c < h.channels) {
            igsDecoded[base + c] = stored.c[c];
        }
    }
#endif

#if IGS_DECODE_IMAGES
    IgsValue real = igsToReal(h, v);
    ivec2 ij = ivec2(xy);
    imageStore(igsBaseColorImage, ij, vec4(
        igsChannel(real, igsFindChannel(h, IGS_SEM_BASECOLOR_R), 0.0),
        igsChannel(real, igsFindChannel(h, IGS_SEM_BASECOLOR_G), 0.0),
        igsChannel(real, igsFindChannel(h, IGS_SEM_BASECOLOR_B), 0.0), 1.0));
    imageStore(igsNormalImage, ij, vec4(
        igsChannel(real, igsFindChannel(h, IGS_SEM_NORMAL_X), 0.5),
        igsChannel(real, igsFindChannel(h, IGS_SEM_NORMAL_Y), 0.5),
        igsChannel(real, igsFindChannel(h, IGS_SEM_NORMAL_Z), 1.0), 1.0));
    imageStore(igsOrmImage, ij, vec4(
        igsChannel(real, igsFindChannel(h, IGS_SEM_AO), 1.0),
        igsChannel(real, igsFindChannel(h, IGS_SEM_ROUGHNESS), 1.0),
        igsChannel(real, igsFindChannel(h, IGS_SEM_METALNESS), 0.0), 1.0));
#endif
}
