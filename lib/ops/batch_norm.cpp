// Batch normalization: the op, its backward, naive loops and the oneDNN path;
// see batch_norm.h.
//
// Backward, per channel over its M values, with s = 1 / sqrt(var + eps),
// xhat = (x - mean) s and g = dL/dy:
//   dbias   += sum g
//   dweight += sum g xhat
//   eval:      dx += g weight s                         (mean, var are constants)
//   training:  dx += weight s / M (M g - sum g - xhat sum g xhat)
// The training form is the chain rule through mean and var: d mean / dx = 1 / M,
// d var / dx = 2 (x - mean) / M, which subtract the gradient's mean and its
// component along xhat.
//
// CUDA tensors go to cuDNN (batch_norm.cu), built when cuDNN was found
// (BRIDLE_WITH_CUDNN). There training saves the batch mean and 1 / sqrt(var +
// eps) (cuDNN's saved quantities) instead of the variance.
#include "ops/batch_norm.h"

#include <cmath>
#include <memory>
#include <string>
#include <unordered_map>

#include "autograd/node.h"
#include "core/cuda/cuda.h"
#include "core/factory.h"
#include "ops/cuda_kernels.h"
#include "ops/onednn.h"
#include "ops/op_utils.h"

namespace bridle {
namespace cpu {

// --- Naive reference: one channel at a time, sums in double. ------------------------

void batch_norm_stats_naive(float* mean, float* var, const float* x, int64_t N, int64_t C,
                            int64_t HW) {
  const double M = static_cast<double>(N * HW);
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0.0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) sum += x[(n * C + c) * HW + i];
    double mu = sum / M, sq = 0.0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) {
        double d = x[(n * C + c) * HW + i] - mu;
        sq += d * d;
      }
    mean[c] = static_cast<float>(mu);
    var[c] = static_cast<float>(sq / M);
  }
}

void batch_norm_forward_naive(float* y, const float* x, const float* mean, const float* var,
                              const float* weight, const float* bias, int64_t N, int64_t C,
                              int64_t HW, float eps) {
  for (int64_t c = 0; c < C; ++c) {
    double s = 1.0 / std::sqrt(static_cast<double>(var[c]) + eps);
    double w = weight ? weight[c] : 1.0, b = bias ? bias[c] : 0.0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) {
        int64_t k = (n * C + c) * HW + i;
        y[k] = static_cast<float>((x[k] - mean[c]) * s * w + b);
      }
  }
}

void batch_norm_backward_naive(float* dx, float* dw, float* db, const float* dy, const float* x,
                               const float* mean, const float* var, const float* weight, int64_t N,
                               int64_t C, int64_t HW, float eps, bool training) {
  const double M = static_cast<double>(N * HW);
  for (int64_t c = 0; c < C; ++c) {
    double s = 1.0 / std::sqrt(static_cast<double>(var[c]) + eps);
    double w = weight ? weight[c] : 1.0;
    double sum_g = 0.0, sum_g_xhat = 0.0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) {
        int64_t k = (n * C + c) * HW + i;
        sum_g += dy[k];
        sum_g_xhat += dy[k] * (x[k] - mean[c]) * s;
      }
    if (db) db[c] += static_cast<float>(sum_g);
    if (dw) dw[c] += static_cast<float>(sum_g_xhat);
    if (!dx) continue;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) {
        int64_t k = (n * C + c) * HW + i;
        double g = dy[k];
        if (training) {
          double xhat = (x[k] - mean[c]) * s;
          g = (M * g - sum_g - xhat * sum_g_xhat) / M;
        }
        dx[k] += static_cast<float>(g * w * s);
      }
  }
}

// --- oneDNN -------------------------------------------------------------------------
//
// Plain data is seen as [N, C, HW, 1] (nchw); a blocked 4-D tensor (a
// convolution's output) is used in its own layout, which is where oneDNN's batch
// norm is fast. Scale and shift are passed only when weight and bias exist
// (use_scale / use_shift); evaluation adds use_global_stats, so mean and variance
// are inputs instead of outputs.

