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
  BRIDLE_CHECK(device.is_cpu(), "cannot allocate on {}: this build has no CUDA backend",
               device.str());
  return cpu_allocator().allocate(nbytes);
}

void device_free(void* ptr, size_t nbytes, Device device) {
  if (ptr == nullptr) return;
  if (device.is_cpu()) cpu_allocator().release(ptr, nbytes);
}

void empty_cache() { cpu_allocator().empty(); }

AllocatorStats allocator_stats() { return cpu_allocator().stats(); }

Storage::Storage(size_t nbytes, Device device)
    : data_(device_allocate(nbytes, device)), nbytes_(nbytes), device_(device) {}

Storage::~Storage() { device_free(data_, nbytes_, device_); }

}  // namespace bridle
