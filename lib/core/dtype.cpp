// dtype and device names; see dtype.h.
#include "core/dtype.h"

#include "core/cuda/cuda.h"
#include "core/error.h"

namespace bridle {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return 4;
    case DType::kInt32:
      return 4;
    case DType::kInt64:
      return 8;
  }
  BRIDLE_FAIL("dtype_size: unknown dtype {}", static_cast<int>(dtype));
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "float32";
    case DType::kInt32:
      return "int32";
    case DType::kInt64:
      return "int64";
  }
  return "unknown";
}

Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.rfind("cuda:", 0) == 0) {
    try {
      return cuda(std::stoi(text.substr(5)));
    } catch (const std::exception&) {
    }
  }
  BRIDLE_FAIL("Device::parse: '{}' is not a device (expected cpu, cuda or cuda:N)", text);
}

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : fmt::format("cuda:{}", index);
}

bool cuda_is_available() {
  if constexpr (kCudaBuild) return cuda::device_count() > 0;
  return false;
}

}  // namespace bridle
