// 02_backprop_by_hand: the gradients of a small MLP, derived and computed by hand.
//
// What it teaches: backpropagation is the chain rule applied layer by layer,
// from the loss back to the input. For
//   x [B, D] -> Linear(D, H) -> ReLU -> Linear(H, C) -> softmax cross-entropy (mean over B)
// each layer gets a forward function and a backward function written as plain
// loops (the llm.c way: outputs first, gradients d-prefixed), each backward with
// its formula in a comment. Then the same gradients come out of bridle's autograd
// (loss.backward()) and out of central finite differences, and the three are
// compared entry by entry: if they agree, the derivation is right.
//
// Run:    ./build/examples/02_backprop_by_hand [--seed N]
// Expect: the loss, the same by hand and by bridle (1.135236 with seed 0), then per
//         parameter the largest differences and three sample entries, e.g.
//           parameter   shape   max|hand - autograd|   max|hand - finite diff|
//           fc1.weight  [6, 5]              1.55e-08                  1.48e-10
//               [0] hand +0.01375862  autograd +0.01375862  finite diff +0.01375862
//         Hand vs autograd differ by at most 2.8e-08 (float32 rounding), hand vs finite
//         differences by at most 1.6e-10 (double precision); the program fails if
//         hand and autograd differ by more than 1e-5 or hand and finite differences
//         by more than 1e-6. --smoke is the same run. The last line is JSON, e.g.
//           {"example":"02_backprop_by_hand","loss":1.1352...,"max_diff_autograd":2.8e-08,...}
//
// Next:   examples/03_stable_softmax: why softmax subtracts the max, and why
//         cross_entropy takes logits.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "bridle.h"
#include "common/example_main.h"

using namespace bridle;

