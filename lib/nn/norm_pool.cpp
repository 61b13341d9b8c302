// Pooling, normalization, dropout and activation layers; see norm_pool.h.
#include "nn/norm_pool.h"

#include <algorithm>

#include "autograd/node.h"
#include "core/cuda/cuda.h"
#include "ops/activations.h"
#include "ops/batch_norm.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace bridle {
namespace {

// "2" for a square size, "(3, 2)" otherwise, as PyTorch prints them.
std::string size_repr(Size2 s) {
  return s[0] == s[1] ? std::to_string(s[0]) : fmt::format("({}, {})", s[0], s[1]);
}

void check_positive(const char* layer, const char* what, Size2 s) {
  BRIDLE_CHECK(s[0] > 0 && s[1] > 0, "{}: {} must be positive, got ({}, {})", layer, what, s[0],
               s[1]);
}

// stride {0, 0} stands for "same as the kernel".
Size2 default_stride(Size2 stride, Size2 kernel) {
  return stride[0] == 0 && stride[1] == 0 ? kernel : stride;
}

}  // namespace

// --- Pooling --------------------------------------------------------------------

MaxPool2d::MaxPool2d(Size2 kernel, Size2 stride, Size2 padding, Size2 dilation)
    : Module("MaxPool2d"),
      kernel_(kernel),
      stride_(default_stride(stride, kernel)),
      padding_(padding),
      dilation_(dilation) {
  check_positive("MaxPool2d", "kernel size", kernel_);
  check_positive("MaxPool2d", "stride", stride_);
  check_positive("MaxPool2d", "dilation", dilation_);
}

Tensor MaxPool2d::forward(const Tensor& x) {
  return max_pool2d(x, kernel_, stride_, padding_, dilation_);
}

std::string MaxPool2d::extra_repr() const {
  return fmt::format("kernel_size={}, stride={}, padding={}, dilation={}", size_repr(kernel_),
                     size_repr(stride_), size_repr(padding_), size_repr(dilation_));
}

AvgPool2d::AvgPool2d(Size2 kernel, Size2 stride, Size2 padding, bool count_include_pad)
    : Module("AvgPool2d"),
      kernel_(kernel),
      stride_(default_stride(stride, kernel)),
      padding_(padding),
      count_include_pad_(count_include_pad) {
  check_positive("AvgPool2d", "kernel size", kernel_);
  check_positive("AvgPool2d", "stride", stride_);
}

Tensor AvgPool2d::forward(const Tensor& x) {
  return avg_pool2d(x, kernel_, stride_, padding_, count_include_pad_);
}

std::string AvgPool2d::extra_repr() const {
  return fmt::format("kernel_size={}, stride={}, padding={}, count_include_pad={}",
                     size_repr(kernel_), size_repr(stride_), size_repr(padding_),
                     count_include_pad_);
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(Size2 output_size)
    : Module("AdaptiveAvgPool2d"), output_size_(output_size) {
  check_positive("AdaptiveAvgPool2d", "output size", output_size_);
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) { return adaptive_avg_pool2d(x, output_size_); }

std::string AdaptiveAvgPool2d::extra_repr() const {
  return "output_size=" + size_repr(output_size_);
}

// --- Batch normalization ------------------------------------------------------------

BatchNorm::BatchNorm(std::string type_name, std::vector<int64_t> ranks, int64_t num_features,
                     float eps, float momentum, bool affine, bool track_running_stats)
    : Module(std::move(type_name)),
      ranks_(std::move(ranks)),
      num_features_(num_features),
      eps_(eps),
      momentum_(momentum),
      affine_(affine),
      track_running_stats_(track_running_stats) {
  BRIDLE_CHECK(num_features > 0, "{}: num_features must be positive, got {}", this->type_name(),
               num_features);
  if (affine) {
    weight = register_parameter("weight", ones({num_features}));
    bias = register_parameter("bias", zeros({num_features}));
  }
  if (track_running_stats) {
    running_mean = register_buffer("running_mean", zeros({num_features}));
    running_var = register_buffer("running_var", ones({num_features}));
    num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, kInt64));
  }
}

namespace {

// counter += 1 where the counter lives. On a GPU that is a kernel: reading it
// back to the host would wait for all the work queued before it, once per layer
// per step.
void increment(Tensor& counter) {
  if constexpr (kCudaBuild) {
    if (counter.device().is_cuda()) {
      cuda::DeviceGuard guard(counter.device());
      cuda::add_int64(counter.data<int64_t>(), 1, 1);
      return;
    }
  }
  counter.set({}, counter.at({}) + 1);
}

}  // namespace

