// Sampled softmax and NCE: ops, backward and CPU kernels (see sampled_softmax.h).
//
// Derivation, for one row with N logits z (true columns t < T first):
//   softmax: loss = lse(z) - (1/T) sum_t z_t       d loss / d z_j = p_j - [j < T] / T
//   nce:     loss = sum_j sigmoid_ce(z_j, l_j)      d loss / d z_j = sigmoid(z_j) - l_j
//            sigmoid_ce(z, l) = -l log sigmoid(z) - (1 - l) log(1 - sigmoid(z))
//                             = max(z, 0) - l z + log(1 + e^-|z|)
//            with l_j = true_label (1, or 1/T) for j < T and 0 for the sampled columns
// with p = softmax(z) = exp(z - lse) and softplus' = sigmoid. The logits are
// z_bj = h_b . w_c + b_c - log Q_j for the column's class c, so with dz = d loss / dz
//   dh_b += sum_j dz_bj w_c      dw_c += sum_(b,j) dz_bj h_b      db_c += sum_(b,j) dz_bj.
// The sampled columns are shared by all rows: their logits are one GEMM of hidden
// [B, d] with the gathered rows [S, d], and their gradients two more
// (dh += dz_s gathered, dgathered = dz_s^T hidden), before the rows of dgathered
// are added back into dweight at their ids.
#include "ops/sampled_softmax.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "autograd/node.h"
#include "core/cuda/cuda.h"
#include "core/factory.h"
#include "ops/cuda_kernels.h"
#include "ops/fast_math.h"
#include "ops/loss_utils.h"
#include "ops/matmul.h"
#include "ops/op_utils.h"
#include "ops/softmax.h"

