// Python face of the C decoder API (igs_decoder.h): igs_tex._native.IgsDecoder and the
// decode_igs_bytes / decode_igs_rect shortcuts. Every call goes through the public C functions,
// so the tests exercise exactly what an engine links.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "igs_decoder.h"

namespace py = pybind11;

namespace {

using F32 = py::array_t<float, py::array::c_style | py::array::forcecast>;
using I64 = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

[[noreturn]] void raise(igs_error code, const std::string& context) {
    throw py::value_error(std::string(igs_error_string(code)) + ": " + context);
}

void check(igs_error code, const char* what) {
    if (code != IGS_SUCCESS) raise(code, what);
}

class Decoder {
public:
    explicit Decoder(const py::bytes& data) {
        const std::string bytes = data;  // one copy; the decoder keeps none of it
        char detail[512];
        igs_decoder* d = nullptr;
        igs_error e;
        {
            py::gil_scoped_release nogil;
            e = igs_decoder_create_detailed(bytes.data(), bytes.size(), &d, detail, sizeof detail);
        }
        if (e != IGS_SUCCESS) raise(e, detail);
        handle_.reset(d);
        check(igs_decoder_info(d, &info_), "igs_decoder_info");
    }

    py::dict info() const {
        py::dict out;
        out["width"] = info_.width;
        out["height"] = info_.height;
        out["channels"] = info_.channel_count;
        out["tile"] = info_.tile;
        out["k"] = info_.k;
        out["gaussian_count"] = info_.gaussian_count;
        out["tile_count"] = info_.tile_count;
        out["index_count"] = info_.index_count;
        out["index_bits"] = info_.index_bits;
        out["eps"] = info_.eps;
        out["version"] = info_.version;
        out["reach"] = info_.reach;
        py::list sem, lo, hi;
        for (uint32_t c = 0; c < info_.channel_count; ++c) {
            sem.append(info_.semantic[c]);
            lo.append(info_.value_lo[c]);
            hi.append(info_.value_hi[c]);
        }
        out["semantic"] = sem;
        out["value_lo"] = lo;
        out["value_hi"] = hi;
        out["metadata"] = py::str(info_.metadata, info_.metadata_size);
        return out;
    }

    F32 decode_rect(uint32_t x0, uint32_t y0, uint32_t w, uint32_t h, uint32_t threads) const {
        F32 out({static_cast<py::ssize_t>(h), static_cast<py::ssize_t>(w),
                 static_cast<py::ssize_t>(info_.channel_count)});
        float* dst = out.mutable_data();
        const size_t count = static_cast<size_t>(out.size());
        igs_error e;
        {
            py::gil_scoped_release nogil;
            e = igs_decode_rect(handle_.get(), x0, y0, w, h, dst, count, threads);
        }
        if (e != IGS_SUCCESS)
            raise(e, "rect x0=" + std::to_string(x0) + " y0=" + std::to_string(y0) +
                         " w=" + std::to_string(w) + " h=" + std::to_string(h) + " in a " +
                         std::to_string(info_.width) + "x" + std::to_string(info_.height) + " image");
        return out;
    }

    F32 decode(uint32_t threads) const { return decode_rect(0, 0, info_.width, info_.height, threads); }

    F32 texel(uint32_t x, uint32_t y) const {
        F32 out(static_cast<py::ssize_t>(info_.channel_count));
        const igs_error e = igs_decode_texel(handle_.get(), x, y, out.mutable_data());
        if (e != IGS_SUCCESS)
            raise(e, "texel (" + std::to_string(x) + ", " + std::to_string(y) + ") outside the image");
        return out;
    }

    // One C call per point, single-threaded: what a caller sampling scattered texels pays.
    F32 texels(const I64& xy) const {
        const py::ssize_t n = points_of(xy, "xy");
        F32 out({n, static_cast<py::ssize_t>(info_.channel_count)});
        const int64_t* p = xy.data();
        float* dst = out.mutable_data();
        igs_error e = IGS_SUCCESS;
        py::ssize_t bad = 0;
        {
            py::gil_scoped_release nogil;
            for (py::ssize_t i = 0; i < n && e == IGS_SUCCESS; ++i) {
                const int64_t x = p[2 * i], y = p[2 * i + 1];
                if (x < 0 || y < 0 || x > UINT32_MAX || y > UINT32_MAX)
                    e = IGS_ERR_BAD_ARGUMENT;
                else
                    e = igs_decode_texel(handle_.get(), static_cast<uint32_t>(x), static_cast<uint32_t>(y),
                                         dst + i * info_.channel_count);
                bad = i;
            }
        }
        if (e != IGS_SUCCESS) raise(e, "xy[" + std::to_string(bad) + "] is outside the image");
        return out;
    }

