// Hierarchical softmax: tree building, CPU kernels and ops (see hierarchical_softmax.h).
//
// Derivations. sigma' = sigma (1 - sigma), so d/dx log sigma(x) = sigma(-x), and
// softplus(x) = log(1 + e^x) = -log sigma(-x).
//
// Huffman loss, one row, with s_i = h . w_{n_i} + b_{n_i} and z_i = sign_i s_i:
//   loss = sum_i softplus(-z_i),  d loss / d s_i = -sign_i sigma(-z_i) =: coef_i (saved)
//   dh += sum_i g_i w_{n_i},  dw_{n_i} += g_i h,  db_{n_i} += g_i,  g_i = coef_i dloss_b.
// A node's row of dW gathers the steps of every row that visits it; the kernel
// walks the steps grouped by node, so each row of dW has one writer (no races,
// no per-thread copies of the [N, d] gradient) and the result does not depend on
// the thread count.
//
// Huffman log-probabilities, one row: node n passes its path log-probability p_n
// to its children as p_n + log sigma(s_n) (bit 0) and p_n + log sigma(-s_n) (bit 1),
// with log sigma(-s) = log sigma(s) - s. Node ids grow towards the root, so a pass
// from N - 1 down to 0 visits parents first. p_n needs a home until the pass gets
// to n: the output column of the class reached from n by following bit 0
// (child_slot). Only nodes on one bit-0 chain share a column, and the pass meets
// them in order, each reading the column before writing its bit-0 child's value.
// Backward: with T_x = sum of dout over the leaves under x,
//   d/ds_n = T_{child 0} sigma(-s_n) - T_{child 1} sigma(s_n) = T_{child 0} - sigma(s_n) T_n,
// one pass up (T) and one down (the gradient); then dh = dS W, dW = dS^T h.
//
// Within-cluster softmax, one row with logits z over its cluster and target y:
//   nll = lse(z) - z_y,  d nll / d z_i = softmax(z)_i - [i == y]  (cross_entropy's).
// Class-based log-probabilities: out_c = (u_k - L) + (z_c - l_k), k = k(c),
// L = lse(u), l_k = lse_{j in k}(z_j). With S_k = sum_{c in k} dout_c:
//   dz_c = dout_c - softmax_k(z)_c S_k,   du_k = S_k - softmax(u)_k sum_k' S_k'.
#include "ops/hierarchical_softmax.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "autograd/node.h"
#include "core/cuda/cuda.h"
#include "core/factory.h"
#include "core/threading.h"
#include "ops/cuda_kernels.h"
#include "ops/elementwise.h"
#include "ops/fast_math.h"
#include "ops/loss_utils.h"
#include "ops/matmul.h"
#include "ops/op_utils.h"
#include "ops/reduce.h"
#include "ops/selection.h"

namespace bridle {

// --- Trees ------------------------------------------------------------------

namespace {

// Class ids sorted by count, descending, ties in id order (word2vec's SortVocab
// order, made deterministic).
std::vector<int64_t> sort_by_count(const std::vector<int64_t>& counts) {
  std::vector<int64_t> order(counts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return counts[a] > counts[b]; });
  return order;
}

void check_counts(const char* what, const std::vector<int64_t>& counts) {
  BRIDLE_CHECK(!counts.empty(), "{}: counts is empty (there must be at least one class)", what);
  int64_t total = 0;
  for (size_t c = 0; c < counts.size(); ++c) {
    BRIDLE_CHECK(counts[c] >= 0, "{}: class {} has a negative count ({})", what, c, counts[c]);
    BRIDLE_CHECK(!__builtin_add_overflow(total, counts[c], &total),
                 "{}: the counts' sum overflows int64 (at class {})", what, c);
  }
}

}  // namespace

HuffmanTree::HuffmanTree(const std::vector<int64_t>& counts) {
  check_counts("HuffmanTree", counts);
  const auto V = static_cast<int64_t>(counts.size());
  const int64_t N = V - 1;
  const std::vector<int64_t> order = sort_by_count(counts);
  // A node of the build is an internal node id x >= 0 or a leaf ~c < 0.
  std::vector<int64_t> node_count(N), parent(V + N, -1);
  std::vector<uint8_t> bit(V + N, 0);  // parent / bit of leaf c at c, of node n at V + n
  auto count_of = [&](int64_t x) { return x < 0 ? counts[~x] : node_count[x]; };
  auto index_of = [&](int64_t x) { return x < 0 ? ~x : V + x; };
  children.assign(2 * N, 0);
  // Two queues: leaves from the rarest (sorted position `leaf`, moving down) and
  // internal nodes in creation order (`next`, moving up; those made so far are
  // [0, a)). word2vec compares with a strict <, so a tie takes the internal node;
  // an empty internal queue is its 1e15 sentinel.
  int64_t leaf = V - 1, next = 0;
  for (int64_t a = 0; a < N; ++a) {
    int64_t pick[2];
    for (int64_t& x : pick) {
      if (leaf >= 0 && (next >= a || counts[order[leaf]] < node_count[next]))
        x = ~order[leaf--];
      else
        x = next++;
    }
    node_count[a] = count_of(pick[0]) + count_of(pick[1]);
    for (int t = 0; t < 2; ++t) {
      children[2 * a + t] = pick[t];
      parent[index_of(pick[t])] = a;
      bit[index_of(pick[t])] = static_cast<uint8_t>(t);
    }
  }
  // child_slot: the leaf at the end of the bit-0 chain (children have smaller ids).
  child_slot.assign(2 * N, 0);
  for (int64_t n = 0; n < N; ++n)
    for (int t = 0; t < 2; ++t) {
      const int64_t x = children[2 * n + t];
      child_slot[2 * n + t] = x < 0 ? ~x : child_slot[2 * x];
    }
  // Paths, root first: walk up from each leaf, then store in reverse.
  offsets.assign(V + 1, 0);
  for (int64_t c = 0; c < V; ++c) {
    int64_t length = 0;
    for (int64_t x = parent[c]; x >= 0; x = parent[V + x]) ++length;
    offsets[c + 1] = offsets[c] + length;
  }
  points.resize(offsets[V]);
  codes.resize(offsets[V]);
  for (int64_t c = 0; c < V; ++c) {
    int64_t i = offsets[c + 1], index = c;
    for (int64_t x = parent[c]; x >= 0; index = V + x, x = parent[V + x]) {
      --i;
      points[i] = x;
      codes[i] = bit[index];
    }
  }
}

int64_t HuffmanTree::max_depth() const {
  int64_t depth_max = 0;
  for (int64_t c = 0; c < num_classes(); ++c) depth_max = std::max(depth_max, depth(c));
  return depth_max;
}

ClassClusters::ClassClusters(std::vector<int64_t> assignment)
    : cluster_of_class(std::move(assignment)) {
  const int64_t V = num_classes();
  BRIDLE_CHECK(V > 0, "ClassClusters: cluster_of_class is empty (there must be a class)");
  int64_t K = 0;
  for (int64_t c = 0; c < V; ++c) {
    BRIDLE_CHECK(cluster_of_class[c] >= 0, "ClassClusters: class {} has cluster {} (must be >= 0)",
                 c, cluster_of_class[c]);
    K = std::max(K, cluster_of_class[c] + 1);
  }
  offsets.assign(K + 1, 0);
  for (int64_t c = 0; c < V; ++c) ++offsets[cluster_of_class[c] + 1];
  for (int64_t k = 0; k < K; ++k) {
    BRIDLE_CHECK(offsets[k + 1] > 0,
                 "ClassClusters: cluster {} has no classes (cluster ids must be 0..{} with every "
                 "cluster used)",
                 k, K - 1);
    offsets[k + 1] += offsets[k];
  }
  members.resize(V);
  position.resize(V);
  std::vector<int64_t> fill(offsets.begin(), offsets.end() - 1);
  for (int64_t c = 0; c < V; ++c) {
    const int64_t k = cluster_of_class[c];
    position[c] = fill[k] - offsets[k];
    members[fill[k]++] = c;
  }
}

