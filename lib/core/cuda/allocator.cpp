// The CUDA caching allocators: device memory and pinned host memory; see cuda.h.
//
// Device memory. cudaMalloc and cudaFree are slow and synchronize the whole
// device, so freed blocks are not returned: they go to a free list keyed by
// (device, size class) and the next request of that class takes one. A training
// step asks for the same sizes every iteration, so after the first step no
// cudaMalloc happens (AllocatorStats::system_allocations stops growing; a test
// checks it). Reuse needs no synchronization: every kernel runs on the device's
// one stream, so the next user of a block is queued after the last one.
//
// Size classes: 512 bytes at least, then four classes per power of two (for
// sizes in (2^k, 2^(k+1)]: 1.25, 1.5, 1.75 and 2 times 2^k), with steps of at
// most 2 MiB. At most a quarter of a block is slack, and a batch of a slightly
// different size (the last one of an epoch) still finds a block of its class.
//
// When cudaMalloc runs out, the device's cached blocks are freed and it is
// tried once more before the error.
//
// Pinned memory: freed blocks are cached the same way, but a block may still be
// the source of an asynchronous copy when its tensor dies, so release records an
// event on the stream and allocate only reuses a block whose event has passed.
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "core/cuda/cuda.h"
#include "core/cuda/cuda_check.h"
#include "core/error.h"

namespace bridle::cuda {
namespace {

size_t size_class(size_t nbytes) {
  constexpr size_t kMinBlock = 512, kMaxStep = size_t{2} << 20;
  if (nbytes <= kMinBlock) return kMinBlock;
  size_t power = 1;  // the largest power of two below nbytes
  while (power * 2 < nbytes) power *= 2;
  const size_t step = std::clamp(power / 4, kMinBlock, kMaxStep);
  return (nbytes + step - 1) / step * step;
}

class DeviceCachingAllocator {
 public:
  void* allocate(size_t nbytes, int device) {
    const size_t size = size_class(nbytes);
    std::lock_guard<std::mutex> lock(mutex_);
    AllocatorStats& stats = stats_[device];
    auto it = free_.find({device, size});
    if (it != free_.end() && !it->second.empty()) {
      void* ptr = it->second.back();
      it->second.pop_back();
      stats.bytes_cached -= size;
      stats.bytes_in_use += size;
      return ptr;
    }
    DeviceGuard guard(device);
    void* ptr = nullptr;
    cudaError_t status = cudaMalloc(&ptr, size);
    if (status == cudaErrorMemoryAllocation) {  // give the cache back, try once more
      cudaGetLastError();
      free_cached(device);
      status = cudaMalloc(&ptr, size);
    }
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      BRIDLE_FAIL(
          "out of memory on cuda:{}: could not allocate {} bytes ({} bytes are in use by "
          "tensors; the cache was emptied)",
          device, size, stats.bytes_in_use);
    }
    BRIDLE_CUDA_CHECK(status);
    ++stats.system_allocations;
    stats.bytes_in_use += size;
    return ptr;
  }

  void release(void* ptr, size_t nbytes, int device) {
    const size_t size = size_class(nbytes);
    std::lock_guard<std::mutex> lock(mutex_);
    AllocatorStats& stats = stats_[device];
    stats.bytes_in_use -= size;
    stats.bytes_cached += size;
    free_[{device, size}].push_back(ptr);
  }

  void empty() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (int device = 0; device < device_count(); ++device) free_cached(device);
  }

  AllocatorStats stats(int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_[device];
  }

 private:
  // Frees the cached blocks of one device; the caller holds the mutex. A block
  // is released when the work using it was queued, not done: wait for the
  // device first. Each block leaves the cache before its cudaFree, so that a
  // failing call cannot leave a freed pointer behind to be freed again.
  void free_cached(int device) {
    DeviceGuard guard(device);
    BRIDLE_CUDA_CHECK(cudaDeviceSynchronize());
    for (auto& [key, blocks] : free_) {
      if (key.first != device) continue;
      while (!blocks.empty()) {
        void* ptr = blocks.back();
        blocks.pop_back();
        stats_[device].bytes_cached -= key.second;
        BRIDLE_CUDA_CHECK(cudaFree(ptr));
      }
    }
  }

  std::mutex mutex_;
  std::map<std::pair<int, size_t>, std::vector<void*>> free_;  // (device, size class)
  std::map<int, AllocatorStats> stats_;
};

