// Reading fixtures/torch_layers.json (written by scripts/make_layer_fixtures.py):
// PyTorch's outputs and gradients for the pooling, batch norm and activation
// tests. Each case stores its inputs, the output, loss weights w and the
// gradients of loss = sum(w * output); a test rebuilds the op with bridle, calls
// output.backward(w) and compares element by element with expect_matches().
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "../test_util.h"
#include "bridle.h"

namespace bridle::testing {

using json = nlohmann::json;

inline const json& layer_fixture() {
  return json_fixture("torch_layers.json", "scripts/make_layer_fixtures.py");
}

// JSON has no inf/nan: the fixture writes them as strings.
inline double fixture_value(const json& v) {
  if (v.is_number()) return v.get<double>();
  const std::string s = v.get<std::string>();
  if (s == "inf") return std::numeric_limits<double>::infinity();
  if (s == "-inf") return -std::numeric_limits<double>::infinity();
  return std::numeric_limits<double>::quiet_NaN();
}

// A float32 tensor from a fixture entry (the stored decimals round back to
// PyTorch's floats); undefined when the case lacks the key.
inline Tensor fixture_tensor(const json& c, const std::string& key, bool requires_grad = false) {
  if (!c.contains(key)) return Tensor();
  const json& t = c.at(key);
  std::vector<float> data;
  for (const json& v : t.at("data")) data.push_back(static_cast<float>(fixture_value(v)));
  Tensor out = from_vector(data, t.at("shape").get<Shape>());
  if (requires_grad) out.set_requires_grad();
  return out;
}

// |bridle - torch| <= atol + rtol |torch| for every element; reports the first few.
inline void expect_matches(const Tensor& actual, const json& c, const std::string& key, double atol,
                           double rtol) {
  SCOPED_TRACE(c.at("name").get<std::string>() + " " + key);
  ASSERT_TRUE(actual.defined()) << "bridle produced no tensor (no gradient?)";
  const json& t = c.at(key);
  ASSERT_EQ(actual.shape(), t.at("shape").get<Shape>());
  std::vector<float> a = actual.to_vector();
  int reported = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double e = fixture_value(t.at("data")[i]);
    bool ok = std::isnan(e)   ? std::isnan(a[i])
              : std::isinf(e) ? a[i] == e
                              : std::abs(a[i] - e) <= atol + rtol * std::abs(e);
    if (!ok && reported++ < 5)
      ADD_FAILURE() << "[" << i << "]: bridle " << a[i] << " vs torch " << e;
  }
}

}  // namespace bridle::testing
