// The CUDA backend's host API, free of CUDA headers so that any .cpp may include it.
//
// Defined only in builds with the CUDA backend (core/cuda/runtime.cpp,
// allocator.cpp and core/tensor.cu). Code that is compiled in every build calls
// these inside `if constexpr (kCudaBuild)` (core/dtype.h), so a CPU-only build
// never references them. Kernels and their launchers include cuda_check.h,
// which adds the stream, the cuBLAS handle and the checking macros.
//
// Streams: each device has one stream, created on first use, and every copy,
// fill and kernel launch of bridle goes to the stream of the current device
// (DeviceGuard sets it). One stream keeps the order of the program: a kernel
// sees the results of the ones before it, and memory freed by one op can be
// reused by the next without waiting, since both run in stream order.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/storage.h"

namespace bridle::cuda {

// The number of CUDA devices, 0 when there is no driver or no GPU. Never throws.
int device_count() noexcept;
// Throws bridle::Error, saying why, unless `index` names a CUDA device present here.
void check_device_index(int index);

// Makes `device` the current device for its scope (kernels launch on the current one).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  explicit DeviceGuard(Device device) : DeviceGuard(device.index) {}
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// Waits until every operation queued on the current device's stream has finished.
void synchronize();

// --- Memory (core/cuda/allocator.cpp) ------------------------------------------

// Device memory from the caching allocator: freed blocks are kept, binned by
// size, and handed out again, so a training loop stops calling cudaMalloc (which
// synchronizes the device) after its first step.
void* allocate(size_t nbytes, int device);
void release(void* ptr, size_t nbytes, int device);
AllocatorStats allocator_stats(int device);

// Page-locked ("pinned") host memory, from a cache of its own. The GPU copies
// from it asynchronously, without the staging copy pageable memory needs.
void* allocate_pinned(size_t nbytes);
void release_pinned(void* ptr, size_t nbytes);
AllocatorStats pinned_allocator_stats();

// Returns every cached device and pinned block (all devices) to the driver.
void empty_cache();

// --- Copies and fills ----------------------------------------------------------

// Copies nbytes between any two devices (cpu or cuda), on the stream of the
// CUDA device involved. Returns once the destination may be used by its owner:
// after a copy to the CPU the host can read it; a copy to a GPU is ordered
// before every later kernel on that stream.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);

// Sets n elements of dtype at data (device memory) to value (core/tensor.cu).
void fill(void* data, DType dtype, int64_t n, double value);
// Adds value to n int64 elements at data (device memory), in place (core/tensor.cu):
// a counter on a GPU moves on without a round trip through the host.
void add_int64(int64_t* data, int64_t n, int64_t value);

}  // namespace bridle::cuda
