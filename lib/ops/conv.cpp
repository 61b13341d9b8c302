// conv2d: op, backward, naive and oneDNN CPU kernels; declarations in conv.h.
//
// Backward, from y[n,o,oh,ow] = b[o] + sum x[n, c', ih, iw] w[o, c, kh, kw]
// (c' = g C/G + c, ih = oh SH - PH + kh DH, iw = ow SW - PW + kw DW):
//   dx[n, c', ih, iw] += dy[n, o, oh, ow] w[o, c, kh, kw]
//   dw[o, c, kh, kw]  += dy[n, o, oh, ow] x[n, c', ih, iw]
//   db[o]             += dy[n, o, oh, ow]
// summed over every (n, o, oh, ow) whose window touches that element.
//
// oneDNN picks its own memory layouts (blocked, e.g. nChw16c) for speed. The
// output stays in the layout oneDNN chose (an opaque tensor, core/layout.h), so
// the batch norm, ReLU and next convolution that follow read it without a
// reorder; an input in another layout is reordered into buffers from the caching
// allocator. Gradients come back with a reorder that adds into the gradient
// buffer (a sum post-op): the "+=" of backward.
//
// CUDA tensors go to cuDNN (conv.cu), built when cuDNN was found
// (BRIDLE_WITH_CUDNN); float32 NCHW, the same geometry and checks.
#include "ops/conv.h"

#include "autograd/node.h"
#include "core/cuda/cuda.h"
#include "ops/cuda_kernels.h"
#include "ops/onednn.h"
#include "ops/op_utils.h"

namespace bridle {
namespace cpu {

void conv2d_forward_naive(float* y, const float* x, const float* w, const float* b,
                          const ConvGeometry& g) {
  const int64_t Cg = g.C / g.G, Og = g.O / g.G;
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t o = 0; o < g.O; ++o) {
      const int64_t c0 = (o / Og) * Cg;  // first input channel of o's group
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          double acc = b ? b[o] : 0.0;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t kh = 0; kh < g.KH; ++kh) {
              int64_t ih = oh * g.SH - g.PH + kh * g.DH;
              if (ih < 0 || ih >= g.H) continue;
              for (int64_t kw = 0; kw < g.KW; ++kw) {
                int64_t iw = ow * g.SW - g.PW + kw * g.DW;
                if (iw < 0 || iw >= g.W) continue;
                acc += static_cast<double>(x[((n * g.C + c0 + c) * g.H + ih) * g.W + iw]) *
                       w[((o * Cg + c) * g.KH + kh) * g.KW + kw];
              }
            }
          y[((n * g.O + o) * g.OH + oh) * g.OW + ow] = static_cast<float>(acc);
        }
    }
}

void conv2d_backward_naive(float* dx, float* dw, float* db, const float* x, const float* w,
                           const float* dy, const ConvGeometry& g) {
  const int64_t Cg = g.C / g.G, Og = g.O / g.G;
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t o = 0; o < g.O; ++o) {
      const int64_t c0 = (o / Og) * Cg;
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const float grad = dy[((n * g.O + o) * g.OH + oh) * g.OW + ow];
          if (db) db[o] += grad;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t kh = 0; kh < g.KH; ++kh) {
              int64_t ih = oh * g.SH - g.PH + kh * g.DH;
              if (ih < 0 || ih >= g.H) continue;
              for (int64_t kw = 0; kw < g.KW; ++kw) {
                int64_t iw = ow * g.SW - g.PW + kw * g.DW;
                if (iw < 0 || iw >= g.W) continue;
                int64_t xi = ((n * g.C + c0 + c) * g.H + ih) * g.W + iw;
                int64_t wi = ((o * Cg + c) * g.KH + kh) * g.KW + kw;
                if (dx) dx[xi] += grad * w[wi];
                if (dw) dw[wi] += grad * x[xi];
              }
            }
        }
    }
}

