// Hierarchical softmax output layers: HierarchicalSoftmax (a Huffman tree over
// the classes, as in word2vec and fastText) and ClassBasedSoftmax (a two-level
// tree of frequency-binned clusters, as in Mikolov et al. 2011). The model,
// the sign convention and the kernels are described in ops/hierarchical_softmax.h.
//
// Both share the interface every output layer in bridle offers, so a language
// model can swap them for a full softmax:
//   loss(h [B, d], targets [B], reduction) -> -log P(y | h), averaged by default
//   log_prob(h)                            -> [B, V] exact log-probabilities
//   predict(h)                             -> [B] int64, the most probable class
// and forward(h) = log_prob(h). loss is the fast path for training (it touches
// only the target's path or cluster); log_prob costs a full [B, V] pass, for
// evaluation (exact perplexity). The tree is rebuilt from the counts (or the
// cluster assignment) given to the constructor, which are not part of a
// checkpoint: build the module from the same counts before loading one.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "core/factory.h"
#include "nn/module.h"
#include "ops/hierarchical_softmax.h"

namespace bridle {

class HierarchicalSoftmax : public Module {
 public:
  // counts[c]: how often class c occurs (any order, >= 0); the Huffman tree is
  // built from them. The node vectors start at zero, as word2vec's syn1 (every
  // class starts at probability 2^-depth; the gradient reaches the node vectors
  // at once and the hidden state from the second step). bias adds one learned
  // offset per node (word2vec and fastText have none).
  HierarchicalSoftmax(int64_t hidden, const std::vector<int64_t>& counts, bool bias = false);

  Tensor loss(const Tensor& hidden, const Tensor& targets, Reduction reduction = Reduction::kMean);
  Tensor log_prob(const Tensor& hidden);
  Tensor predict(const Tensor& hidden);
  // (log-probabilities [B, k] descending, classes [B, k]), by pruned tree search.
  std::pair<Tensor, Tensor> predict_topk(const Tensor& hidden, int64_t k);
  Tensor forward(const Tensor& hidden) override { return log_prob(hidden); }

  const HuffmanTree& tree() const { return tree_; }
  int64_t num_classes() const { return tree_.num_classes(); }

  Tensor weight;  // [V - 1, hidden]: one vector per internal node, "weight"
  Tensor bias;    // [V - 1], "bias"; undefined unless built with bias

 protected:
  std::string extra_repr() const override;

 private:
  HuffmanTree tree_;
  int64_t hidden_;
};

class ClassBasedSoftmax : public Module {
 public:
  // cluster_of_class[c] in [0, K), every cluster non-empty (ClassClusters).
  // Weights and biases start as a Linear layer's do: U(-1/sqrt(hidden), 1/sqrt(hidden)).
  ClassBasedSoftmax(int64_t hidden, std::vector<int64_t> cluster_of_class,
                    Generator& gen = default_generator());
  // Clusters from counts by frequency binning (frequency_binned_clusters);
  // num_clusters <= 0 means round(sqrt(V)).
  static std::shared_ptr<ClassBasedSoftmax> from_counts(int64_t hidden,
                                                        const std::vector<int64_t>& counts,
                                                        int64_t num_clusters = 0,
                                                        Generator& gen = default_generator());

  Tensor loss(const Tensor& hidden, const Tensor& targets, Reduction reduction = Reduction::kMean);
  Tensor log_prob(const Tensor& hidden);
  Tensor predict(const Tensor& hidden);
  // (log-probabilities [B, k] descending, classes [B, k]), clusters searched best first.
  std::pair<Tensor, Tensor> predict_topk(const Tensor& hidden, int64_t k);
  Tensor forward(const Tensor& hidden) override { return log_prob(hidden); }

  const ClassClusters& clusters() const { return clusters_; }
  int64_t num_classes() const { return clusters_.num_classes(); }

  Tensor cluster_weight;  // [K, hidden], "cluster_weight"
  Tensor cluster_bias;    // [K], "cluster_bias"
  Tensor class_weight;    // [V, hidden], "class_weight"
  Tensor class_bias;      // [V], "class_bias"

 protected:
  std::string extra_repr() const override;

 private:
  ClassClusters clusters_;
  int64_t hidden_;
};

}  // namespace bridle