std::vector<int64_t> frequency_binned_clusters(const std::vector<int64_t>& counts,
                                               int64_t num_clusters) {
  check_counts("frequency_binned_clusters", counts);
  const auto V = static_cast<int64_t>(counts.size());
  const int64_t K =
      num_clusters > 0 ? num_clusters : std::max<int64_t>(1, std::llround(std::sqrt(V)));
  double total = 0.0;
  for (int64_t n : counts) total += static_cast<double>(n);
  const std::vector<int64_t> order = sort_by_count(counts);
  // The RNNLM toolkit's rule; all-zero counts bin as if they were equal.
  std::vector<int64_t> bin(V);
  double share = 0.0;
  int64_t a = 0;
  for (int64_t c : order) {
    share += total > 0.0 ? static_cast<double>(counts[c]) / total : 1.0 / static_cast<double>(V);
    share = std::min(share, 1.0);
    bin[c] = a;
    if (share > static_cast<double>(a + 1) / static_cast<double>(K) && a < K - 1) ++a;
  }
  // Drop the bins left empty, keeping their order.
  std::vector<int64_t> renumber(K, -1);
  int64_t used = 0;
  for (int64_t c : order)
    if (renumber[bin[c]] < 0) renumber[bin[c]] = used++;
  for (int64_t& b : bin) b = renumber[b];
  return bin;
}

// --- Kernels ------------------------------------------------------------------

namespace {

constexpr int64_t kParallelWork = 1 << 15;  // multiply-adds below this: one thread

// log(1 + u) for u in [0, 1], branch-free so that loops over it vectorize: with
// z = u / (2 + u), log(1 + u) = 2 atanh(z) = 2 (z + z^3/3 + z^5/5 + ...); above
// 1 + u = sqrt 2 it uses log((1 + u) / 2) + ln 2 instead (z = (u - 1) / (u + 3)),
// so |z| <= 0.172 and five terms leave a relative error below 1e-8.
inline float log1p_unit(float u) {
  const bool upper = u > 0.41421356f;
  const float z = (upper ? u - 1.0f : u) / (u + (upper ? 3.0f : 2.0f));
  const float z2 = z * z;
  float p = 1.0f / 9.0f;
  p = p * z2 + 1.0f / 7.0f;
  p = p * z2 + 1.0f / 5.0f;
  p = p * z2 + 1.0f / 3.0f;
  p = p * z2 + 1.0f;
  return (upper ? 0.69314718056f : 0.0f) + 2.0f * z * p;
}

// log sigma(x) = min(x, 0) - log(1 + e^-|x|), vectorizable (absolute error ~1e-7):
// selects, not branches, so that the loop over a row stays one vector loop.
inline float log_sigmoid_fast(float x) {
  return std::min(x, 0.0f) - log1p_unit(fast_exp(-std::abs(x)));
}

// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|), exact to float rounding.
inline float softplus(float x) { return std::max(x, 0.0f) + std::log1p(std::exp(-std::abs(x))); }

inline double softplus_double(double x) {
  return std::max(x, 0.0) + std::log1p(std::exp(-std::abs(x)));
}

// dst += alpha x.
inline void axpy(float* dst, float alpha, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) dst[k] += alpha * x[k];
}

double dot_double(const float* a, const float* b, int64_t n) {
  double sum = 0.0;
  for (int64_t k = 0; k < n; ++k) sum += static_cast<double>(a[k]) * b[k];
  return sum;
}

}  // namespace

namespace cpu {

void hierarchical_softmax_forward(float* loss, float* coef, const float* hidden,
                                  const float* node_weight, const float* node_bias,
                                  const PathBatch& paths, int64_t B, int64_t d) {
  const int64_t* offsets = paths.offsets.data();
  const int64_t* nodes = paths.nodes.data();
  const float* signs = paths.signs.data();
#pragma omp parallel for schedule(static) if (offsets[B] * d > kParallelWork)
  for (int64_t b = 0; b < B; ++b) {
    const float* h = hidden + b * d;
    float total = 0.0f;
    for (int64_t i = offsets[b]; i < offsets[b + 1]; ++i) {
      const int64_t n = nodes[i];
      const float s = row_dot(h, node_weight + n * d, d) + (node_bias ? node_bias[n] : 0.0f);
      const float z = signs[i] * s;
      total += softplus(-z);
      coef[i] = -signs[i] * stable_sigmoid(-z);
    }
    loss[b] = total;
  }
}

void hierarchical_softmax_forward_naive(float* loss, float* coef, const float* hidden,
                                        const float* node_weight, const float* node_bias,
                                        const PathBatch& paths, int64_t B, int64_t d) {
  for (int64_t b = 0; b < B; ++b) {
    double total = 0.0;
    for (int64_t i = paths.offsets[b]; i < paths.offsets[b + 1]; ++i) {
      const int64_t n = paths.nodes[i];
      const double s =
          dot_double(hidden + b * d, node_weight + n * d, d) + (node_bias ? node_bias[n] : 0.0);
      const double z = paths.signs[i] * s;
      total += softplus_double(-z);                                         // -log sigma(z)
      coef[i] = static_cast<float>(-paths.signs[i] / (1.0 + std::exp(z)));  // -sign sigma(-z)
    }
    loss[b] = static_cast<float>(total);
  }
}

void hierarchical_softmax_backward_hidden(float* dhidden, const float* node_weight,
                                          const float* coef, const float* dloss,
                                          const PathBatch& paths, int64_t B, int64_t d,
                                          bool accumulate) {
  const int64_t* offsets = paths.offsets.data();
  const int64_t* nodes = paths.nodes.data();
#pragma omp parallel for schedule(static) if (offsets[B] * d > kParallelWork)
  for (int64_t b = 0; b < B; ++b) {
    float* dh = dhidden + b * d;
    if (!accumulate) std::fill(dh, dh + d, 0.0f);
    for (int64_t i = offsets[b]; i < offsets[b + 1]; ++i)
      axpy(dh, coef[i] * dloss[b], node_weight + nodes[i] * d, d);
  }
}

void hierarchical_softmax_backward_weight(float* dnode_weight, const float* hidden,
                                          const float* coef, const float* dloss,
                                          const PathBatch& paths, int64_t N, int64_t d,
                                          bool accumulate) {
  if (!accumulate) {  // a fresh buffer: the rows off the paths are zeros
#pragma omp parallel for schedule(static) if (N * d > kParallelWork)
    for (int64_t n = 0; n < N; ++n)
      std::fill(dnode_weight + n * d, dnode_weight + (n + 1) * d, 0.0f);
  }
  const auto U = static_cast<int64_t>(paths.touched.size());
  const int64_t* by_node = paths.by_node.data();
  const int64_t* row_of = paths.row_of.data();
  // The root is on every path: dynamic scheduling spreads the uneven rows.
#pragma omp parallel for schedule(dynamic, 8) if (paths.offsets.back() * d > kParallelWork)
  for (int64_t u = 0; u < U; ++u) {
    float* dw = dnode_weight + paths.touched[u] * d;
    for (int64_t j = paths.node_offsets[u]; j < paths.node_offsets[u + 1]; ++j) {
      const int64_t i = by_node[j], b = row_of[i];
      axpy(dw, coef[i] * dloss[b], hidden + b * d, d);
    }
  }
}

void hierarchical_softmax_backward_bias(float* dnode_bias, const float* coef, const float* dloss,
                                        const PathBatch& paths, int64_t N, bool accumulate) {
  if (!accumulate) std::fill(dnode_bias, dnode_bias + N, 0.0f);
  for (size_t i = 0; i < paths.nodes.size(); ++i)
    dnode_bias[paths.nodes[i]] += coef[i] * dloss[paths.row_of[i]];
}

void hierarchical_softmax_backward_naive(float* dhidden, float* dnode_weight, float* dnode_bias,
                                         const float* hidden, const float* node_weight,
                                         const float* coef, const float* dloss,
                                         const PathBatch& paths, int64_t B, int64_t d) {
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t i = paths.offsets[b]; i < paths.offsets[b + 1]; ++i) {
      const double g = static_cast<double>(coef[i]) * dloss[b];
      const int64_t n = paths.nodes[i];
      for (int64_t k = 0; k < d; ++k) {
        if (dhidden) dhidden[b * d + k] += static_cast<float>(g * node_weight[n * d + k]);
        if (dnode_weight) dnode_weight[n * d + k] += static_cast<float>(g * hidden[b * d + k]);
      }
      if (dnode_bias) dnode_bias[n] += static_cast<float>(g);
    }
  }
}

void hierarchical_softmax_log_prob(float* out, float* workspace, const float* scores,
                                   const int64_t* child_slot, int64_t B, int64_t V) {
  const int64_t N = V - 1;
  if (N == 0) {
    std::fill(out, out + B, 0.0f);
    return;
  }
#pragma omp parallel if (B * N > kParallelWork)
  {
    float* log_sig = workspace + static_cast<int64_t>(omp_get_thread_num()) * N;
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      const float* s = scores + b * N;
      float* o = out + b * V;
#pragma omp simd
      for (int64_t n = 0; n < N; ++n) log_sig[n] = log_sigmoid_fast(s[n]);
      o[child_slot[2 * (N - 1)]] = 0.0f;  // the root's path log-probability
      for (int64_t n = N - 1; n >= 0; --n) {
        const int64_t slot0 = child_slot[2 * n], slot1 = child_slot[2 * n + 1];
        const float p = o[slot0];
        o[slot0] = p + log_sig[n];
        o[slot1] = p + log_sig[n] - s[n];  // log sigma(-s) = log sigma(s) - s
      }
    }
  }
}