namespace bridle {
namespace cpu {

namespace {

constexpr int64_t kParallelWork = 1 << 15;  // below this much work: one thread
constexpr int64_t kColumnBlock = 64;        // dweight's scatter: columns per task

// Sigmoid cross-entropy with label l, without overflow; exactly 0 at
// kAccidentalHitLogit with l = 0.
inline float sigmoid_ce(float z, float l) {
  return std::max(z, 0.0f) - l * z + std::log1p(std::exp(-std::abs(z)));
}

// The textbook form, -l log p - (1 - l) log(1 - p), with log p = -log(1 + e^-z)
// and log(1 - p) = -log(1 + e^z), each log(1 + e^x) evaluated without overflow.
inline double sigmoid_ce_naive(double z, double l) {
  auto log1pexp = [](double x) {
    return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
  };
  return l * log1pexp(-z) + (1.0 - l) * log1pexp(z);
}

bool is_true_class(int64_t c, const int64_t* y, int64_t T) {
  for (int64_t t = 0; t < T; ++t)
    if (y[t] == c) return true;
  return false;
}

}  // namespace

void sampled_logits(float* logits, float* gathered, const float* weight, const float* bias,
                    const float* hidden, const int64_t* labels, const int64_t* sampled,
                    const float* true_log_q, const float* sampled_log_q,
                    bool remove_accidental_hits, int64_t B, int64_t T, int64_t S, int64_t d) {
  const int64_t N = T + S;
#pragma omp parallel for if (S * d > kParallelWork)
  for (int64_t s = 0; s < S; ++s)
    std::memcpy(gathered + s * d, weight + sampled[s] * d, sizeof(float) * d);
  // Columns T.. of every row: hidden x gathered^T, written in place (ldc = N).
  gemm(false, true, B, S, d, 1.0f, hidden, d, gathered, d, 0.0f, logits + T, N);
#pragma omp parallel for if (B * N > kParallelWork)
  for (int64_t b = 0; b < B; ++b) {
    float* z = logits + b * N;
    const float* h = hidden + b * d;
    const int64_t* y = labels + b * T;
    for (int64_t t = 0; t < T; ++t) {
      float v = row_dot(h, weight + y[t] * d, d);
      if (bias) v += bias[y[t]];
      if (true_log_q) v -= true_log_q[b * T + t];
      z[t] = v;
    }
    float* zs = z + T;
    if (bias && sampled_log_q) {
      for (int64_t s = 0; s < S; ++s) zs[s] += bias[sampled[s]] - sampled_log_q[s];
    } else if (bias) {
      for (int64_t s = 0; s < S; ++s) zs[s] += bias[sampled[s]];
    } else if (sampled_log_q) {
      for (int64_t s = 0; s < S; ++s) zs[s] -= sampled_log_q[s];
    }
    if (remove_accidental_hits)
      for (int64_t s = 0; s < S; ++s)
        if (is_true_class(sampled[s], y, T)) zs[s] = kAccidentalHitLogit;
  }
}

void sampled_logits_naive(float* logits, const float* weight, const float* bias,
                          const float* hidden, const int64_t* labels, const int64_t* sampled,
                          const float* true_log_q, const float* sampled_log_q,
                          bool remove_accidental_hits, int64_t B, int64_t T, int64_t S, int64_t d) {
  const int64_t N = T + S;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t* y = labels + b * T;
    for (int64_t j = 0; j < N; ++j) {
      const int64_t c = j < T ? y[j] : sampled[j - T];
      double v = 0.0;
      for (int64_t k = 0; k < d; ++k)
        v += static_cast<double>(hidden[b * d + k]) * weight[c * d + k];
      if (bias) v += bias[c];
      if (j < T && true_log_q) v -= true_log_q[b * T + j];
      if (j >= T && sampled_log_q) v -= sampled_log_q[j - T];
      if (j >= T && remove_accidental_hits && is_true_class(c, y, T)) v = kAccidentalHitLogit;
      logits[b * N + j] = static_cast<float>(v);
    }
  }
}

void sampled_softmax_forward(float* loss, float* lse, const float* logits, int64_t B, int64_t T,
                             int64_t S) {
  const int64_t N = T + S;
  const float inv_T = 1.0f / static_cast<float>(T);
#pragma omp parallel for if (B * N > kParallelWork)
  for (int64_t b = 0; b < B; ++b) {
    const float* z = logits + b * N;
    const float l = row_logsumexp(z, N);
    float true_sum = 0.0f;
    for (int64_t t = 0; t < T; ++t) true_sum += z[t];
    lse[b] = l;
    loss[b] = l - true_sum * inv_T;
  }
}

void sampled_softmax_forward_naive(float* loss, float* lse, const float* logits, int64_t B,
                                   int64_t T, int64_t S) {
  const int64_t N = T + S;
  for (int64_t b = 0; b < B; ++b) {
    const float* z = logits + b * N;
    double max = z[0];
    for (int64_t j = 1; j < N; ++j) max = std::max<double>(max, z[j]);
    double sum = 0.0;
    for (int64_t j = 0; j < N; ++j) sum += std::exp(z[j] - max);
    const double l = max + std::log(sum);
    double row = 0.0;  // softmax cross-entropy with labels 1/T on the true columns
    for (int64_t t = 0; t < T; ++t) row += (l - z[t]) / static_cast<double>(T);
    lse[b] = static_cast<float>(l);
    loss[b] = static_cast<float>(row);
  }
}

void nce_forward(float* loss, const float* logits, float true_label, int64_t B, int64_t T,
                 int64_t S) {
  const int64_t N = T + S;
#pragma omp parallel for if (B * N > kParallelWork)
  for (int64_t b = 0; b < B; ++b) {
    const float* z = logits + b * N;
    float sum = 0.0f;
    for (int64_t t = 0; t < T; ++t) sum += sigmoid_ce(z[t], true_label);
    for (int64_t j = T; j < N; ++j) sum += sigmoid_ce(z[j], 0.0f);
    loss[b] = sum;
  }
}

void nce_forward_naive(float* loss, const float* logits, float true_label, int64_t B, int64_t T,
                       int64_t S) {
  const int64_t N = T + S;
  for (int64_t b = 0; b < B; ++b) {
    double sum = 0.0;
    for (int64_t j = 0; j < N; ++j)
      sum += sigmoid_ce_naive(logits[b * N + j], j < T ? true_label : 0.0);
    loss[b] = static_cast<float>(sum);
  }
}

void sampled_softmax_dlogits(float* dlogits, const float* logits, const float* lse,
                             const float* dloss, int64_t B, int64_t T, int64_t S) {
  const int64_t N = T + S;
  const float inv_T = 1.0f / static_cast<float>(T);
#pragma omp parallel for if (B * N > kParallelWork)
  for (int64_t b = 0; b < B; ++b) {
    const float* z = logits + b * N;
    float* dz = dlogits + b * N;
    const float g = dloss[b], l = lse[b];
#pragma omp simd
    for (int64_t j = 0; j < N; ++j) dz[j] = g * fast_exp(z[j] - l);
    for (int64_t t = 0; t < T; ++t) dz[t] -= g * inv_T;
  }
}

void nce_dlogits(float* dlogits, const float* logits, const float* dloss, float true_label,
                 int64_t B, int64_t T, int64_t S) {
  const int64_t N = T + S;
#pragma omp parallel for if (B * N > kParallelWork)
  for (int64_t b = 0; b < B; ++b) {
    const float* z = logits + b * N;
    float* dz = dlogits + b * N;
    const float g = dloss[b];
    // sigmoid(z) = 1 / (1 + e^-z): e^-z is +inf for a removed hit, giving exactly 0.
#pragma omp simd
    for (int64_t j = 0; j < N; ++j)
      dz[j] = g * (1.0f / (1.0f + fast_exp(-z[j])) - (j < T ? true_label : 0.0f));
  }
}

void sampled_logits_backward(float* dhidden, float* dweight, float* dbias, const float* dlogits,
                             const float* gathered, float* scratch, const float* weight,
                             const float* hidden, const int64_t* labels, const int64_t* sampled,
                             int64_t B, int64_t T, int64_t S, int64_t d) {
  const int64_t N = T + S;
  const float* dz_sampled = dlogits + T;  // [B, S] with row stride N
  if (dhidden) {
    gemm(false, false, B, d, S, 1.0f, dz_sampled, N, gathered, d, 1.0f, dhidden, d);
#pragma omp parallel for if (B * T * d > kParallelWork)
    for (int64_t b = 0; b < B; ++b) {
      float* dh = dhidden + b * d;
      for (int64_t t = 0; t < T; ++t) {
        const float g = dlogits[b * N + t];
        const float* w = weight + labels[b * T + t] * d;
#pragma omp simd
        for (int64_t k = 0; k < d; ++k) dh[k] += g * w[k];
      }
    }
  }
  if (dweight) {
    gemm(true, false, S, d, B, 1.0f, dz_sampled, N, hidden, d, 0.0f, scratch, d);
    // Rows repeat (an id sampled twice, a class that is true in several rows or
    // also sampled), so threads split the columns, not the rows: no two write
    // the same element.
#pragma omp parallel for if ((S + B * T) * d > kParallelWork)
    for (int64_t k0 = 0; k0 < d; k0 += kColumnBlock) {
      const int64_t k1 = std::min(d, k0 + kColumnBlock);
      for (int64_t s = 0; s < S; ++s) {
        float* dw = dweight + sampled[s] * d;
        const float* src = scratch + s * d;
#pragma omp simd
        for (int64_t k = k0; k < k1; ++k) dw[k] += src[k];
      }
      for (int64_t b = 0; b < B; ++b) {
        const float* h = hidden + b * d;
        for (int64_t t = 0; t < T; ++t) {
          const float g = dlogits[b * N + t];
          float* dw = dweight + labels[b * T + t] * d;
#pragma omp simd
          for (int64_t k = k0; k < k1; ++k) dw[k] += g * h[k];
        }
      }
    }
  }
  if (dbias) {
    for (int64_t b = 0; b < B; ++b) {
      const float* dz = dlogits + b * N;
      for (int64_t t = 0; t < T; ++t) dbias[labels[b * T + t]] += dz[t];
      for (int64_t s = 0; s < S; ++s) dbias[sampled[s]] += dz[T + s];
    }
  }
}

void sampled_logits_backward_naive(float* dhidden, float* dweight, float* dbias,
                                   const float* dlogits, const float* weight, const float* hidden,
                                   const int64_t* labels, const int64_t* sampled, int64_t B,
                                   int64_t T, int64_t S, int64_t d) {
  const int64_t N = T + S;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t j = 0; j < N; ++j) {
      const int64_t c = j < T ? labels[b * T + j] : sampled[j - T];
      const float g = dlogits[b * N + j];
      for (int64_t k = 0; k < d; ++k) {
        if (dhidden) dhidden[b * d + k] += g * weight[c * d + k];
        if (dweight) dweight[c * d + k] += g * hidden[b * d + k];
      }
      if (dbias) dbias[c] += g;
    }
  }
}

}  // namespace cpu

