"""Run the shaders of shaders/ from Python: compile, validate, dispatch, and a reference to check them.

Two execution paths, both on Mesa's CPU drivers so they run on any machine:

- GLSL through moderngl on llvmpipe (EGL, OpenGL 4.5 compute). OpenGL has no #include, so the
  host pastes the include in (`gl_source`).
- HLSL compiled to SPIR-V by glslang, through wgpu-py on lavapipe (Vulkan). wgpu-native takes
  SPIR-V modules (passed as bytes) and translates them with naga before handing them to Vulkan.

The reference side is the rendering contract evaluated at arbitrary texel-space points on the
file's own dequantised parameters and tile lists (`reference_points`; a version 2 file's lists are
the listing rule's, as IgsFileV2.tile_offsets/tile_indices derive them), plus the decoders of
igs_tex (Python, and the C++ one when it is built).
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHADERS = REPO / "shaders"

# Kernel modes of the test kernels below (the `mode` word of the control buffer).
MODE_SAMPLE = 0  # igsSample(uv, address)
MODE_SAMPLE_GRAD = 1  # igsSampleGrad(uv, ddx, ddy, address)
MODE_TEXEL = 2  # igsSampleTexel(p): texel-space point, no addressing
MODE_FOOTPRINT = 3  # igsSampleTexelFootprint(p, F): texel-space point and covariance
MODE_PARAMS = 4  # the decoded parameters of Gaussian i, as f32 bits
POINT_STRIDE = 8  # floats per input point: uv or p (2), ddx (2), ddy (2) or F (3), pad

# Binding numbers shared by both test kernels: the include's defaults 0..3 for the file sections.
B_CONTROL, B_POINTS, B_OUT = 4, 5, 6

_GLSL_TEST_KERNEL = """#version 450
#extension GL_GOOGLE_include_directive : enable
#include "igs_sample.glsl"
layout(local_size_x = 64) in;
layout(std430, binding = 4) readonly buffer Control { uint ctl[]; };  // count, mode, address
layout(std430, binding = 5) readonly buffer Points { float pts[]; };
layout(std430, binding = 6) writeonly buffer Out { float outv[]; };

void main() {
    uint n = gl_GlobalInvocationID.x;
    uint count = ctl[0];
    uint mode = ctl[1];
    if (n >= count) {
        return;
    }
    IgsHeader h = igsLoadHeader();
    uint C = h.channels;
    if (mode == 4u) {
        IgsGaussian g = igsLoadGeometry(h, n);
        uint base = n * (5u + C);
        outv[base + 0u] = g.mean.x;
        outv[base + 1u] = g.mean.y;
        outv[base + 2u] = g.theta;
        outv[base + 3u] = g.invScale.x;
        outv[base + 4u] = g.invScale.y;
        for (uint c = 0u; c < C; ++c) {
            outv[base + 5u + c] = igsLoadColour(h, n, c, igsColourRange(h, c));
        }
        return;
    }
    uint b = n * 8u;
    vec2 a = vec2(pts[b], pts[b + 1u]);
    vec2 dx = vec2(pts[b + 2u], pts[b + 3u]);
    vec2 dy = vec2(pts[b + 4u], pts[b + 5u]);
    IgsValue v;
    if (mode == 0u) {
        v = igsSample(a, ctl[2]);
    } else if (mode == 1u) {
        v = igsSampleGrad(a, dx, dy, ctl[2]);
    } else if (mode == 2u) {
        v = igsSampleTexel(h, a);
    } else {
        v = igsSampleTexelFootprint(h, a, vec3(dx, dy.x));
    }
    for (uint c = 0u; c < C; ++c) {
        outv[n * C + c] = v.c[c];
    }
}
"""

_HLSL_TEST_KERNEL = """#include "igs_sample.hlsl"
[[vk::binding(4, 0)]] ByteAddressBuffer ctl : register(t4);   // count, mode, address
[[vk::binding(5, 0)]] ByteAddressBuffer pts : register(t5);
[[vk::binding(6, 0)]] RWByteAddressBuffer outv : register(u0);

float pt(uint i) { return asfloat(pts.Load(i << 2)); }
void put(uint i, float v) { outv.Store(i << 2, asuint(v)); }