void hierarchical_softmax_log_prob_naive(float* out, const float* hidden, const float* node_weight,
                                         const float* node_bias, const HuffmanTree& tree, int64_t B,
                                         int64_t d) {
  const int64_t V = tree.num_classes();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < V; ++c) {
      double log_p = 0.0;
      for (int64_t i = tree.offsets[c]; i < tree.offsets[c + 1]; ++i) {
        const int64_t n = tree.points[i];
        const double s =
            dot_double(hidden + b * d, node_weight + n * d, d) + (node_bias ? node_bias[n] : 0.0);
        log_p -= softplus_double(tree.codes[i] ? s : -s);  // log sigma(+-s)
      }
      out[b * V + c] = static_cast<float>(log_p);
    }
}

void hierarchical_softmax_log_prob_backward(float* dscores, const float* scores, const float* dout,
                                            const int64_t* children, int64_t B, int64_t V) {
  const int64_t N = V - 1;
#pragma omp parallel for schedule(static) if (B * N > kParallelWork)
  for (int64_t b = 0; b < B; ++b) {
    float* t = dscores + b * N;
    const float* s = scores + b * N;
    const float* g = dout + b * V;
    auto total = [&](int64_t x) { return x < 0 ? g[~x] : t[x]; };
    for (int64_t n = 0; n < N; ++n) t[n] = total(children[2 * n]) + total(children[2 * n + 1]);
    for (int64_t n = N - 1; n >= 0; --n)  // a child's t is still its total here
      t[n] = total(children[2 * n]) - t[n] / (1.0f + fast_exp(-s[n]));
  }
}

void within_cluster_forward(float* nll, float* lse, float* logits, const float* hidden,
                            const float* class_weight, const float* class_bias,
                            const ClusterBatch& batch, int64_t B, int64_t d) {
  const int64_t* offsets = batch.offsets.data();
  const int64_t* rows = batch.group_rows.data();
  const auto G = static_cast<int64_t>(batch.group_offsets.size()) - 1;
  // Group by group, so each row of W is read from memory once per batch, not
  // once per row of the batch that needs it.
#pragma omp parallel for schedule(dynamic, 1) if (offsets[B] * d > kParallelWork)
  for (int64_t u = 0; u < G; ++u) {
    const int64_t r_begin = batch.group_offsets[u], r_end = batch.group_offsets[u + 1];
    const int64_t first = offsets[rows[r_begin]], size = offsets[rows[r_begin] + 1] - first;
    for (int64_t i = 0; i < size; ++i) {
      const int64_t j = batch.classes[first + i];
      const float* w = class_weight + j * d;
      const float bias = class_bias ? class_bias[j] : 0.0f;
      for (int64_t r = r_begin; r < r_end; ++r)
        logits[offsets[rows[r]] + i] = row_dot(hidden + rows[r] * d, w, d) + bias;
    }
    for (int64_t r = r_begin; r < r_end; ++r) {
      const int64_t b = rows[r];
      const float* z = logits + offsets[b];
      bool has_nan = false;
      const float max = row_max(z, size, has_nan);
      const float l = has_nan ? NAN : max + std::log(row_exp_sum(z, size, max, 1.0f, nullptr));
      lse[b] = l;
      nll[b] = l - z[batch.target_pos[b]];
    }
  }
}

void within_cluster_forward_naive(float* nll, float* lse, float* logits, const float* hidden,
                                  const float* class_weight, const float* class_bias,
                                  const ClusterBatch& batch, int64_t B, int64_t d) {
  for (int64_t b = 0; b < B; ++b) {
    const int64_t begin = batch.offsets[b], end = batch.offsets[b + 1];
    double max = -std::numeric_limits<double>::infinity();
    for (int64_t i = begin; i < end; ++i) {
      const int64_t j = batch.classes[i];
      logits[i] = static_cast<float>(dot_double(hidden + b * d, class_weight + j * d, d) +
                                     (class_bias ? class_bias[j] : 0.0));
      max = std::max<double>(max, logits[i]);
    }
    double sum = 0.0;
    for (int64_t i = begin; i < end; ++i) sum += std::exp(logits[i] - max);
    const double l = max + std::log(sum);
    lse[b] = static_cast<float>(l);
    nll[b] = static_cast<float>(l - logits[begin + batch.target_pos[b]]);
  }
}

void within_cluster_dlogits(float* dlogits, const float* logits, const float* lse,
                            const float* dloss, const ClusterBatch& batch, int64_t B) {
  const int64_t* offsets = batch.offsets.data();
#pragma omp parallel for schedule(static) if (offsets[B] > kParallelWork)
  for (int64_t b = 0; b < B; ++b) {
    const float g = dloss[b], l = lse[b];
    const float* z = logits + offsets[b];
    float* dz = dlogits + offsets[b];
    add_or_store(dz, offsets[b + 1] - offsets[b], false,
                 [=](int64_t i) { return g * fast_exp(z[i] - l); });
    dz[batch.target_pos[b]] -= g;
  }
}

void within_cluster_backward_hidden(float* dhidden, const float* class_weight, const float* dlogits,
                                    const ClusterBatch& batch, int64_t B, int64_t d,
                                    bool accumulate) {
  const int64_t* offsets = batch.offsets.data();
  const int64_t* rows = batch.group_rows.data();
  const auto G = static_cast<int64_t>(batch.group_offsets.size()) - 1;
  // By group, as the forward (each row of the batch is in one group: no races).
#pragma omp parallel for schedule(dynamic, 1) if (offsets[B] * d > kParallelWork)
  for (int64_t u = 0; u < G; ++u) {
    const int64_t r_begin = batch.group_offsets[u], r_end = batch.group_offsets[u + 1];
    const int64_t first = offsets[rows[r_begin]], size = offsets[rows[r_begin] + 1] - first;
    if (!accumulate)
      for (int64_t r = r_begin; r < r_end; ++r)
        std::fill(dhidden + rows[r] * d, dhidden + (rows[r] + 1) * d, 0.0f);
    for (int64_t i = 0; i < size; ++i) {
      const float* w = class_weight + batch.classes[first + i] * d;
      for (int64_t r = r_begin; r < r_end; ++r)
        axpy(dhidden + rows[r] * d, dlogits[offsets[rows[r]] + i], w, d);
    }
  }
}

void within_cluster_backward_weight(float* dclass_weight, float* dclass_bias, const float* hidden,
                                    const float* dlogits, const ClusterBatch& batch, int64_t d) {
  const auto W = static_cast<int64_t>(batch.work_class.size());
  const int64_t* offsets = batch.offsets.data();
  const int64_t* rows = batch.group_rows.data();
  const int64_t Z = batch.offsets.back();
#pragma omp parallel for schedule(dynamic, 16) if (Z * d > kParallelWork)
  for (int64_t w = 0; w < W; ++w) {  // one class each: one writer per row of the gradient
    const int64_t j = batch.work_class[w], u = batch.work_group[w], i = batch.work_member[w];
    float bias_sum = 0.0f;
    for (int64_t r = batch.group_offsets[u]; r < batch.group_offsets[u + 1]; ++r) {
      const int64_t b = rows[r];
      const float g = dlogits[offsets[b] + i];
      if (dclass_weight) axpy(dclass_weight + j * d, g, hidden + b * d, d);
      bias_sum += g;
    }
    if (dclass_bias) dclass_bias[j] += bias_sum;
  }
}

void within_cluster_backward_naive(float* dhidden, float* dclass_weight, float* dclass_bias,
                                   const float* hidden, const float* class_weight,
                                   const float* dlogits, const ClusterBatch& batch, int64_t B,
                                   int64_t d) {
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t k = 0; k < d && dhidden; ++k) {
      double sum = 0.0;
      for (int64_t i = batch.offsets[b]; i < batch.offsets[b + 1]; ++i)
        sum += static_cast<double>(dlogits[i]) * class_weight[batch.classes[i] * d + k];
      dhidden[b * d + k] += static_cast<float>(sum);
    }
    for (int64_t i = batch.offsets[b]; i < batch.offsets[b + 1]; ++i) {
      const int64_t j = batch.classes[i];
      if (dclass_weight)
        for (int64_t k = 0; k < d; ++k) dclass_weight[j * d + k] += dlogits[i] * hidden[b * d + k];
      if (dclass_bias) dclass_bias[j] += dlogits[i];
    }
  }
}