namespace {

enum class SampledLoss { kSoftmax, kNce };

struct SampledConfig {
  const char* op;
  SampledLoss loss;
  int64_t num_true;
  bool remove_accidental_hits;
  bool subtract_log_q;
  Reduction reduction;
  float true_label;  // NCE's label of the true columns
};

// Integer ids as int64, checked to lie in [0, V).
std::vector<int64_t> class_ids(const char* op, const Tensor& ids, int64_t V, int64_t row_length,
                               const char* what) {
  std::vector<int64_t> out = ids.cpu().to(DType::kInt64).to_int_vector();
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] >= 0 && out[i] < V) continue;
    if (row_length > 0)
      BRIDLE_FAIL("{}: {} {} at row {} is out of range for {} classes (valid: 0..{})", op, what,
                  out[i], static_cast<int64_t>(i) / row_length, V, V - 1);
    BRIDLE_FAIL("{}: {} {} at position {} is out of range for {} classes (valid: 0..{})", op, what,
                out[i], i, V, V - 1);
  }
  return out;
}

// log of expected counts that must be finite and > 0, as float32.
std::vector<float> log_counts(const char* op, const Tensor& counts, const char* arg) {
  BRIDLE_CHECK(!counts.requires_grad(), "{}: {} are constants here; detach() them", op, arg);
  std::vector<float> out = counts.to_vector();
  for (size_t i = 0; i < out.size(); ++i) {
    BRIDLE_CHECK(std::isfinite(out[i]) && out[i] > 0.0f,
                 "{}: {} must be finite and > 0 (subtract_log_q takes their log), got {} at "
                 "element {}",
                 op, arg, out[i], i);
    out[i] = std::log(out[i]);
  }
  return out;
}

