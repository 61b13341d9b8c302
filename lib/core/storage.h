// Storage: one reference-counted block of device memory, shared by tensor handles.
//
// CPU blocks are 64-byte aligned and come from a caching allocator, so a training
// loop that allocates the same shapes every step stops calling the system
// allocator (and stops page-faulting fresh mmap'd memory) after the first step.
// CUDA blocks come from the CUDA caching allocator (core/cuda/allocator.cpp), and
// a CPU storage may be pinned (page-locked) for fast asynchronous copies to a GPU.
#pragma once

#include <cstddef>
#include <memory>

#include "core/dtype.h"

namespace bridle {

inline constexpr size_t kCpuAlignment = 64;

// Raw allocation on a device. Both the CPU and the CUDA paths cache freed blocks
// by size. Allocating on CUDA throws a clear bridle::Error in a build without
// the CUDA backend or on a machine without a GPU.
void* device_allocate(size_t nbytes, Device device);
void device_free(void* ptr, size_t nbytes, Device device);

// Returns every cached block (CPU, and CUDA device and pinned memory) to the system.
void empty_cache();

struct AllocatorStats {
  size_t bytes_in_use = 0;        // held by live storages
  size_t bytes_cached = 0;        // freed, kept for reuse
  size_t system_allocations = 0;  // calls that reached the system allocator
};
// The CPU allocator's figures, or one CUDA device's (system_allocations then
// counts cudaMalloc calls).
AllocatorStats allocator_stats(Device device = Device::cpu());

class Storage {
 public:
  // pinned: page-locked host memory (device must be the CPU; needs a GPU).
  Storage(size_t nbytes, Device device, bool pinned = false);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  bool is_pinned() const { return pinned_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  bool pinned_ = false;
};

}  // namespace bridle
