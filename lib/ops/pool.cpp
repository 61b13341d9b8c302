// Pooling: ops, backward, naive loops and the oneDNN path; see pool.h.
//
// Backward, per window w(o) of output o (g = dL/dy):
//   max: dx[argmax(o)] += g[o]                  (only the chosen element)
//   avg: dx[i] += g[o] / divisor(o)             for every in-bounds i in w(o)
// where divisor(o) = KH KW with count_include_pad, else the in-bounds count.
// Adaptive average is avg with per-output windows and divisor = window size.
//
// CUDA tensors go to pool.cu, built when cuDNN was found (BRIDLE_WITH_CUDNN):
// cuDNN runs max pooling without dilation and average pooling; dilated max
// pooling and adaptive average pooling with uneven windows are kernels of ours.
#include "ops/pool.h"

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <unordered_map>

#include "autograd/node.h"
#include "core/cuda/cuda.h"
#include "ops/cuda_kernels.h"
#include "ops/onednn.h"
#include "ops/op_utils.h"

namespace bridle {
namespace cpu {

// --- Naive reference ----------------------------------------------------------

void max_pool2d_forward_naive(float* y, int64_t* argmax, const float* x, const PoolGeometry& g) {
  for (int64_t p = 0; p < g.N * g.C; ++p) {
    const float* plane = x + p * g.H * g.W;
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        float best = -std::numeric_limits<float>::infinity();
        int64_t best_index = -1;
        for (int64_t kh = 0; kh < g.KH; ++kh) {
          int64_t ih = oh * g.SH - g.PH + kh * g.DH;
          if (ih < 0 || ih >= g.H) continue;
          for (int64_t kw = 0; kw < g.KW; ++kw) {
            int64_t iw = ow * g.SW - g.PW + kw * g.DW;
            if (iw < 0 || iw >= g.W) continue;
            float v = plane[ih * g.W + iw];
            // Strictly greater keeps the first maximum; NaN always takes over (PyTorch).
            if (best_index < 0 || v > best || std::isnan(v)) {
              best = v;
              best_index = ih * g.W + iw;
            }
          }
        }
        int64_t o = (p * g.OH + oh) * g.OW + ow;
        y[o] = best;
        argmax[o] = best_index;
      }
    }
  }
}

void max_pool2d_backward_naive(float* dx, const int64_t* argmax, const float* dy,
                               const PoolGeometry& g) {
  for (int64_t p = 0; p < g.N * g.C; ++p)
    for (int64_t o = 0; o < g.OH * g.OW; ++o) {
      int64_t i = argmax[p * g.OH * g.OW + o];
      if (i >= 0) dx[p * g.H * g.W + i] += dy[p * g.OH * g.OW + o];
    }
}

namespace {

// The in-bounds part [begin, end) of a window starting at `start` with `k`
// taps of stride 1 (average pooling has no dilation).
struct Range {
  int64_t begin, end;
};
Range clip(int64_t start, int64_t k, int64_t size) {
  return {std::max<int64_t>(start, 0), std::min(start + k, size)};
}

}  // namespace

void avg_pool2d_forward_naive(float* y, const float* x, const PoolGeometry& g,
                              bool count_include_pad) {
  for (int64_t p = 0; p < g.N * g.C; ++p) {
    const float* plane = x + p * g.H * g.W;
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      Range r = clip(oh * g.SH - g.PH, g.KH, g.H);
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        Range c = clip(ow * g.SW - g.PW, g.KW, g.W);
        double sum = 0.0;
        for (int64_t ih = r.begin; ih < r.end; ++ih)
          for (int64_t iw = c.begin; iw < c.end; ++iw) sum += plane[ih * g.W + iw];
        int64_t divisor = count_include_pad ? g.KH * g.KW : (r.end - r.begin) * (c.end - c.begin);
        y[(p * g.OH + oh) * g.OW + ow] = static_cast<float>(sum / divisor);
      }
    }
  }
}