Tensor BatchNorm::forward(const Tensor& x) {
  BRIDLE_CHECK(x.defined() && std::find(ranks_.begin(), ranks_.end(), x.dim()) != ranks_.end(),
               "{}: expected a {}-D input, got shape {}", type_name(),
               ranks_.size() == 1 ? std::to_string(ranks_[0])
                                  : fmt::format("{}-D or {}", ranks_[0], ranks_[1]),
               x.defined() ? shape_str(x.shape()) : "undefined");
  BRIDLE_CHECK(x.size(1) == num_features_, "{}: input {} has {} channels, expected {}", type_name(),
               shape_str(x.shape()), x.size(1), num_features_);
  // Without running statistics there is nothing else to normalize with, so even
  // eval() uses the batch's (as PyTorch does).
  const bool use_batch_stats = is_training() || !track_running_stats_;
  if (is_training() && track_running_stats_) increment(num_batches_tracked);
  if (use_batch_stats && rank_sum_) return forward_synchronized(x);
  return batch_norm(x, running_mean, running_var, weight, bias, use_batch_stats, momentum_, eps_);
}

// The same normalization as batch_norm(), written with ops so that the sums can
// pass through rank_sum_. Two passes (mean first, then the mean square of x -
// mean) rather than E[x²] - E[x]², which cancels badly when |mean| >> std.
Tensor BatchNorm::forward_synchronized(const Tensor& x) {
  const int64_t n = x.size(0), c = num_features_;
  // [C]: the sum over every dim but the channel dim 1.
  auto channel_sums = [&](const Tensor& t) {
    Tensor per_example = t.dim() == 2 ? t : sum(reshape(t, {n, c, -1}), 2);  // [N, C]
    return sum(per_example, 0);
  };
  Shape broadcast_shape(x.dim(), 1);  // [1, C, 1, ...]
  broadcast_shape[1] = c;

  const double local_count = static_cast<double>(x.numel() / c);
  Tensor sums =
      rank_sum_(cat({channel_sums(x), full({1}, local_count, x.device())}, 0));  // [C + 1]
  const double count = sums.at({c});
  BRIDLE_CHECK(count > 1, "{}: the global batch has {} values per channel; need more than one",
               type_name(), count);
  Tensor mean = slice(sums, 0, c) / static_cast<float>(count);
  Tensor centered = x - reshape(mean, broadcast_shape);
  Tensor var = rank_sum_(channel_sums(centered * centered)) / static_cast<float>(count);
  Tensor y = centered * reshape(pow(var + eps_, -0.5f), broadcast_shape);
  if (affine_) y = y * reshape(weight, broadcast_shape) + reshape(bias, broadcast_shape);

  if (track_running_stats_) {  // as batch_norm(): unbiased variance in the running one
    NoGradGuard no_grad;
    const float m = momentum_;
    running_mean.copy_(running_mean * (1 - m) + mean.detach() * m);
    running_var.copy_(running_var * (1 - m) +
                      var.detach() * static_cast<float>(m * count / (count - 1)));
  }
  return y;
}

std::string BatchNorm::extra_repr() const {
  return fmt::format("{}, eps={}, momentum={}, affine={}, track_running_stats={}", num_features_,
                     eps_, momentum_, affine_, track_running_stats_);
}

// --- Dropout and activations ----------------------------------------------------

Dropout::Dropout(float p, uint64_t seed) : Module("Dropout"), p_(p), gen_(seed) {
  BRIDLE_CHECK(p >= 0.0f && p <= 1.0f, "Dropout: probability p must be in [0, 1], got {}", p);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p_, is_training(), gen_); }

std::string Dropout::extra_repr() const { return fmt::format("p={}", p_); }

GELU::GELU(std::string approximate) : Module("GELU"), approximate_(std::move(approximate)) {
  BRIDLE_CHECK(approximate_ == "none" || approximate_ == "tanh",
               "GELU: approximate must be \"none\" or \"tanh\", got \"{}\"", approximate_);
}

Tensor GELU::forward(const Tensor& x) { return gelu(x, approximate_); }

std::string GELU::extra_repr() const { return fmt::format("approximate='{}'", approximate_); }

Tensor LeakyReLU::forward(const Tensor& x) { return leaky_relu(x, negative_slope_); }

std::string LeakyReLU::extra_repr() const {
  return fmt::format("negative_slope={}", negative_slope_);
}

}  // namespace bridle