namespace {

// Shape letters, fixed for this file: B examples, D inputs, H hidden units, C classes.
constexpr int64_t B = 6, D = 5, H = 6, C = 3;

// The hand-written code works in double, so that its finite differences are
// accurate to about 1e-10 and any real mistake stands out.
using Vec = std::vector<double>;

// The parameters, row-major in bridle's Linear layout: weight [out, in], bias [out].
struct Params {
  Vec w1, b1;  // fc1: [H, D], [H]
  Vec w2, b2;  // fc2: [C, H], [C]
};

// What the forward pass keeps for the backward pass.
struct Forward {
  Vec h_pre;   // [B, H] fc1's output, before the ReLU
  Vec h;       // [B, H] after the ReLU
  Vec logits;  // [B, C]
  Vec probs;   // [B, C] softmax of the logits
  double loss = 0;
};

// ---- Linear: out = x W^T + bias, x [rows, in], W [out, in], out [rows, out] ----

void linear_forward(Vec& out, const Vec& x, const Vec& w, const Vec& bias, int64_t rows, int64_t in,
                    int64_t out_features) {
  out.assign(rows * out_features, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out_features; ++o) {
      double sum = bias[o];
      for (int64_t i = 0; i < in; ++i) sum += x[r * in + i] * w[o * in + i];
      out[r * out_features + o] = sum;
    }
}

// With g = dL/dout [rows, out] and out[r, o] = bias[o] + sum_i x[r, i] W[o, i]:
//   dW[o, i]  = sum_r g[r, o] x[r, i]    dW = g^T x, [out, in] like W
//                                        (x^T g when W is stored [in, out], as in many texts)
//   dbias[o]  = sum_r g[r, o]            the bias is added to every row
//   dx[r, i]  = sum_o g[r, o] W[o, i]    dx = g W, [rows, in] like x
// dx may be null (the first layer's input needs no gradient).
void linear_backward(Vec* dx, Vec& dw, Vec& dbias, const Vec& g, const Vec& x, const Vec& w,
                     int64_t rows, int64_t in, int64_t out_features) {
  dw.assign(out_features * in, 0.0);
  dbias.assign(out_features, 0.0);
  if (dx) dx->assign(rows * in, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out_features; ++o) {
      const double g_ro = g[r * out_features + o];
      dbias[o] += g_ro;
      for (int64_t i = 0; i < in; ++i) {
        dw[o * in + i] += g_ro * x[r * in + i];
        if (dx) (*dx)[r * in + i] += g_ro * w[o * in + i];
      }
    }
}

// ---- ReLU: h = max(0, h_pre) ----

void relu_forward(Vec& h, const Vec& h_pre) {
  h.resize(h_pre.size());
  for (size_t i = 0; i < h_pre.size(); ++i) h[i] = std::max(0.0, h_pre[i]);
}

// dh_pre = dh * [h_pre > 0]: the gradient passes where the unit was on, and stops
// where it was off (there the output does not move when the input does).
void relu_backward(Vec& dh_pre, const Vec& dh, const Vec& h_pre) {
  dh_pre.resize(dh.size());
  for (size_t i = 0; i < dh.size(); ++i) dh_pre[i] = h_pre[i] > 0 ? dh[i] : 0.0;
}

// ---- Softmax cross-entropy, mean over the batch ----

// loss = (1/B) sum_b -log p[b, y_b],  p[b, :] = softmax(logits[b, :]).
// The max is subtracted before exp so that exp never overflows (lesson 03).
double softmax_cross_entropy_forward(Vec& probs, const Vec& logits,
                                     const std::vector<int64_t>& labels) {
  probs.resize(B * C);
  double loss = 0;
  for (int64_t b = 0; b < B; ++b) {
    const double* z = &logits[b * C];
    const double m = *std::max_element(z, z + C);
    double sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += std::exp(z[c] - m);
    for (int64_t c = 0; c < C; ++c) probs[b * C + c] = std::exp(z[c] - m) / sum;
    loss += -std::log(probs[b * C + labels[b]]);
  }
  return loss / B;
}

// -log p_y = logsumexp(z) - z_y, and d logsumexp(z) / dz_c = p_c, so
//   dlogits[b, c] = (p[b, c] - [c == y_b]) / B
// the 1/B from the mean over the batch.
void softmax_cross_entropy_backward(Vec& dlogits, const Vec& probs,
                                    const std::vector<int64_t>& labels) {
  dlogits.resize(B * C);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      dlogits[b * C + c] = (probs[b * C + c] - (c == labels[b] ? 1.0 : 0.0)) / B;
}

// ---- The whole network ----

Forward forward(const Params& p, const Vec& x, const std::vector<int64_t>& labels) {
  Forward f;
  linear_forward(f.h_pre, x, p.w1, p.b1, B, D, H);
  relu_forward(f.h, f.h_pre);
  linear_forward(f.logits, f.h, p.w2, p.b2, B, H, C);
  f.loss = softmax_cross_entropy_forward(f.probs, f.logits, labels);
  return f;
}

// The chain rule, from the loss back to the first layer's parameters.
Params backward(const Params& p, const Forward& f, const Vec& x,
                const std::vector<int64_t>& labels) {
  Params grads;
  Vec dlogits, dh, dh_pre;
  softmax_cross_entropy_backward(dlogits, f.probs, labels);
  linear_backward(&dh, grads.w2, grads.b2, dlogits, f.h, p.w2, B, H, C);
  relu_backward(dh_pre, dh, f.h_pre);
  linear_backward(nullptr, grads.w1, grads.b1, dh_pre, x, p.w1, B, D, H);
  return grads;
}

// dL/dtheta_i ~ (L(theta + eps e_i) - L(theta - eps e_i)) / (2 eps), one entry at a
// time; the error is O(eps^2) plus rounding of about 1e-16 / eps.
Vec finite_differences(Params& p, Vec Params::*which, const Vec& x,
                       const std::vector<int64_t>& labels, double eps = 1e-6) {
  Vec& theta = p.*which;
  Vec grad(theta.size());
  for (size_t i = 0; i < theta.size(); ++i) {
    const double saved = theta[i];
    theta[i] = saved + eps;
    const double loss_plus = forward(p, x, labels).loss;
    theta[i] = saved - eps;
    const double loss_minus = forward(p, x, labels).loss;
    theta[i] = saved;
    grad[i] = (loss_plus - loss_minus) / (2 * eps);
  }
  return grad;
}

Vec to_double(const Tensor& t) {
  std::vector<float> v = t.to_vector();
  return Vec(v.begin(), v.end());
}

double max_abs_diff(const Vec& a, const Vec& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Backpropagation by hand for a 2-layer MLP, checked against autograd"};
  examples::CommonFlags flags;
  examples::add_common_flags(app, flags);
  CLI11_PARSE(app, argc, argv);
  try {
    examples::apply_common_flags(flags);  // the run is tiny: --smoke changes nothing

    // The network and a batch, from one seeded generator.
    Generator gen(flags.seed);
    Linear fc1(D, H, true, gen), fc2(H, C, true, gen);
    const Tensor x = randn({B, D}, gen);
    std::vector<int64_t> labels(B);
    for (auto& y : labels) y = static_cast<int64_t>(gen.next_u64() % C);

    // 1. By hand, on double copies of the same numbers.
    Params params{to_double(fc1.weight), to_double(fc1.bias), to_double(fc2.weight),
                  to_double(fc2.bias)};
    const Vec x_double = to_double(x);
    const Forward hand_forward = forward(params, x_double, labels);
    const Params hand = backward(params, hand_forward, x_double, labels);

    // 2. By bridle's autograd: the same forward as ops, then backward().
    Tensor loss = cross_entropy(fc2.forward(relu(fc1.forward(x))), from_vector(labels, {B}));
    loss.backward();
    spdlog::info("loss: {:.6f} by hand, {:.6f} by bridle", hand_forward.loss, loss.item());

    // 3. Side by side, per parameter.
    struct Entry {
      const char* name;
      Tensor param;  // holds .grad() from autograd
      Vec Params::*member;
    };
    const Entry entries[] = {{"fc1.weight", fc1.weight, &Params::w1},
                             {"fc1.bias", fc1.bias, &Params::b1},
                             {"fc2.weight", fc2.weight, &Params::w2},
                             {"fc2.bias", fc2.bias, &Params::b2}};
    double max_diff_autograd = 0, max_diff_finite = 0;
    nlohmann::json per_param = nlohmann::json::object();
    fmt::print("\n{:<11} {:<7} {:>20} {:>25}\n", "parameter", "shape", "max|hand - autograd|",
               "max|hand - finite diff|");
    for (const Entry& e : entries) {
      const Vec& by_hand = hand.*e.member;
      const Vec by_autograd = to_double(e.param.grad());
      const Vec by_finite = finite_differences(params, e.member, x_double, labels);
      const double diff_autograd = max_abs_diff(by_hand, by_autograd);
      const double diff_finite = max_abs_diff(by_hand, by_finite);
      max_diff_autograd = std::max(max_diff_autograd, diff_autograd);
      max_diff_finite = std::max(max_diff_finite, diff_finite);
      per_param[e.name] = {{"autograd", diff_autograd}, {"finite_diff", diff_finite}};
      fmt::print("{:<11} {:<7} {:>20.2e} {:>25.2e}\n", e.name, shape_str(e.param.shape()),
                 diff_autograd, diff_finite);
      for (size_t i = 0; i < 3; ++i)
        fmt::print("    [{}] hand {:+.8f}  autograd {:+.8f}  finite diff {:+.8f}\n", i, by_hand[i],
                   by_autograd[i], by_finite[i]);
    }
    fmt::print("\n");

    // float32 autograd vs double by hand: rounding alone is about 1e-7.
    const bool autograd_ok = max_diff_autograd <= 1e-5;
    const bool finite_ok = max_diff_finite <= 1e-6;
    spdlog::info(
        "hand vs autograd: {} (max {:.2e}, limit 1e-5); hand vs finite differences: {} "
        "(max {:.2e}, limit 1e-6)",
        autograd_ok ? "agree" : "DISAGREE", max_diff_autograd, finite_ok ? "agree" : "DISAGREE",
        max_diff_finite);
    examples::report_metrics(flags, {{"example", "02_backprop_by_hand"},
                                     {"loss", hand_forward.loss},
                                     {"max_diff_autograd", max_diff_autograd},
                                     {"max_diff_finite_diff", max_diff_finite},
                                     {"per_parameter", per_param},
                                     {"smoke", flags.smoke}});
    return autograd_ok && finite_ok ? 0 : 1;
  } catch (const Error& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