void avg_pool2d_backward_naive(float* dx, const float* dy, const PoolGeometry& g,
                               bool count_include_pad) {
  for (int64_t p = 0; p < g.N * g.C; ++p) {
    float* plane = dx + p * g.H * g.W;
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      Range r = clip(oh * g.SH - g.PH, g.KH, g.H);
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        Range c = clip(ow * g.SW - g.PW, g.KW, g.W);
        int64_t divisor = count_include_pad ? g.KH * g.KW : (r.end - r.begin) * (c.end - c.begin);
        float share = dy[(p * g.OH + oh) * g.OW + ow] / static_cast<float>(divisor);
        for (int64_t ih = r.begin; ih < r.end; ++ih)
          for (int64_t iw = c.begin; iw < c.end; ++iw) plane[ih * g.W + iw] += share;
      }
    }
  }
}

// --- Adaptive average pooling ---------------------------------------------------

namespace {

// PyTorch's adaptive windows: output index o of `out` covers input [start, end).
int64_t window_start(int64_t o, int64_t out, int64_t in) { return (o * in) / out; }
int64_t window_end(int64_t o, int64_t out, int64_t in) { return ((o + 1) * in + out - 1) / out; }

}  // namespace

void adaptive_avg_pool2d_forward(float* y, const float* x, int64_t planes, int64_t H, int64_t W,
                                 int64_t OH, int64_t OW) {
#pragma omp parallel for if (planes * H * W > (1 << 16))
  for (int64_t p = 0; p < planes; ++p) {
    const float* plane = x + p * H * W;
    for (int64_t oh = 0; oh < OH; ++oh) {
      int64_t h0 = window_start(oh, OH, H), h1 = window_end(oh, OH, H);
      for (int64_t ow = 0; ow < OW; ++ow) {
        int64_t w0 = window_start(ow, OW, W), w1 = window_end(ow, OW, W);
        float sum = 0.0f;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) sum += plane[ih * W + iw];
        y[(p * OH + oh) * OW + ow] = sum / static_cast<float>((h1 - h0) * (w1 - w0));
      }
    }
  }
}

void adaptive_avg_pool2d_backward(float* dx, const float* dy, int64_t planes, int64_t H, int64_t W,
                                  int64_t OH, int64_t OW) {
#pragma omp parallel for if (planes * H * W > (1 << 16))
  for (int64_t p = 0; p < planes; ++p) {
    float* plane = dx + p * H * W;
    for (int64_t oh = 0; oh < OH; ++oh) {
      int64_t h0 = window_start(oh, OH, H), h1 = window_end(oh, OH, H);
      for (int64_t ow = 0; ow < OW; ++ow) {
        int64_t w0 = window_start(ow, OW, W), w1 = window_end(ow, OW, W);
        float share = dy[(p * OH + oh) * OW + ow] / static_cast<float>((h1 - h0) * (w1 - w0));
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) plane[ih * W + iw] += share;
      }
    }
  }
}

// --- oneDNN ---------------------------------------------------------------------
//
// One forward_training primitive and its backward per (geometry, algorithm, input
// layout), built on first use. The input may be plain NCHW or blocked (a
// convolution's output); the output takes the layout oneDNN picks for it, which
// follows the input's. The backward must use the forward's input layout (the max
// workspace is laid out to match), so the ops remember it.

