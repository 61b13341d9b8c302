// SampledSoftmax and Nce layers; see sampled_softmax.h.
#include "nn/sampled_softmax.h"

#include <cmath>

#include "autograd/node.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "ops/softmax.h"

namespace bridle {

SampledSoftmax::SampledSoftmax(int64_t hidden, int64_t num_classes, int64_t num_sampled,
                               std::shared_ptr<CandidateSampler> sampler,
                               SampledSoftmaxLayerOptions options, Generator& gen)
    : SampledSoftmax("SampledSoftmax", false, hidden, num_classes, num_sampled, std::move(sampler),
                     options, gen) {}

SampledSoftmax::SampledSoftmax(const char* type_name, bool nce, int64_t hidden, int64_t num_classes,
                               int64_t num_sampled, std::shared_ptr<CandidateSampler> sampler,
                               SampledSoftmaxLayerOptions options, Generator& gen)
    : Module(type_name),
      nce_(nce),
      hidden_(hidden),
      num_classes_(num_classes),
      num_sampled_(num_sampled),
      sampler_(std::move(sampler)),
      options_(options),
      sampling_gen_(options.seed) {
  BRIDLE_CHECK(hidden > 0 && num_classes > 0 && num_sampled > 0,
               "{}: sizes must be positive, got hidden={} num_classes={} num_sampled={}", type_name,
               hidden, num_classes, num_sampled);
  BRIDLE_CHECK(options.num_true >= 1, "{}: num_true must be at least 1, got {}", type_name,
               options.num_true);
  if (!sampler_) sampler_ = std::make_shared<LogUniformSampler>(num_classes);
  BRIDLE_CHECK(sampler_->range_max() == num_classes,
               "{}: the sampler ({}) covers {} classes, the layer has {}", type_name,
               sampler_->name(), sampler_->range_max(), num_classes);
  BRIDLE_CHECK(!options.unique || num_sampled <= sampler_->num_possible(),
               "{}: cannot draw {} unique ids from {} classes ({} with non-zero probability "
               "under {})",
               type_name, num_sampled, num_classes, sampler_->num_possible(), sampler_->name());
  const float bound = 1.0f / std::sqrt(static_cast<float>(hidden));
  weight = register_parameter("weight", uniform({num_classes, hidden}, -bound, bound, gen));
  bias = register_parameter("bias", zeros({num_classes}));
}

void SampledSoftmax::check_hidden(const Tensor& hidden) const {
  BRIDLE_CHECK(hidden.defined() && hidden.dim() == 2 && hidden.size(1) == hidden_,
               "{}: hidden must be [B, {}], got {}", type_name(), hidden_,
               hidden.defined() ? shape_str(hidden.shape()) : "an undefined tensor");
}

Tensor SampledSoftmax::logits(const Tensor& hidden) {
  check_hidden(hidden);
  return linear(hidden, weight, bias);
}

Tensor SampledSoftmax::log_prob(const Tensor& hidden) { return log_softmax(logits(hidden), 1); }

Tensor SampledSoftmax::predict(const Tensor& hidden) {
  NoGradGuard no_grad;
  return argmax(logits(hidden), 1);
}

Tensor SampledSoftmax::loss(const Tensor& hidden, const Tensor& targets, Reduction reduction) {
  check_hidden(hidden);
  if (!is_training()) return full_loss(hidden, targets, reduction);
  BRIDLE_CHECK(targets.defined(), "{}: no targets given", type_name());
  // The sampler draws on the host; what it draws goes where hidden is.
  SampledValues sampled =
      sampler_->draw(targets.cpu(), num_sampled_, options_.unique, sampling_gen_);
  for (Tensor* t : {&sampled.ids, &sampled.true_expected_count, &sampled.sampled_expected_count})
    if (t->defined()) *t = t->to(hidden.device());
  if (nce_) {
    NceOptions o;
    o.num_true = options_.num_true;
    o.remove_accidental_hits = options_.remove_accidental_hits.value_or(o.remove_accidental_hits);
    o.subtract_log_q = options_.subtract_log_q;
    o.reduction = reduction;
    return nce_loss(weight, bias, hidden, targets, sampled, o);
  }
  SampledSoftmaxOptions o;
  o.num_true = options_.num_true;
  o.remove_accidental_hits = options_.remove_accidental_hits.value_or(o.remove_accidental_hits);
  o.subtract_log_q = options_.subtract_log_q;
  o.reduction = reduction;
  return sampled_softmax_loss(weight, bias, hidden, targets, sampled, o);
}

// The exact loss: softmax cross-entropy over all V classes, each of a row's T
// targets labelled 1/T (the sampled softmax's labels, with every class sampled).
Tensor SampledSoftmax::full_loss(const Tensor& hidden, const Tensor& targets, Reduction reduction) {
  const int64_t B = hidden.size(0), T = options_.num_true;
  BRIDLE_CHECK(targets.defined() && is_integer(targets.dtype()),
               "{}: targets must be int32 or int64 class ids", type_name());
  BRIDLE_CHECK(targets.shape() == (Shape{B, T}) || (T == 1 && targets.shape() == Shape{B}),
               "{}: targets must be [{}, {}]{} for hidden {}, got {}", type_name(), B, T,
               T == 1 ? fmt::format(" or [{}]", B) : "", shape_str(hidden.shape()),
               shape_str(targets.shape()));
  CrossEntropyOptions ce;
  ce.reduction = reduction;
  if (T == 1) return cross_entropy(logits(hidden), reshape(targets, {B}), ce);
  std::vector<int64_t> y = targets.to(DType::kInt64).to_int_vector();
  Tensor soft = zeros({B, num_classes_});
  float* t = soft.data<float>();
  for (size_t i = 0; i < y.size(); ++i) {
    BRIDLE_CHECK(y[i] >= 0 && y[i] < num_classes_,
                 "{}: target {} at row {} is out of range for {} classes", type_name(), y[i],
                 static_cast<int64_t>(i) / T, num_classes_);
    t[static_cast<int64_t>(i) / T * num_classes_ + y[i]] += 1.0f / static_cast<float>(T);
  }
  return cross_entropy(logits(hidden), soft.to(hidden.device()), ce);
}

std::string SampledSoftmax::extra_repr() const {
  return fmt::format("hidden={}, num_classes={}, num_sampled={}, sampler={}, num_true={}", hidden_,
                     num_classes_, num_sampled_, sampler_->name(), options_.num_true);
}

}  // namespace bridle