[numthreads(64, 1, 1)]
void main(uint3 id : SV_DispatchThreadID) {
    uint n = id.x;
    uint count = ctl.Load(0);
    uint mode = ctl.Load(4);
    uint address = ctl.Load(8);
    if (n >= count) {
        return;
    }
    IgsHeader h = igsLoadHeader();
    uint C = h.channels;
    if (mode == 4u) {
        IgsGaussian g = igsLoadGeometry(h, n);
        uint base = n * (5u + C);
        put(base + 0u, g.mean.x);
        put(base + 1u, g.mean.y);
        put(base + 2u, g.theta);
        put(base + 3u, g.invScale.x);
        put(base + 4u, g.invScale.y);
        for (uint c = 0u; c < C; ++c) {
            put(base + 5u + c, igsLoadColour(h, n, c, igsColourRange(h, c)));
        }
        return;
    }
    uint b = n * 8u;
    float2 a = float2(pt(b), pt(b + 1u));
    float2 dx = float2(pt(b + 2u), pt(b + 3u));
    float2 dy = float2(pt(b + 4u), pt(b + 5u));
    IgsValue v;
    if (mode == 0u) {
        v = igsSample(a, address);
    } else if (mode == 1u) {
        v = igsSampleGrad(a, dx, dy, address);
    } else if (mode == 2u) {
        v = igsSampleTexel(h, a);
    } else {
        v = igsSampleTexelFootprint(h, a, float3(dx, dy.x));
    }
    for (uint c = 0u; c < C; ++c) {
        put(n * C + c, v.c[c]);
    }
}
"""


class ShaderToolMissing(RuntimeError):
    pass


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ShaderToolMissing(f"{name} not found on PATH: run tools/install_shader_deps.sh")
    return path


def _define_args(defines: dict | None) -> list[str]:
    return [f"-D{k}" if v is None else f"-D{k}={v}" for k, v in (defines or {}).items()]


def compile_spirv(source: str | Path, lang: str, defines: dict | None = None, name: str = "kernel") -> bytes:
    """GLSL (-V) or HLSL (-D -V -e main -S comp) to SPIR-V with glslangValidator; includes from shaders/."""
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(source, Path):
            src = source
        else:
            src = Path(tmp) / (f"{name}.comp" if lang == "glsl" else f"{name}.hlsl")
            src.write_text(source)
        out = Path(tmp) / "out.spv"
        cmd = [tool("glslangValidator")]
        if lang == "glsl":
            cmd += ["-V", "--target-env", "vulkan1.1", "-S", "comp"]
        elif lang == "hlsl":
            cmd += ["-D", "-V", "-e", "main", "-S", "comp"]
        else:
            raise ValueError(lang)
        cmd += [f"-I{SHADERS}", *_define_args(defines), str(src), "-o", str(out)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"glslangValidator failed ({' '.join(cmd)}):\n{r.stdout}{r.stderr}")
        return out.read_bytes()


def spirv_validate(spirv: bytes, env: str = "vulkan1.1") -> None:
    with tempfile.NamedTemporaryFile(suffix=".spv") as f:
        f.write(spirv)
        f.flush()
        r = subprocess.run([tool("spirv-val"), "--target-env", env, f.name], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"spirv-val rejected the module:\n{r.stdout}{r.stderr}")


def glsl_test_kernel() -> str:
    return _GLSL_TEST_KERNEL


def hlsl_test_kernel() -> str:
    return _HLSL_TEST_KERNEL


def gl_source(source: str, defines: dict | None = None) -> str:
    """GLSL for OpenGL: includes pasted in (GL has no include directive), defines after #version."""

    def expand(text: str, depth: int = 0) -> str:
        if depth > 8:
            raise RuntimeError("include nesting too deep")
        out = []
        for line in text.splitlines():
            m = re.match(r'\s*#include\s+"([^"]+)"', line)
            if m:
                out.append(expand((SHADERS / m.group(1)).read_text(), depth + 1))
            elif re.match(r"\s*#extension\s+GL_GOOGLE_include_directive", line):
                continue
            else:
                out.append(line)
        return "\n".join(out)

    lines = expand(source).splitlines()
    if not lines or not lines[0].startswith("#version"):
        raise ValueError("GLSL source must start with #version")
    defs = [f"#define {k}" if v is None else f"#define {k} {v}" for k, v in (defines or {}).items()]
    return "\n".join([lines[0], *defs, *lines[1:]]) + "\n"


# ----------------------------------------------------------------------------------------------
# The file as the shaders bind it