void class_based_log_prob_forward(float* out, float* within_lse, float* cluster_lse,
                                  const float* class_logits, const float* cluster_logits,
                                  const int64_t* offsets, const int64_t* members, int64_t B,
                                  int64_t V, int64_t K) {
#pragma omp parallel for schedule(static) if (B * V > kParallelWork)
  for (int64_t b = 0; b < B; ++b) {
    const float* z = class_logits + b * V;
    const float* u = cluster_logits + b * K;
    float* o = out + b * V;
    bool has_nan = false;
    const float u_max = row_max(u, K, has_nan);
    const float L = u_max + std::log(row_exp_sum(u, K, u_max, 1.0f, nullptr));
    cluster_lse[b] = has_nan ? NAN : L;
    for (int64_t k = 0; k < K; ++k) {
      float max = -std::numeric_limits<float>::infinity();
      for (int64_t m = offsets[k]; m < offsets[k + 1]; ++m) max = std::max(max, z[members[m]]);
      float sum = 0.0f;
      for (int64_t m = offsets[k]; m < offsets[k + 1]; ++m) sum += fast_exp(z[members[m]] - max);
      const float l = max + std::log(sum), shift = u[k] - L - l;
      within_lse[b * K + k] = l;
      for (int64_t m = offsets[k]; m < offsets[k + 1]; ++m) o[members[m]] = z[members[m]] + shift;
    }
  }
}

void class_based_log_prob_backward(float* dclass_logits, float* dcluster_logits,
                                   const float* class_logits, const float* cluster_logits,
                                   const float* within_lse, const float* cluster_lse,
                                   const float* dout, const int64_t* offsets,
                                   const int64_t* members, int64_t B, int64_t V, int64_t K) {
#pragma omp parallel for schedule(static) if (B * V > kParallelWork)
  for (int64_t b = 0; b < B; ++b) {
    const float* z = class_logits + b * V;
    const float* u = cluster_logits + b * K;
    const float* g = dout + b * V;
    float* dz = dclass_logits ? dclass_logits + b * V : nullptr;
    float* du = dcluster_logits ? dcluster_logits + b * K : nullptr;
    float total = 0.0f;  // sum_k S_k
    for (int64_t k = 0; k < K; ++k) {
      float S = 0.0f;
      for (int64_t m = offsets[k]; m < offsets[k + 1]; ++m) S += g[members[m]];
      total += S;
      if (du) du[k] += S;
      if (dz) {
        const float l = within_lse[b * K + k];
        for (int64_t m = offsets[k]; m < offsets[k + 1]; ++m) {
          const int64_t c = members[m];
          dz[c] += g[c] - fast_exp(z[c] - l) * S;
        }
      }
    }
    if (du)
      for (int64_t k = 0; k < K; ++k) du[k] -= fast_exp(u[k] - cluster_lse[b]) * total;
  }
}

PathBatch make_path_batch(const HuffmanTree& tree, const std::vector<int64_t>& y) {
  const auto B = static_cast<int64_t>(y.size());
  PathBatch paths;
  paths.offsets.resize(B + 1, 0);
  for (int64_t b = 0; b < B; ++b) paths.offsets[b + 1] = paths.offsets[b] + tree.depth(y[b]);
  const int64_t S = paths.offsets[B];
  paths.nodes.resize(S);
  paths.signs.resize(S);
  paths.row_of.resize(S);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = paths.offsets[b], t = tree.offsets[y[b]]; i < paths.offsets[b + 1]; ++i, ++t) {
      paths.nodes[i] = tree.points[t];
      paths.signs[i] = tree.codes[t] ? -1.0f : 1.0f;
      paths.row_of[i] = b;
    }
  // Group the steps by node (a sort of (node, step) keys).
  std::vector<std::pair<int64_t, int64_t>> keys(S);
  for (int64_t i = 0; i < S; ++i) keys[i] = {paths.nodes[i], i};
  std::sort(keys.begin(), keys.end());
  paths.by_node.resize(S);
  for (int64_t j = 0; j < S; ++j) {
    paths.by_node[j] = keys[j].second;
    if (j == 0 || keys[j].first != keys[j - 1].first) {
      paths.touched.push_back(keys[j].first);
      paths.node_offsets.push_back(j);
    }
  }
  paths.node_offsets.push_back(S);
  return paths;
}

ClusterBatch make_cluster_batch(const ClassClusters& clusters, const std::vector<int64_t>& y) {
  const auto B = static_cast<int64_t>(y.size());
  const int64_t K = clusters.num_clusters();
  ClusterBatch batch;
  batch.offsets.resize(B + 1, 0);
  batch.target_pos.resize(B);
  for (int64_t b = 0; b < B; ++b) {
    batch.offsets[b + 1] = batch.offsets[b] + clusters.size(clusters.cluster_of_class[y[b]]);
    batch.target_pos[b] = clusters.position[y[b]];
  }
  batch.classes.resize(batch.offsets[B]);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t k = clusters.cluster_of_class[y[b]];
    std::copy(clusters.members.begin() + clusters.offsets[k],
              clusters.members.begin() + clusters.offsets[k + 1],
              batch.classes.begin() + batch.offsets[b]);
  }
  // Group the rows by cluster (counting sort over the clusters in use).
  std::vector<int64_t> group_of_cluster(K, -1), group_size;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t k = clusters.cluster_of_class[y[b]];
    if (group_of_cluster[k] < 0) {
      group_of_cluster[k] = static_cast<int64_t>(group_size.size());
      group_size.push_back(0);
      const int64_t u = group_of_cluster[k];
      for (int64_t i = 0; i < clusters.size(k); ++i) {
        batch.work_group.push_back(u);
        batch.work_member.push_back(i);
        batch.work_class.push_back(clusters.members[clusters.offsets[k] + i]);
      }
    }
    ++group_size[group_of_cluster[k]];
  }
  batch.group_offsets.assign(group_size.size() + 1, 0);
  for (size_t u = 0; u < group_size.size(); ++u)
    batch.group_offsets[u + 1] = batch.group_offsets[u] + group_size[u];
  batch.group_rows.resize(B);
  std::vector<int64_t> fill(batch.group_offsets.begin(), batch.group_offsets.end() - 1);
  for (int64_t b = 0; b < B; ++b)
    batch.group_rows[fill[group_of_cluster[clusters.cluster_of_class[y[b]]]]++] = b;
  return batch;
}

}  // namespace cpu

// --- Ops ------------------------------------------------------------------------

namespace {

// Checks hidden [B, d] and a [rows, d] weight with an optional [rows] bias.
void check_layer(const char* op, const Tensor& hidden, const Tensor& weight, const Tensor& bias,
                 int64_t rows, const char* weight_name, const char* bias_name,
                 const char* rows_meaning, Kernels kernels = Kernels::kCpuOnly) {
  check_float(op, hidden, "hidden");
  check_float(op, weight, weight_name);
  check_device(op, {hidden, weight, bias}, kernels);
  BRIDLE_CHECK(hidden.dim() == 2, "{}: hidden must be [B, d], got {}", op,
               shape_str(hidden.shape()));
  const int64_t d = hidden.size(1);
  BRIDLE_CHECK(weight.shape() == (Shape{rows, d}), "{}: {} must be [{}, {}] ({}), got {}", op,
               weight_name, rows, d, rows_meaning, shape_str(weight.shape()));
  if (bias.defined()) {
    check_float(op, bias, bias_name);
    BRIDLE_CHECK(bias.shape() == Shape{rows}, "{}: {} must be [{}] ({}), got {}", op, bias_name,
                 rows, rows_meaning, shape_str(bias.shape()));
  }
}

// Checks targets [B] int32/int64 in [0, V) and returns them as int64.
std::vector<int64_t> check_targets(const char* op, const Tensor& targets, int64_t B, int64_t V) {
  BRIDLE_CHECK(targets.defined(), "{}: no targets given", op);
  BRIDLE_CHECK(is_integer(targets.dtype()),
               "{}: targets must be int32 or int64 class indices, got {}", op,
               dtype_name(targets.dtype()));
  BRIDLE_CHECK(targets.shape() == Shape{B},
               "{}: targets must be [{}] (one per row of hidden), got {}", op, B,
               shape_str(targets.shape()));
  std::vector<int64_t> y = targets.to_int_vector();
  for (int64_t b = 0; b < B; ++b)
    BRIDLE_CHECK(y[b] >= 0 && y[b] < V,
                 "{}: target {} at row {} is out of range for {} classes (valid: 0..{})", op, y[b],
                 b, V, V - 1);
  return y;
}

void check_rows_finite(const char* op, const float* loss, int64_t B) {
  for (int64_t b = 0; b < B; ++b)
    BRIDLE_CHECK(!std::isnan(loss[b]),
                 "{}: row {} gives a NaN loss (hidden or the weights hold NaN)", op, b);
}

const float* data_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

bool wants_grad(const Tensor& t) { return t.defined() && t.requires_grad(); }

// scores [B, rows] = hidden weight^T + bias.
Tensor affine_scores(const Tensor& hidden, const Tensor& weight, const Tensor& bias) {
  const int64_t B = hidden.size(0), d = hidden.size(1), rows = weight.size(0);
  Tensor scores = Tensor::empty({B, rows});
  float* s = scores.data<float>();
  if (B == 0 || rows == 0) return scores;
  if (bias.defined())
    for (int64_t b = 0; b < B; ++b) std::copy_n(bias.data<float>(), rows, s + b * rows);
  if (d == 0) {
    if (!bias.defined()) std::fill(s, s + B * rows, 0.0f);
    return scores;
  }
  cpu::gemm(false, true, B, rows, d, 1.0f, hidden.data<float>(), d, weight.data<float>(), d,
            bias.defined() ? 1.0f : 0.0f, s, rows);
  return scores;
}

std::pair<Tensor, Tensor> topk_outputs(int64_t B, int64_t k) {
  return {Tensor::empty({B, k}), Tensor::empty({B, k}, DType::kInt64)};
}

}  // namespace

