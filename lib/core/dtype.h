// Element types and devices: every tensor carries one of each.
//
// float32 is the compute type; int32/int64 hold class labels and indices. The
// dtype field exists so that bf16/fp16 can be added later without reshaping the API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace bridle {

enum class DType : uint8_t { kFloat32, kInt32, kInt64 };

inline constexpr DType kFloat32 = DType::kFloat32;
inline constexpr DType kInt32 = DType::kInt32;
inline constexpr DType kInt64 = DType::kInt64;

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
inline bool is_integer(DType dtype) { return dtype != DType::kFloat32; }

// Maps a C++ element type to its DType (used by Tensor::data<T>()).
template <typename T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::kFloat32;
};
template <>
struct DTypeOf<int32_t> {
  static constexpr DType value = DType::kInt32;
};
template <>
struct DTypeOf<int64_t> {
  static constexpr DType value = DType::kInt64;
};

enum class DeviceType : uint8_t { kCPU, kCUDA };

struct Device {
  DeviceType type = DeviceType::kCPU;
  int index = 0;

  static Device cpu() { return {DeviceType::kCPU, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::kCUDA, index}; }
  // Parses "cpu", "cuda" or "cuda:1".
  static Device parse(const std::string& text);

  bool is_cpu() const { return type == DeviceType::kCPU; }
  bool is_cuda() const { return type == DeviceType::kCUDA; }
  std::string str() const;
  bool operator==(const Device& other) const = default;
};

inline const Device kCPU = Device::cpu();

// Whether this build has the CUDA backend (cmake -DBRIDLE_CUDA=AUTO|ON with nvcc
// found). Ops test it with `if constexpr` before calling into CUDA code, so a
// CPU-only build compiles the same source without the CUDA functions.
#ifdef BRIDLE_WITH_CUDA
inline constexpr bool kCudaBuild = true;
#else
inline constexpr bool kCudaBuild = false;
#endif

// True when this build has the CUDA backend and a GPU is present. Never throws:
// without a driver or a GPU it is simply false.
bool cuda_is_available();

}  // namespace bridle