@dataclass
class Sections:
    """The four uint buffers of a .igs file, each padded to a non-empty multiple of 16 bytes.
    Version 2 has no tile indices (a 16-byte dummy) and its records take the Gaussians' place."""

    header: bytes  # bytes 0 .. the Gaussian buffer's (records') offset: header, channel table, metadata
    gaussians: bytes  # version 1: the Gaussian buffer; version 2: the records
    offsets: bytes
    indices: bytes
    whole: bytes  # the whole file, for IGS_ONE_BUFFER

    def as_list(self) -> list[bytes]:
        return [self.header, self.gaussians, self.offsets, self.indices]


def _pad(b: bytes) -> bytes:
    # Zero-sized bindings are invalid in GL and WebGPU; padding is never read (lists bound the reads).
    n = max(16, (len(b) + 15) // 16 * 16)
    return b + bytes(n - len(b))


def file_version(data: bytes) -> int:
    return struct.unpack_from("<H", data, 4)[0]


def sections(data: bytes) -> Sections:
    if file_version(data) == 2:
        # FORMAT-v2 header words 16..19: records offset/length, tile offsets offset/length.
        g_off, g_len, o_off, o_len = struct.unpack_from("<20I", data, 0)[16:20]
        i_off = i_len = 0
    else:
        words = struct.unpack_from("<21I", data, 0)
        g_off, g_len, o_off, o_len, i_off, i_len = words[15:21]
    return Sections(
        header=_pad(data[:g_off]),
        gaussians=_pad(data[g_off : g_off + g_len]),
        offsets=_pad(data[o_off : o_off + o_len]),
        indices=_pad(data[i_off : i_off + i_len]),
        whole=_pad(data),
    )


def point_buffer(a: np.ndarray, dx: np.ndarray | None = None, dy: np.ndarray | None = None) -> bytes:
    """Pack per-point inputs in the test kernels' stride-8 layout."""
    a = np.asarray(a, dtype=np.float32).reshape(-1, 2)
    buf = np.zeros((a.shape[0], POINT_STRIDE), dtype=np.float32)
    buf[:, 0:2] = a
    if dx is not None:
        dx = np.asarray(dx, dtype=np.float32)
        buf[:, 2 : 2 + dx.shape[1]] = dx
    if dy is not None:
        dy = np.asarray(dy, dtype=np.float32)
        buf[:, 4 : 4 + dy.shape[1]] = dy
    return buf.tobytes()


def footprint_buffer(p: np.ndarray, F: np.ndarray) -> bytes:
    """MODE_FOOTPRINT input: p, then F = (Fxx, Fxy, Fyy) in the ddx/ddy slots."""
    F = np.asarray(F, dtype=np.float32)
    return point_buffer(p, F[:, 0:2], F[:, 2:3])


def control_buffer(count: int, mode: int, address: int = 0) -> bytes:
    return _pad(struct.pack("<4I", count, mode, address, 0))


# ----------------------------------------------------------------------------------------------
# OpenGL (moderngl, llvmpipe)


class GlRunner:
    """GLSL compute through moderngl on an EGL standalone context (Mesa llvmpipe when no GPU)."""

    def __init__(self):
        try:
            import moderngl

            self.ctx = moderngl.create_standalone_context(backend="egl", require=430)
        except Exception as exc:
            raise RuntimeError(
                f"no OpenGL 4.3 context through EGL ({exc!r}): run "
                "tools/install_shader_deps.sh (moderngl, Mesa llvmpipe)"
            ) from exc
        self.renderer = self.ctx.info["GL_RENDERER"]
        self._cache: dict = {}

    def program(self, source: str, defines: dict | None = None):
        key = (source, tuple(sorted((defines or {}).items())))
        if key not in self._cache:
            with self.ctx:
                self._cache[key] = self.ctx.compute_shader(gl_source(source, defines))
        return self._cache[key]

    def run(
        self,
        source: str,
        defines: dict | None,
        buffers: dict[int, bytes],
        out_binding: int,
        out_size: int,
        groups: tuple[int, int, int],
        images: dict | None = None,
    ):
        """Dispatch; returns the output buffer bytes and {binding: image bytes} for `images`
        ({binding: (width, height, 'f1' | 'f2')})."""
        prog = self.program(source, defines)
        # wgpu's adapter enumeration makes its own EGL context current; take ours back.
        with self.ctx:
            return self._run(prog, buffers, out_binding, out_size, groups, images)

    def _run(self, prog, buffers, out_binding, out_size, groups, images):
        bufs = []
        for binding, data in buffers.items():
            b = self.ctx.buffer(data)
            b.bind_to_storage_buffer(binding)
            bufs.append(b)
        out = self.ctx.buffer(reserve=max(16, out_size))
        out.bind_to_storage_buffer(out_binding)
        texs = {}
        for binding, (w, h, dtype) in (images or {}).items():
            t = self.ctx.texture((w, h), 4, dtype=dtype)
            t.bind_to_image(binding, read=False, write=True)
            texs[binding] = t
        prog.run(*groups)
        self.ctx.memory_barrier()
        self.ctx.finish()
        result = out.read(size=out_size) if out_size else b""
        img = {b: t.read() for b, t in texs.items()}
        for o in (*bufs, out, *texs.values()):
            o.release()
        return result, img


# ----------------------------------------------------------------------------------------------
# Vulkan through wgpu-py (lavapipe)


def mark_images_write_only(spirv: bytes) -> bytes:
    """Decorate every storage-image variable NonReadable.

    HLSL has no write-only UAV, so glslang leaves RWTexture2D readable; WebGPU (unlike Vulkan and
    D3D12) allows read-write storage textures only for r32 formats and refuses the pipeline.
    """
    words = list(struct.unpack(f"<{len(spirv) // 4}I", spirv))
    storage_images, pointers, variables = set(), set(), []
    first_decorate = None
    pos = 5
    while pos < len(words):
        count, op = words[pos] >> 16, words[pos] & 0xFFFF
        if op == 71 and first_decorate is None:  # OpDecorate
            first_decorate = pos
        elif op == 25 and words[pos + 7] == 2:  # OpTypeImage ... Sampled = 2 (storage)
            storage_images.add(words[pos + 1])
        elif op == 32 and words[pos + 3] in storage_images:  # OpTypePointer to one
            pointers.add(words[pos + 1])
        elif op == 59 and words[pos + 1] in pointers:  # OpVariable of that pointer type
            variables.append(words[pos + 2])
        pos += count
    if not variables:
        return spirv
    extra = []
    for var in variables:
        extra += [(3 << 16) | 71, var, 25]  # OpDecorate %var NonReadable
    at = first_decorate if first_decorate is not None else pos
    words[at:at] = extra
    return struct.pack(f"<{len(words)}I", *words)


class WgpuRunner:
    """SPIR-V compute through wgpu-py on a Vulkan adapter (Mesa lavapipe when no GPU)."""

    def __init__(self):
        try:
            import wgpu
            from wgpu.backends.wgpu_native import extras
        except Exception as exc:
            raise RuntimeError(f"wgpu-py is not importable ({exc!r}): run tools/install_shader_deps.sh") from exc
        self.wgpu = wgpu
        try:
            # Vulkan only: the GL backend would probe EGL/Wayland (noise) and switch the current
            # EGL context under moderngl. Only possible before the first adapter query.
            extras.set_instance_extras(backends=["Vulkan"])
        except Exception:
            pass
        vulkan = [a for a in wgpu.gpu.enumerate_adapters_sync() if a.info.get("backend_type") == "Vulkan"]
        if not vulkan:
            raise RuntimeError(
                "wgpu found no Vulkan adapter: run tools/install_shader_deps.sh (mesa-vulkan-drivers provides lavapipe)"
            )
        self.adapter = vulkan[0]
        self.renderer = self.adapter.summary
        self.device = self.adapter.request_device_sync()
        self._cache: dict = {}

    def pipeline(self, spirv: bytes):
        if spirv not in self._cache:
            module = self.device.create_shader_module(label="igs", code=mark_images_write_only(spirv))
            self._cache[spirv] = self.device.create_compute_pipeline(
                layout="auto", compute={"module": module, "entry_point": "main"}
            )
        return self._cache[spirv]

    def run(
        self,
        spirv: bytes,
        buffers: dict[int, bytes],
        out_binding: int,
        out_size: int,
        groups: tuple[int, int, int],
        images: dict | None = None,
    ):
        wgpu = self.wgpu
        pipe = self.pipeline(spirv)
        entries = []
        for binding, data in buffers.items():
            b = self.device.create_buffer_with_data(data=data, usage=wgpu.BufferUsage.STORAGE)
            entries.append({"binding": binding, "resource": {"buffer": b, "offset": 0, "size": b.size}})
        out = None
        if out_size:
            out = self.device.create_buffer(
                size=max(16, (out_size + 15) // 16 * 16), usage=wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC
            )
            entries.append({"binding": out_binding, "resource": {"buffer": out, "offset": 0, "size": out.size}})
        texs = {}
        for binding, (w, h, dtype) in (images or {}).items():
            fmt = {"f1": wgpu.TextureFormat.rgba8unorm, "f2": wgpu.TextureFormat.rgba16float}[dtype]
            t = self.device.create_texture(
                size=(w, h, 1), format=fmt, usage=wgpu.TextureUsage.STORAGE_BINDING | wgpu.TextureUsage.COPY_SRC
            )
            texs[binding] = (t, w, h, 4 if dtype == "f1" else 8)
            entries.append({"binding": binding, "resource": t.create_view()})
        group = self.device.create_bind_group(layout=pipe.get_bind_group_layout(0), entries=entries)
        enc = self.device.create_command_encoder()
        cp = enc.begin_compute_pass()
        cp.set_pipeline(pipe)
        cp.set_bind_group(0, group)
        cp.dispatch_workgroups(*groups)
        cp.end()
        self.device.queue.submit([enc.finish()])
        result = bytes(self.device.queue.read_buffer(out))[:out_size] if out is not None else b""
        img = {}
        for binding, (t, w, h, bpp) in texs.items():
            raw = self.device.queue.read_texture(
                {"texture": t, "origin": (0, 0, 0), "mip_level": 0},
                {"offset": 0, "bytes_per_row": w * bpp, "rows_per_image": h},
                (w, h, 1),
            )
            img[binding] = bytes(raw)
        return result, img


# ----------------------------------------------------------------------------------------------
# Running the shipped shaders


class Backend:
    """One execution path with the same three entry points: decode, points, params."""

    def __init__(self, lang: str, runner):
        self.lang = lang
        self.runner = runner
        self.name = f"{lang} on {'OpenGL' if isinstance(runner, GlRunner) else 'Vulkan'}"

    def _dispatch(self, source: str | Path, defines: dict | None, buffers, out_binding, out_size, groups, images=None):
        if isinstance(self.runner, GlRunner):
            text = source.read_text() if isinstance(source, Path) else source
            return self.runner.run(text, defines, buffers, out_binding, out_size, groups, images)
        spirv = _cached_spirv(source, self.lang, defines)
        return self.runner.run(spirv, buffers, out_binding, out_size, groups, images)

    def _file_buffers(self, data: bytes, one_buffer: bool, defines: dict | None = None) -> dict[int, bytes]:
        s = sections(data)
        if one_buffer:
            return {0: s.whole}
        bufs = dict(enumerate(s.as_list()))
        if str((defines or {}).get("IGS_FORMAT_VERSION", 0)) == "2":
            del bufs[3]  # a version-2-only shader declares no tile index binding
        return bufs

    def decode(
        self,
        data: bytes,
        *,
        one_buffer: bool = False,
        real_units: bool = False,
        images: str | None = None,
        defines: dict | None = None,
    ):
        """Run igs_decode.comp.*: [H, W, C] float32, plus {'basecolor','normal','orm': [H, W, 4]}
        when `images` is 'rgba8' or 'rgba16f'."""
        w, h, c = _whc(data)
        src = SHADERS / ("igs_decode.comp.glsl" if self.lang == "glsl" else "igs_decode.comp.hlsl")
        d = dict(defines or {})
        if one_buffer:
            d["IGS_ONE_BUFFER"] = None
        if real_units:
            d["IGS_DECODE_REAL_UNITS"] = 1
        img_spec = None
        if images:
            d["IGS_DECODE_IMAGES"] = 1
            d["IGS_IMAGE_FORMAT"] = images
            dtype = {"rgba8": "f1", "rgba16f": "f2"}[images]
            img_spec = {5: (w, h, dtype), 6: (w, h, dtype), 7: (w, h, dtype)}
        out, imgs = self._dispatch(
            src, d, self._file_buffers(data, one_buffer, d), 4, w * h * c * 4, ((w + 7) // 8, (h + 7) // 8, 1), img_spec
        )
        stack = np.frombuffer(out, dtype=np.float32).reshape(h, w, c).copy()
        if not images:
            return stack
        np_dtype = np.uint8 if images == "rgba8" else np.float16
        named = {}
        for name, b in (("basecolor", 5), ("normal", 6), ("orm", 7)):
            arr = np.frombuffer(imgs[b], dtype=np_dtype).reshape(h, w, 4)
            named[name] = arr.astype(np.float32) / 255.0 if images == "rgba8" else arr.astype(np.float32)
        return stack, named

    def points(
        self,
        data: bytes,
        mode: int,
        a: np.ndarray,
        dx=None,
        dy=None,
        *,
        address: int = 0,
        F: np.ndarray | None = None,
        one_buffer: bool = False,
        defines: dict | None = None,
    ) -> np.ndarray:
        """The sampling entry points at many points: [P, C] float32."""
        _, _, c = _whc(data)
        a = np.asarray(a, dtype=np.float32).reshape(-1, 2)
        n = a.shape[0]
        pts = footprint_buffer(a, F) if mode == MODE_FOOTPRINT else point_buffer(a, dx, dy)
        bufs = self._file_buffers(data, one_buffer, defines)
        bufs[B_CONTROL] = control_buffer(n, mode, address)
        bufs[B_POINTS] = _pad(pts)
        d = dict(defines or {})
        if one_buffer:
            d["IGS_ONE_BUFFER"] = None
        src = glsl_test_kernel() if self.lang == "glsl" else hlsl_test_kernel()
        out, _ = self._dispatch(src, d, bufs, B_OUT, n * c * 4, ((n + 63) // 64, 1, 1))
        return np.frombuffer(out, dtype=np.float32).reshape(n, c).copy()

    def params(self, data: bytes, defines: dict | None = None) -> np.ndarray:
        """Decoded parameters [N, 5 + C] float32 (means, theta, inv_scale, colour) from the shader."""
        _, _, c = _whc(data)
        n = struct.unpack_from("<I", data, 28)[0]  # N is word 7 in both versions
        bufs = self._file_buffers(data, False, defines)
        bufs[B_CONTROL] = control_buffer(n, MODE_PARAMS)
        bufs[B_POINTS] = _pad(b"")
        src = glsl_test_kernel() if self.lang == "glsl" else hlsl_test_kernel()
        out, _ = self._dispatch(src, defines, bufs, B_OUT, n * (5 + c) * 4, ((n + 63) // 64, 1, 1))
        return np.frombuffer(out, dtype=np.float32).reshape(n, 5 + c).copy()


_SPIRV_CACHE: dict = {}


def _cached_spirv(source, lang, defines):
    key = (str(source), lang, tuple(sorted((defines or {}).items())))
    if key not in _SPIRV_CACHE:
        _SPIRV_CACHE[key] = compile_spirv(source, lang, defines)
    return _SPIRV_CACHE[key]


def _whc(data: bytes) -> tuple[int, int, int]:
    w, h, c = struct.unpack_from("<IIH", data, 8)
    return w, h, c


# ----------------------------------------------------------------------------------------------
# Reference: the contract at arbitrary points


def texel_coords(uv: np.ndarray, mode: int, width: int, height: int) -> np.ndarray:
    """The shaders' addressing in float32, operation for operation (0 wrap, 1 clamp)."""
    uv = np.asarray(uv, dtype=np.float32)
    size = np.array([width, height], dtype=np.float32)
    if mode == 1:
        return np.clip(uv * size, np.float32(0.5), size - np.float32(0.5)).astype(np.float32)
    p = ((uv - np.floor(uv)) * size).astype(np.float32)
    return np.where(p >= size, np.float32(0.0), p).astype(np.float32)


def _listed(igs, p: np.ndarray):
    """Per point: padded Gaussian ids [P, L] of its tile and a listed mask [P, L]."""
    px = np.minimum(np.floor(p[:, 0]).astype(np.int64), igs.width - 1)
    py = np.minimum(np.floor(p[:, 1]).astype(np.int64), igs.height - 1)
    t = (py // igs.tile) * igs.tiles_x + px // igs.tile
    off = igs.tile_offsets.astype(np.int64)
    start, count = off[t], off[t + 1] - off[t]
    lmax = max(int(count.max()) if count.size else 0, 1)
    slot = np.arange(lmax)
    listed = slot[None, :] < count[:, None]
    idx = igs.tile_indices.astype(np.int64)
    gid = np.where(listed, idx[np.minimum(start[:, None] + slot[None, :], max(idx.size - 1, 0))] if idx.size else 0, 0)
    return torch.from_numpy(gid), torch.from_numpy(listed)


def footprint_weight(p, means, theta, inv_scale, F, peak_scale: bool = True):
    """G_i convolved with N(0, F), float64, written from the covariance directly (world frame),
    independent of the shaders' rotated-frame algebra. Shapes broadcast as gaussian_weight's."""
    c, s = torch.cos(theta), torch.sin(theta)
    px_, py_ = 1.0 / inv_scale[..., 0] ** 2, 1.0 / inv_scale[..., 1] ** 2
    sxx = c * c * px_ + s * s * py_ + F[..., 0]
    sxy = c * s * (px_ - py_) + F[..., 1]
    syy = s * s * px_ + c * c * py_ + F[..., 2]
    det = sxx * syy - sxy * sxy
    dx = p[..., 0] - means[..., 0]
    dy = p[..., 1] - means[..., 1]
    q = (syy * dx * dx - 2 * sxy * dx * dy + sxx * dy * dy) / det
    g = torch.exp(-0.5 * q)
    if peak_scale:
        g = g * torch.sqrt(px_ * py_ / det)
    return g


def reference_points(
    igs, p: np.ndarray, F: np.ndarray | None = None, peak_scale: bool = True, k: int | None = None
) -> np.ndarray:
    """The contract at texel-space points p [P, 2] (already addressed): the tile of floor(p), its
    stored list, top-K by G with ties to the lower index, normalised blend. Float32 with the torch
    reference's gaussian_weight; with a footprint F [P, 3], float64 and `footprint_weight`.
    `k` overrides the file's K (the shaders' IGS_FOOTPRINT_MIN_K)."""
    from igs_tex.render.torch_ref import gaussian_weight

    prm = igs.params()
    p = np.asarray(p, dtype=np.float32).reshape(-1, 2)
    gid, listed = _listed(igs, p)
    dtype = torch.float32 if F is None else torch.float64
    means = torch.from_numpy(prm["means"]).to(dtype)[gid]  # [P, L, 2]
    theta = torch.from_numpy(prm["theta"]).to(dtype)[gid]  # [P, L]
    inv_scale = torch.from_numpy(prm["inv_scale"]).to(dtype)[gid]  # [P, L, 2]
    colour = torch.from_numpy(prm["colour"]).to(dtype)[gid]  # [P, L, C]
    pt = torch.from_numpy(p).to(dtype)
    if F is None:
        g = gaussian_weight(pt[:, None, 0], pt[:, None, 1], means, theta, inv_scale)
    else:
        Ft = torch.from_numpy(np.asarray(F, dtype=np.float64))[:, None, :]
        g = footprint_weight(pt[:, None, :], means, theta, inv_scale, Ft, peak_scale)
    g = torch.where(listed, g, torch.full_like(g, -1.0))
    k = min(igs.k if k is None else k, g.shape[1])
    # Stable sort keeps list (ascending index) order among equal G: ties go to the lower index.
    sel = torch.sort(g, dim=1, descending=True, stable=True).indices[:, :k]
    gk = torch.gather(g, 1, sel).clamp(min=0.0)
    ck = torch.gather(colour, 1, sel[:, :, None].expand(-1, -1, colour.shape[2]))
    out = (gk[:, :, None] * ck).sum(1) / (gk.sum(1, keepdim=True) + igs.eps)
    return out.to(torch.float32).numpy()


def native_decode(igs) -> np.ndarray | None:
    """The C++ decoder (igs_tex._native) on the file's parameters and stored lists, or None."""
    from igs_tex.render import native

    if not native.native_available():
        return None
    mod = native._native
    prm = igs.params()
    image, _ = mod.forward(
        prm["means"],
        prm["theta"],
        prm["inv_scale"],
        prm["colour"],
        igs.height,
        igs.width,
        igs.tile,
        igs.k,
        float(igs.eps),
        igs.tile_offsets.astype(np.int64),
        igs.tile_indices.astype(np.int32),
        fast=False,
    )
    return np.asarray(image, dtype=np.float32)


def per_texel_cost(igs) -> dict[str, float]:
    """Mean per-texel work of igsSampleTexel on a file, by shaders/README.md's counting rule
    ("Cost per texel"), weighted by the texels of each tile (edge tiles are cut).

    scanned: Gaussians the sampler decodes (version 1: the tile's list; version 2: every record
    of the 2R + 1 runs); listed: those it evaluates G for (version 2: the listing rule's).
    reads: u32 words of the file read that are not uniform (header and channel table words are
    left out): version 1, 3 record words and a list entry per listed Gaussian, 2 tile offsets and
    floor(C/2) + 1 colour words for each of the K slots; version 2, the words each scanned
    record's geometry fields take the sequential reader to (1 + floor((s + geometry bits) / 32)
    for a record starting at bit s of a word), the words of the 2 (2R + 1) offset entries and
    the words a record's colour bits span (mean over records) for each of the K slots.
    macs: one per multiply, add or subtract (a multiply-add counts 1 where FORMAT allows fusing).
    Version 1: 14 per listed Gaussian. Version 2: 11 per scanned record (mean decode 2; listing
    rule 9: four subtracts, ex * am, ey * am, and u * u + v * v, unfused), 12 per listed one
    (theta decode 1, p - m 2, rotate 4, scale 2, square-sum 2, x(-1/2) 1). Both: the blend,
    K (C + 1) + C. transcendentals: sin, cos, exp per listed Gaussian, and 1 reciprocal.
    """
    T, W, H, R = igs.tile, igs.width, igs.height, getattr(igs, "reach", 0)
    t = np.arange(igs.tile_count, dtype=np.int64)
    tx, ty = t % igs.tiles_x, t // igs.tiles_x
    texels = ((np.minimum(tx * T + T, W) - tx * T) * (np.minimum(ty * T + T, H) - ty * T)).astype(np.float64)
    listed = np.diff(igs.tile_offsets.astype(np.int64)).astype(np.float64)
    c, k = igs.channel_count, igs.k
    blend_macs = k * (c + 1) + c
    if igs.version == 1:
        entry = 0.5 if igs.index_bits == 16 else 1.0
        scanned = listed
        reads = listed * (3 + entry) + 2 + k * (c // 2 + 1)
        macs = 14 * listed + blend_macs
    else:
        L = igs.layout
        geo = 2 * L.mean_bits + L.theta_bits + 2 * L.scale_bits
        start = np.arange(igs.gaussian_count, dtype=np.int64) * L.record_bits
        geo_words = 1 + (((start & 31) + geo) >> 5)
        colour_words = ((start + L.record_bits - 1) >> 5) - ((start + geo) >> 5) + 1
        cum = np.concatenate([[0], np.cumsum(geo_words)])
        off = igs.offsets.astype(np.int64)
        bo = igs.offset_bits
        entry_words = lambda e: 1 + ((((e * bo) & 31) + bo) > 32)  # noqa: E731
        scanned = np.zeros(igs.tile_count)
        reads = np.zeros(igs.tile_count)
        x0, x1 = np.maximum(tx - R, 0), np.minimum(tx + R, igs.tiles_x - 1)
        for dy in range(-R, R + 1):
            hy = ty + dy
            ok = (hy >= 0) & (hy < igs.tiles_y)
            a = np.where(ok, hy * igs.tiles_x + x0, 0)
            b = np.where(ok, hy * igs.tiles_x + x1 + 1, 0)
            scanned += np.where(ok, off[b] - off[a], 0)
            reads += np.where(ok, cum[off[b]] - cum[off[a]] + entry_words(a) + entry_words(b), 0)
        reads += k * (float(colour_words.mean()) if colour_words.size else 0.0)
        macs = 11 * scanned + 12 * listed + blend_macs
    w = texels / texels.sum()
    mean = lambda v: float((np.asarray(v, np.float64) * w).sum())  # noqa: E731
    return {
        "scanned": mean(scanned),
        "listed": mean(listed),
        "reads": mean(reads),
        "macs": mean(macs),
        "transcendentals": mean(3 * listed + 1),
        "max_scanned": float(np.max(scanned)),
        "max_listed": float(np.max(listed)),
    }


def box_mip(stack: np.ndarray, s: int) -> np.ndarray:
    """Mean over s x s blocks (H and W multiples of s): the mip a box filter builds."""
    h, w, c = stack.shape
    return stack.reshape(h // s, s, w // s, s, c).mean(axis=(1, 3))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)
