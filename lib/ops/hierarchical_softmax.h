// Hierarchical softmax: tree-structured output layers whose training cost grows
// with log V (Huffman tree) or sqrt V (two-level class tree) instead of V.
//
// Shapes (letters fixed for this file): B rows, d hidden size, V classes,
// N = V - 1 internal nodes of the Huffman tree, K clusters of the class tree,
// S the summed path length of a batch's targets.
//
// Huffman tree (word2vec's CreateBinaryTree, fastText's buildTree). The classes
// are sorted by count, descending (stable on the class id, as word2vec's vocab
// is after SortVocab), and merged two at a time with the two-queue O(V) build:
// one queue holds the leaves from the rarest end, the other the internal nodes in
// the order they are made; the smaller count goes first, and a tie takes the
// internal node. Internal node n is the n-th merge, so the root is N - 1 = V - 2
// and a node's id is larger than its children's. The first (smaller) node of a
// merge is the child with code bit 0, the second the child with bit 1. Class c's
// path, points and codes root first, is word2vec's vocab[c].point / .code.
//
// Sign convention (word2vec's): with s_n = h . w_n + b_n the score of internal
// node n, the step from n along code bit t has probability sigma(+s_n) for t = 0
// and sigma(-s_n) = 1 - sigma(s_n) for t = 1, so
//   P(y | h) = prod_{(n, t) on path(y)} sigma((1 - 2 t) s_n)
//   loss     = -log P(y | h) = sum_{(n, t)} softplus(-(1 - 2 t) s_n),
// the sum of the binary logistic losses along the path with label 1 - t (word2vec's
// g = (1 - code - f)). fastText uses label t instead: the same model with w_n -> -w_n.
// The two children's probabilities sum to 1 at every node, so P(. | h) sums to 1.
// V = 1 gives a tree with no internal node: node_weight is [0, d] and
// P(0 | h) = 1 (loss 0, log-probability 0).
//
// Two-level class tree (Mikolov et al. 2011, "Extensions of recurrent neural
// network language model"): each class belongs to one cluster, and
//   P(y | h) = softmax(U h + a)_{k(y)} * softmax_{j in k(y)}(W_j h + b_j)_y,
// the second softmax taken over the classes of y's cluster only.
// frequency_binned_clusters makes the clusters from counts.
//
// The fused losses walk only the target's path (or cluster) per row: O(d log V)
// and O(d (K + V / K)) per row instead of O(d V). Exact log-probabilities of
// every class ([B, V], for perplexity) and a top-k search are here too. The CPU
// kernels run on OpenMP threads over the batch; a weight row that several rows
// of the batch reach gets its gradient from one thread, which sums them in a
// fixed order (no races, and fused losses that give the same bits on any
// thread count).
// Kernels and the backward derivations are in hierarchical_softmax.cpp; the
// modules are in nn/hierarchical_softmax.h. The losses (hierarchical_softmax_loss,
// within_cluster_nll and so class_based_softmax_loss) also run on a GPU
// (hierarchical_softmax.cu): the batch's paths or slots are laid out on the host,
// as here, and copied over; there each gradient element has one thread, so they
// add no atomics and give the same bits on every run. So do the log_prob ops; the
// topk ops on a GPU take the exact top k of log_prob's [B, V] instead of
// searching the tree (the same classes, ties to the lower class).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "ops/cross_entropy.h"  // Reduction

namespace bridle {

// The Huffman tree of V classes (see the top of this file).
struct HuffmanTree {
  HuffmanTree() = default;
  // Throws when counts is empty or a count is negative. Counts need not be sorted.
  explicit HuffmanTree(const std::vector<int64_t>& counts);

  int64_t num_classes() const { return static_cast<int64_t>(offsets.size()) - 1; }
  int64_t num_nodes() const { return static_cast<int64_t>(children.size()) / 2; }  // V - 1
  int64_t root() const { return num_nodes() - 1; }                                 // -1 when V = 1
  int64_t depth(int64_t c) const { return offsets[c + 1] - offsets[c]; }
  int64_t max_depth() const;

