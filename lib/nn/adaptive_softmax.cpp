// The adaptive softmax layer; see adaptive_softmax.h.
//
// For a row with target y in cluster i the negative log-likelihood splits into
// two cross-entropies, one over the head and one over the cluster:
//   -log p(y) = (lse(head) - head_{c_1 + i}) + (lse(tail_i) - tail_i[y - c_i])
// (a shortlist target has only the first term, with head_y). So the loss is the
// fused cross_entropy of the head logits against per-row head targets (the class,
// or the cluster's column), plus for each cluster the fused cross_entropy of its
// tail logits, computed on the index_select'ed rows of that cluster only. Neither
// full log_softmax is ever written out, and the gradients (softmax minus one-hot)
// come from the same fused kernels. The per-row form (output, kNone) places each
// cluster's row losses back into the batch with one index_select.
#include "nn/adaptive_softmax.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "autograd/node.h"
#include "ops/elementwise.h"
#include "ops/indexing.h"
#include "ops/op_utils.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "ops/softmax.h"

namespace bridle {

namespace {

// PyTorch's ModuleList: numbered children ("0", "1", ...) and no forward.
class ModuleList : public Module {
 public:
  ModuleList() : Module("ModuleList") {}
  void push_back(std::shared_ptr<Module> module) {
    register_module(std::to_string(named_children().size()), std::move(module));
  }
};

// Python's float floor division a // b for a, b > 0 (CPython's float_floor_div),
// so each projection size is PyTorch's int(in_features // div_value ** (i + 1)).
double python_floor_div(double a, double b) {
  const double mod = std::fmod(a, b);
  const double div = (a - mod) / b;
  if (div == 0.0) return 0.0;
  double floor_div = std::floor(div);
  if (div - floor_div > 0.5) floor_div += 1.0;
  return floor_div;
}

// Index lists are built on the host (assign() sorts the rows there) and used on
// the hidden states' device.
Tensor int64_tensor(const std::vector<int64_t>& values, Device device) {
  return from_vector(values, {static_cast<int64_t>(values.size())}).to(device);
}

}  // namespace

// Each row's target sorted into the head and the clusters.
struct AdaptiveLogSoftmaxWithLoss::Assignment {
  int64_t counted = 0;                     // rows not ignored
  std::vector<int64_t> head_target;        // [B]: y (shortlist), c_1 + i (cluster i), -1 (ignored)
  std::vector<std::vector<int64_t>> rows;  // per cluster: the rows whose target is in it
  std::vector<std::vector<int64_t>> relative;  // per cluster: those targets minus c_i
};

AdaptiveLogSoftmaxWithLoss::AdaptiveLogSoftmaxWithLoss(int64_t in_features, int64_t n_classes,
                                                       std::vector<int64_t> cutoffs,
                                                       AdaptiveLogSoftmaxOptions options,
                                                       Generator& gen)
    : Module("AdaptiveLogSoftmaxWithLoss"),
      in_features_(in_features),
      n_classes_(n_classes),
      cutoffs_(std::move(cutoffs)),
      options_(options) {
  BRIDLE_CHECK(in_features > 0 && n_classes > 1,
               "AdaptiveLogSoftmaxWithLoss: in_features ({}) must be positive and n_classes ({}) "
               "at least 2",
               in_features, n_classes);
  bool ok = !cutoffs_.empty() && cutoffs_.front() > 0 && cutoffs_.back() <= n_classes - 1;
  for (size_t i = 1; ok && i < cutoffs_.size(); ++i) ok = cutoffs_[i - 1] < cutoffs_[i];
  BRIDLE_CHECK(ok,
               "AdaptiveLogSoftmaxWithLoss: cutoffs [{}] should be a sequence of unique, positive "
               "integers sorted in an increasing order, where each value is between 1 and "
               "n_classes-1 = {}",
               fmt::join(cutoffs_, ", "), n_classes - 1);
  BRIDLE_CHECK(std::isfinite(options.div_value) && options.div_value > 0.0,
               "AdaptiveLogSoftmaxWithLoss: div_value must be positive, got {}", options.div_value);
  cutoffs_.push_back(n_classes);
  head = register_module(
      "head", std::make_shared<Linear>(in_features, head_size(), options.head_bias, gen));
  auto tail_list = register_module("tail", std::make_shared<ModuleList>());
  for (int64_t i = 0; i < n_clusters(); ++i) {
    const double size = python_floor_div(static_cast<double>(in_features),
                                         std::pow(options.div_value, static_cast<double>(i + 1)));
    BRIDLE_CHECK(size >= 1.0,
                 "AdaptiveLogSoftmaxWithLoss: cluster {} would project to in_features / "
                 "div_value^{} = {} / {}^{} < 1 features; use a smaller div_value or fewer cutoffs",
                 i, i + 1, in_features, options.div_value, i + 1);
    const auto hidden = static_cast<int64_t>(size), out = cutoffs_[i + 1] - cutoffs_[i];
    auto projection = std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
        std::make_shared<Linear>(in_features, hidden, /*bias=*/false, gen),
        std::make_shared<Linear>(hidden, out, /*bias=*/false, gen)});
    tail_list->push_back(projection);
    tail.push_back(projection);
  }
}