namespace {

using dnnl::memory;
using dnnl::normalization_flags;

struct BatchNormPrimitives {
  dnnl::batch_normalization_forward::primitive_desc fwd_pd;
  dnnl::batch_normalization_forward fwd;
  dnnl::batch_normalization_backward::primitive_desc bwd_pd;
  dnnl::batch_normalization_backward bwd;
};

BatchNormPrimitives& bn_primitives(const memory::desc& data, float eps, bool has_weight,
                                   bool has_bias, bool training) {
  static onednn::PrimitiveCache<BatchNormPrimitives> cache;
  std::string key =
      fmt::format("{} {} {} {} {}", onednn::desc_key(data), eps, has_weight, has_bias, training);
  return cache.get(key, [&] {
    auto p = std::make_unique<BatchNormPrimitives>();
    auto flags = static_cast<normalization_flags>(0);
    if (has_weight) flags |= normalization_flags::use_scale;
    if (has_bias) flags |= normalization_flags::use_shift;
    if (!training) flags |= normalization_flags::use_global_stats;
    dnnl::batch_normalization_forward::desc fwd(dnnl::prop_kind::forward_training, data, eps,
                                                flags);
    p->fwd_pd = dnnl::batch_normalization_forward::primitive_desc(fwd, onednn::engine());
    p->fwd = dnnl::batch_normalization_forward(p->fwd_pd);
    // backward computes diff_scale / diff_shift too; backward_data only diff_src.
    auto kind = has_weight || has_bias ? dnnl::prop_kind::backward : dnnl::prop_kind::backward_data;
    dnnl::batch_normalization_backward::desc bwd(kind, data, data, eps, flags);
    p->bwd_pd =
        dnnl::batch_normalization_backward::primitive_desc(bwd, onednn::engine(), p->fwd_pd);
    p->bwd = dnnl::batch_normalization_backward(p->bwd_pd);
    return p;
  });
}

// t as batch norm's data: its blocked layout, or plain [N, C, HW, 1].
memory data_memory(const Tensor& t) {
  if (!t.is_plain()) return onednn::memory_of(t);
  const int64_t N = t.size(0), C = t.size(1);
  return onednn::wrap(t, {N, C, t.numel() / std::max<int64_t>(N * C, 1), 1});
}

}  // namespace

Tensor batch_norm_forward_onednn(const Tensor& x, const Tensor& mean, const Tensor& var,
                                 const Tensor& weight, const Tensor& bias, float eps,
                                 bool training) {
  Tensor y;
  onednn::call("batch_norm", [&] {
    if (x.dim() != 4) x.make_plain();
    memory src = data_memory(x);
    BatchNormPrimitives& p =
        bn_primitives(src.get_desc(), eps, weight.defined(), bias.defined(), training);
    y = x.is_plain() ? Tensor::empty(x.shape()) : onednn::empty_in(x.shape(), src.get_desc());
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src},
                                         {DNNL_ARG_DST, data_memory(y)},
                                         {DNNL_ARG_MEAN, onednn::wrap(mean)},
                                         {DNNL_ARG_VARIANCE, onednn::wrap(var)}};
    if (weight.defined()) args.emplace(DNNL_ARG_SCALE, onednn::wrap(weight));
    if (bias.defined()) args.emplace(DNNL_ARG_SHIFT, onednn::wrap(bias));
    p.fwd.execute(onednn::stream(), args);
  });
  return y;
}

// oneDNN overwrites its gradients: dx is returned fresh; the weight and bias
// gradients land in scratch that is added into dw and db.
Tensor batch_norm_backward_onednn(const Tensor& dw, const Tensor& db, const Tensor& dy,
                                  const Tensor& x, const Tensor& mean, const Tensor& var,
                                  const Tensor& weight, const Tensor& bias, float eps,
                                  bool training) {
  Tensor dx;
  onednn::call("batch_norm backward", [&] {
    if (x.is_plain()) dy.make_plain();  // x converted since forward: run plain
    memory src = data_memory(x);
    BatchNormPrimitives& p =
        bn_primitives(src.get_desc(), eps, weight.defined(), bias.defined(), training);
    Tensor diff_dst_buffer;
    Tensor dw_scratch = Tensor::empty({mean.numel()}), db_scratch = Tensor::empty({mean.numel()});
    // Blocked x: dy may be in any layout of x's 4-D shape.
    memory dy_memory = x.is_plain() ? data_memory(dy) : onednn::memory_of(dy);
    memory diff_dst = onednn::to_layout(dy_memory, src.get_desc(), diff_dst_buffer);
    dx = x.is_plain() ? Tensor::empty(x.shape()) : onednn::empty_in(x.shape(), src.get_desc());
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src},
                                         {DNNL_ARG_DIFF_DST, diff_dst},
                                         {DNNL_ARG_DIFF_SRC, data_memory(dx)},
                                         {DNNL_ARG_MEAN, onednn::wrap(mean)},
                                         {DNNL_ARG_VARIANCE, onednn::wrap(var)}};
    if (weight.defined()) {
      args.emplace(DNNL_ARG_SCALE, onednn::wrap(weight));
      args.emplace(DNNL_ARG_DIFF_SCALE, onednn::wrap(dw_scratch));
    }
    if (bias.defined()) {  // oneDNN wants the shift passed in, though its gradient does not read it
      args.emplace(DNNL_ARG_SHIFT, onednn::wrap(bias));
      args.emplace(DNNL_ARG_DIFF_SHIFT, onednn::wrap(db_scratch));
    }
    p.bwd.execute(onednn::stream(), args);
    const int64_t C = mean.numel();
    if (dw.defined() && weight.defined())
      for (int64_t c = 0; c < C; ++c) dw.data<float>()[c] += dw_scratch.data<float>()[c];
    if (db.defined() && bias.defined())
      for (int64_t c = 0; c < C; ++c) db.data<float>()[c] += db_scratch.data<float>()[c];
  });
  return dx;
}

}  // namespace cpu

