#include "ops/loss_utils.h"

#include "core/error.h"
#include "core/factory.h"

namespace bridle {

const char* reduction_name(Reduction reduction) {
  switch (reduction) {
    case Reduction::kNone:
      return "none";
    case Reduction::kMean:
      return "mean";
    case Reduction::kSum:
      return "sum";
  }
  return "?";
}

template <typename Target>
double check_class_targets(const char* op, const Target* targets, int64_t B, int64_t C,
                           int64_t ignore_index, const float* weight) {
  double denominator = 0.0;
  for (int64_t b = 0; b < B; ++b) {
    const auto y = static_cast<int64_t>(targets[b]);
    if (y == ignore_index) continue;
    BRIDLE_CHECK(y >= 0 && y < C,
                 "{}: target {} at row {} is out of range for {} classes (valid: 0..{}, or "
                 "ignore_index {})",
                 op, y, b, C, C - 1, ignore_index);
    denominator += weight ? weight[y] : 1.0;
  }
  return denominator;
}
template double check_class_targets<int32_t>(const char*, const int32_t*, int64_t, int64_t, int64_t,
                                             const float*);
template double check_class_targets<int64_t>(const char*, const int64_t*, int64_t, int64_t, int64_t,
                                             const float*);

float mean_scale(Reduction reduction, double denominator) {
  if (reduction != Reduction::kMean) return 1.0f;
  return denominator > 0.0 ? static_cast<float>(1.0 / denominator) : 0.0f;
}

Tensor reduce_loss(const Tensor& per_row, Reduction reduction, float scale) {
  if (reduction == Reduction::kNone) return per_row;
  const float* l = per_row.data<float>();
  double total = 0.0;
  for (int64_t i = 0; i < per_row.numel(); ++i) total += l[i];
  return scalar(static_cast<float>(total * scale));
}

std::vector<float> row_gradients(const Tensor& dout, Reduction reduction, float scale, int64_t n) {
  if (reduction == Reduction::kNone) return dout.to_vector();
  return std::vector<float>(n, dout.item() * scale);
}

}  // namespace bridle
