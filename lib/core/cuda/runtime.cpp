// Devices, streams, cuBLAS handles, copies and the error messages of the CUDA
// backend; see cuda.h and cuda_check.h.
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

#include "core/cuda/cuda.h"
#include "core/cuda/cuda_check.h"
#include "core/error.h"

namespace bridle::cuda {

void throw_cuda_error(const char* call, const char* file, int line, cudaError_t error) {
  // A failed call also sets CUDA's "last error"; clear it, or the next launch
  // check would report this error again as its own. (Sticky errors, such as a
  // kernel's illegal address, stay: the context is lost for good then.)
  cudaGetLastError();
  throw Error(fmt::format("CUDA call {} failed at {}:{}: {} ({})", call, file, line,
                          cudaGetErrorName(error), cudaGetErrorString(error)));
}

void throw_cublas_error(const char* call, const char* file, int line, cublasStatus_t status) {
  throw Error(fmt::format("cuBLAS call {} failed at {}:{}: {} ({})", call, file, line,
                          cublasGetStatusName(status), cublasGetStatusString(status)));
}

int device_count() noexcept {
  // Asked once: without a driver the answer is an error code, never a crash,
  // and it cannot change while the program runs.
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();  // "no driver" / "no device" is an answer here, not an error
      n = 0;
    }
    return n;
  }();
  return count;
}

void check_device_index(int index) {
  const int count = device_count();
  BRIDLE_CHECK(count > 0,
               "cuda:{}: no CUDA device is available (no GPU or no driver found; "
               "cuda_is_available() is false)",
               index);
  BRIDLE_CHECK(index >= 0 && index < count, "cuda:{}: this machine has {} CUDA device(s)", index,
               count);
}

DeviceGuard::DeviceGuard(int device) {
  check_device_index(device);
  BRIDLE_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) BRIDLE_CUDA_CHECK(cudaSetDevice(device));
}

DeviceGuard::~DeviceGuard() {
  int current = previous_;
  if (cudaGetDevice(&current) == cudaSuccess && current != previous_) cudaSetDevice(previous_);
}

namespace {

int current_device() {
  int device = 0;
  BRIDLE_CUDA_CHECK(cudaGetDevice(&device));
  return device;
}

// One stream and one cuBLAS handle per device, made on first use and kept for
// the life of the program (leaked on purpose: static destructors may run after
// the CUDA runtime has shut down).
struct PerDevice {
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  int multiprocessors = 0;
};

std::mutex per_device_mutex;

PerDevice& per_device(int device) {
  static auto* devices = new std::vector<PerDevice>(std::max(device_count(), 1));
  return devices->at(device);
}

}  // namespace

cudaStream_t stream() {
  const int device = current_device();
  std::lock_guard<std::mutex> lock(per_device_mutex);
  PerDevice& d = per_device(device);
  // Non-blocking: it does not wait for work on the legacy default stream
  // (libraries' internal work), only for its own.
  if (!d.stream) BRIDLE_CUDA_CHECK(cudaStreamCreateWithFlags(&d.stream, cudaStreamNonBlocking));
  return d.stream;
}

cublasHandle_t cublas_handle() {
  cudaStream_t s = stream();
  const int device = current_device();
  std::lock_guard<std::mutex> lock(per_device_mutex);
  PerDevice& d = per_device(device);
  if (!d.cublas) {
    BRIDLE_CUBLAS_CHECK(cublasCreate(&d.cublas));
    BRIDLE_CUBLAS_CHECK(cublasSetStream(d.cublas, s));
    // Plain FP32 products (no TF32), so GPU results match the CPU's to float
    // rounding; TF32 would be faster and is a choice for later.
    BRIDLE_CUBLAS_CHECK(cublasSetMathMode(d.cublas, CUBLAS_DEFAULT_MATH));
  }
  return d.cublas;
}

int multiprocessor_count() {
  const int device = current_device();
  std::lock_guard<std::mutex> lock(per_device_mutex);
  PerDevice& d = per_device(device);
  if (d.multiprocessors == 0)
    BRIDLE_CUDA_CHECK(
        cudaDeviceGetAttribute(&d.multiprocessors, cudaDevAttrMultiProcessorCount, device));
  return d.multiprocessors;
}

void check_fits_int(const char* what, std::initializer_list<int64_t> sizes) {
  for (int64_t size : sizes)
    BRIDLE_CHECK(size <= std::numeric_limits<int>::max(),
                 "{}: size {} exceeds the {} that CUDA takes as an int", what, size,
                 std::numeric_limits<int>::max());
}

void synchronize() { BRIDLE_CUDA_CHECK(cudaStreamSynchronize(stream())); }

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memmove(dst, src, nbytes);
    return;
  }
  if (src_device.is_cpu()) {  // host -> device
    DeviceGuard guard(dst_device.index);
    // From pageable memory this returns once the source is staged, so the
    // caller may free it; from pinned memory the copy runs on asynchronously
    // (the pinned allocator keeps the block until it has finished).
    BRIDLE_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, stream()));
    return;
  }
  if (dst_device.is_cpu()) {  // device -> host: the host reads it next, so wait
    DeviceGuard guard(src_device.index);
    BRIDLE_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, stream()));
    BRIDLE_CUDA_CHECK(cudaStreamSynchronize(stream()));
    return;
  }
  if (dst_device == src_device) {
    DeviceGuard guard(dst_device.index);
    BRIDLE_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  {  // between two GPUs: the source's pending work first, then a peer copy
    DeviceGuard guard(src_device.index);
    synchronize();
  }
  DeviceGuard guard(dst_device.index);
  BRIDLE_CUDA_CHECK(
      cudaMemcpyPeerAsync(dst, dst_device.index, src, src_device.index, nbytes, stream()));
  // and its end: the source's device orders its work on its own stream, which
  // knows nothing of this copy, so its memory could be reused while still read.
  synchronize();
}

}  // namespace bridle::cuda
