// AdaptiveLogSoftmaxWithLoss: the adaptive softmax of Grave et al. (2017),
// "Efficient softmax approximation for GPUs", with PyTorch's semantics
// (torch/nn/modules/adaptive.py) and its parameter names, so a PyTorch state dict
// maps 1:1 onto named_parameters().
//
// Classes are sorted by frequency and split by cutoffs c_1 < ... < c_n into a
// shortlist [0, c_1) and n clusters [c_i, c_{i+1}) (c_{n+1} = n_classes). Shapes:
//   hidden [B, in_features], targets [B] int32/int64
//   head   = Linear(in, c_1 + n, bias = head_bias)         "head.weight", "head.bias"
//   tail i = Linear(in, h_i, no bias), Linear(h_i, c_{i+1} - c_i, no bias)
//            with h_i = floor(in / div_value^(i+1))        "tail.i.0.weight", "tail.i.1.weight"
// With h = log_softmax(head(x)) over the c_1 + n head columns,
//   log p(y) = h_y                                  for y in the shortlist
//   log p(y) = h_{c_1 + i} + log_softmax(tail_i(x))_{y - c_i}   for y in cluster i
// and the loss is the mean of -log p(y) over the batch. Like PyTorch, each tail
// only runs on the rows whose target falls in its cluster.
//
// Beyond PyTorch, and the documented differences from it:
// - ignore_index (default -100): rows with that target contribute nothing: their
//   output is 0, their gradient is 0 and kMean divides by the number of the
//   other rows. A batch whose rows are all ignored has loss 0 (PyTorch's
//   CrossEntropyLoss would give NaN), as has an empty batch.
// - loss() takes a Reduction (none: [B] per-row negative log-likelihoods).
// - A cluster whose projection size floor(in / div_value^(i+1)) is 0 is an
//   error here (PyTorch builds zero-sized layers and a uniform cluster).
// - predict() takes PyTorch's shortcut (the head's argmax when that is a
//   shortlist class, which is then the overall argmax), so it always equals
//   argmax(log_prob(hidden), 1).
// The forward composes linear, index_select and the fused cross_entropy (which
// gives -log_softmax(z)_y in one pass over z, and its gradient in one more).
// On a GPU the same ops run there; the targets are sorted into clusters on the
// host (a copy of the targets that waits for the GPU), as predict() sorts the
// rows whose head argmax is a cluster.
#pragma once

#include <memory>
#include <vector>

#include "nn/layers.h"
#include "ops/cross_entropy.h"

namespace bridle {

struct AdaptiveLogSoftmaxOptions {
  double div_value = 4.0;
  bool head_bias = false;
  int64_t ignore_index = -100;
};

// What PyTorch's forward returns: output [B] (each row's target log-probability,
// 0 for ignored rows) and loss (the scalar mean of -output over the rows not ignored).
struct AdaptiveOutput {
  Tensor output;
  Tensor loss;
};

class AdaptiveLogSoftmaxWithLoss : public Module {
 public:
  // cutoffs: sorted, unique, each in [1, n_classes - 1].
  AdaptiveLogSoftmaxWithLoss(int64_t in_features, int64_t n_classes, std::vector<int64_t> cutoffs,
                             AdaptiveLogSoftmaxOptions options = {},
                             Generator& gen = default_generator());

  // PyTorch's forward(input, target). Also takes hidden [in] with a 0-D target
  // (then output is 0-D).
  AdaptiveOutput forward_with_loss(const Tensor& hidden, const Tensor& targets);
  // The negative log-likelihood of targets: kMean over the rows not ignored,
  // kSum, or kNone ([B], 0 for ignored rows).
  Tensor loss(const Tensor& hidden, const Tensor& targets, Reduction reduction = Reduction::kMean);
  // Log-probabilities of all classes [B, n_classes] for hidden [B, in].
  Tensor log_prob(const Tensor& hidden);
  // The most likely class of each row, int64 [B] (not differentiable).
  Tensor predict(const Tensor& hidden);
  // Throws: the loss needs targets (use forward_with_loss, loss or log_prob).
  Tensor forward(const Tensor& hidden) override;

  int64_t in_features() const { return in_features_; }
  int64_t n_classes() const { return n_classes_; }
  // The cutoffs followed by n_classes, as PyTorch's module stores them.
  const std::vector<int64_t>& cutoffs() const { return cutoffs_; }
  int64_t shortlist_size() const { return cutoffs_.front(); }
  int64_t n_clusters() const { return static_cast<int64_t>(cutoffs_.size()) - 1; }
  int64_t head_size() const { return shortlist_size() + n_clusters(); }
  const AdaptiveLogSoftmaxOptions& options() const { return options_; }

  std::shared_ptr<Linear> head;
  // tail[i]: Linear(in, h_i) then Linear(h_i, cluster size), both without bias.
  std::vector<std::shared_ptr<Sequential>> tail;

 protected:
  std::string extra_repr() const override;

 private:
  // Each row's target sorted into the head and the clusters; see the .cpp.
  struct Assignment;
  Assignment assign(const Tensor& targets) const;
  // Per-row negative log-likelihoods [B] (0 for ignored rows).
  Tensor row_nll(const Tensor& hidden, const Assignment& a);
  Tensor full_log_prob(const Tensor& hidden, const Tensor& head_logits);
  // hidden [B, in] / targets [B], or hidden [in] / targets [] made a batch of one.
  void check_batch(const Tensor& hidden, const Tensor& targets) const;

  int64_t in_features_, n_classes_;
  std::vector<int64_t> cutoffs_;
  AdaptiveLogSoftmaxOptions options_;
};

}  // namespace bridle
