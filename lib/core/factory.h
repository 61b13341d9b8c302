// Factories: tensors from values, constants, ranges and seeded random draws.
//
// Random factories take a Generator; the overloads without one use the global
// generator that manual_seed() resets, so a seed fixes a whole program's draws.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace bridle {

// A seeded random source (mt19937_64). Same seed, same sequence, on any thread count.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : engine_(seed) {}
  void seed(uint64_t seed) { engine_.seed(seed); }
  std::mt19937_64& engine() { return engine_; }
  float uniform(float low, float high);  // [low, high)
  float normal(float mean, float stddev);
  uint64_t next_u64() { return engine_(); }

  // The engine's full state as text (std::mt19937_64's stream format: 312 words
  // and the position), for checkpoints. set_state(state()) continues the sequence
  // exactly; set_state throws bridle::Error on malformed text and then leaves the
  // generator unchanged.
  std::string state() const;
  void set_state(const std::string& state);

 private:
  std::mt19937_64 engine_;
};

Generator& default_generator();
void manual_seed(uint64_t seed);

Tensor zeros(const Shape& shape, TensorOptions options = {});
Tensor ones(const Shape& shape, TensorOptions options = {});
Tensor full(const Shape& shape, double value, TensorOptions options = {});
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor arange(int64_t end, TensorOptions options = {});
Tensor arange(double start, double end, double step = 1.0, TensorOptions options = {});

Tensor rand(const Shape& shape, Generator& gen, TensorOptions options = {});
Tensor rand(const Shape& shape, TensorOptions options = {});
Tensor randn(const Shape& shape, Generator& gen, TensorOptions options = {});
Tensor randn(const Shape& shape, TensorOptions options = {});
Tensor uniform(const Shape& shape, float low, float high, Generator& gen,
               TensorOptions options = {});
Tensor uniform(const Shape& shape, float low, float high, TensorOptions options = {});

// From values: the shape defaults to 1-D; numel must match the given shape.
// A braced list makes a float32 tensor: from_vector({0.1f, 0.9f}, {1, 2}).
// A std::vector<T> makes a tensor of T's dtype (float, int32_t or int64_t):
// from_vector(std::vector<int64_t>{3, 1, 4}) for class labels.
template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape = {},
                   TensorOptions options = TensorOptions(DTypeOf<T>::value));
Tensor from_vector(std::initializer_list<float> values, const Shape& shape = {},
                   TensorOptions options = {});
Tensor scalar(float value, TensorOptions options = {});  // shape []

}  // namespace bridle