// The op on a GPU (sampled_softmax.cu), after the same checks on the host: the
// checked ids and log Q (B * T + S values) go to the device, and the row losses
// come back to be checked for NaN as on the CPU (a copy that waits for the GPU).
Tensor sampled_loss_cuda(const SampledConfig& cfg, const Tensor& weight, const Tensor& bias,
                         const Tensor& hidden, const std::vector<int64_t>& y,
                         const std::vector<int64_t>& ids, const std::vector<float>& true_log_q,
                         const std::vector<float>& sampled_log_q, int64_t B, int64_t T, int64_t S) {
#ifdef BRIDLE_WITH_CUDA
  const Device device = hidden.device();
  cuda::DeviceGuard guard(device);
  const int64_t V = weight.size(0), d = weight.size(1), N = T + S;
  const Tensor labels_on_device = from_vector(y).to(device),
               ids_on_device = from_vector(ids).to(device);
  const Tensor true_log_q_on_device =
      cfg.subtract_log_q ? from_vector(true_log_q).to(device) : Tensor();
  const Tensor sampled_log_q_on_device =
      cfg.subtract_log_q ? from_vector(sampled_log_q).to(device) : Tensor();
  auto data_or_null = [](const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; };
  Tensor logits = Tensor::empty({B, N}, device), gathered = Tensor::empty({S, d}, device);
  cuda::sampled_logits(logits.data<float>(), gathered.data<float>(), weight.data<float>(),
                       data_or_null(bias), hidden.data<float>(), labels_on_device.data<int64_t>(),
                       ids_on_device.data<int64_t>(), data_or_null(true_log_q_on_device),
                       data_or_null(sampled_log_q_on_device), cfg.remove_accidental_hits, V, B, T,
                       S, d);
  Tensor row_loss = Tensor::empty({B}, device);
  const bool softmax = cfg.loss == SampledLoss::kSoftmax;
  Tensor lse = softmax ? Tensor::empty({B}, device) : Tensor();
  if (softmax)
    cuda::sampled_softmax_rows(row_loss.data<float>(), lse.data<float>(), logits.data<float>(), B,
                               T, S);
  else
    cuda::nce_rows(row_loss.data<float>(), logits.data<float>(), cfg.true_label, B, T, S);
  const std::vector<float> host_loss = row_loss.to_vector();
  for (int64_t b = 0; b < B; ++b)
    BRIDLE_CHECK(!std::isnan(host_loss[b]),
                 "{}: row {} gives a NaN loss (hidden {}, weight or bias holds NaN or inf)", cfg.op,
                 b, shape_str(hidden.shape()));
  const float scale = mean_scale(cfg.reduction, static_cast<double>(B));
  Tensor loss = row_loss;
  if (cfg.reduction != Reduction::kNone) {
    loss = Tensor::empty({}, device);
    cuda::sum_forward(loss.data<float>(), row_loss.data<float>(), 1, B, 1, scale);
  }
  return record(
      loss, cfg.op, {weight, bias, hidden},
      [cfg, weight, bias, hidden, logits, lse, gathered, labels_on_device, ids_on_device, scale, V,
       B, T, S, d](const Tensor& dout, const Tensor&) {
        const Device device = hidden.device();
        cuda::DeviceGuard guard(device);
        Tensor dlogits = Tensor::empty({B, T + S}, device);
        cuda::sampled_dlogits(dlogits.data<float>(), logits.data<float>(),
                              lse.defined() ? lse.data<float>() : nullptr,
                              cfg.loss == SampledLoss::kNce, cfg.true_label, dout.data<float>(),
                              scale, cfg.reduction == Reduction::kNone, B, T, S);
        auto grad_of = [](const Tensor& t) {
          return t.defined() && t.requires_grad() ? grad_buffer(t).data<float>() : nullptr;
        };
        Tensor scratch = weight.requires_grad() ? Tensor::empty({S, d}, device) : Tensor();
        cuda::sampled_logits_backward(
            grad_of(hidden), grad_of(weight), grad_of(bias), dlogits.data<float>(),
            gathered.data<float>(), scratch.defined() ? scratch.data<float>() : nullptr,
            weight.data<float>(), hidden.data<float>(), labels_on_device.data<int64_t>(),
            ids_on_device.data<int64_t>(), V, B, T, S, d);
      });
#else
  (void)weight, (void)bias, (void)y, (void)ids, (void)true_log_q, (void)sampled_log_q, (void)B,
      (void)T, (void)S;
  BRIDLE_FAIL("{}: this build has no CUDA backend (hidden is on {})", cfg.op,
              hidden.device().str());
#endif
}

