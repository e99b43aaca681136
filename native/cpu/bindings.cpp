// pybind11 module igs_tex._native: numpy in, numpy out, GIL released while kernels run.
//
// Everything that crosses from Python is checked here (shapes, K range, tile lists that
// index inside the arrays): the kernels trust their inputs and index raw pointers.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "igs/common.h"
#include "igs/gaussian.h"
#include "kernels.h"
#include "ssim.h"
#include "tile_data.h"

namespace py = pybind11;

namespace {

using F32 = py::array_t<float, py::array::c_style | py::array::forcecast>;
using I32 = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
using I64 = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

template <class A>
void expect_shape(const A& a, const char* name, std::initializer_list<int64_t> shape) {
    bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
    int d = 0;
    for (int64_t want : shape) {
        if (!ok) break;
        if (want >= 0 && a.shape(d) != want) ok = false;
        ++d;
    }
    if (!ok) {
        std::string want = "[";
        d = 0;
        for (int64_t s : shape) want += (d++ ? ", " : "") + (s < 0 ? std::string("*") : std::to_string(s));
        std::string got = "[";
        for (py::ssize_t i = 0; i < a.ndim(); ++i) got += (i ? ", " : "") + std::to_string(a.shape(i));
        throw py::value_error(std::string(name) + ": expected shape " + want + "], got " + got + "]");
    }
}

struct Checked {
    igs::cpu::Params params;
    igs::cpu::Shape shape;
};

Checked check_params(const F32& means, const F32& theta, const F32& inv_scale, const F32* colour, int height,
                     int width, int tile, int k, float eps) {
    expect_shape(means, "means", {-1, 2});
    const int64_t n = means.shape(0);
    expect_shape(theta, "theta", {n});
    expect_shape(inv_scale, "inv_scale", {n, 2});
    if (n >= (int64_t(1) << 31)) throw py::value_error("at most 2^31 - 1 Gaussians");
    int channels = 0;
    if (colour) {
        expect_shape(*colour, "colour", {n, -1});
        channels = static_cast<int>(colour->shape(1));
        if (channels < 1) throw py::value_error("colour needs at least one channel");
    }
    if (height < 0 || width < 0) throw py::value_error("height and width must be >= 0");
    if (tile < 1) throw py::value_error("tile must be >= 1");
    if (k < 1 || k > igs::kMaxK)
        throw py::value_error("k must be in [1, " + std::to_string(igs::kMaxK) + "], got " +
                              std::to_string(k));
    if (!(eps >= 0.0f)) throw py::value_error("eps must be >= 0");
    Checked c;
    c.params = {means.data(), theta.data(), inv_scale.data(), colour ? colour->data() : nullptr, n, channels};
    c.shape = {height, width, tile, k, eps};
    return c;
}

igs::cpu::TileLists check_lists(const I64& offsets, const I32& indices, const igs::cpu::Shape& s, int64_t n) {
    const igs::TileGrid grid = igs::make_tile_grid(s.height, s.width, s.tile);
    const int64_t n_tiles = static_cast<int64_t>(grid.tiles_x) * grid.tiles_y;
    expect_shape(offsets, "tile_offsets", {n_tiles + 1});
    expect_shape(indices, "tile_indices", {-1});
    const int64_t* o = offsets.data();
    const int32_t* idx = indices.data();
    if (o[0] != 0 || o[n_tiles] != indices.shape(0))
        throw py::value_error("tile_offsets must start at 0 and end at len(tile_indices)");
    for (int64_t t = 0; t < n_tiles; ++t) {
        if (o[t + 1] < o[t]) throw py::value_error("tile_offsets must be non-decreasing");
        for (int64_t q = o[t]; q < o[t + 1]; ++q) {
            if (idx[q] < 0 || idx[q] >= n) throw py::value_error("tile_indices out of range");
            if (q > o[t] && idx[q] <= idx[q - 1])
                throw py::value_error("tile_indices must be strictly ascending within a tile");
        }
    }
    return {o, idx};
}

py::tuple bin_tiles(const F32& means, const F32& inv_scale, int height, int width, int tile) {
    expect_shape(means, "means", {-1, 2});
    expect_shape(inv_scale, "inv_scale", {means.shape(0), 2});
    if (means.shape(0) >= (int64_t(1) << 31)) throw py::value_error("at most 2^31 - 1 Gaussians");
    if (height < 0 || width < 0 || tile < 1) throw py::value_error("bad height/width/tile");
    std::vector<int64_t> offsets;
    std::vector<int32_t> indices;
    {
        py::gil_scoped_release nogil;
        igs::cpu::bin_tiles(means.data(), inv_scale.data(), means.shape(0),
                            igs::make_tile_grid(height, width, tile), offsets, indices);
    }
    I64 o(static_cast<py::ssize_t>(offsets.size()));
    I32 i(static_cast<py::ssize_t>(indices.size()));
    std::copy(offsets.begin(), offsets.end(), o.mutable_data());
    std::copy(indices.begin(), indices.end(), i.mutable_data());
    return py::make_tuple(o, i);
}

// A caller-supplied output buffer (None: allocate). Reusing buffers across training steps
// matters: a fresh 1024^2 x 9 image is ~9000 pages whose first-touch faults cost about as
// much as rendering it.
template <class T>
py::array_t<T> output_buffer(const py::object& given, const char* name, std::vector<py::ssize_t> shape) {
    if (given.is_none()) return py::array_t<T>(shape);
    if (!py::isinstance<py::array_t<T>>(given))
        throw py::value_error(std::string(name) + ": expected a numpy array of the output dtype");
    auto a = given.cast<py::array_t<T>>();
    const bool contiguous = (a.flags() & py::array::c_style) != 0;
    bool same = a.ndim() == static_cast<py::ssize_t>(shape.size());
    for (size_t d = 0; same && d < shape.size(); ++d) same = a.shape(d) == shape[d];
    if (!contiguous || !a.writeable() || !same)
        throw py::value_error(std::string(name) +
                              ": expected a writable C-contiguous array of the output shape");
    return a;
}

using U8 = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

// The selection must have exactly the layout forward() gives these tile lists and K: the
// kernels index into it without further checks.
void check_selection(const I64& sel_offsets, const U8& sel_masks, const igs::cpu::Shape& s,
                     const igs::cpu::TileLists& lists) {
    const igs::TileGrid grid = igs::make_tile_grid(s.height, s.width, s.tile);
    const int64_t n_tiles = static_cast<int64_t>(grid.tiles_x) * grid.tiles_y;
    expect_shape(sel_offsets, "sel_offsets", {n_tiles + 1});
    std::vector<int64_t> want(static_cast<size_t>(n_tiles) + 1);
    const int64_t total = igs::cpu::selection_offsets(s, lists, want.data());
    expect_shape(sel_masks, "sel_masks", {total});
    if (!std::equal(want.begin(), want.end(), sel_offsets.data()))
        throw py::value_error(
            "sel_offsets do not match these tile lists and k: the selection must "
            "come from forward() with the same inputs");
}

py::tuple forward(const F32& means, const F32& theta, const F32& inv_scale, const F32& colour, int height,
                  int width, int tile, int k, float eps, const I64& tile_offsets, const I32& tile_indices,
                  bool fast, const py::object& image_out) {
    const Checked c = check_params(means, theta, inv_scale, &colour, height, width, tile, k, eps);
    const igs::cpu::TileLists lists = check_lists(tile_offsets, tile_indices, c.shape, c.params.count);
    auto image = output_buffer<float>(image_out, "image_out", {height, width, c.params.channels});
    I64 sel_offsets(tile_offsets.shape(0));
    const int64_t total = igs::cpu::selection_offsets(c.shape, lists, sel_offsets.mutable_data());
    py::array_t<uint8_t> sel_masks(total);
    {
        py::gil_scoped_release nogil;
        igs::cpu::forward(c.params, c.shape, lists, image.mutable_data(), sel_offsets.data(),
                          sel_masks.mutable_data(), fast);
    }
    return py::make_tuple(image, py::make_tuple(sel_offsets, sel_masks));
}

// selection = (sel_offsets int64 [tiles+1], sel_masks uint8), as forward() returns it.
std::pair<I64, U8> unpack_selection(const py::tuple& selection) {
    if (selection.size() != 2)
        throw py::value_error("selection: expected the (sel_offsets, sel_masks) pair forward() returns");
    return {selection[0].cast<I64>(), selection[1].cast<U8>()};
}

py::tuple backward(const F32& grad_out, const py::tuple& selection, const F32& means, const F32& theta,
                   const F32& inv_scale, const F32& colour, int height, int width, int tile, int k, float eps,
                   const I64& tile_offsets, const I32& tile_indices, bool fast) {
    const auto [sel_offsets, sel_masks] = unpack_selection(selection);
    const Checked c = check_params(means, theta, inv_scale, &colour, height, width, tile, k, eps);
    const igs::cpu::TileLists lists = check_lists(tile_offsets, tile_indices, c.shape, c.params.count);
    check_selection(sel_offsets, sel_masks, c.shape, lists);
    const int64_t C = c.params.channels;
    expect_shape(grad_out, "grad_out", {height, width, C});
    const int64_t n = c.params.count;
    F32 d_means({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(2)});
    F32 d_theta(static_cast<py::ssize_t>(n));
    F32 d_inv({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(2)});
    F32 d_colour({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(C)});
    {
        py::gil_scoped_release nogil;
        igs::cpu::backward(
            c.params, c.shape, lists, grad_out.data(), sel_offsets.data(), sel_masks.data(),
            {d_means.mutable_data(), d_theta.mutable_data(), d_inv.mutable_data(), d_colour.mutable_data()},
            fast);
    }
    return py::make_tuple(d_means, d_theta, d_inv, d_colour);
}

I32 selection_topk(const py::tuple& selection, int height, int width, int tile, int k,
                   const I64& tile_offsets, const I32& tile_indices) {
    const auto [sel_offsets, sel_masks] = unpack_selection(selection);
    if (height < 0 || width < 0 || tile < 1 || k < 1 || k > igs::kMaxK)
        throw py::value_error("bad height/width/tile/k");
    const igs::cpu::Shape shape{height, width, tile, k, 0.0f};
    const int64_t n =
        tile_indices.size()
            ? *std::max_element(tile_indices.data(), tile_indices.data() + tile_indices.size()) + 1
            : 0;
    const igs::cpu::TileLists lists = check_lists(tile_offsets, tile_indices, shape, n);
    check_selection(sel_offsets, sel_masks, shape, lists);
    I32 topk({static_cast<py::ssize_t>(height) * width, static_cast<py::ssize_t>(k)});
    {
        py::gil_scoped_release nogil;
        igs::cpu::selection_topk(shape, lists, sel_offsets.data(), sel_masks.data(), topk.mutable_data());
    }
    return topk;
}

F32 topk_weights(const F32& means, const F32& theta, const F32& inv_scale, int height, int width,
                 const I32& topk) {
    expect_shape(topk, "topk", {static_cast<int64_t>(height) * width, -1});
    const int k = static_cast<int>(topk.shape(1));
    const Checked c = check_params(means, theta, inv_scale, nullptr, height, width, 1, k, 0.0f);
    const int32_t* tk = topk.data();
    for (int64_t q = 0; q < static_cast<int64_t>(topk.size()); ++q)
        if (tk[q] < -1 || tk[q] >= c.params.count) throw py::value_error("topk index out of range");
    F32 weights({topk.shape(0), topk.shape(1)});
    {
        py::gil_scoped_release nogil;
        igs::cpu::topk_weights(c.params, c.shape, tk, weights.mutable_data());
    }
    return weights;
}

// The header's exp, element-wise, so tests can measure its accuracy directly.
F32 exp_nonpos(const F32& x) {
    F32 y(x.request().shape);
    const float* src = x.data();
    float* dst = y.mutable_data();
    for (py::ssize_t i = 0; i < x.size(); ++i) dst[i] = igs::exp_nonpos(src[i]);
    return y;
}

int num_threads() {
    return igs::cpu::thread_count();
}

void set_num_threads(int n) {
    igs::cpu::set_thread_count(n);
}

// Per-channel mean SSIM of x against y ([H, W, C] float32) and, with want_grad, its gradient
// with respect to x (the fitter's loss; see ssim.h).
py::tuple ssim(const F32& x, const F32& y, bool want_grad) {
    auto bx = x.request(), by = y.request();
    if (bx.ndim != 3 || by.ndim != 3 || bx.shape != by.shape)
        throw py::value_error("ssim: x and y must both be [H, W, C] of one shape");
    const int h = static_cast<int>(bx.shape[0]), w = static_cast<int>(bx.shape[1]),
              c = static_cast<int>(bx.shape[2]);
    if (h < 11 || w < 11) throw py::value_error("ssim: images must be at least 11x11");
    py::array_t<double> s(c);
    F32 g = want_grad ? F32(bx.shape) : F32(std::vector<py::ssize_t>{0});
    {
        py::gil_scoped_release nogil;
        igs::cpu::ssim_channels(x.data(), y.data(), h, w, c, s.mutable_data(),
                                want_grad ? g.mutable_data() : nullptr);
    }
    return py::make_tuple(s, g);
}

// The fitter's loss (ssim.h): target statistics prepared once, then per step the per-channel
// L1 and SSIM terms and the weighted gradient with respect to the render.
std::shared_ptr<igs::cpu::LossTarget> loss_target(const F32& y) {
    auto b = y.request();
    if (b.ndim != 3) throw py::value_error("LossTarget: expected [H, W, C] float32");
    const int h = static_cast<int>(b.shape[0]), w = static_cast<int>(b.shape[1]),
              c = static_cast<int>(b.shape[2]);
    if (h < 11 || w < 11) throw py::value_error("LossTarget: images must be at least 11x11");
    if (c < 1) throw py::value_error("LossTarget: need at least one channel");
    py::gil_scoped_release nogil;
    return std::make_shared<igs::cpu::LossTarget>(igs::cpu::prepare_loss_target(y.data(), h, w, c));
}

py::tuple loss_terms(const igs::cpu::LossTarget& t, const F32& x, const F32& l1_scale, const F32& l2_scale,
                     const F32& ssim_scale, bool want_grad, py::object grad_out) {
    expect_shape(x, "x", {t.height, t.width, t.channels});
    expect_shape(l1_scale, "l1_scale", {t.channels});
    expect_shape(l2_scale, "l2_scale", {t.channels});
    expect_shape(ssim_scale, "ssim_scale", {t.channels});
    py::array_t<double> l1(t.channels), l2(t.channels), s(t.channels);
    F32 g(std::vector<py::ssize_t>{0});
    if (want_grad) {
        if (grad_out.is_none()) {
            g = F32(std::vector<py::ssize_t>{t.height, t.width, t.channels});
        } else {
            g = grad_out.cast<F32>();
            expect_shape(g, "grad_out", {t.height, t.width, t.channels});
            if (!g.writeable()) throw py::value_error("grad_out must be writeable");
        }
    }
    std::vector<igs::cpu::ChannelTerms> terms(static_cast<size_t>(t.channels));
    {
        py::gil_scoped_release nogil;
        igs::cpu::loss_terms(t, x.data(), l1_scale.data(), l2_scale.data(), ssim_scale.data(), terms.data(),
                             want_grad ? g.mutable_data() : nullptr);
    }
    for (int c = 0; c < t.channels; ++c) {
        l1.mutable_at(c) = terms[c].l1;
        l2.mutable_at(c) = terms[c].l2;
        s.mutable_at(c) = terms[c].ssim;
    }
    return py::make_tuple(l1, l2, s, g);
}

py::dict build_info() {
    py::dict d;
#ifdef _OPENMP
    d["openmp"] = true;
#else
    d["openmp"] = false;
#endif
    d["simd"] = igs::cpu::simd_name();
    d["max_k"] = igs::kMaxK;
    d["max_fast_tile"] = igs::cpu::kMaxFastTile;
    return d;
}

}  // namespace

