// HierarchicalSoftmax and ClassBasedSoftmax; see hierarchical_softmax.h.
#include "nn/hierarchical_softmax.h"

#include <cmath>

#include "ops/matmul.h"
#include "ops/shape.h"

namespace bridle {

HierarchicalSoftmax::HierarchicalSoftmax(int64_t hidden, const std::vector<int64_t>& counts,
                                         bool with_bias)
    : Module("HierarchicalSoftmax"), tree_(counts), hidden_(hidden) {
  BRIDLE_CHECK(hidden > 0, "HierarchicalSoftmax: hidden must be positive, got {}", hidden);
  weight = register_parameter("weight", zeros({tree_.num_nodes(), hidden}));
  if (with_bias) bias = register_parameter("bias", zeros({tree_.num_nodes()}));
}

Tensor HierarchicalSoftmax::loss(const Tensor& hidden, const Tensor& targets, Reduction reduction) {
  return hierarchical_softmax_loss(hidden, weight, targets, tree_, reduction, bias);
}

Tensor HierarchicalSoftmax::log_prob(const Tensor& hidden) {
  return hierarchical_softmax_log_prob(hidden, weight, tree_, bias);
}

std::pair<Tensor, Tensor> HierarchicalSoftmax::predict_topk(const Tensor& hidden, int64_t k) {
  return hierarchical_softmax_topk(hidden, weight, tree_, k, bias);
}

Tensor HierarchicalSoftmax::predict(const Tensor& hidden) {
  Tensor classes = predict_topk(hidden, 1).second;
  return reshape(classes, {classes.size(0)});
}

std::string HierarchicalSoftmax::extra_repr() const {
  return fmt::format("hidden={}, num_classes={}, max_depth={}, bias={}", hidden_,
                     tree_.num_classes(), tree_.max_depth(), bias.defined());
}

ClassBasedSoftmax::ClassBasedSoftmax(int64_t hidden, std::vector<int64_t> cluster_of_class,
                                     Generator& gen)
    : Module("ClassBasedSoftmax"), clusters_(std::move(cluster_of_class)), hidden_(hidden) {
  BRIDLE_CHECK(hidden > 0, "ClassBasedSoftmax: hidden must be positive, got {}", hidden);
  const int64_t K = clusters_.num_clusters(), V = clusters_.num_classes();
  const float bound = 1.0f / std::sqrt(static_cast<float>(hidden));
  cluster_weight = register_parameter("cluster_weight", uniform({K, hidden}, -bound, bound, gen));
  cluster_bias = register_parameter("cluster_bias", uniform({K}, -bound, bound, gen));
  class_weight = register_parameter("class_weight", uniform({V, hidden}, -bound, bound, gen));
  class_bias = register_parameter("class_bias", uniform({V}, -bound, bound, gen));
}

std::shared_ptr<ClassBasedSoftmax> ClassBasedSoftmax::from_counts(
    int64_t hidden, const std::vector<int64_t>& counts, int64_t num_clusters, Generator& gen) {
  return std::make_shared<ClassBasedSoftmax>(hidden,
                                             frequency_binned_clusters(counts, num_clusters), gen);
}

Tensor ClassBasedSoftmax::loss(const Tensor& hidden, const Tensor& targets, Reduction reduction) {
  return class_based_softmax_loss(hidden, cluster_weight, cluster_bias, class_weight, class_bias,
                                  targets, clusters_, reduction);
}

Tensor ClassBasedSoftmax::log_prob(const Tensor& hidden) {
  return class_based_log_prob(linear(hidden, class_weight, class_bias),
                              linear(hidden, cluster_weight, cluster_bias), clusters_);
}

std::pair<Tensor, Tensor> ClassBasedSoftmax::predict_topk(const Tensor& hidden, int64_t k) {
  return class_based_softmax_topk(hidden, cluster_weight, cluster_bias, class_weight, class_bias,
                                  clusters_, k);
}

Tensor ClassBasedSoftmax::predict(const Tensor& hidden) {
  Tensor classes = predict_topk(hidden, 1).second;
  return reshape(classes, {classes.size(0)});
}

std::string ClassBasedSoftmax::extra_repr() const {
  return fmt::format("hidden={}, num_classes={}, num_clusters={}", hidden_, clusters_.num_classes(),
                     clusters_.num_clusters());
}

}  // namespace bridle