    F32 sample_points(const F32& p) const {
        return per_point(
            p, "p", [&](const float* a, float* o) { return igs_sample_point(handle_.get(), a[0], a[1], o); });
    }

    F32 sample_uv(const F32& uv, int mode) const {
        return per_point(uv, "uv", [&](const float* a, float* o) {
            return igs_sample_uv(handle_.get(), a[0], a[1], static_cast<igs_address_mode>(mode), o);
        });
    }

    // F: [P, 3] (one covariance per point) or [3] (the same for all).
    F32 sample_footprint(const F32& a, const F32& F, int mode, bool texel_space, uint32_t min_k,
                         bool keep_peak) const {
        const py::ssize_t n = points_of(a, texel_space ? "p" : "uv");
        const bool shared = F.ndim() == 1;
        if (!((shared && F.shape(0) == 3) || (F.ndim() == 2 && F.shape(0) == n && F.shape(1) == 3)))
            throw py::value_error("footprint: expected shape [3] or [P, 3]");
        const float* f = F.data();
        const igs_footprint_options opt{min_k, keep_peak ? 1u : 0u};
        return per_point(a, "points", [&](const float* pt, float* o) {
            const float* fi = shared ? f : f + 3 * ((pt - a.data()) / 2);
            return texel_space ? igs_sample_point_footprint(handle_.get(), pt[0], pt[1], fi, &opt, o)
                               : igs_sample_footprint(handle_.get(), pt[0], pt[1],
                                                      static_cast<igs_address_mode>(mode), fi, &opt, o);
        });
    }

    py::tuple footprint_from_uv_derivatives(float dudx, float dvdx, float dudy, float dvdy,
                                            float variance) const {
        float f[3];
        check(igs_footprint_from_uv_derivatives(handle_.get(), dudx, dvdx, dudy, dvdy, variance, f),
              "uv derivatives give no valid footprint");
        return py::make_tuple(f[0], f[1], f[2]);
    }

    F32 gaussians() const {
        const py::ssize_t n = info_.gaussian_count, w = 5 + info_.channel_count;
        F32 out({n, w});
        float* dst = out.mutable_data();
        for (py::ssize_t i = 0; i < n; ++i)
            check(igs_decoder_gaussian(handle_.get(), static_cast<uint32_t>(i), dst + i * w),
                  "igs_decoder_gaussian");
        return out;
    }

    F32 to_real(const F32& values) const {
        const py::ssize_t c = info_.channel_count;
        if (values.ndim() < 1 || values.shape(values.ndim() - 1) != c)
            throw py::value_error("to_real: last axis must have " + std::to_string(c) + " channels");
        F32 out(values.request().shape);
        std::copy(values.data(), values.data() + values.size(), out.mutable_data());
        check(
            igs_apply_value_range(handle_.get(), out.mutable_data(), static_cast<size_t>(values.size() / c)),
            "igs_apply_value_range");
        return out;
    }

private:
    struct Destroy {
        void operator()(igs_decoder* d) const { igs_decoder_destroy(d); }
    };

    template <class A>
    static py::ssize_t points_of(const A& a, const char* name) {
        if (a.ndim() != 2 || a.shape(1) != 2)
            throw py::value_error(std::string(name) + ": expected shape [P, 2]");
        return a.shape(0);
    }

    template <class Fn>
    F32 per_point(const F32& a, const char* name, Fn&& fn) const {
        const py::ssize_t n = points_of(a, name);
        F32 out({n, static_cast<py::ssize_t>(info_.channel_count)});
        const float* src = a.data();
        float* dst = out.mutable_data();
        igs_error e = IGS_SUCCESS;
        py::ssize_t bad = 0;
        {
            py::gil_scoped_release nogil;
            for (py::ssize_t i = 0; i < n && e == IGS_SUCCESS; ++i) {
                e = fn(src + 2 * i, dst + i * info_.channel_count);
                bad = i;
            }
        }
        if (e != IGS_SUCCESS)
            raise(e, std::string(name) + "[" + std::to_string(bad) + "] = (" + std::to_string(src[2 * bad]) +
                         ", " + std::to_string(src[2 * bad + 1]) + ") was refused");
        return out;
    }