namespace {

#ifdef BRIDLE_WITH_CUDA
// Host arrays copied to a device, held together so that the backward that reads
// them keeps them alive.
struct DeviceCopies {
  std::vector<Tensor> tensors;
  // The device copy of host; null for an empty array, which has no data.
  template <typename T>
  const T* add(const std::vector<T>& host, Device device) {
    tensors.push_back(from_vector(host).to(device));
    return host.empty() ? nullptr : tensors.back().template data<T>();
  }
};
#endif

// The Huffman loss on a GPU (hierarchical_softmax.cu): the paths built on the
// host, as on the CPU, are copied to the device (a few int64 per path step), and
// the row losses come back to be checked for NaN (a copy that waits for the GPU).
Tensor hierarchical_softmax_loss_cuda(const Tensor& hidden, const Tensor& node_weight,
                                      const Tensor& node_bias, const cpu::PathBatch& paths,
                                      Reduction reduction) {
#ifdef BRIDLE_WITH_CUDA
  const char* op = "hierarchical_softmax_loss";
  const Device device = hidden.device();
  cuda::DeviceGuard guard(device);
  const int64_t B = hidden.size(0), d = hidden.size(1), S = paths.offsets[B];
  auto copies = std::make_shared<DeviceCopies>();  // kept alive by the backward's capture
  const cuda::DevicePaths p{copies->add(paths.offsets, device),
                            copies->add(paths.nodes, device),
                            copies->add(paths.signs, device),
                            copies->add(paths.row_of, device),
                            copies->add(paths.touched, device),
                            copies->add(paths.node_offsets, device),
                            copies->add(paths.by_node, device),
                            B,
                            S,
                            static_cast<int64_t>(paths.touched.size())};
  Tensor row_loss = Tensor::empty({B}, device), coef = Tensor::empty({S}, device);
  Tensor step_loss = Tensor::empty({S}, device);
  cuda::huffman_loss_forward(row_loss.data<float>(), coef.data<float>(), step_loss.data<float>(),
                             hidden.data<float>(), node_weight.data<float>(),
                             data_or_null(node_bias), p, d);
  const std::vector<float> host_loss = row_loss.to_vector();
  check_rows_finite(op, host_loss.data(), B);
  const float scale = mean_scale(reduction, static_cast<double>(B));
  Tensor loss = row_loss;
  if (reduction != Reduction::kNone) {
    loss = Tensor::empty({}, device);
    cuda::sum_forward(loss.data<float>(), row_loss.data<float>(), 1, B, 1, scale);
  }
  return record(loss, op, {hidden, node_weight, node_bias},
                [hidden, node_weight, node_bias, copies, p, coef, reduction, scale, d](
                    const Tensor& dout, const Tensor&) {
                  cuda::DeviceGuard guard(hidden.device());
                  auto grad_of = [](const Tensor& t) {
                    return wants_grad(t) ? grad_buffer(t).data<float>() : nullptr;
                  };
                  cuda::huffman_loss_backward(
                      grad_of(hidden), grad_of(node_weight), grad_of(node_bias),
                      hidden.data<float>(), node_weight.data<float>(), coef.data<float>(),
                      dout.data<float>(), scale, reduction == Reduction::kNone, p, d);
                });
#else
  (void)node_weight, (void)node_bias, (void)paths, (void)reduction;
  BRIDLE_FAIL("hierarchical_softmax_loss: this build has no CUDA backend (hidden is on {})",
              hidden.device().str());
#endif
}

}  // namespace

Tensor hierarchical_softmax_loss(const Tensor& hidden, const Tensor& node_weight,
                                 const Tensor& targets, const HuffmanTree& tree,
                                 Reduction reduction, const Tensor& node_bias) {
  const char* op = "hierarchical_softmax_loss";
  const int64_t V = tree.num_classes(), N = tree.num_nodes();
  BRIDLE_CHECK(V > 0, "{}: the tree is empty (build it from counts)", op);
  check_layer(op, hidden, node_weight, node_bias, N, "node_weight", "node_bias",
              "one per internal node, V - 1", Kernels::kCpuAndCuda);
  const int64_t B = hidden.size(0), d = hidden.size(1);
  check_device(op, {hidden, targets}, Kernels::kCpuAndCuda);
  auto paths = std::make_shared<cpu::PathBatch>(
      cpu::make_path_batch(tree, check_targets(op, targets, B, V)));
  if (hidden.device().is_cuda())
    return hierarchical_softmax_loss_cuda(hidden, node_weight, node_bias, *paths, reduction);
  const int64_t S = paths->offsets[B];
  Tensor row_loss = Tensor::empty({B});
  Tensor coef = Tensor::empty({S});
  cpu::hierarchical_softmax_forward(row_loss.data<float>(), coef.data<float>(),
                                    hidden.data<float>(), node_weight.data<float>(),
                                    data_or_null(node_bias), *paths, B, d);
  check_rows_finite(op, row_loss.data<float>(), B);
  const float scale = mean_scale(reduction, static_cast<double>(B));
  return record(reduce_loss(row_loss, reduction, scale), op, {hidden, node_weight, node_bias},
                [hidden, node_weight, node_bias, paths, coef, reduction, scale, B, d, N](
                    const Tensor& dout, const Tensor&) {
                  const std::vector<float> dloss = row_gradients(dout, reduction, scale, B);
                  const float* c = coef.data<float>();
                  if (hidden.requires_grad())
                    write_grad(hidden, [&](float* dh, bool accumulate) {
                      cpu::hierarchical_softmax_backward_hidden(
                          dh, node_weight.data<float>(), c, dloss.data(), *paths, B, d, accumulate);
                    });
                  if (node_weight.requires_grad())
                    write_grad(node_weight, [&](float* dw, bool accumulate) {
                      cpu::hierarchical_softmax_backward_weight(
                          dw, hidden.data<float>(), c, dloss.data(), *paths, N, d, accumulate);
                    });
                  if (wants_grad(node_bias))
                    write_grad(node_bias, [&](float* db, bool accumulate) {
                      cpu::hierarchical_softmax_backward_bias(db, c, dloss.data(), *paths, N,
                                                              accumulate);
                    });
                });
}

