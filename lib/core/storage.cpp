// Device memory and the CPU caching allocator; see storage.h.
//
// Freed CPU blocks go to a free list keyed by their (64-byte rounded) size and
// are handed out again for the next request of that size. A training step
// allocates the same sizes every iteration, so after the first step it touches
// only warm memory. The cache is bounded; past the bound blocks go back to the system.
#include "core/storage.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/cuda/cuda.h"
#include "core/error.h"

namespace bridle {
namespace {

constexpr size_t kMaxCachedBytes = size_t{2} << 30;  // 2 GiB

size_t round_up(size_t n) { return (n + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment; }

class CpuCachingAllocator {
 public:
  void* allocate(size_t nbytes) {
    size_t size = round_up(nbytes == 0 ? 1 : nbytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        void* ptr = it->second.back();
        it->second.pop_back();
        stats_.bytes_cached -= size;
        stats_.bytes_in_use += size;
        return ptr;
      }
      stats_.bytes_in_use += size;
      ++stats_.system_allocations;
    }
    void* ptr = std::aligned_alloc(kCpuAlignment, size);
    BRIDLE_CHECK(ptr != nullptr, "out of memory: could not allocate {} bytes on the cpu", size);
    return ptr;
  }

  void release(void* ptr, size_t nbytes) {
    size_t size = round_up(nbytes == 0 ? 1 : nbytes);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.bytes_in_use -= size;
    if (stats_.bytes_cached + size > kMaxCachedBytes) {
      std::free(ptr);
      return;
    }
    free_[size].push_back(ptr);
    stats_.bytes_cached += size;
  }

  void empty() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, blocks] : free_)
      for (void* ptr : blocks) std::free(ptr);
    free_.clear();
    stats_.bytes_cached = 0;
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  ~CpuCachingAllocator() { empty(); }

 private:
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
};

CpuCachingAllocator& cpu_allocator() {
  // Leaked on purpose: tensors in static storage may outlive any other static.
  static auto* allocator = new CpuCachingAllocator();
  return *allocator;
}

}  // namespace

void* device_allocate(size_t nbytes, Device device) {
  if (device.is_cpu()) return cpu_allocator().allocate(nbytes);
  if constexpr (kCudaBuild) return cuda::allocate(nbytes, device.index);
  BRIDLE_FAIL(
      "cannot allocate on {}: this build has no CUDA backend (configure with -DBRIDLE_CUDA=ON "
      "on a machine with nvcc)",
      device.str());
}

void device_free(void* ptr, size_t nbytes, Device device) {
  if (ptr == nullptr) return;
  if (device.is_cpu()) {
    cpu_allocator().release(ptr, nbytes);
    return;
  }
  if constexpr (kCudaBuild) cuda::release(ptr, nbytes, device.index);
}

void empty_cache() {
  cpu_allocator().empty();
  if constexpr (kCudaBuild) cuda::empty_cache();
}

AllocatorStats allocator_stats(Device device) {
  if (device.is_cpu()) return cpu_allocator().stats();
  if constexpr (kCudaBuild) return cuda::allocator_stats(device.index);
  return {};
}

namespace {

void* allocate_storage(size_t nbytes, Device device, bool pinned) {
  if (!pinned) return device_allocate(nbytes, device);
  BRIDLE_CHECK(device.is_cpu(), "pinned memory is host memory, but {} was asked for", device.str());
  if constexpr (kCudaBuild) return cuda::allocate_pinned(nbytes);
  BRIDLE_FAIL("pinned memory needs the CUDA backend, and this build has none");
}

}  // namespace

Storage::Storage(size_t nbytes, Device device, bool pinned)
    : data_(allocate_storage(nbytes, device, pinned)),
      nbytes_(nbytes),
      device_(device),
      pinned_(pinned) {}

Storage::~Storage() {
  if constexpr (kCudaBuild) {
    if (pinned_) {
      cuda::release_pinned(data_, nbytes_);
      return;
    }
  }
  device_free(data_, nbytes_, device_);
}

}  // namespace bridle
