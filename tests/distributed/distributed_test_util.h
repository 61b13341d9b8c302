// Shared by the single-process tests (bridle_tests) and the two-rank tests
// (bridle_mpi_tests): a small model, a single-rank process group, and a loop
// that trains a model on given batches.
#pragma once

#include <memory>
#include <vector>

#include "bridle.h"

namespace bridle::testing {

// 6 -> 16 -> 4, with an optional BatchNorm1d after the first layer. The same
// seed gives the same weights on every rank.
struct SmallNet : Module {
  std::shared_ptr<Linear> fc1, fc2;
  std::shared_ptr<BatchNorm1d> bn;
  explicit SmallNet(bool batch_norm = false, uint64_t seed = 7) : Module("SmallNet") {
    Generator gen(seed);
    fc1 = register_module("fc1", std::make_shared<Linear>(6, 16, true, gen));
    if (batch_norm) bn = register_module("bn", std::make_shared<BatchNorm1d>(16));
    fc2 = register_module("fc2", std::make_shared<Linear>(16, 4, true, gen));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = fc1->forward(x);
    if (bn) h = bn->forward(h);
    return fc2->forward(relu(h));
  }
};

// `steps` batches of `batch` examples: inputs [batch, 6], targets in [0, 4).
inline std::vector<Batch> random_batches(int64_t steps, int64_t batch, uint64_t seed) {
  Generator gen(seed);
  std::vector<Batch> batches;
  for (int64_t s = 0; s < steps; ++s) {
    Batch b;
    b.inputs = randn({batch, 6}, gen);
    Tensor u = rand({batch}, gen);
    std::vector<int64_t> targets;
    for (float v : u.to_vector()) targets.push_back(static_cast<int64_t>(v * 4) % 4);
    b.targets = from_vector(targets, {batch});
    batches.push_back(b);
  }
  return batches;
}

// Rows [begin, end) of a batch.
inline Batch rows(const Batch& batch, int64_t begin, int64_t end) {
  return {batch.inputs.slice(begin, end).clone(), batch.targets.slice(begin, end).clone()};
}

// One optimizer step per batch with the mean cross-entropy.
inline void train(Module& model, Optimizer& optimizer, const std::vector<Batch>& batches) {
  for (const Batch& batch : batches) {
    optimizer.zero_grad();
    cross_entropy(model.forward(batch.inputs), batch.targets).backward();
    optimizer.step();
  }
}

// The largest |a - b| over every parameter, by name.
inline float max_parameter_difference(Module& a, Module& b) {
  auto pa = a.named_parameters(), pb = b.named_parameters();
  float worst = 0;
  for (size_t i = 0; i < pa.size(); ++i) {
    std::vector<float> x = pa[i].second.to_vector(), y = pb[i].second.to_vector();
    for (size_t k = 0; k < x.size(); ++k) worst = std::max(worst, std::abs(x[k] - y[k]));
  }
  return worst;
}

// A job of one rank: every collective leaves the data as it is. Counts the
// all-reduces so tests can see the buckets.
class SingleProcessGroup : public ProcessGroup {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "single"; }
  using ProcessGroup::all_reduce;
  std::unique_ptr<CollectiveWork> all_reduce_async(float*, int64_t count, ReduceOp) override {
    ++float_all_reduces;
    floats_reduced += count;
    struct Done : CollectiveWork {
      bool test() override { return true; }
      void wait() override {}
    };
    return std::make_unique<Done>();
  }
  void all_reduce(double*, int64_t, ReduceOp) override {}
  void broadcast(void*, int64_t, int) override { ++broadcasts; }
  void barrier() override {}
  [[noreturn]] void abort(int code, const std::string&) override { std::exit(code); }

  int64_t float_all_reduces = 0, floats_reduced = 0, broadcasts = 0;
};

}  // namespace bridle::testing