namespace {

#ifdef BRIDLE_WITH_CUDA
// scores [B, rows] = hidden weight^T + bias on a GPU (the current device).
Tensor affine_scores_cuda(const Tensor& hidden, const Tensor& weight, const Tensor& bias) {
  const int64_t B = hidden.size(0), d = hidden.size(1), rows = weight.size(0);
  Tensor scores = bias.defined() ? Tensor::empty({B, rows}, hidden.device())
                                 : zeros({B, rows}, hidden.device());
  if (B == 0 || rows == 0) return scores;
  if (bias.defined()) cuda::broadcast_rows(scores.data<float>(), bias.data<float>(), B, rows);
  if (d > 0)
    cuda::gemm(false, true, B, rows, d, 1.0f, hidden.data<float>(), d, weight.data<float>(), d,
               1.0f, scores.data<float>(), rows);
  return scores;
}

// hierarchical_softmax_log_prob on a GPU (hierarchical_softmax.cu): the node
// scores from gemm, then every class's path; the tree's arrays are copied over
// on each call.
Tensor hierarchical_softmax_log_prob_cuda(const Tensor& hidden, const Tensor& node_weight,
                                          const Tensor& node_bias, const HuffmanTree& tree) {
  const char* op = "hierarchical_softmax_log_prob";
  const Device device = hidden.device();
  cuda::DeviceGuard guard(device);
  const int64_t V = tree.num_classes(), N = tree.num_nodes();
  const int64_t B = hidden.size(0), d = hidden.size(1);
  if (N == 0) return zeros({B, V}, device);  // one class, log-probability 0
  Tensor scores = affine_scores_cuda(hidden, node_weight, node_bias);
  Tensor out = Tensor::empty({B, V}, device);
  auto copies = std::make_shared<DeviceCopies>();  // kept alive by the backward's capture
  const std::vector<int64_t> codes(tree.codes.begin(), tree.codes.end());
  cuda::huffman_log_prob_forward(
      out.data<float>(), scores.data<float>(), copies->add(tree.offsets, device),
      copies->add(tree.points, device), copies->add(codes, device), B, V);
  if (!any_requires_grad({hidden, node_weight, node_bias})) return out;
  const int64_t* children = copies->add(tree.children, device);
  return record(out, op, {hidden, node_weight, node_bias},
                [hidden, node_weight, node_bias, scores, copies, children, B, d, N, V](
                    const Tensor& dout, const Tensor&) {
                  if (B == 0) return;
                  cuda::DeviceGuard guard(hidden.device());
                  Tensor dscores = Tensor::empty({B, N}, hidden.device());
                  float* ds = dscores.data<float>();
                  cuda::huffman_log_prob_backward(ds, scores.data<float>(), dout.data<float>(),
                                                  children, B, V);
                  if (hidden.requires_grad() && d > 0)  // dh += dS W
                    cuda::gemm(false, false, B, d, N, 1.0f, ds, N, node_weight.data<float>(), d,
                               1.0f, grad_buffer(hidden).data<float>(), d);
                  if (node_weight.requires_grad() && d > 0)  // dW += dS^T h
                    cuda::gemm(true, false, N, d, B, 1.0f, ds, N, hidden.data<float>(), d, 1.0f,
                               grad_buffer(node_weight).data<float>(), d);
                  if (wants_grad(node_bias))  // db += sum_b dS_b
                    cuda::sum_rows_backward(grad_buffer(node_bias).data<float>(), ds, B, N);
                });
}
#else
Tensor hierarchical_softmax_log_prob_cuda(const Tensor& hidden, const Tensor&, const Tensor&,
                                          const HuffmanTree&) {
  BRIDLE_FAIL("hierarchical_softmax_log_prob: this build has no CUDA backend (hidden is on {})",
              hidden.device().str());
}
#endif

}  // namespace

Tensor hierarchical_softmax_log_prob(const Tensor& hidden, const Tensor& node_weight,
                                     const HuffmanTree& tree, const Tensor& node_bias) {
  const char* op = "hierarchical_softmax_log_prob";
  const int64_t V = tree.num_classes(), N = tree.num_nodes();
  BRIDLE_CHECK(V > 0, "{}: the tree is empty (build it from counts)", op);
  check_layer(op, hidden, node_weight, node_bias, N, "node_weight", "node_bias",
              "one per internal node, V - 1", Kernels::kCpuAndCuda);
  if (hidden.device().is_cuda())
    return hierarchical_softmax_log_prob_cuda(hidden, node_weight, node_bias, tree);
  const int64_t B = hidden.size(0), d = hidden.size(1);
  Tensor scores = affine_scores(hidden, node_weight, node_bias);
  Tensor out = Tensor::empty({B, V});
  std::vector<float> workspace(static_cast<size_t>(get_num_threads()) * N);
  cpu::hierarchical_softmax_log_prob(out.data<float>(), workspace.data(), scores.data<float>(),
                                     tree.child_slot.data(), B, V);
  if (!any_requires_grad({hidden, node_weight, node_bias}) || N == 0) return out;
  auto children = std::make_shared<const std::vector<int64_t>>(tree.children);
  return record(out, op, {hidden, node_weight, node_bias},
                [hidden, node_weight, node_bias, scores, children, B, d, N, V](const Tensor& dout,
                                                                               const Tensor&) {
                  if (B == 0) return;
                  Tensor dscores = Tensor::empty({B, N});
                  float* ds = dscores.data<float>();
                  cpu::hierarchical_softmax_log_prob_backward(
                      ds, scores.data<float>(), dout.data<float>(), children->data(), B, V);
                  if (hidden.requires_grad() && d > 0)  // dh += dS W
                    cpu::gemm(false, false, B, d, N, 1.0f, ds, N, node_weight.data<float>(), d,
                              1.0f, grad_buffer(hidden).data<float>(), d);
                  if (node_weight.requires_grad() && d > 0)  // dW += dS^T h
                    cpu::gemm(true, false, N, d, B, 1.0f, ds, N, hidden.data<float>(), d, 1.0f,
                              grad_buffer(node_weight).data<float>(), d);
                  if (wants_grad(node_bias)) {  // db += sum_b dS_b
                    float* db = grad_buffer(node_bias).data<float>();
                    for (int64_t b = 0; b < B; ++b)
                      for (int64_t n = 0; n < N; ++n) db[n] += ds[b * N + n];
                  }
                });
}

std::pair<Tensor, Tensor> hierarchical_softmax_topk(const Tensor& hidden, const Tensor& node_weight,
                                                    const HuffmanTree& tree, int64_t k,
                                                    const Tensor& node_bias) {
  const char* op = "hierarchical_softmax_topk";
  const int64_t V = tree.num_classes(), N = tree.num_nodes();
  BRIDLE_CHECK(V > 0, "{}: the tree is empty (build it from counts)", op);
  check_layer(op, hidden, node_weight, node_bias, N, "node_weight", "node_bias",
              "one per internal node, V - 1", Kernels::kCpuAndCuda);
  BRIDLE_CHECK(k >= 1 && k <= V, "{}: k must be in [1, {}] (the number of classes), got {}", op, V,
               k);
  if (hidden.device().is_cuda()) {
    // On a GPU every class's log-probability is cheap to have, and a search
    // over the tree is not: the exact top k of the full [B, V] (ties to the
    // lower class).
    NoGradGuard no_grad;
    return topk(hierarchical_softmax_log_prob(hidden, node_weight, tree, node_bias), k, 1);
  }
  const int64_t B = hidden.size(0), d = hidden.size(1);
  auto [values, indices] = topk_outputs(B, k);
  float* out_values = values.data<float>();
  int64_t* out_indices = indices.data<int64_t>();
  const float* h_all = hidden.data<float>();
  const float* w = node_weight.data<float>();
  const float* bias = data_or_null(node_bias);
  const int64_t* children = tree.children.data();
  using Entry = std::pair<float, int64_t>;  // (log-probability, node or ~class)
  const auto by_value = [](const Entry& a, const Entry& b) { return a.first < b.first; };
  const auto by_value_desc = [](const Entry& a, const Entry& b) { return a.first > b.first; };
  // As topk: the larger log-probability first, ties to the lower class.
  const auto by_rank = [](const Entry& a, const Entry& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  };
#pragma omp parallel if (B * d * std::min <int64_t>(N, 64) > (1 << 15))
  {
    std::vector<Entry> frontier;  // max-heap of nodes and leaves to visit
    std::vector<Entry> best;      // min-heap of the k best leaves seen (a lower bound)
    std::vector<Entry> leaves;    // (log-probability, class) in the order they are reached
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < B; ++b) {
      frontier.clear();
      best.clear();
      leaves.clear();
      frontier.push_back(N == 0 ? Entry{0.0f, ~int64_t{0}} : Entry{0.0f, N - 1});
      // Leaves leave the frontier best first: nothing left in it can beat one.
      // Once k have, the search goes on while the frontier still holds the k-th
      // one's value, so that every class tied with it is seen (a node's value
      // bounds its leaves': log sigma <= 0), and ties go to the lower class.
      float kth_value = 0.0f;
      while (!frontier.empty()) {
        if (static_cast<int64_t>(leaves.size()) >= k && !(frontier.front().first >= kth_value))
          break;
        std::pop_heap(frontier.begin(), frontier.end(), by_value);
        const auto [log_p, x] = frontier.back();
        frontier.pop_back();
        if (x < 0) {
          leaves.push_back({log_p, ~x});
          if (static_cast<int64_t>(leaves.size()) == k) kth_value = log_p;
          continue;
        }
        const float s = row_dot(h_all + b * d, w + x * d, d) + (bias ? bias[x] : 0.0f);
        const float log_sig = -softplus(-s);
        for (int t = 0; t < 2; ++t) {
          const float value = log_p + (t == 0 ? log_sig : log_sig - s);
          if (static_cast<int64_t>(best.size()) == k && value < best.front().first) continue;
          const int64_t child = children[2 * x + t];
          if (child < 0) {
            if (static_cast<int64_t>(best.size()) == k) {
              std::pop_heap(best.begin(), best.end(), by_value_desc);
              best.pop_back();
            }
            best.push_back({value, child});
            std::push_heap(best.begin(), best.end(), by_value_desc);
          }
          frontier.push_back({value, child});
          std::push_heap(frontier.begin(), frontier.end(), by_value);
        }
      }
      std::sort(leaves.begin(), leaves.end(), by_rank);
      for (int64_t i = 0; i < k; ++i) {
        out_values[b * k + i] = leaves[i].first;
        out_indices[b * k + i] = leaves[i].second;
      }
    }
  }
  return {values, indices};
}