void AdaptiveLogSoftmaxWithLoss::check_batch(const Tensor& hidden, const Tensor& targets) const {
  const char* op = "AdaptiveLogSoftmaxWithLoss";
  check_float(op, hidden, "input");
  BRIDLE_CHECK(targets.defined() && is_integer(targets.dtype()),
               "{}: targets must be int32 or int64 class indices, got {}", op,
               targets.defined() ? dtype_name(targets.dtype()) : "an undefined tensor");
  check_device(op, {hidden, targets}, Kernels::kCpuAndCuda);
  if (targets.dim() == 1) {
    BRIDLE_CHECK(hidden.dim() == 2,
                 "{}: 1D target tensor expects 2D input tensors, but found input {}", op,
                 shape_str(hidden.shape()));
    BRIDLE_CHECK(hidden.shape()[0] == targets.shape()[0],
                 "{}: input {} and target {} should have the same size in the batch dimension", op,
                 shape_str(hidden.shape()), shape_str(targets.shape()));
  } else if (targets.dim() == 0) {
    BRIDLE_CHECK(hidden.dim() == 1,
                 "{}: 0D target tensor expects 1D input tensors, but found input {}", op,
                 shape_str(hidden.shape()));
  } else {
    BRIDLE_FAIL("{}: 0D or 1D target tensor expected, multi-target not supported (got {})", op,
                shape_str(targets.shape()));
  }
  BRIDLE_CHECK(hidden.shape().back() == in_features_,
               "{}: input {} does not end in in_features = {}", op, shape_str(hidden.shape()),
               in_features_);
}

AdaptiveLogSoftmaxWithLoss::Assignment AdaptiveLogSoftmaxWithLoss::assign(
    const Tensor& targets) const {
  const std::vector<int64_t> y = targets.to_int_vector();
  Assignment a;
  a.head_target.resize(y.size());
  a.rows.resize(n_clusters());
  a.relative.resize(n_clusters());
  for (size_t b = 0; b < y.size(); ++b) {
    if (y[b] == options_.ignore_index) {
      a.head_target[b] = -1;
      continue;
    }
    BRIDLE_CHECK(y[b] >= 0 && y[b] < n_classes_,
                 "AdaptiveLogSoftmaxWithLoss: target {} at row {} is out of range: target values "
                 "should be in [0, {}] (or be ignore_index {})",
                 y[b], b, n_classes_ - 1, options_.ignore_index);
    ++a.counted;
    // bucket 0 is the shortlist, bucket i + 1 is cluster i
    const auto bucket = std::upper_bound(cutoffs_.begin(), cutoffs_.end(), y[b]) - cutoffs_.begin();
    if (bucket == 0) {
      a.head_target[b] = y[b];
      continue;
    }
    a.head_target[b] = shortlist_size() + bucket - 1;
    a.rows[bucket - 1].push_back(static_cast<int64_t>(b));
    a.relative[bucket - 1].push_back(y[b] - cutoffs_[bucket - 1]);
  }
  return a;
}