  // Class c's path: internal nodes points[offsets[c] .. offsets[c + 1]), root
  // first, and the code bit (0 or 1) taken at each.
  std::vector<int64_t> offsets;  // [V + 1]
  std::vector<int64_t> points;   // [sum of depths]
  std::vector<uint8_t> codes;    // [sum of depths]
  // children[2 n + t]: the child of node n along bit t, an internal node (>= 0)
  // or ~c (< 0) for the leaf of class c.
  std::vector<int64_t> children;  // [2 N]
  // child_slot[2 n + t]: the class reached from that child by following bit 0
  // to a leaf (the child itself when it is a leaf). log_prob keeps a node's path
  // log-probability in that class's column until it reaches the leaf.
  std::vector<int64_t> child_slot;  // [2 N]
};

// Huffman tree. The loss per row is -log P(y_b | h_b), reduced as cross_entropy
// does (kMean: / B). hidden [B, d], node_weight [N, d], node_bias [N] or
// undefined, targets [B] int32/int64 in [0, V). Gradients reach hidden,
// node_weight and node_bias; node_weight's is dense (zero off the batch's paths).
Tensor hierarchical_softmax_loss(const Tensor& hidden, const Tensor& node_weight,
                                 const Tensor& targets, const HuffmanTree& tree,
                                 Reduction reduction = Reduction::kMean,
                                 const Tensor& node_bias = Tensor());
// log P(c | h_b) of every class: [B, V], exact (one gemm for all N scores, then
// one pass down the tree per row). Differentiable.
Tensor hierarchical_softmax_log_prob(const Tensor& hidden, const Tensor& node_weight,
                                     const HuffmanTree& tree, const Tensor& node_bias = Tensor());
// The k most probable classes of each row, by best-first search down the tree,
// pruned by the k-th best leaf found so far (log-probabilities only fall along
// a path): (log-probabilities [B, k], descending; classes [B, k] int64). Exact;
// not differentiable. 1 <= k <= V. On a GPU: the top k of log_prob (see above).
std::pair<Tensor, Tensor> hierarchical_softmax_topk(const Tensor& hidden, const Tensor& node_weight,
                                                    const HuffmanTree& tree, int64_t k,
                                                    const Tensor& node_bias = Tensor());

// The clusters of a two-level class tree.
struct ClassClusters {
  ClassClusters() = default;
  // cluster_of_class[c] in [0, K), K = the largest id + 1; every cluster must
  // have a class (an empty one would take probability from nothing).
  explicit ClassClusters(std::vector<int64_t> cluster_of_class);

  int64_t num_classes() const { return static_cast<int64_t>(cluster_of_class.size()); }
  int64_t num_clusters() const { return static_cast<int64_t>(offsets.size()) - 1; }
  int64_t size(int64_t k) const { return offsets[k + 1] - offsets[k]; }