namespace {

using dnnl::memory;

// The three primitives of one convolution shape, built together.
struct ConvPrimitives {
  dnnl::convolution_forward::primitive_desc forward_pd;
  dnnl::convolution_forward forward;
  dnnl::convolution_backward_data::primitive_desc backward_data_pd;
  dnnl::convolution_backward_data backward_data;
  dnnl::convolution_backward_weights::primitive_desc backward_weights_pd;
  dnnl::convolution_backward_weights backward_weights;
};

memory::dims weight_dims(const ConvGeometry& g) {
  // Grouped weights are 5-D for oneDNN (goihw): the same memory as our [O, C/G, KH, KW].
  if (g.G == 1) return {g.O, g.C, g.KH, g.KW};
  return {g.G, g.O / g.G, g.C / g.G, g.KH, g.KW};
}

std::unique_ptr<ConvPrimitives> make_conv(const ConvGeometry& g, bool has_bias) {
  auto any = [](const memory::dims& d) {
    return memory::desc(d, memory::data_type::f32, memory::format_tag::any);
  };
  memory::desc src = any({g.N, g.C, g.H, g.W}), weights = any(weight_dims(g)),
               dst = any({g.N, g.O, g.OH, g.OW}), bias = any({g.O});
  memory::dims strides = {g.SH, g.SW}, dilates = {g.DH - 1, g.DW - 1}, padding = {g.PH, g.PW};
  auto algorithm = dnnl::algorithm::convolution_direct;
  auto& engine = onednn::engine();
  auto p = std::make_unique<ConvPrimitives>();
  auto fwd =
      has_bias
          ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algorithm, src,
                                            weights, bias, dst, strides, dilates, padding, padding)
          : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algorithm, src,
                                            weights, dst, strides, dilates, padding, padding);
  p->forward_pd = dnnl::convolution_forward::primitive_desc(fwd, engine);
  p->forward = dnnl::convolution_forward(p->forward_pd);
  dnnl::convolution_backward_data::desc bwd_data(algorithm, src, weights, dst, strides, dilates,
                                                 padding, padding);
  p->backward_data_pd =
      dnnl::convolution_backward_data::primitive_desc(bwd_data, engine, p->forward_pd);
  p->backward_data = dnnl::convolution_backward_data(p->backward_data_pd);
  auto bwd_weights =
      has_bias ? dnnl::convolution_backward_weights::desc(algorithm, src, weights, bias, dst,
                                                          strides, dilates, padding, padding)
               : dnnl::convolution_backward_weights::desc(algorithm, src, weights, dst, strides,
                                                          dilates, padding, padding);
  p->backward_weights_pd =
      dnnl::convolution_backward_weights::primitive_desc(bwd_weights, engine, p->forward_pd);
  p->backward_weights = dnnl::convolution_backward_weights(p->backward_weights_pd);
  return p;
}

ConvPrimitives& conv_primitives(const ConvGeometry& g, bool has_bias) {
  static onednn::PrimitiveCache<ConvPrimitives> cache;
  std::string key =
      fmt::format("{}x{}x{}x{} o{} k{}x{} s{}x{} p{}x{} d{}x{} g{} b{}", g.N, g.C, g.H, g.W, g.O,
                  g.KH, g.KW, g.SH, g.SW, g.PH, g.PW, g.DH, g.DW, g.G, has_bias);
  return cache.get(key, [&] { return make_conv(g, has_bias); });
}

// Weights are [O, C/G, KH, KW]; oneDNN sees grouped ones as 5-D goihw.
memory weights_memory(const Tensor& w, const ConvGeometry& g) {
  return onednn::wrap(w, weight_dims(g));
}

}  // namespace

Tensor conv2d_forward_onednn(const Tensor& x, const Tensor& w, const Tensor& b,
                             const ConvGeometry& g) {
  ConvPrimitives& p = conv_primitives(g, b.defined());
  const auto& pd = p.forward_pd;
  Tensor src_buffer, weights_buffer;
  memory src = onednn::to_layout(onednn::memory_of(x), pd.src_desc(), src_buffer);
  memory weights = onednn::to_layout(weights_memory(w, g), pd.weights_desc(), weights_buffer);
  Tensor y = onednn::empty_in({g.N, g.O, g.OH, g.OW}, pd.dst_desc());
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, onednn::memory_of(y)}};
  if (b.defined()) args[DNNL_ARG_BIAS] = onednn::wrap(b);
  p.forward.execute(onednn::stream(), args);
  return onednn::finish(y);
}

