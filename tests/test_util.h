// Helpers shared by the tests: gradient checks with readable failures, and
// element-wise comparison of tensors against expected values.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "bridle.h"
#include "ops/fast_math.h"

namespace bridle::testing {

// Options for a leaf tensor that gradients flow to.
inline TensorOptions grad_opts() { return TensorOptions().with_requires_grad(); }

// Asserts that backward agrees with finite differences for f at inputs.
inline void expect_gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                             GradcheckOptions options = {}) {
  GradcheckResult result = gradcheck(f, inputs, options);
  EXPECT_TRUE(result.ok) << result.message;
}

inline void expect_close(const Tensor& actual, const std::vector<float>& expected,
                         float atol = 1e-5f, float rtol = 1e-5f) {
  ASSERT_EQ(actual.numel(), static_cast<int64_t>(expected.size()));
  std::vector<float> got = actual.to_vector();
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(got[i], expected[i], atol + rtol * std::abs(expected[i])) << "element " << i;
}

inline void expect_close(const Tensor& actual, std::initializer_list<float> expected,
                         float atol = 1e-5f, float rtol = 1e-5f) {
  expect_close(actual, std::vector<float>(expected), atol, rtol);
}

inline void expect_close(const Tensor& actual, const Tensor& expected, float atol = 1e-5f,
                         float rtol = 1e-5f) {
  ASSERT_EQ(actual.shape(), expected.shape());
  expect_close(actual, expected.to_vector(), atol, rtol);
}

// Runs fn and checks that it throws bridle::Error whose message contains every
// one of the given fragments.
template <typename Fn>
void expect_error(Fn fn, const std::vector<std::string>& fragments) {
  try {
    fn();
    ADD_FAILURE() << "expected a bridle::Error";
  } catch (const Error& e) {
    std::string message = e.what();
    for (const auto& fragment : fragments)
      EXPECT_NE(message.find(fragment), std::string::npos)
          << "message '" << message << "' lacks '" << fragment << "'";
  }
}

// tests/fixtures/<name>, parsed once; script is the committed script that writes it
// (named in the error when the file is missing).
inline const nlohmann::json& json_fixture(const std::string& name, const std::string& script) {
  static std::map<std::string, nlohmann::json> cache;
  auto found = cache.find(name);
  if (found != cache.end()) return found->second;
  const std::string path = std::string(BRIDLE_FIXTURES_DIR) + "/" + name;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path + " (see " + script + ")");
  return cache.emplace(name, nlohmann::json::parse(in)).first->second;
}

// Runs fn once per SIMD path this build can run on this CPU (AVX2 and, where
// the CPU has it, AVX-512), so a kernel test covers every path; restores the
// path that was selected.
template <typename Fn>
void for_each_simd_path(Fn fn) {
  const SimdPath selected = simd_path();
  std::vector<SimdPath> paths = {best_simd_path()};
  if (best_simd_path() == SimdPath::kAvx512) paths.push_back(SimdPath::kAvx2);
  for (SimdPath path : paths) {
    SCOPED_TRACE(std::string("simd path ") + simd_path_name(path));
    set_simd_path(path);
    fn();
  }
  set_simd_path(selected);
}

}  // namespace bridle::testing