Tensor AdaptiveLogSoftmaxWithLoss::row_nll(const Tensor& hidden, const Assignment& a) {
  const auto B = static_cast<int64_t>(a.head_target.size());
  const Device device = hidden.device();
  CrossEntropyOptions head_options;
  head_options.reduction = Reduction::kNone;
  head_options.ignore_index = -1;
  Tensor nll =
      cross_entropy(head->forward(hidden), int64_tensor(a.head_target, device), head_options);
  CrossEntropyOptions row_options;
  row_options.reduction = Reduction::kNone;
  // Each cluster's row losses, concatenated after a 0 that the head rows point to.
  std::vector<Tensor> pieces = {zeros({1}, device)};
  std::vector<int64_t> position(B, 0);
  int64_t offset = 1;
  for (int64_t i = 0; i < n_clusters(); ++i) {
    const std::vector<int64_t>& rows = a.rows[i];
    if (rows.empty()) continue;
    Tensor logits = tail[i]->forward(index_select(hidden, int64_tensor(rows, device)));
    pieces.push_back(cross_entropy(logits, int64_tensor(a.relative[i], device), row_options));
    for (size_t j = 0; j < rows.size(); ++j) position[rows[j]] = offset + static_cast<int64_t>(j);
    offset += static_cast<int64_t>(rows.size());
  }
  if (pieces.size() == 1) return nll;
  return nll + index_select(cat(pieces), int64_tensor(position, device));
}

AdaptiveOutput AdaptiveLogSoftmaxWithLoss::forward_with_loss(const Tensor& hidden,
                                                             const Tensor& targets) {
  check_batch(hidden, targets);
  const bool batched = targets.dim() == 1;
  const Tensor x = batched ? hidden : hidden.reshape({1, in_features_});
  const Assignment a = assign(batched ? targets : targets.reshape({1}));
  Tensor nll = row_nll(x, a);
  const float scale = a.counted > 0 ? 1.0f / static_cast<float>(a.counted) : 0.0f;
  AdaptiveOutput result;
  result.loss = sum(nll) * scale;
  result.output = batched ? neg(nll) : neg(nll).reshape({});
  return result;
}

Tensor AdaptiveLogSoftmaxWithLoss::loss(const Tensor& hidden, const Tensor& targets,
                                        Reduction reduction) {
  check_batch(hidden, targets);
  const bool batched = targets.dim() == 1;
  const Tensor x = batched ? hidden : hidden.reshape({1, in_features_});
  const Assignment a = assign(batched ? targets : targets.reshape({1}));
  if (reduction == Reduction::kNone) {
    Tensor nll = row_nll(x, a);
    return batched ? nll : nll.reshape({});
  }
  // kSum / kMean: every cross_entropy sums its own rows, so the per-row losses
  // never need to be put back in batch order.
  const Device device = x.device();
  CrossEntropyOptions sum_options;
  sum_options.reduction = Reduction::kSum;
  sum_options.ignore_index = -1;
  Tensor total = cross_entropy(head->forward(x), int64_tensor(a.head_target, device), sum_options);
  for (int64_t i = 0; i < n_clusters(); ++i) {
    if (a.rows[i].empty()) continue;
    Tensor logits = tail[i]->forward(index_select(x, int64_tensor(a.rows[i], device)));
    total = total + cross_entropy(logits, int64_tensor(a.relative[i], device), sum_options);
  }
  if (reduction == Reduction::kSum) return total;
  return total * (a.counted > 0 ? 1.0f / static_cast<float>(a.counted) : 0.0f);
}