namespace {

using dnnl::algorithm;
using dnnl::memory;

struct PoolPrimitives {
  dnnl::pooling_v2_forward::primitive_desc fwd_pd;
  dnnl::pooling_v2_forward fwd;
  dnnl::pooling_v2_backward::primitive_desc bwd_pd;
  dnnl::pooling_v2_backward bwd;
};

memory::desc layout_desc(const Shape& shape, const std::shared_ptr<const OpaqueLayout>& layout) {
  if (!layout) return onednn::plain_desc(onednn::dims_of(shape));
  const auto* onednn_layout = dynamic_cast<const onednn::OneDnnLayout*>(layout.get());
  BRIDLE_CHECK(onednn_layout != nullptr, "pooling: a tensor has a layout oneDNN cannot read: {}",
               layout->name());
  return onednn_layout->desc();
}

PoolPrimitives& pool_primitives(const PoolGeometry& g, algorithm alg, const memory::desc& src) {
  static onednn::PrimitiveCache<PoolPrimitives> cache;
  std::string key = fmt::format("{} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {}",
                                static_cast<int>(alg), g.N, g.C, g.H, g.W, g.OH, g.OW, g.KH, g.KW,
                                g.SH, g.SW, g.PH, g.PW, g.DH, g.DW, onednn::desc_key(src));
  return cache.get(key, [&] {
    auto p = std::make_unique<PoolPrimitives>();
    memory::desc dst({g.N, g.C, g.OH, g.OW}, memory::data_type::f32, memory::format_tag::any);
    // oneDNN counts dilation from 0 (PyTorch's 1). The right/bottom padding is
    // whatever makes the last window end where PyTorch's floor mode ends it; it
    // is negative when floor mode drops trailing input rows.
    memory::dims strides{g.SH, g.SW}, kernel{g.KH, g.KW}, dilation{g.DH - 1, g.DW - 1};
    memory::dims pad_l{g.PH, g.PW};
    memory::dims pad_r{(g.OH - 1) * g.SH + g.DH * (g.KH - 1) + 1 - g.H - g.PH,
                       (g.OW - 1) * g.SW + g.DW * (g.KW - 1) + 1 - g.W - g.PW};
    dnnl::pooling_v2_forward::desc fwd(dnnl::prop_kind::forward_training, alg, src, dst, strides,
                                       kernel, dilation, pad_l, pad_r);
    p->fwd_pd = dnnl::pooling_v2_forward::primitive_desc(fwd, onednn::engine());
    p->fwd = dnnl::pooling_v2_forward(p->fwd_pd);
    dnnl::pooling_v2_backward::desc bwd(alg, src, p->fwd_pd.dst_desc(), strides, kernel, dilation,
                                        pad_l, pad_r);
    p->bwd_pd = dnnl::pooling_v2_backward::primitive_desc(bwd, onednn::engine(), p->fwd_pd);
    p->bwd = dnnl::pooling_v2_backward(p->bwd_pd);
    return p;
  });
}

algorithm avg_algorithm(bool count_include_pad) {
  return count_include_pad ? algorithm::pooling_avg_include_padding
                           : algorithm::pooling_avg_exclude_padding;
}

Tensor pool_forward(const Tensor& x, Tensor* workspace, const PoolGeometry& g, algorithm alg) {
  PoolPrimitives& p = pool_primitives(g, alg, onednn::desc_of(x));
  Tensor y = onednn::empty_in({g.N, g.C, g.OH, g.OW}, p.fwd_pd.dst_desc());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, onednn::memory_of(x)},
                                       {DNNL_ARG_DST, onednn::memory_of(y)}};
  if (workspace)
    args.emplace(DNNL_ARG_WORKSPACE, onednn::make_memory(p.fwd_pd.workspace_desc(), *workspace));
  p.fwd.execute(onednn::stream(), args);
  return onednn::finish(y);
}

// oneDNN's backward overwrites diff_src: the gradient comes back fresh, in the
// forward input's layout.
Tensor pool_backward(const Tensor* workspace, const Tensor& dy, const PoolGeometry& g,
                     algorithm alg, const std::shared_ptr<const OpaqueLayout>& src_layout) {
  PoolPrimitives& p = pool_primitives(g, alg, layout_desc({g.N, g.C, g.H, g.W}, src_layout));
  Tensor diff_dst_buffer;
  memory diff_dst =
      onednn::to_layout(onednn::memory_of(dy), p.bwd_pd.diff_dst_desc(), diff_dst_buffer);
  Tensor dx = onednn::empty_in({g.N, g.C, g.H, g.W}, p.bwd_pd.diff_src_desc());
  std::unordered_map<int, memory> args{{DNNL_ARG_DIFF_DST, diff_dst},
                                       {DNNL_ARG_DIFF_SRC, onednn::memory_of(dx)}};
  if (workspace)
    args.emplace(DNNL_ARG_WORKSPACE,
                 memory(p.bwd_pd.workspace_desc(), onednn::engine(), workspace->opaque_data()));
  p.bwd.execute(onednn::stream(), args);
  return onednn::finish(dx);
}

}  // namespace

