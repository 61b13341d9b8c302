// Storage: one reference-counted block of device memory, shared by tensor handles.
//
// CPU blocks are 64-byte aligned and come from a caching allocator, so a training
// loop that allocates the same shapes every step stops calling the system
// allocator (and stops page-faulting fresh mmap'd memory) after the first step.
#pragma once

#include <cstddef>
#include <memory>

#include "core/dtype.h"

namespace bridle {

inline constexpr size_t kCpuAlignment = 64;

// Raw allocation on a device. The CPU path caches freed blocks by size.
void* device_allocate(size_t nbytes, Device device);
void device_free(void* ptr, size_t nbytes, Device device);

// Returns every cached CPU block to the system.
void empty_cache();

struct AllocatorStats {
  size_t bytes_in_use = 0;        // held by live storages
  size_t bytes_cached = 0;        // freed, kept for reuse
  size_t system_allocations = 0;  // calls that reached the system allocator
};
AllocatorStats allocator_stats();

class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
};

}  // namespace bridle