Tensor sampled_loss(const SampledConfig& cfg, const Tensor& weight, const Tensor& bias,
                    const Tensor& hidden, const Tensor& labels, const SampledValues& sampled) {
  const char* op = cfg.op;
  check_float(op, weight, "weight");
  check_float(op, hidden, "hidden");
  if (bias.defined()) check_float(op, bias, "bias");
  BRIDLE_CHECK(labels.defined(), "{}: no labels given", op);
  BRIDLE_CHECK(sampled.ids.defined(), "{}: no sampled ids given", op);
  check_device(op,
               {weight, bias, hidden, labels, sampled.ids, sampled.true_expected_count,
                sampled.sampled_expected_count},
               Kernels::kCpuAndCuda);
  BRIDLE_CHECK(weight.dim() == 2 && weight.size(0) > 0 && weight.size(1) > 0,
               "{}: weight must be [V, d] with V, d > 0, got {}", op, shape_str(weight.shape()));
  const int64_t V = weight.size(0), d = weight.size(1), T = cfg.num_true;
  BRIDLE_CHECK(hidden.dim() == 2 && hidden.size(1) == d,
               "{}: hidden must be [B, {}] for weight {}, got {}", op, d, shape_str(weight.shape()),
               shape_str(hidden.shape()));
  const int64_t B = hidden.size(0);
  BRIDLE_CHECK(!bias.defined() || bias.shape() == Shape{V},
               "{}: bias must be [{}] (one per class of weight {}), got {}", op, V,
               shape_str(weight.shape()), shape_str(bias.shape()));
  BRIDLE_CHECK(T >= 1, "{}: num_true must be at least 1, got {}", op, T);
  BRIDLE_CHECK(is_integer(labels.dtype()), "{}: labels must be int32 or int64 class ids, got {}",
               op, dtype_name(labels.dtype()));
  const bool labels_ok = labels.shape() == Shape{B, T} || (T == 1 && labels.shape() == Shape{B});
  BRIDLE_CHECK(labels_ok, "{}: labels must be [{}, {}]{} for hidden {} and num_true {}, got {}", op,
               B, T, T == 1 ? fmt::format(" or [{}]", B) : "", shape_str(hidden.shape()), T,
               shape_str(labels.shape()));
  BRIDLE_CHECK(
      is_integer(sampled.ids.dtype()) && sampled.ids.dim() == 1 && sampled.ids.numel() >= 1,
      "{}: sampled ids must be int32 or int64 [S] with S >= 1, got {} {}", op,
      dtype_name(sampled.ids.dtype()), shape_str(sampled.ids.shape()));
  const int64_t S = sampled.ids.numel(), N = T + S;
  std::vector<int64_t> y = class_ids(op, labels, V, T, "true class");
  std::vector<int64_t> ids = class_ids(op, sampled.ids, V, 0, "sampled id");

  std::vector<float> true_log_q, sampled_log_q;
  if (cfg.subtract_log_q) {
    const Tensor& tq = sampled.true_expected_count;
    const Tensor& sq = sampled.sampled_expected_count;
    BRIDLE_CHECK(tq.defined() && sq.defined(),
                 "{}: subtract_log_q needs the true and sampled expected counts", op);
    check_float(op, tq, "true_expected_count");
    check_float(op, sq, "sampled_expected_count");
    BRIDLE_CHECK(tq.shape() == labels.shape() || tq.shape() == (Shape{B, T}),
                 "{}: true_expected_count must have the labels' shape {}, got {}", op,
                 shape_str(labels.shape()), shape_str(tq.shape()));
    BRIDLE_CHECK(sq.shape() == Shape{S},
                 "{}: sampled_expected_count must be [{}] (one per sampled id), got {}", op, S,
                 shape_str(sq.shape()));
    true_log_q = log_counts(op, tq, "true_expected_count");
    sampled_log_q = log_counts(op, sq, "sampled_expected_count");
  }

  if (hidden.device().is_cuda())
    return sampled_loss_cuda(cfg, weight, bias, hidden, y, ids, true_log_q, sampled_log_q, B, T, S);
  Tensor logits = Tensor::empty({B, N}), gathered = Tensor::empty({S, d});
  cpu::sampled_logits(logits.data<float>(), gathered.data<float>(), weight.data<float>(),
                      bias.defined() ? bias.data<float>() : nullptr, hidden.data<float>(), y.data(),
                      ids.data(), cfg.subtract_log_q ? true_log_q.data() : nullptr,
                      cfg.subtract_log_q ? sampled_log_q.data() : nullptr,
                      cfg.remove_accidental_hits, B, T, S, d);
  Tensor row_loss = Tensor::empty({B});
  Tensor lse = cfg.loss == SampledLoss::kSoftmax ? Tensor::empty({B}) : Tensor();
  if (cfg.loss == SampledLoss::kSoftmax)
    cpu::sampled_softmax_forward(row_loss.data<float>(), lse.data<float>(), logits.data<float>(), B,
                                 T, S);
  else
    cpu::nce_forward(row_loss.data<float>(), logits.data<float>(), cfg.true_label, B, T, S);
  for (int64_t b = 0; b < B; ++b)
    BRIDLE_CHECK(!std::isnan(row_loss.data<float>()[b]),
                 "{}: row {} gives a NaN loss (hidden {}, weight or bias holds NaN or inf)", op, b,
                 shape_str(hidden.shape()));

  const float scale = mean_scale(cfg.reduction, static_cast<double>(B));
  return record(reduce_loss(row_loss, cfg.reduction, scale), op, {weight, bias, hidden},
                [cfg, weight, bias, hidden, logits, lse, gathered, y = std::move(y),
                 ids = std::move(ids), scale, B, T, S, d](const Tensor& dout, const Tensor&) {
                  const int64_t N = T + S;
                  std::vector<float> dloss = row_gradients(dout, cfg.reduction, scale, B);
                  std::vector<float> dlogits(static_cast<size_t>(B * N));
                  if (cfg.loss == SampledLoss::kSoftmax)
                    cpu::sampled_softmax_dlogits(dlogits.data(), logits.data<float>(),
                                                 lse.data<float>(), dloss.data(), B, T, S);
                  else
                    cpu::nce_dlogits(dlogits.data(), logits.data<float>(), dloss.data(),
                                     cfg.true_label, B, T, S);
                  const bool want_w = weight.requires_grad();
                  std::vector<float> scratch(want_w ? static_cast<size_t>(S * d) : 0);
                  auto grad_of = [](const Tensor& t) {
                    return t.defined() && t.requires_grad() ? grad_buffer(t).data<float>()
                                                            : nullptr;
                  };
                  cpu::sampled_logits_backward(
                      grad_of(hidden), grad_of(weight), grad_of(bias), dlogits.data(),
                      gathered.data<float>(), scratch.data(), weight.data<float>(),
                      hidden.data<float>(), y.data(), ids.data(), B, T, S, d);
                });
}

}  // namespace

Tensor sampled_softmax_loss(const Tensor& weight, const Tensor& bias, const Tensor& hidden,
                            const Tensor& labels, const SampledValues& sampled,
                            const SampledSoftmaxOptions& options) {
  return sampled_loss(
      {"sampled_softmax_loss", SampledLoss::kSoftmax, options.num_true,
       options.remove_accidental_hits, options.subtract_log_q, options.reduction, 1.0f},
      weight, bias, hidden, labels, sampled);
}

Tensor nce_loss(const Tensor& weight, const Tensor& bias, const Tensor& hidden,
                const Tensor& labels, const SampledValues& sampled, const NceOptions& options) {
  const float true_label = options.divide_true_labels && options.num_true >= 1
                               ? 1.0f / static_cast<float>(options.num_true)
                               : 1.0f;
  return sampled_loss(
      {"nce_loss", SampledLoss::kNce, options.num_true, options.remove_accidental_hits,
       options.subtract_log_q, options.reduction, true_label},
      weight, bias, hidden, labels, sampled);
}

}  // namespace bridle