void register_decoder(pybind11::module_& m);  // decoder_bindings.cpp

PYBIND11_MODULE(_native, m) {
    m.doc() = "igs-tex native CPU kernels (rendering contract of DESIGN.md)";
    m.def("bin_tiles", &bin_tiles, py::arg("means"), py::arg("inv_scale"), py::arg("height"),
          py::arg("width"), py::arg("tile"),
          "Row-major tile lists -> (offsets int64 [tiles+1], indices int32), ascending per tile.");
    m.def("forward", &forward, py::arg("means"), py::arg("theta"), py::arg("inv_scale"), py::arg("colour"),
          py::arg("height"), py::arg("width"), py::arg("tile"), py::arg("k"), py::arg("eps"),
          py::arg("tile_offsets"), py::arg("tile_indices"), py::arg("fast") = true,
          py::arg("image_out") = py::none(),
          "-> (image float32 [H,W,C], selection): the image and the per-texel top-K the backward\n"
          "reuses, selection = (sel_offsets int64 [tiles+1], sel_masks uint8) (native/cpu/kernels.h).\n"
          "image_out: optional float32 [H,W,C] buffer to render into (returned as the image).");
    m.def("backward", &backward, py::arg("grad_out"), py::arg("selection"), py::arg("means"),
          py::arg("theta"), py::arg("inv_scale"), py::arg("colour"), py::arg("height"), py::arg("width"),
          py::arg("tile"), py::arg("k"), py::arg("eps"), py::arg("tile_offsets"), py::arg("tile_indices"),
          py::arg("fast") = true, "-> (d_means [N,2], d_theta [N], d_inv_scale [N,2], d_colour [N,C]).");
    m.def("selection_topk", &selection_topk, py::arg("selection"), py::arg("height"), py::arg("width"),
          py::arg("tile"), py::arg("k"), py::arg("tile_offsets"), py::arg("tile_indices"),
          "Selection as indices -> int32 [H*W,K]: kept Gaussians ascending, -1 padded.");
    m.def("topk_weights", &topk_weights, py::arg("means"), py::arg("theta"), py::arg("inv_scale"),
          py::arg("height"), py::arg("width"), py::arg("topk"),
          "G of every saved top-K entry, 0 for padding -> float32 [H*W,K].");
    m.def("exp_nonpos", &exp_nonpos, py::arg("x"),
          "exp(x) for x <= 0 as the kernels compute it (0 below -87).");
    m.def("num_threads", &num_threads, "Threads the render kernels use.");
    m.def("set_num_threads", &set_num_threads, py::arg("n"),
          "Threads for the render kernels only (not torch's, not OpenMP's global setting); "
          "n < 1 restores the default, all available processors.");
    m.def("build_info", &build_info);
    m.def("ssim", &ssim, py::arg("x"), py::arg("y"), py::arg("want_grad") = true,
          "-> (per-channel mean SSIM float64 [C], d SSIM_c / d x float32 [H,W,C] or empty).");
    py::class_<igs::cpu::LossTarget, std::shared_ptr<igs::cpu::LossTarget>>(
        m, "LossTarget",
        "Target side of the training loss (planar target, window means), built once per fit.")
        .def(py::init(&loss_target), py::arg("target"))
        .def_property_readonly("shape", [](const igs::cpu::LossTarget& t) {
            return py::make_tuple(t.height, t.width, t.channels);
        });
    m.def("loss_terms", &loss_terms, py::arg("target"), py::arg("x"), py::arg("l1_scale"),
          py::arg("l2_scale"), py::arg("ssim_scale"), py::arg("want_grad") = true,
          py::arg("grad_out") = py::none(),
          "-> (mean |x-y|, mean (x-y)^2, mean SSIM: float64 [C] each; grad float32 [H,W,C] or empty)\n"
          "with grad = l1_scale[c] sign(x-y) + l2_scale[c] 2(x-y) + ssim_scale[c] d SSIM_c / d x\n"
          "(native/cpu/ssim.h).");
    m.def(
        "set_simd",
        [](const std::string& name) {
            if (!igs::cpu::set_simd(name.c_str()))
                throw py::value_error("set_simd: expected 'auto', 'avx2' or 'baseline', got '" + name + "'");
        },
        py::arg("name"),
        "'auto' uses the widest kernels the CPU has (AVX-512 forward, AVX2); 'avx2' stops at AVX2; "
        "'baseline' forces the portable ones (same bytes every way).");
    register_decoder(m);
}