Tensor AdaptiveLogSoftmaxWithLoss::full_log_prob(const Tensor& hidden, const Tensor& head_logits) {
  const Device device = hidden.device();
  Tensor head_lp = log_softmax(head_logits, 1);
  std::vector<int64_t> shortlist(shortlist_size());
  std::iota(shortlist.begin(), shortlist.end(), int64_t{0});
  std::vector<Tensor> parts = {index_select(head_lp, int64_tensor(shortlist, device), 1)};
  for (int64_t i = 0; i < n_clusters(); ++i) {
    // log p(c_i + j) = head_lp[:, c_1 + i] + log_softmax(tail_i(x))[:, j]
    Tensor cluster_lp =
        index_select(head_lp, int64_tensor({shortlist_size() + i}, device), 1);  // [B, 1]
    parts.push_back(log_softmax(tail[i]->forward(hidden), 1) + cluster_lp);
  }
  return cat(parts, 1);
}

Tensor AdaptiveLogSoftmaxWithLoss::log_prob(const Tensor& hidden) {
  check_float("AdaptiveLogSoftmaxWithLoss::log_prob", hidden, "input");
  BRIDLE_CHECK(hidden.dim() == 2 && hidden.shape()[1] == in_features_,
               "AdaptiveLogSoftmaxWithLoss::log_prob: input must be [B, {}], got {}", in_features_,
               shape_str(hidden.shape()));
  return full_log_prob(hidden, head->forward(hidden));
}

Tensor AdaptiveLogSoftmaxWithLoss::predict(const Tensor& hidden) {
  check_float("AdaptiveLogSoftmaxWithLoss::predict", hidden, "input");
  BRIDLE_CHECK(hidden.dim() == 2 && hidden.shape()[1] == in_features_,
               "AdaptiveLogSoftmaxWithLoss::predict: input must be [B, {}], got {}", in_features_,
               shape_str(hidden.shape()));
  NoGradGuard no_grad;
  Tensor head_logits = head->forward(hidden);
  Tensor best = argmax(head_logits, 1);
  // A shortlist class that wins the head is the overall argmax: a cluster's
  // classes have log p = head_lp[cluster] + (a log-probability <= 0). Only the
  // rows whose head argmax is a cluster need the full distribution.
  Tensor rows = indices_in_range(best, shortlist_size(), head_size());
  if (rows.numel() == 0) return best;
  Tensor sub =
      argmax(full_log_prob(index_select(hidden, rows), index_select(head_logits, rows)), 1);
  // The cluster rows' answers go into best on the host (on the CPU, .cpu() is
  // best itself and this writes in place); a batch's worth of int64s.
  Tensor best_host = best.cpu();
  const Tensor rows_host = rows.cpu(), sub_host = sub.cpu();
  const int64_t* r = rows_host.data<int64_t>();
  const int64_t* s = sub_host.data<int64_t>();
  int64_t* out = best_host.data<int64_t>();
  for (int64_t j = 0; j < rows.numel(); ++j) out[r[j]] = s[j];
  return best_host.to(hidden.device());
}

Tensor AdaptiveLogSoftmaxWithLoss::forward(const Tensor&) {
  BRIDLE_FAIL(
      "AdaptiveLogSoftmaxWithLoss: forward needs targets; call forward_with_loss(hidden, "
      "targets), loss(hidden, targets) or log_prob(hidden)");
}

std::string AdaptiveLogSoftmaxWithLoss::extra_repr() const {
  return fmt::format("in_features={}, n_classes={}, cutoffs=[{}], div_value={}, head_bias={}",
                     in_features_, n_classes_, fmt::join(cutoffs_, ", "), options_.div_value,
                     options_.head_bias);
}

}  // namespace bridle