Tensor max_pool2d_forward_onednn(const Tensor& x, Tensor& workspace, const PoolGeometry& g) {
  Tensor y;
  onednn::call("max_pool2d", [&] { y = pool_forward(x, &workspace, g, algorithm::pooling_max); });
  return y;
}

Tensor max_pool2d_backward_onednn(const Tensor& workspace, const Tensor& dy, const PoolGeometry& g,
                                  const std::shared_ptr<const OpaqueLayout>& x_layout) {
  Tensor dx;
  onednn::call("max_pool2d backward",
               [&] { dx = pool_backward(&workspace, dy, g, algorithm::pooling_max, x_layout); });
  return dx;
}

Tensor avg_pool2d_forward_onednn(const Tensor& x, const PoolGeometry& g, bool count_include_pad) {
  Tensor y;
  onednn::call("avg_pool2d",
               [&] { y = pool_forward(x, nullptr, g, avg_algorithm(count_include_pad)); });
  return y;
}

Tensor avg_pool2d_backward_onednn(const Tensor& dy, const PoolGeometry& g, bool count_include_pad,
                                  const std::shared_ptr<const OpaqueLayout>& x_layout) {
  Tensor dx;
  onednn::call("avg_pool2d backward", [&] {
    dx = pool_backward(nullptr, dy, g, avg_algorithm(count_include_pad), x_layout);
  });
  return dx;
}

}  // namespace cpu

// --- Ops ----------------------------------------------------------------------------