namespace {

void check_clusters(const char* op, const ClassClusters& clusters) {
  BRIDLE_CHECK(clusters.num_classes() > 0 && clusters.num_clusters() > 0,
               "{}: the clusters are empty (build them from cluster_of_class)", op);
}

// within_cluster_nll on a GPU (hierarchical_softmax.cu), from the batch built on
// the host as on the CPU; the row losses come back to be checked for NaN.
Tensor within_cluster_nll_cuda(const Tensor& hidden, const Tensor& class_weight,
                               const Tensor& class_bias, const cpu::ClusterBatch& batch) {
#ifdef BRIDLE_WITH_CUDA
  const char* op = "within_cluster_nll";
  const Device device = hidden.device();
  cuda::DeviceGuard guard(device);
  const int64_t B = hidden.size(0), d = hidden.size(1), Z = batch.offsets[B];
  std::vector<int64_t> row_of(static_cast<size_t>(Z));
  for (int64_t b = 0; b < B; ++b)
    std::fill(row_of.begin() + batch.offsets[b], row_of.begin() + batch.offsets[b + 1], b);
  auto copies = std::make_shared<DeviceCopies>();  // kept alive by the backward's capture
  const cuda::DeviceClusters c{copies->add(batch.offsets, device),
                               copies->add(batch.classes, device),
                               copies->add(row_of, device),
                               copies->add(batch.target_pos, device),
                               copies->add(batch.group_offsets, device),
                               copies->add(batch.group_rows, device),
                               copies->add(batch.work_group, device),
                               copies->add(batch.work_member, device),
                               copies->add(batch.work_class, device),
                               B,
                               Z,
                               static_cast<int64_t>(batch.work_class.size())};
  Tensor nll = Tensor::empty({B}, device), lse = Tensor::empty({B}, device),
         logits = Tensor::empty({Z}, device);
  cuda::within_cluster_forward(nll.data<float>(), lse.data<float>(), logits.data<float>(),
                               hidden.data<float>(), class_weight.data<float>(),
                               data_or_null(class_bias), c, d);
  const std::vector<float> host_nll = nll.to_vector();
  check_rows_finite(op, host_nll.data(), B);
  return record(nll, op, {hidden, class_weight, class_bias},
                [hidden, class_weight, class_bias, copies, c, logits, lse, d, Z](const Tensor& dout,
                                                                                 const Tensor&) {
                  cuda::DeviceGuard guard(hidden.device());
                  auto grad_of = [](const Tensor& t) {
                    return wants_grad(t) ? grad_buffer(t).data<float>() : nullptr;
                  };
                  Tensor dlogits = Tensor::empty({Z}, hidden.device());
                  cuda::within_cluster_backward(
                      grad_of(hidden), grad_of(class_weight), grad_of(class_bias),
                      dlogits.data<float>(), logits.data<float>(), lse.data<float>(),
                      dout.data<float>(), hidden.data<float>(), class_weight.data<float>(), c, d);
                });
#else
  (void)class_weight, (void)class_bias, (void)batch;
  BRIDLE_FAIL("within_cluster_nll: this build has no CUDA backend (hidden is on {})",
              hidden.device().str());
#endif
}

}  // namespace

Tensor within_cluster_nll(const Tensor& hidden, const Tensor& class_weight,
                          const Tensor& class_bias, const Tensor& targets,
                          const ClassClusters& clusters) {
  const char* op = "within_cluster_nll";
  check_clusters(op, clusters);
  const int64_t V = clusters.num_classes();
  check_layer(op, hidden, class_weight, class_bias, V, "class_weight", "class_bias",
              "one per class", Kernels::kCpuAndCuda);
  check_device(op, {hidden, targets}, Kernels::kCpuAndCuda);
  const int64_t B = hidden.size(0), d = hidden.size(1);
  auto batch = std::make_shared<cpu::ClusterBatch>(
      cpu::make_cluster_batch(clusters, check_targets(op, targets, B, V)));
  if (hidden.device().is_cuda())
    return within_cluster_nll_cuda(hidden, class_weight, class_bias, *batch);
  const int64_t Z = batch->offsets[B];
  Tensor nll = Tensor::empty({B}), lse = Tensor::empty({B}), logits = Tensor::empty({Z});
  cpu::within_cluster_forward(nll.data<float>(), lse.data<float>(), logits.data<float>(),
                              hidden.data<float>(), class_weight.data<float>(),
                              data_or_null(class_bias), *batch, B, d);
  check_rows_finite(op, nll.data<float>(), B);
  return record(nll, op, {hidden, class_weight, class_bias},
                [hidden, class_weight, class_bias, batch, logits, lse, B, d, Z](const Tensor& dout,
                                                                                const Tensor&) {
                  Tensor dlogits = Tensor::empty({Z});
                  float* dz = dlogits.data<float>();
                  cpu::within_cluster_dlogits(dz, logits.data<float>(), lse.data<float>(),
                                              dout.data<float>(), *batch, B);
                  if (hidden.requires_grad())
                    write_grad(hidden, [&](float* dh, bool accumulate) {
                      cpu::within_cluster_backward_hidden(dh, class_weight.data<float>(), dz,
                                                          *batch, B, d, accumulate);
                    });
                  const bool weight_grad = class_weight.requires_grad(),
                             bias_grad = wants_grad(class_bias);
                  if (weight_grad || bias_grad)
                    cpu::within_cluster_backward_weight(
                        weight_grad ? grad_buffer(class_weight).data<float>() : nullptr,
                        bias_grad ? grad_buffer(class_bias).data<float>() : nullptr,
                        hidden.data<float>(), dz, *batch, d);
                });
}

Tensor class_based_softmax_loss(const Tensor& hidden, const Tensor& cluster_weight,
                                const Tensor& cluster_bias, const Tensor& class_weight,
                                const Tensor& class_bias, const Tensor& targets,
                                const ClassClusters& clusters, Reduction reduction) {
  const char* op = "class_based_softmax_loss";
  check_clusters(op, clusters);
  const int64_t V = clusters.num_classes(), K = clusters.num_clusters();
  check_layer(op, hidden, cluster_weight, cluster_bias, K, "cluster_weight", "cluster_bias",
              "one per cluster", Kernels::kCpuAndCuda);
  check_layer(op, hidden, class_weight, class_bias, V, "class_weight", "class_bias",
              "one per class", Kernels::kCpuAndCuda);
  const int64_t B = hidden.size(0);
  const std::vector<int64_t> y = check_targets(op, targets, B, V);
  std::vector<int64_t> cluster_targets(B);
  for (int64_t b = 0; b < B; ++b) cluster_targets[b] = clusters.cluster_of_class[y[b]];
  Tensor per_row = cross_entropy(linear(hidden, cluster_weight, cluster_bias),
                                 from_vector(cluster_targets).to(hidden.device()),
                                 {.reduction = Reduction::kNone}) +
                   within_cluster_nll(hidden, class_weight, class_bias, targets, clusters);
  if (reduction == Reduction::kNone) return per_row;
  if (reduction == Reduction::kSum || B == 0) return sum(per_row);
  return sum(per_row) * (1.0f / static_cast<float>(B));
}