Tensor conv2d_backward_data_onednn(const Tensor& dy, const Tensor& w, const ConvGeometry& g) {
  ConvPrimitives& p = conv_primitives(g, false);
  const auto& pd = p.backward_data_pd;
  Tensor diff_dst_buffer, weights_buffer;
  memory diff_dst = onednn::to_layout(onednn::memory_of(dy), pd.diff_dst_desc(), diff_dst_buffer);
  memory weights = onednn::to_layout(weights_memory(w, g), pd.weights_desc(), weights_buffer);
  Tensor dx = onednn::empty_in({g.N, g.C, g.H, g.W}, pd.diff_src_desc());
  p.backward_data.execute(onednn::stream(), {{DNNL_ARG_DIFF_DST, diff_dst},
                                             {DNNL_ARG_WEIGHTS, weights},
                                             {DNNL_ARG_DIFF_SRC, onednn::memory_of(dx)}});
  return onednn::finish(dx);
}

void conv2d_backward_weights_onednn(const Tensor& dw, const Tensor& db, const Tensor& x,
                                    const Tensor& dy, const ConvGeometry& g) {
  ConvPrimitives& p = conv_primitives(g, db.defined());
  const auto& pd = p.backward_weights_pd;
  Tensor src_buffer, diff_dst_buffer, diff_weights_buffer, diff_bias_buffer;
  memory src = onednn::to_layout(onednn::memory_of(x), pd.src_desc(), src_buffer);
  memory diff_dst = onednn::to_layout(onednn::memory_of(dy), pd.diff_dst_desc(), diff_dst_buffer);
  memory diff_weights = onednn::make_memory(pd.diff_weights_desc(), diff_weights_buffer);
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_WEIGHTS, diff_weights}};
  memory diff_bias;
  if (db.defined()) {
    diff_bias = onednn::make_memory(pd.diff_bias_desc(), diff_bias_buffer);
    args[DNNL_ARG_DIFF_BIAS] = diff_bias;
  }
  p.backward_weights.execute(onednn::stream(), args);
  if (dw.defined()) onednn::accumulate_into(diff_weights, weights_memory(dw, g));
  if (db.defined()) onednn::accumulate_into(diff_bias, onednn::wrap(db));
}

}  // namespace cpu

