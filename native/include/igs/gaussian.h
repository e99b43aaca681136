// One 2D Gaussian evaluated at one texel, and its derivatives (DESIGN.md, rendering contract).
//
//   d = p - m;  u = cos(t) d.x + sin(t) d.y;  v = -sin(t) d.x + cos(t) d.y
//   q = 0.5 ((u a_x)^2 + (v a_y)^2);  G = exp(-q)
//
// Precision: the subtraction d = p - m always comes first. Expanding the quadratic form
// around a tile centre cancels catastrophically in float32 and flips top-K choices
// (shared/golden/README.md), so no caller may "optimise" it that way.
#pragma once

#include "common.h"

namespace igs {

// Per-step constants of one Gaussian; cos/sin are computed once per step, not per texel.
struct Gaussian {
    float mx, my;  // mean, pixels
    float cs, sn;  // cos(theta), sin(theta)
    float ax, ay;  // inverse scales, 1/pixels
};

// Texel centre of integer texel coordinate x: the contract samples at +0.5, never the corner.
IGS_HD inline float texel_centre(int x) {
    return static_cast<float>(x) + 0.5f;
}

// Below exp(-87) the result is flushed to 0: it keeps every G a normal float (denormals cost a
// microcode assist per operation on x86), and such a G changes neither the image nor any
// gradient by more than 1e-37.
constexpr float kExpFlushBelow = -87.0f;

// exp(x) for x <= 0, about 1 ulp, branch-free so loops over texels vectorise.
// Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, then the Cephes minimax polynomial for
// e^r; 2^n is applied by adding n to the exponent field, valid because x >= -87 keeps
// n >= -126 with e^r >= 1.4 whenever n = -126, so the result stays a normal float.
// NaN in gives NaN out.
IGS_HD inline float exp_nonpos(float x) {
    const bool flush = x < kExpFlushBelow;
    const float xc = flush ? kExpFlushBelow : x;
    // Adding and removing 1.5 * 2^23 rounds to the nearest integer under the default
    // rounding mode; exact because |xc * log2(e)| < 2^22. Requires no -ffast-math.
    const float kRound = 12582912.0f;
    const float t = xc * 1.44269504088896341f;
    const float nf = (t + kRound) - kRound;
    // ln2 split so that nf * kLn2Hi is exact.
    const float kLn2Hi = 0.693359375f;
    const float kLn2Lo = -2.12194440e-4f;
    float r = xc - nf * kLn2Hi;
    r = r - nf * kLn2Lo;
    const float r2 = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float er = (p * r2 + r) + 1.0f;
    const int32_t n = static_cast<int32_t>(nf);
    const float scaled = bits_float(float_bits(er) + (static_cast<uint32_t>(n) << 23));
    return flush ? 0.0f : scaled;
}

// Rotated offsets (u, v) of texel centre (px, py). dy-dependent products are separate
// statements so a caller that hoists them per row computes bit-identical values.
IGS_HD inline void rotate_offset(const Gaussian& g, float px, float py, float& u, float& v) {
    const float dx = px - g.mx;
    const float dy = py - g.my;
    u = g.cs * dx + g.sn * dy;
    v = g.cs * dy - g.sn * dx;  // == -sin*dx + cos*dy bit for bit: IEEE addition commutes
}

IGS_HD inline float exponent_from_uv(const Gaussian& g, float u, float v) {
    const float ua = u * g.ax;
    const float va = v * g.ay;
    return 0.5f * (ua * ua + va * va);
}

IGS_HD inline float eval(const Gaussian& g, float px, float py) {
    float u, v;
    rotate_offset(g, px, py, u, v);
    return exp_nonpos(-exponent_from_uv(g, u, v));
}

// Gradient of a scalar loss with respect to one Gaussian's geometric parameters.
struct GeomGrad {
    float mx, my, theta, ax, ay;
};

// Sums over texels that are linear in the upstream dL/dq, so a kernel can accumulate them
// per texel and turn them into parameter gradients once per (Gaussian, tile):
//   su = sum gq u a_x,  sv = sum gq v a_y,  suv = sum gq (u a_x) v,  svu = sum gq (v a_y) u,
//   suu = sum gq (u a_x) u,  svv = sum gq (v a_y) v,   with gq = dL/dq.
struct GeomMoments {
    float su, sv, suv, svu, suu, svv;
};

IGS_HD inline void moments_add(GeomMoments& m, float gq, float u, float v, float ua, float va) {
    const float a = gq * ua;
    const float b = gq * va;
    m.su += a;
    m.sv += b;
    m.suv += a * v;
    m.svu += b * u;
    m.suu += a * u;
    m.svv += b * v;
}

// dq/du = u a_x^2, dq/dv = v a_y^2, du/dm = -(cos, sin), dv/dm = (sin, -cos),
// du/dtheta = v, dv/dtheta = -u, dq/da_x = u^2 a_x, dq/da_y = v^2 a_y.
IGS_HD inline GeomGrad moments_to_grad(const Gaussian& g, const GeomMoments& m) {
    const float du = m.su * g.ax;  // sum gq dq/du
    const float dv = m.sv * g.ay;  // sum gq dq/dv
    GeomGrad out;
    out.mx = -g.cs * du + g.sn * dv;
    out.my = -g.sn * du - g.cs * dv;
    out.theta = g.ax * m.suv - g.ay * m.svu;
    out.ax = m.suu;
    out.ay = m.svv;
    return out;
}

// dL/dq of one texel from dL/dG: G = exp(-q) so dG/dq = -G.
IGS_HD inline float grad_exponent(float G, float dLdG) {
    return -G * dLdG;
}

}  // namespace igs