namespace {

void check_channel_vector(const Tensor& t, const char* arg, int64_t C, const Tensor& x) {
  if (!t.defined()) return;
  check_float("batch_norm", t, arg);
  BRIDLE_CHECK(t.shape() == Shape{C}, "batch_norm: {} must have shape [{}] for input {}, got {}",
               arg, C, shape_str(x.shape()), shape_str(t.shape()));
}

Tensor grad_of(const Tensor& t) {
  return t.defined() && t.requires_grad() ? grad_buffer(t) : Tensor();
}

// The GPU path. Under #ifdef, not `if constexpr`: batch_norm.cu is built only
// with cuDNN, and GCC at -O0 still emits lambdas inside discarded branches.
#ifdef BRIDLE_WITH_CUDNN
float* data_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

// training: mean and inv_std are the batch's saved by cuDNN; evaluation: mean
// and var are the (copied) running statistics.
void batch_norm_backward_cuda(const Tensor& x, const Tensor& weight, const Tensor& bias,
                              const Tensor& mean, const Tensor& var_or_inv_std, const Tensor& dy,
                              float eps, bool training) {
  cuda::DeviceGuard guard(x.device());
  const int64_t N = x.size(0), C = x.size(1), HW = x.numel() / (N * C);
  const bool want_dw = weight.defined() && weight.requires_grad();
  const bool want_db = bias.defined() && bias.requires_grad();
  if (!training) {
    float* dw = want_dw ? grad_buffer(weight).data<float>() : nullptr;
    float* db = want_db ? grad_buffer(bias).data<float>() : nullptr;
    auto kernel = [&](float* dx, bool accumulate) {
      cuda::batch_norm_backward_eval(dx, dw, db, dy.data<float>(), x.data<float>(),
                                     mean.data<float>(), var_or_inv_std.data<float>(),
                                     data_or_null(weight), N, C, HW, eps, accumulate);
    };
    if (x.requires_grad())
      write_grad(x, kernel);
    else
      kernel(nullptr, false);
    return;
  }
  // cuDNN's training backward writes dx, dweight and dbias together, always.
  const TensorOptions options(x.device());
  Tensor dw = Tensor::empty({C}, options), db = Tensor::empty({C}, options);
  Tensor scale = weight.defined() ? weight : ones({C}, options);
  auto kernel = [&](float* dx, bool accumulate) {
    cuda::batch_norm_backward_training(dx, dw.data<float>(), db.data<float>(), dy.data<float>(),
                                       x.data<float>(), scale.data<float>(), mean.data<float>(),
                                       var_or_inv_std.data<float>(), N, C, HW, eps, accumulate);
  };
  if (x.requires_grad()) {
    write_grad(x, kernel);
  } else {
    Tensor unused_dx = Tensor::empty(x.shape(), options);
    kernel(unused_dx.data<float>(), false);
  }
  if (want_dw) accumulate_fresh_grad(weight, std::move(dw));
  if (want_db) accumulate_fresh_grad(bias, std::move(db));
}

Tensor batch_norm_cuda(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, bool training, float momentum,
                       float eps) {
  cuda::DeviceGuard guard(x.device());
  const int64_t N = x.size(0), C = x.size(1), HW = x.numel() / (N * C);
  const TensorOptions options(x.device());
  Tensor y = Tensor::empty(x.shape(), options);
  // cuDNN always scales and shifts: without affine parameters, by 1 and 0.
  Tensor scale = weight.defined() ? weight : ones({C}, options);
  Tensor shift = bias.defined() ? bias : zeros({C}, options);
  Tensor mean, var_or_inv_std;
  if (training) {
    mean = Tensor::empty({C}, options);
    var_or_inv_std = Tensor::empty({C}, options);
    cuda::batch_norm_forward_training(
        y.data<float>(), mean.data<float>(), var_or_inv_std.data<float>(),
        data_or_null(running_mean), data_or_null(running_var), x.data<float>(), scale.data<float>(),
        shift.data<float>(), N, C, HW, momentum, eps);
  } else {
    // Copied when backward will need them: a later training step updates them in place.
    const bool keep = any_requires_grad({x, weight, bias});
    mean = keep ? running_mean.clone() : running_mean;
    var_or_inv_std = keep ? running_var.clone() : running_var;
    cuda::batch_norm_forward_eval(y.data<float>(), x.data<float>(), mean.data<float>(),
                                  var_or_inv_std.data<float>(), scale.data<float>(),
                                  shift.data<float>(), N, C, HW, eps);
  }
  return record(
      y, "batch_norm", {x, weight, bias},
      [x, weight, bias, mean, var_or_inv_std, eps, training](const Tensor& dy, const Tensor&) {
        batch_norm_backward_cuda(x, weight, bias, mean, var_or_inv_std, dy, eps, training);
      });
}
#else
Tensor batch_norm_cuda(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                       bool, float, float) {
  BRIDLE_FAIL(
      "batch_norm: CUDA tensors need cuDNN, and this build has none (the CUDA backend was "
      "built without it: see cmake/BridleCudnn.cmake)");
}
#endif

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, float momentum,
                  float eps) {
  check_float("batch_norm", x);
  check_device("batch_norm", {x, running_mean, running_var, weight, bias}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(x.dim() >= 2, "batch_norm: input must be [N, C] or [N, C, ...], got shape {}",
               shape_str(x.shape()));
  const int64_t N = x.size(0), C = x.size(1), HW = x.numel() / std::max<int64_t>(N * C, 1);
  check_channel_vector(running_mean, "running_mean", C, x);
  check_channel_vector(running_var, "running_var", C, x);
  check_channel_vector(weight, "weight", C, x);
  check_channel_vector(bias, "bias", C, x);
  BRIDLE_CHECK(running_mean.defined() == running_var.defined(),
               "batch_norm: give both running_mean and running_var, or neither");
  BRIDLE_CHECK(training || running_mean.defined(),
               "batch_norm: evaluation mode needs running_mean and running_var");
  BRIDLE_CHECK(!training || N * HW > 1,
               "batch_norm: expected more than 1 value per channel when training, got input of "
               "shape {}",
               shape_str(x.shape()));
  BRIDLE_CHECK(eps >= 0.0f && std::isfinite(eps), "batch_norm: eps must be >= 0, got {}", eps);
  BRIDLE_CHECK(std::isfinite(momentum), "batch_norm: momentum must be finite, got {}", momentum);

  if (x.numel() == 0) return Tensor::empty(x.shape(), x.device());
  if (x.device().is_cuda())
    return batch_norm_cuda(x, running_mean, running_var, weight, bias, training, momentum, eps);
  Tensor y = Tensor::empty(x.shape());
  // The statistics the output was normalized with, kept for backward: the batch's
  // in training; in evaluation the running ones, copied when backward will need
  // them (a later training step updates them in place).
  const bool keep = any_requires_grad({x, weight, bias});
  Tensor mean = training ? Tensor::empty({C}) : keep ? running_mean.clone() : running_mean;
  Tensor var = training ? Tensor::empty({C}) : keep ? running_var.clone() : running_var;
  y = cpu::batch_norm_forward_onednn(x, mean, var, weight, bias, eps, training);
  if (training && running_mean.defined()) {
    float* rm = running_mean.data<float>();
    float* rv = running_var.data<float>();
    const float* m = mean.data<float>();
    const float* v = var.data<float>();
    const float unbias = static_cast<float>(N * HW) / static_cast<float>(N * HW - 1);
    for (int64_t c = 0; c < C; ++c) {
      rm[c] = (1.0f - momentum) * rm[c] + momentum * m[c];
      rv[c] = (1.0f - momentum) * rv[c] + momentum * v[c] * unbias;
    }
  }
  return record(y, "batch_norm", {x, weight, bias},
                [x, weight, bias, mean, var, eps, training](const Tensor& dy, const Tensor&) {
                  Tensor dx =
                      cpu::batch_norm_backward_onednn(grad_of(weight), grad_of(bias), dy, x, mean,
                                                      var, weight, bias, eps, training);
                  if (x.requires_grad()) accumulate_fresh_grad(x, std::move(dx));
                });
}

}  // namespace bridle