namespace {

// The GPU path. Under #ifdef, not `if constexpr`: conv.cu is built only with
// cuDNN, and GCC at -O0 still emits lambdas inside discarded branches.
#ifdef BRIDLE_WITH_CUDNN
cuda::ConvSizes conv_sizes(const ConvGeometry& g) {
  return {g.N, g.C, g.H, g.W, g.O, g.KH, g.KW, g.OH, g.OW, g.SH, g.SW, g.PH, g.PW, g.DH, g.DW, g.G};
}

void conv2d_backward_cuda(const Tensor& x, const Tensor& weight, const Tensor& bias,
                          const Tensor& dy, const ConvGeometry& g) {
  cuda::DeviceGuard guard(x.device());
  if (dy.numel() == 0) {  // nothing flows back: zero gradients, as on the CPU
    for (const Tensor& t : {x, weight, bias})
      if (t.defined() && t.requires_grad()) grad_buffer(t);
    return;
  }
  const cuda::ConvSizes s = conv_sizes(g);
  if (x.requires_grad())
    write_grad(x, [&](float* dx, bool accumulate) {
      cuda::conv2d_backward_data(dx, weight.data<float>(), dy.data<float>(), s, accumulate);
    });
  if (weight.requires_grad())
    write_grad(weight, [&](float* dw, bool accumulate) {
      cuda::conv2d_backward_filter(dw, x.data<float>(), dy.data<float>(), s, accumulate);
    });
  if (bias.defined() && bias.requires_grad())
    write_grad(bias, [&](float* db, bool accumulate) {
      cuda::conv2d_backward_bias(db, dy.data<float>(), s, accumulate);
    });
}

Tensor conv2d_cuda(const Tensor& x, const Tensor& weight, const Tensor& bias,
                   const ConvGeometry& g) {
  cuda::DeviceGuard guard(x.device());
  Tensor y = Tensor::empty({g.N, g.O, g.OH, g.OW}, x.device());
  if (y.numel() > 0)
    cuda::conv2d_forward(y.data<float>(), x.data<float>(), weight.data<float>(),
                         bias.defined() ? bias.data<float>() : nullptr, conv_sizes(g));
  return record(y, "conv2d", {x, weight, bias},
                [x, weight, bias, g](const Tensor& dy, const Tensor&) {
                  conv2d_backward_cuda(x, weight, bias, dy, g);
                });
}
#else
Tensor conv2d_cuda(const Tensor&, const Tensor&, const Tensor&, const ConvGeometry&) {
  BRIDLE_FAIL(
      "conv2d: CUDA tensors need cuDNN, and this build has none (the CUDA backend was built "
      "without it: see cmake/BridleCudnn.cmake)");
}
#endif

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& o) {
  check_float("conv2d", x, "input");
  check_float("conv2d", weight, "weight");
  check_device("conv2d", {x, weight, bias}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(x.dim() == 4, "conv2d: input must be [N, C, H, W], got {}", shape_str(x.shape()));
  BRIDLE_CHECK(weight.dim() == 4, "conv2d: weight must be [O, C/groups, KH, KW], got {}",
               shape_str(weight.shape()));
  BRIDLE_CHECK(o.groups >= 1, "conv2d: groups must be >= 1, got {}", o.groups);
  for (int i = 0; i < 2; ++i)
    BRIDLE_CHECK(o.stride[i] >= 1 && o.dilation[i] >= 1 && o.padding[i] >= 0,
                 "conv2d: stride {} and dilation {} must be >= 1 and padding {} >= 0", o.stride[i],
                 o.dilation[i], o.padding[i]);
  ConvGeometry g{};
  g.N = x.size(0), g.C = x.size(1), g.H = x.size(2), g.W = x.size(3);
  g.O = weight.size(0), g.KH = weight.size(2), g.KW = weight.size(3);
  g.SH = o.stride[0], g.SW = o.stride[1], g.PH = o.padding[0], g.PW = o.padding[1];
  g.DH = o.dilation[0], g.DW = o.dilation[1], g.G = o.groups;
  BRIDLE_CHECK(g.C % g.G == 0 && g.O % g.G == 0,
               "conv2d: {} input and {} output channels must both divide into {} groups", g.C, g.O,
               g.G);
  BRIDLE_CHECK(weight.size(1) == g.C / g.G,
               "conv2d: weight {} expects {} input channels per group, but input {} has {} "
               "channels in {} groups",
               shape_str(weight.shape()), weight.size(1), shape_str(x.shape()), g.C, g.G);
  if (bias.defined()) {
    check_float("conv2d", bias, "bias");
    BRIDLE_CHECK(bias.dim() == 1 && bias.size(0) == g.O, "conv2d: bias must be [{}], got {}", g.O,
                 shape_str(bias.shape()));
  }
  g.OH = (g.H + 2 * g.PH - g.DH * (g.KH - 1) - 1) / g.SH + 1;
  g.OW = (g.W + 2 * g.PW - g.DW * (g.KW - 1) - 1) / g.SW + 1;
  BRIDLE_CHECK(
      g.H + 2 * g.PH >= g.DH * (g.KH - 1) + 1 && g.W + 2 * g.PW >= g.DW * (g.KW - 1) + 1,
      "conv2d: the {}x{} kernel (dilation {}x{}) is larger than the padded {}x{} input of {}", g.KH,
      g.KW, g.DH, g.DW, g.H + 2 * g.PH, g.W + 2 * g.PW, shape_str(x.shape()));

  if (x.device().is_cuda()) return conv2d_cuda(x, weight, bias, g);
  Tensor out = Tensor::empty({g.N, g.O, g.OH, g.OW});
  if (out.numel() > 0)
    onednn::call("conv2d", [&] { out = cpu::conv2d_forward_onednn(x, weight, bias, g); });
  return record(out, "conv2d", {x, weight, bias},
                [x, weight, bias, g](const Tensor& dout, const Tensor&) {
                  auto grad_of = [](const Tensor& t) {
                    return t.defined() && t.requires_grad() ? grad_buffer(t) : Tensor();
                  };
                  if (dout.numel() == 0) {
                    for (const Tensor& t : {x, weight, bias}) grad_of(t);  // zero gradients
                    return;
                  }
                  onednn::call("conv2d backward", [&] {
                    if (x.requires_grad())
                      accumulate_fresh_grad(x, cpu::conv2d_backward_data_onednn(dout, weight, g));
                    Tensor dw = grad_of(weight), db = grad_of(bias);
                    if (dw.defined() || db.defined())
                      cpu::conv2d_backward_weights_onednn(dw, db, x, dout, g);
                  });
                });
}

}  // namespace bridle
