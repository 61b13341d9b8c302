// Helpers shared by the benchmarks.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace bridle::bench {

// The median of values[skip:] (skip warm-up samples); values[skip:] must not be empty.
inline double median(std::vector<double> values, size_t skip = 0) {
  values.erase(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(skip));
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

}  // namespace bridle::bench