class PinnedCachingAllocator {
 public:
  void* allocate(size_t nbytes) {
    const size_t size = size_class(nbytes);
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<Block>& blocks = free_[size];
    for (size_t i = 0; i < blocks.size(); ++i) {
      const cudaError_t status = cudaEventQuery(blocks[i].last_use);
      if (status == cudaErrorNotReady) {  // a copy from this block is still in flight
        cudaGetLastError();               // not an error: keep it from the next launch check
        continue;
      }
      if (status != cudaSuccess)
        throw_cuda_error("cudaEventQuery(last_use)", __FILE__, __LINE__, status);
      void* ptr = blocks[i].ptr;
      events_.push_back(blocks[i].last_use);
      blocks.erase(blocks.begin() + static_cast<std::ptrdiff_t>(i));
      stats_.bytes_cached -= size;
      stats_.bytes_in_use += size;
      return ptr;
    }
    void* ptr = nullptr;
    // Portable: pinned for every device, not only the current one.
    BRIDLE_CUDA_CHECK(cudaHostAlloc(&ptr, size, cudaHostAllocPortable));
    ++stats_.system_allocations;
    stats_.bytes_in_use += size;
    return ptr;
  }

  // Called from Storage's destructor: never throws. When CUDA fails here (a
  // sticky error from an earlier kernel, or the runtime unloading at exit) the
  // block is dropped, neither reused nor freed, and the error is left to the
  // code that meets it next.
  void release(void* ptr, size_t nbytes) noexcept {
    const size_t size = size_class(nbytes);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.bytes_in_use -= size;
    cudaEvent_t event = nullptr;
    if (!events_.empty()) {
      event = events_.back();
      events_.pop_back();
    } else if (cudaEventCreateWithFlags(&event, cudaEventDisableTiming) != cudaSuccess) {
      return;
    }
    // Copies from pinned memory run on the current device's stream (copy_bytes):
    // the event passes once the ones queued so far, this block's included, are done.
    cudaStream_t current = nullptr;
    try {
      current = stream();
    } catch (const Error&) {
      return;
    }
    if (cudaEventRecord(event, current) != cudaSuccess) return;
    free_[size].push_back({ptr, event});
    stats_.bytes_cached += size;
  }

  void empty() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, blocks] : free_) {
      for (Block& block : blocks) {
        BRIDLE_CUDA_CHECK(cudaEventSynchronize(block.last_use));
        BRIDLE_CUDA_CHECK(cudaFreeHost(block.ptr));
        events_.push_back(block.last_use);
      }
      stats_.bytes_cached -= size * blocks.size();
      blocks.clear();
    }
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  struct Block {
    void* ptr;
    cudaEvent_t last_use;  // recorded on the stream when the block was freed
  };
  std::mutex mutex_;
  std::map<size_t, std::vector<Block>> free_;
  std::vector<cudaEvent_t> events_;  // spare events, reused
  AllocatorStats stats_;
};

// Leaked on purpose, like the CPU allocator: tensors in static storage may be
// freed after any other static is destroyed.
DeviceCachingAllocator& device_allocator() {
  static auto* allocator = new DeviceCachingAllocator();
  return *allocator;
}

PinnedCachingAllocator& pinned_allocator() {
  static auto* allocator = new PinnedCachingAllocator();
  return *allocator;
}

}  // namespace

void* allocate(size_t nbytes, int device) {
  check_device_index(device);
  return device_allocator().allocate(nbytes, device);
}

void release(void* ptr, size_t nbytes, int device) {
  device_allocator().release(ptr, nbytes, device);
}

AllocatorStats allocator_stats(int device) { return device_allocator().stats(device); }

void* allocate_pinned(size_t nbytes) {
  BRIDLE_CHECK(device_count() > 0,
               "pinned memory needs a CUDA device, and none is available (cuda_is_available() "
               "is false)");
  return pinned_allocator().allocate(nbytes);
}

void release_pinned(void* ptr, size_t nbytes) { pinned_allocator().release(ptr, nbytes); }

AllocatorStats pinned_allocator_stats() { return pinned_allocator().stats(); }

void empty_cache() {
  if (device_count() == 0) return;
  device_allocator().empty();
  pinned_allocator().empty();
}

}  // namespace bridle::cuda