  std::vector<int64_t> cluster_of_class;  // [V]
  // Cluster k's classes, ascending: members[offsets[k] .. offsets[k + 1]).
  std::vector<int64_t> offsets;   // [K + 1]
  std::vector<int64_t> members;   // [V]
  std::vector<int64_t> position;  // [V]: class c is members[offsets[k(c)] + position[c]]
};

// Frequency binning (Mikolov et al. 2011, and the RNNLM toolkit): the classes,
// sorted by count descending (stable on id), are cut into consecutive bins of
// roughly equal total count: a class goes to the current bin a, and a moves on
// when the running share of the total count passes (a + 1) / num_clusters. So
// frequent classes sit in small clusters and rare ones in large clusters.
// num_clusters <= 0 means round(sqrt(V)). The bin moves on by at most one per
// class, so after a few heavy classes it can lag and leave the last bins empty;
// those are dropped, and the result may have fewer clusters than asked for.
// Returns cluster_of_class [V].
std::vector<int64_t> frequency_binned_clusters(const std::vector<int64_t>& counts,
                                               int64_t num_clusters = 0);

// Two-level tree: loss_b = -log P(y_b | h_b) = cross_entropy(U h_b + a, k(y_b))
// + within_cluster_nll_b, reduced. cluster_weight U [K, d], cluster_bias a [K],
// class_weight W [V, d], class_bias b [V]; the biases may be undefined.
Tensor class_based_softmax_loss(const Tensor& hidden, const Tensor& cluster_weight,
                                const Tensor& cluster_bias, const Tensor& class_weight,
                                const Tensor& class_bias, const Tensor& targets,
                                const ClassClusters& clusters,
                                Reduction reduction = Reduction::kMean);
// -log softmax_{j in k(y_b)}(W_j h_b + b_j)_{y_b}: [B], fused (only y's cluster's
// rows of W are read). Differentiable in hidden, class_weight and class_bias.
Tensor within_cluster_nll(const Tensor& hidden, const Tensor& class_weight,
                          const Tensor& class_bias, const Tensor& targets,
                          const ClassClusters& clusters);
// log P(c | h) for every class from the logits: class_logits [B, V] (W h + b)
// and cluster_logits [B, K] (U h + a): log_softmax(cluster_logits)_{k(c)} +
// class_logits_c - logsumexp_{j in k(c)} class_logits_j. Differentiable.
Tensor class_based_log_prob(const Tensor& class_logits, const Tensor& cluster_logits,
                            const ClassClusters& clusters);
// The k most probable classes of each row: clusters in order of probability,
// stopping at the first whose probability is below the k-th best class found
// (a class is never more probable than its cluster). As hierarchical_softmax_topk.
std::pair<Tensor, Tensor> class_based_softmax_topk(
    const Tensor& hidden, const Tensor& cluster_weight, const Tensor& cluster_bias,
    const Tensor& class_weight, const Tensor& class_bias, const ClassClusters& clusters, int64_t k);

namespace cpu {

// One batch's target paths, flattened (built by the op): row b takes the steps
// [offsets[b], offsets[b + 1]); step i visits node nodes[i] with sign signs[i]
// (+1 for code bit 0, -1 for bit 1). The same steps grouped by node, for the
// race-free node gradient: node touched[u] is visited by the steps
// by_node[node_offsets[u] .. node_offsets[u + 1]), step i belonging to row row_of[i].
struct PathBatch {
  std::vector<int64_t> offsets;       // [B + 1]
  std::vector<int64_t> nodes;         // [S]
  std::vector<float> signs;           // [S]
  std::vector<int64_t> row_of;        // [S]
  std::vector<int64_t> touched;       // [U] distinct nodes, ascending
  std::vector<int64_t> node_offsets;  // [U + 1]
  std::vector<int64_t> by_node;       // [S]
};
// The batch of targets y (already checked to be in [0, V)), as the op builds it.
PathBatch make_path_batch(const HuffmanTree& tree, const std::vector<int64_t>& y);

// loss[b] = sum_i softplus(-signs_i s_i), s_i = h_b . w_{nodes_i} + bias_{nodes_i},
// and coef[i] = d loss_b / d s_i = -signs_i sigma(-signs_i s_i). node_bias may be null.
void hierarchical_softmax_forward(float* loss, float* coef, const float* hidden,
                                  const float* node_weight, const float* node_bias,
                                  const PathBatch& paths, int64_t B, int64_t d);
void hierarchical_softmax_forward_naive(float* loss, float* coef, const float* hidden,
                                        const float* node_weight, const float* node_bias,
                                        const PathBatch& paths, int64_t B, int64_t d);
// With g_i = coef[i] dloss[row_of[i]]: dhidden_b += sum_{i of b} g_i w_{nodes_i}.
// accumulate = false overwrites dhidden instead.
void hierarchical_softmax_backward_hidden(float* dhidden, const float* node_weight,
                                          const float* coef, const float* dloss,
                                          const PathBatch& paths, int64_t B, int64_t d,
                                          bool accumulate = true);
// dnode_weight_n += sum_{i at n} g_i h_{row_of[i]}; accumulate = false zeroes the
// other rows (all N of them are written).
void hierarchical_softmax_backward_weight(float* dnode_weight, const float* hidden,
                                          const float* coef, const float* dloss,
                                          const PathBatch& paths, int64_t N, int64_t d,
                                          bool accumulate = true);
// dnode_bias_n += sum_{i at n} g_i.
void hierarchical_softmax_backward_bias(float* dnode_bias, const float* coef, const float* dloss,
                                        const PathBatch& paths, int64_t N, bool accumulate = true);
// All three at once as textbook loops in double; always accumulates; a null
// gradient pointer is skipped.
void hierarchical_softmax_backward_naive(float* dhidden, float* dnode_weight, float* dnode_bias,
                                         const float* hidden, const float* node_weight,
                                         const float* coef, const float* dloss,
                                         const PathBatch& paths, int64_t B, int64_t d);

// out [B, V] = log P(c | h_b) from scores [B, N] (s = h W^T + bias), one pass
// down the tree per row (child_slot: HuffmanTree::child_slot). workspace:
// get_num_threads() * N floats.
void hierarchical_softmax_log_prob(float* out, float* workspace, const float* scores,
                                   const int64_t* child_slot, int64_t B, int64_t V);
// The same by walking every class's path, in double, dot products included.
void hierarchical_softmax_log_prob_naive(float* out, const float* hidden, const float* node_weight,
                                         const float* node_bias, const HuffmanTree& tree, int64_t B,
                                         int64_t d);
// dscores [B, N] = d(sum_bc dout_bc out_bc) / d scores, overwritten (children:
// HuffmanTree::children).
void hierarchical_softmax_log_prob_backward(float* dscores, const float* scores, const float* dout,
                                            const int64_t* children, int64_t B, int64_t V);

// One batch's targets for the within-cluster softmax (built by the op): row b's
// logits over the classes of its target's cluster sit at [offsets[b],
// offsets[b + 1]), slot i holding class classes[i]; its target is at offsets[b] +
// target_pos[b]. The rows are also grouped by cluster, so that the kernels read
// each class's row of W once per batch: group u's rows are
// group_rows[group_offsets[u] .. group_offsets[u + 1]). For the class-weight
// gradient, work item w is the work_member[w]-th class, work_class[w], of group
// work_group[w]'s cluster: every class of every cluster in use has one.
struct ClusterBatch {
  std::vector<int64_t> offsets;     // [B + 1]
  std::vector<int64_t> classes;     // [Z], Z = offsets[B]
  std::vector<int64_t> target_pos;  // [B]
  std::vector<int64_t> group_offsets, group_rows;
  std::vector<int64_t> work_group, work_member, work_class;
};
ClusterBatch make_cluster_batch(const ClassClusters& clusters, const std::vector<int64_t>& y);

// logits[i] = h_b . W_{classes[i]} + bias_{classes[i]} for row b's slots; lse[b]
// their logsumexp; nll[b] = lse[b] - the target's logit. class_bias may be null.
void within_cluster_forward(float* nll, float* lse, float* logits, const float* hidden,
                            const float* class_weight, const float* class_bias,
                            const ClusterBatch& batch, int64_t B, int64_t d);
void within_cluster_forward_naive(float* nll, float* lse, float* logits, const float* hidden,
                                  const float* class_weight, const float* class_bias,
                                  const ClusterBatch& batch, int64_t B, int64_t d);
// dlogits[i] = dloss_b (softmax(row b's logits)_i - [i is b's target]), overwritten.
void within_cluster_dlogits(float* dlogits, const float* logits, const float* lse,
                            const float* dloss, const ClusterBatch& batch, int64_t B);
// dhidden_b += sum_{i of b} dlogits_i W_{classes[i]}; accumulate = false overwrites.
void within_cluster_backward_hidden(float* dhidden, const float* class_weight, const float* dlogits,
                                    const ClusterBatch& batch, int64_t B, int64_t d,
                                    bool accumulate = true);
// dclass_weight_j += sum_{i: classes[i] = j} dlogits_i h_{row of i}, and
// dclass_bias_j += the same sum of dlogits_i. Either may be null; accumulates.
void within_cluster_backward_weight(float* dclass_weight, float* dclass_bias, const float* hidden,
                                    const float* dlogits, const ClusterBatch& batch, int64_t d);
// All of it as textbook loops (dot products in double); accumulates, null gradients skipped.
void within_cluster_backward_naive(float* dhidden, float* dclass_weight, float* dclass_bias,
                                   const float* hidden, const float* class_weight,
                                   const float* dlogits, const ClusterBatch& batch, int64_t B,
                                   int64_t d);

// out [B, V] = class_based_log_prob (see above); also writes within_lse [B, K]
// (each cluster's logsumexp of class logits) and cluster_lse [B], for backward.
// offsets / members: ClassClusters'.
void class_based_log_prob_forward(float* out, float* within_lse, float* cluster_lse,
                                  const float* class_logits, const float* cluster_logits,
                                  const int64_t* offsets, const int64_t* members, int64_t B,
                                  int64_t V, int64_t K);
// dclass_logits += ..., dcluster_logits += ... (both accumulate; see the .cpp).
void class_based_log_prob_backward(float* dclass_logits, float* dcluster_logits,
                                   const float* class_logits, const float* cluster_logits,
                                   const float* within_lse, const float* cluster_lse,
                                   const float* dout, const int64_t* offsets,
                                   const int64_t* members, int64_t B, int64_t V, int64_t K);

}  // namespace cpu
}  // namespace bridle