namespace {

std::string size2_str(Size2 s) { return fmt::format("{{{}, {}}}", s[0], s[1]); }

// CUDA tensors pass: every pooling here has a CUDA path (pool.cu).
void check_nchw(const char* op, const Tensor& x) {
  check_float(op, x);
  check_device(op, {x}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(x.dim() == 4, "{}: input must be 4-D [N, C, H, W], got shape {}", op,
               shape_str(x.shape()));
}

// Validates the arguments the way PyTorch does and derives the output size.
PoolGeometry pool_geometry(const char* op, const Tensor& x, Size2 kernel, Size2 stride,
                           Size2 padding, Size2 dilation) {
  check_nchw(op, x);
  if (stride[0] == 0 && stride[1] == 0) stride = kernel;
  BRIDLE_CHECK(kernel[0] > 0 && kernel[1] > 0, "{}: kernel size must be positive, got {}", op,
               size2_str(kernel));
  BRIDLE_CHECK(stride[0] > 0 && stride[1] > 0, "{}: stride must be positive, got {}", op,
               size2_str(stride));
  BRIDLE_CHECK(dilation[0] > 0 && dilation[1] > 0, "{}: dilation must be positive, got {}", op,
               size2_str(dilation));
  BRIDLE_CHECK(padding[0] >= 0 && padding[1] >= 0 && padding[0] <= kernel[0] / 2 &&
                   padding[1] <= kernel[1] / 2,
               "{}: padding {} must be non-negative and at most half the kernel {}", op,
               size2_str(padding), size2_str(kernel));
  BRIDLE_CHECK(x.size(2) > 0 && x.size(3) > 0, "{}: input {} has an empty plane", op,
               shape_str(x.shape()));
  PoolGeometry g{};
  g.N = x.size(0), g.C = x.size(1), g.H = x.size(2), g.W = x.size(3);
  g.KH = kernel[0], g.KW = kernel[1], g.SH = stride[0], g.SW = stride[1];
  g.PH = padding[0], g.PW = padding[1], g.DH = dilation[0], g.DW = dilation[1];
  int64_t span_h = g.DH * (g.KH - 1) + 1, span_w = g.DW * (g.KW - 1) + 1;
  BRIDLE_CHECK(g.H + 2 * g.PH >= span_h && g.W + 2 * g.PW >= span_w,
               "{}: input {} is smaller than the kernel {} (dilation {}, padding {}): the "
               "output would be empty",
               op, shape_str(x.shape()), size2_str(kernel), size2_str(dilation),
               size2_str(padding));
  g.OH = (g.H + 2 * g.PH - span_h) / g.SH + 1;
  g.OW = (g.W + 2 * g.PW - span_w) / g.SW + 1;
  return g;
}

// The GPU path. Under #ifdef, not `if constexpr`: pool.cu is built only with
// cuDNN, and GCC at -O0 still emits lambdas inside discarded branches.
#ifdef BRIDLE_WITH_CUDNN
void pool2d_backward_cuda(cuda::PoolKind kind, const Tensor& x, const Tensor& y, const Tensor& dy,
                          const cuda::PoolSizes& s) {
  cuda::DeviceGuard guard(x.device());
  write_grad(x, [&](float* dx, bool accumulate) {
    cuda::pool2d_backward(kind, dx, y.data<float>(), dy.data<float>(), x.data<float>(), s,
                          accumulate);
  });
}

// Dilated max pooling, which cuDNN lacks: the forward saves each window's
// argmax (only when a backward may run), and the backward reads it.
Tensor max_pool2d_dilated_cuda(const Tensor& x, const cuda::PoolSizes& s) {
  cuda::DeviceGuard guard(x.device());
  Tensor y = Tensor::empty({s.N, s.C, s.OH, s.OW}, x.device());
  Tensor argmax;
  if (any_requires_grad({x}))
    argmax = Tensor::empty(y.shape(), TensorOptions(kInt64).with_device(x.device()));
  cuda::max_pool2d_dilated_forward(
      y.data<float>(), argmax.defined() ? argmax.data<int64_t>() : nullptr, x.data<float>(), s);
  return record(y, "max_pool2d", {x}, [x, argmax, s](const Tensor& dy, const Tensor&) {
    cuda::DeviceGuard guard(x.device());
    write_grad(x, [&](float* dx, bool accumulate) {
      cuda::max_pool2d_dilated_backward(dx, argmax.data<int64_t>(), dy.data<float>(), s,
                                        accumulate);
    });
  });
}

Tensor pool2d_cuda(const char* op, cuda::PoolKind kind, const Tensor& x, const PoolGeometry& g) {
  const cuda::PoolSizes s{g.N,  g.C,  g.H,  g.W,  g.OH, g.OW, g.KH,
                          g.KW, g.SH, g.SW, g.PH, g.PW, g.DH, g.DW};
  if (g.DH != 1 || g.DW != 1) {
    BRIDLE_CHECK(kind == cuda::PoolKind::kMax, "{}: dilation {{{}, {}}} is for max pooling only",
                 op, g.DH, g.DW);
    return max_pool2d_dilated_cuda(x, s);
  }
  cuda::DeviceGuard guard(x.device());
  Tensor y = Tensor::empty({g.N, g.C, g.OH, g.OW}, x.device());
  if (y.numel() > 0) cuda::pool2d_forward(kind, y.data<float>(), x.data<float>(), s);
  return record(y, op, {x}, [kind, x, s](const Tensor& dy, const Tensor& y) {
    if (dy.numel() > 0) pool2d_backward_cuda(kind, x, y, dy, s);
  });
}

Tensor adaptive_avg_pool2d_cuda(const Tensor& x, int64_t OH, int64_t OW) {
  cuda::DeviceGuard guard(x.device());
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  Tensor y = Tensor::empty({N, C, OH, OW}, x.device());
  cuda::adaptive_avg_pool2d_forward(y.data<float>(), x.data<float>(), N * C, H, W, OH, OW);
  return record(y, "adaptive_avg_pool2d", {x}, [x, OH, OW](const Tensor& dy, const Tensor&) {
    cuda::DeviceGuard guard(x.device());
    cuda::adaptive_avg_pool2d_backward(grad_buffer(x).data<float>(), dy.data<float>(),
                                       x.size(0) * x.size(1), x.size(2), x.size(3), OH, OW);
  });
}
#else
Tensor pool2d_cuda(const char* op, cuda::PoolKind, const Tensor&, const PoolGeometry&) {
  BRIDLE_FAIL(
      "{}: CUDA tensors need cuDNN, and this build has none (the CUDA backend was built "
      "without it: see cmake/BridleCudnn.cmake)",
      op);
}
Tensor adaptive_avg_pool2d_cuda(const Tensor&, int64_t, int64_t) {
  BRIDLE_FAIL(
      "adaptive_avg_pool2d: CUDA tensors need cuDNN, and this build has none (the CUDA backend "
      "was built without it: see cmake/BridleCudnn.cmake)");
}
#endif

}  // namespace

Tensor max_pool2d(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding, Size2 dilation) {
  PoolGeometry g = pool_geometry("max_pool2d", x, kernel, stride, padding, dilation);
  if (x.device().is_cuda()) return pool2d_cuda("max_pool2d", cuda::PoolKind::kMax, x, g);
  Tensor y = Tensor::empty({g.N, g.C, g.OH, g.OW});
  if (y.numel() == 0) return record(y, "max_pool2d", {x}, [](const Tensor&, const Tensor&) {});
  // The workspace (oneDNN's record of each maximum's position) is what backward
  // needs, with the input's layout at this point (a later op may convert x).
  Tensor workspace;
  y = cpu::max_pool2d_forward_onednn(x, workspace, g);
  return record(y, "max_pool2d", {x},
                [x, g, workspace, x_layout = x.layout()](const Tensor& dy, const Tensor&) {
                  accumulate_fresh_grad(
                      x, cpu::max_pool2d_backward_onednn(workspace, dy, g, x_layout));
                });
}

Tensor avg_pool2d(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding,
                  bool count_include_pad) {
  PoolGeometry g = pool_geometry("avg_pool2d", x, kernel, stride, padding, {1, 1});
  if (x.device().is_cuda())
    return pool2d_cuda(
        "avg_pool2d",
        count_include_pad ? cuda::PoolKind::kAvgIncludePad : cuda::PoolKind::kAvgExcludePad, x, g);
  Tensor y = Tensor::empty({g.N, g.C, g.OH, g.OW});
  if (y.numel() == 0) return record(y, "avg_pool2d", {x}, [](const Tensor&, const Tensor&) {});
  y = cpu::avg_pool2d_forward_onednn(x, g, count_include_pad);
  return record(y, "avg_pool2d", {x},
                [x, g, count_include_pad, x_layout = x.layout()](const Tensor& dy, const Tensor&) {
                  accumulate_fresh_grad(
                      x, cpu::avg_pool2d_backward_onednn(dy, g, count_include_pad, x_layout));
                });
}

Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size) {
  check_nchw("adaptive_avg_pool2d", x);
  BRIDLE_CHECK(output_size[0] > 0 && output_size[1] > 0,
               "adaptive_avg_pool2d: output size must be positive, got {}", size2_str(output_size));
  int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  int64_t OH = output_size[0], OW = output_size[1];
  BRIDLE_CHECK(H > 0 && W > 0, "adaptive_avg_pool2d: input {} has an empty plane",
               shape_str(x.shape()));
  if (H % OH == 0 && W % OW == 0) {
    // Uniform windows: the same as an average pool with kernel = stride = H/OH x
    // W/OW, which runs in x's layout (global pooling after a ResNet's last block).
    return avg_pool2d(x, {H / OH, W / OW}, {H / OH, W / OW}, {0, 0}, true);
  }
  if (x.device().is_cuda()) return adaptive_avg_pool2d_cuda(x, OH, OW);
  Tensor y = Tensor::empty({N, C, OH, OW});
  cpu::adaptive_avg_pool2d_forward(y.data<float>(), x.data<float>(), N * C, H, W, OH, OW);
  return record(y, "adaptive_avg_pool2d", {x}, [x, OH, OW](const Tensor& dy, const Tensor&) {
    int64_t planes = x.size(0) * x.size(1);
    cpu::adaptive_avg_pool2d_backward(grad_buffer(x).data<float>(), dy.data<float>(), planes,
                                      x.size(2), x.size(3), OH, OW);
  });
}

}  // namespace bridle