namespace {

#ifdef BRIDLE_WITH_CUDA
// class_based_log_prob on a GPU (hierarchical_softmax.cu); the clusters' arrays
// are copied over on each call.
Tensor class_based_log_prob_cuda(const Tensor& class_logits, const Tensor& cluster_logits,
                                 const ClassClusters& clusters) {
  const char* op = "class_based_log_prob";
  const Device device = class_logits.device();
  cuda::DeviceGuard guard(device);
  const int64_t V = clusters.num_classes(), K = clusters.num_clusters();
  const int64_t B = class_logits.size(0);
  Tensor out = Tensor::empty({B, V}, device), within_lse = Tensor::empty({B, K}, device),
         cluster_lse = Tensor::empty({B}, device);
  auto copies = std::make_shared<DeviceCopies>();  // kept alive by the backward's capture
  const int64_t* offsets = copies->add(clusters.offsets, device);
  const int64_t* members = copies->add(clusters.members, device);
  cuda::class_log_prob_forward(out.data<float>(), within_lse.data<float>(),
                               cluster_lse.data<float>(), class_logits.data<float>(),
                               cluster_logits.data<float>(), offsets, members, B, V, K);
  if (!any_requires_grad({class_logits, cluster_logits})) return out;
  return record(
      out, op, {class_logits, cluster_logits},
      [class_logits, cluster_logits, within_lse, cluster_lse, copies, offsets, members, B, V, K](
          const Tensor& dout, const Tensor&) {
        cuda::DeviceGuard guard(class_logits.device());
        Tensor sums = Tensor::empty({B, K}, class_logits.device());
        cuda::class_log_prob_backward(
            class_logits.requires_grad() ? grad_buffer(class_logits).data<float>() : nullptr,
            cluster_logits.requires_grad() ? grad_buffer(cluster_logits).data<float>() : nullptr,
            sums.data<float>(), class_logits.data<float>(), cluster_logits.data<float>(),
            within_lse.data<float>(), cluster_lse.data<float>(), dout.data<float>(), offsets,
            members, B, V, K);
      });
}
#else
Tensor class_based_log_prob_cuda(const Tensor& class_logits, const Tensor&, const ClassClusters&) {
  BRIDLE_FAIL("class_based_log_prob: this build has no CUDA backend (class_logits are on {})",
              class_logits.device().str());
}
#endif

}  // namespace

Tensor class_based_log_prob(const Tensor& class_logits, const Tensor& cluster_logits,
                            const ClassClusters& clusters) {
  const char* op = "class_based_log_prob";
  check_clusters(op, clusters);
  const int64_t V = clusters.num_classes(), K = clusters.num_clusters();
  check_float(op, class_logits, "class_logits");
  check_float(op, cluster_logits, "cluster_logits");
  check_device(op, {class_logits, cluster_logits}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(class_logits.dim() == 2 && class_logits.size(1) == V,
               "{}: class_logits must be [B, {}] (one per class), got {}", op, V,
               shape_str(class_logits.shape()));
  const int64_t B = class_logits.size(0);
  BRIDLE_CHECK(cluster_logits.shape() == (Shape{B, K}),
               "{}: cluster_logits must be [{}, {}] (one per cluster), got {}", op, B, K,
               shape_str(cluster_logits.shape()));
  if (class_logits.device().is_cuda())
    return class_based_log_prob_cuda(class_logits, cluster_logits, clusters);
  Tensor out = Tensor::empty({B, V}), within_lse = Tensor::empty({B, K}),
         cluster_lse = Tensor::empty({B});
  cpu::class_based_log_prob_forward(out.data<float>(), within_lse.data<float>(),
                                    cluster_lse.data<float>(), class_logits.data<float>(),
                                    cluster_logits.data<float>(), clusters.offsets.data(),
                                    clusters.members.data(), B, V, K);
  if (!any_requires_grad({class_logits, cluster_logits})) return out;
  auto saved = std::make_shared<const ClassClusters>(clusters);
  return record(
      out, op, {class_logits, cluster_logits},
      [class_logits, cluster_logits, within_lse, cluster_lse, saved, B, V, K](const Tensor& dout,
                                                                              const Tensor&) {
        cpu::class_based_log_prob_backward(
            class_logits.requires_grad() ? grad_buffer(class_logits).data<float>() : nullptr,
            cluster_logits.requires_grad() ? grad_buffer(cluster_logits).data<float>() : nullptr,
            class_logits.data<float>(), cluster_logits.data<float>(), within_lse.data<float>(),
            cluster_lse.data<float>(), dout.data<float>(), saved->offsets.data(),
            saved->members.data(), B, V, K);
      });
}

std::pair<Tensor, Tensor> class_based_softmax_topk(const Tensor& hidden,
                                                   const Tensor& cluster_weight,
                                                   const Tensor& cluster_bias,
                                                   const Tensor& class_weight,
                                                   const Tensor& class_bias,
                                                   const ClassClusters& clusters, int64_t k) {
  const char* op = "class_based_softmax_topk";
  check_clusters(op, clusters);
  const int64_t V = clusters.num_classes(), K = clusters.num_clusters();
  check_layer(op, hidden, cluster_weight, cluster_bias, K, "cluster_weight", "cluster_bias",
              "one per cluster", Kernels::kCpuAndCuda);
  check_layer(op, hidden, class_weight, class_bias, V, "class_weight", "class_bias",
              "one per class", Kernels::kCpuAndCuda);
  BRIDLE_CHECK(k >= 1 && k <= V, "{}: k must be in [1, {}] (the number of classes), got {}", op, V,
               k);
  if (hidden.device().is_cuda()) {
    // As hierarchical_softmax_topk: the exact top k of every class's
    // log-probability (ties to the lower class, as here).
    NoGradGuard no_grad;
    return topk(class_based_log_prob(linear(hidden, class_weight, class_bias),
                                     linear(hidden, cluster_weight, cluster_bias), clusters),
                k, 1);
  }
  const int64_t B = hidden.size(0), d = hidden.size(1);
  // Cluster log-probabilities for all rows at once: [B, K].
  Tensor cluster_log_p = affine_scores(hidden, cluster_weight, cluster_bias);
  float* clp_all = cluster_log_p.data<float>();
  for (int64_t b = 0; b < B; ++b) {
    float* u = clp_all + b * K;
    bool has_nan = false;
    const float max = row_max(u, K, has_nan);
    const float L = max + std::log(row_exp_sum(u, K, max, 1.0f, nullptr));
    for (int64_t j = 0; j < K; ++j) u[j] -= L;
  }
  auto [values, indices] = topk_outputs(B, k);
  float* out_values = values.data<float>();
  int64_t* out_indices = indices.data<int64_t>();
  const float* h_all = hidden.data<float>();
  const float* w = class_weight.data<float>();
  const float* bias = data_or_null(class_bias);
  using Entry = std::pair<float, int64_t>;  // (log-probability, class)
  // Higher value first; ties to the lower class, as topk.
  const auto better = [](const Entry& a, const Entry& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
#pragma omp parallel if (B * d * V > (1 << 22))
  {
    std::vector<int64_t> order(K);
    std::vector<float> z;
    std::vector<Entry> best;  // heap with the worst of the k best on top
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < B; ++b) {
      const float* clp = clp_all + b * K;
      const float* h = h_all + b * d;
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(), [&](int64_t a, int64_t c) {
        return clp[a] > clp[c] || (clp[a] == clp[c] && a < c);
      });
      best.clear();
      for (int64_t kc : order) {
        // No class of this cluster (or of a later one) beats the k-th best so far.
        if (static_cast<int64_t>(best.size()) == k && clp[kc] < best.front().first) break;
        const int64_t begin = clusters.offsets[kc], size = clusters.size(kc);
        z.resize(size);
        for (int64_t i = 0; i < size; ++i) {
          const int64_t j = clusters.members[begin + i];
          z[i] = row_dot(h, w + j * d, d) + (bias ? bias[j] : 0.0f);
        }
        bool has_nan = false;
        const float max = row_max(z.data(), size, has_nan);
        const float shift =
            clp[kc] - max - std::log(row_exp_sum(z.data(), size, max, 1.0f, nullptr));
        for (int64_t i = 0; i < size; ++i) {
          const Entry entry{z[i] + shift, clusters.members[begin + i]};
          if (static_cast<int64_t>(best.size()) == k) {
            if (!better(entry, best.front())) continue;
            std::pop_heap(best.begin(), best.end(), better);
            best.pop_back();
          }
          best.push_back(entry);
          std::push_heap(best.begin(), best.end(), better);
        }
      }
      std::sort_heap(best.begin(), best.end(), better);
      for (int64_t i = 0; i < k; ++i) {
        out_values[b * k + i] = best[i].first;
        out_indices[b * k + i] = best[i].second;
      }
    }
  }
  return {values, indices};
}

}  // namespace bridle