    std::unique_ptr<igs_decoder, Destroy> handle_;
    igs_info info_{};
};

}  // namespace

void register_decoder(py::module_& m) {
    // The format versions IgsDecoder reads (igs_tex.render.decode checks this before using it).
    py::tuple versions(IGS_FORMAT_VERSION_MAX - IGS_FORMAT_VERSION_MIN + 1);
    for (int v = IGS_FORMAT_VERSION_MIN; v <= IGS_FORMAT_VERSION_MAX; ++v)
        versions[static_cast<size_t>(v - IGS_FORMAT_VERSION_MIN)] = py::int_(v);
    m.attr("IGS_VERSIONS") = versions;
    py::class_<Decoder>(m, "IgsDecoder",
                        "The C reference decoder (native/include/igs_decoder.h) over a whole .igs "
                        "file's bytes (format version 1 or 2, see IGS_VERSIONS); construction "
                        "validates everything and raises ValueError naming the defect.")
        .def(py::init<const py::bytes&>(), py::arg("data"))
        .def_property_readonly("info", &Decoder::info)
        .def("decode", &Decoder::decode, py::arg("threads") = 0,
             "-> float32 [H, W, C]; threads 0 = all cores.")
        .def("decode_rect", &Decoder::decode_rect, py::arg("x0"), py::arg("y0"), py::arg("w"), py::arg("h"),
             py::arg("threads") = 0, "-> float32 [h, w, C].")
        .def("texel", &Decoder::texel, py::arg("x"), py::arg("y"), "-> float32 [C].")
        .def("texels", &Decoder::texels, py::arg("xy"),
             "int [P, 2] texel coordinates -> float32 [P, C], one igs_decode_texel call each.")
        .def("sample_points", &Decoder::sample_points, py::arg("p"),
             "texel-space points [P, 2] -> float32 [P, C] (igs_sample_point).")
        .def("sample_uv", &Decoder::sample_uv, py::arg("uv"), py::arg("mode") = 0,
             "uv [P, 2] -> float32 [P, C]; mode 0 wrap, 1 clamp (igs_sample_uv).")
        .def("sample_footprint", &Decoder::sample_footprint, py::arg("points"), py::arg("footprint"),
             py::arg("mode") = 0, py::arg("texel_space") = false, py::arg("min_k") = 0,
             py::arg("keep_peak") = false,
             "uv (or texel-space points with texel_space=True) [P, 2] and covariance [3] or "
             "[P, 3] in texels^2 -> float32 [P, C] (igs_sample_footprint).")
        .def("footprint_from_uv_derivatives", &Decoder::footprint_from_uv_derivatives, py::arg("dudx"),
             py::arg("dvdx"), py::arg("dudy"), py::arg("dvdy"),
             py::arg("variance") = IGS_DEFAULT_FOOTPRINT_VARIANCE)
        .def_static(
            "footprint_for_mip_level",
            [](float level) {
                float f[3];
                check(igs_footprint_for_mip_level(level, f), "mip level outside -16..16");
                return py::make_tuple(f[0], f[1], f[2]);
            },
            py::arg("level"))
        .def("gaussians", &Decoder::gaussians,
             "-> float32 [N, 5 + C]: mean x, y, theta, inv_scale x, y, colour (FORMAT.md decode, "
             "or FORMAT-v2.md Records).")
        .def("to_real", &Decoder::to_real, py::arg("values"),
             "Blended values [..., C] -> real units (igs_apply_value_range).");

    m.def(
        "decode_igs_bytes",
        [](const py::bytes& data, uint32_t threads) { return Decoder(data).decode(threads); },
        py::arg("data"), py::arg("threads") = 0,
        "Validate and decode a whole .igs file -> float32 [H, W, C]; ValueError on a bad file.");
    m.def(
        "decode_igs_rect",
        [](const py::bytes& data, uint32_t x0, uint32_t y0, uint32_t w, uint32_t h, uint32_t threads) {
            return Decoder(data).decode_rect(x0, y0, w, h, threads);
        },
        py::arg("data"), py::arg("x0"), py::arg("y0"), py::arg("w"), py::arg("h"), py::arg("threads") = 0,
        "Validate a .igs file and decode texels [y0, y0+h) x [x0, x0+w).");
}
