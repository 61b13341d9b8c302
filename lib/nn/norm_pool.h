// Pooling, normalization, dropout and activation layers, after torch.nn.
//
// Shapes: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d and BatchNorm2d take [N, C, H, W];
// BatchNorm1d takes [N, C] or [N, C, L]; Dropout, GELU and LeakyReLU any shape.
// Each forward is one op (ops/pool.h, ops/batch_norm.h, ops/dropout.h,
// ops/activations.h), which holds the formulas.
//
// BatchNorm keeps PyTorch's names, so checkpoint keys match: parameters "weight"
// and "bias" (when affine), buffers "running_mean", "running_var" and
// "num_batches_tracked" (when tracking running stats). In training mode it
// normalizes with the batch's statistics and updates the running ones; after
// eval() it uses the running ones. Dropout owns a Generator seeded at
// construction (same seed, same masks) and is the identity after eval().
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/factory.h"
#include "nn/module.h"
#include "ops/pool.h"

namespace bridle {

class MaxPool2d : public Module {
 public:
  // stride {0, 0} (the default) means stride = kernel, as PyTorch's stride=None.
  explicit MaxPool2d(Size2 kernel, Size2 stride = {0, 0}, Size2 padding = {0, 0},
                     Size2 dilation = {1, 1});
  explicit MaxPool2d(int64_t kernel, int64_t stride = 0, int64_t padding = 0, int64_t dilation = 1)
      : MaxPool2d(Size2{kernel, kernel}, {stride, stride}, {padding, padding},
                  {dilation, dilation}) {}
  Tensor forward(const Tensor& x) override;

 protected:
  std::string extra_repr() const override;

 private:
  Size2 kernel_, stride_, padding_, dilation_;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(Size2 kernel, Size2 stride = {0, 0}, Size2 padding = {0, 0},
                     bool count_include_pad = true);
  explicit AvgPool2d(int64_t kernel, int64_t stride = 0, int64_t padding = 0,
                     bool count_include_pad = true)
      : AvgPool2d(Size2{kernel, kernel}, {stride, stride}, {padding, padding}, count_include_pad) {}
  Tensor forward(const Tensor& x) override;

 protected:
  std::string extra_repr() const override;

 private:
  Size2 kernel_, stride_, padding_;
  bool count_include_pad_;
};

// AdaptiveAvgPool2d(1) is global average pooling: [N, C, H, W] -> [N, C, 1, 1].
class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(Size2 output_size);
  explicit AdaptiveAvgPool2d(int64_t output_size)
      : AdaptiveAvgPool2d(Size2{output_size, output_size}) {}
  Tensor forward(const Tensor& x) override;

 protected:
  std::string extra_repr() const override;

 private:
  Size2 output_size_;
};

// The shared body of BatchNorm1d and BatchNorm2d (PyTorch's _BatchNorm).
class BatchNorm : public Module {
 public:
  Tensor forward(const Tensor& x) override;

  Tensor weight, bias;               // [C], initialized to 1 and 0; undefined unless affine
  Tensor running_mean, running_var;  // [C], initialized to 0 and 1; undefined unless tracking
  Tensor num_batches_tracked;        // int64 scalar: training steps taken

  int64_t num_features() const { return num_features_; }
  float eps() const { return eps_; }
  float momentum() const { return momentum_; }

  // Synchronized batch statistics (distributed/sync_batch_norm.h sets this): in
  // training, the per-channel sums behind the mean and variance go through
  // rank_sum, a differentiable sum over the ranks of a data-parallel job, so
  // every rank normalizes with the statistics of the whole global batch. Unset
  // (the default): this rank's batch alone. Evaluation is unaffected.
  using RankSum = std::function<Tensor(const Tensor&)>;
  void set_rank_sum(RankSum rank_sum) { rank_sum_ = std::move(rank_sum); }
  bool is_synchronized() const { return static_cast<bool>(rank_sum_); }

 protected:
  BatchNorm(std::string type_name, std::vector<int64_t> ranks, int64_t num_features, float eps,
            float momentum, bool affine, bool track_running_stats);
  std::string extra_repr() const override;

 private:
  // Training with statistics summed over ranks, from ops (autograd does the backward).
  Tensor forward_synchronized(const Tensor& x);

  std::vector<int64_t> ranks_;  // the input ranks this layer accepts
  int64_t num_features_;
  float eps_, momentum_;
  bool affine_, track_running_stats_;
  RankSum rank_sum_;
};

class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(int64_t num_features, float eps = 1e-5f, float momentum = 0.1f,
                       bool affine = true, bool track_running_stats = true)
      : BatchNorm("BatchNorm1d", {2, 3}, num_features, eps, momentum, affine, track_running_stats) {
  }
};

class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(int64_t num_features, float eps = 1e-5f, float momentum = 0.1f,
                       bool affine = true, bool track_running_stats = true)
      : BatchNorm("BatchNorm2d", {4}, num_features, eps, momentum, affine, track_running_stats) {}
};

class Dropout : public Module {
 public:
  explicit Dropout(float p = 0.5f, uint64_t seed = 0);
  Tensor forward(const Tensor& x) override;
  float p() const { return p_; }
  // The generator the masks are drawn from (e.g. to save or reseed it).
  Generator& generator() { return gen_; }

 protected:
  std::string extra_repr() const override;

 private:
  float p_;
  Generator gen_;
};

class GELU : public Module {
 public:
  // approximate: "none" (exact, erf) or "tanh".
  explicit GELU(std::string approximate = "none");
  Tensor forward(const Tensor& x) override;

 protected:
  std::string extra_repr() const override;

 private:
  std::string approximate_;
};

class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(float negative_slope = 0.01f)
      : Module("LeakyReLU"), negative_slope_(negative_slope) {}
  Tensor forward(const Tensor& x) override;

 protected:
  std::string extra_repr() const override;

 private:
  float negative_slope_;
};

}  // namespace bridle
