// The cuDNN handles and error messages of the CUDA backend; see cudnn_check.h.
// Built only with cuDNN (cmake/BridleCudnn.cmake).
#include <algorithm>
#include <mutex>
#include <vector>

#include "core/cuda/cudnn_check.h"
#include "core/error.h"

namespace bridle::cuda {

void throw_cudnn_error(const char* call, const char* file, int line, cudnnStatus_t status) {
  // cudnnGetErrorString gives the status's name; the last error message adds
  // what cuDNN found wrong (which descriptor, which dimension), when it logged one.
  char detail[256] = {};
  cudnnGetLastErrorString(detail, sizeof(detail));
  throw Error(fmt::format("cuDNN call {} failed at {}:{}: {}{}{}", call, file, line,
                          cudnnGetErrorString(status), detail[0] ? ": " : "", detail));
}

namespace {

// One handle per device, made on first use and kept for the life of the program
// (leaked on purpose, like the streams: static destructors may run after the
// CUDA runtime has shut down).
std::mutex handles_mutex;

std::vector<cudnnHandle_t>& handles() {
  static auto* per_device = new std::vector<cudnnHandle_t>(std::max(device_count(), 1), nullptr);
  return *per_device;
}

}  // namespace

cudnnHandle_t cudnn_handle() {
  cudaStream_t s = stream();
  int device = 0;
  BRIDLE_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(handles_mutex);
  cudnnHandle_t& handle = handles().at(device);
  if (!handle) {
    BRIDLE_CUDNN_CHECK(cudnnCreate(&handle));
    BRIDLE_CUDNN_CHECK(cudnnSetStream(handle, s));
  }
  return handle;
}

}  // namespace bridle::cuda
