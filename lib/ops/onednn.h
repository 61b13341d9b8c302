// oneDNN glue shared by the ops that run on it (convolution, pooling, batch norm).
//
// - One CPU engine and stream for the process (oneDNN threads with our OpenMP pool).
// - wrap(): a bridle tensor seen as oneDNN memory in a plain layout, no copy.
// - to_layout(): memory in the layout a primitive asked for, reordering into a
//   buffer from bridle's caching allocator only when the layouts differ.
// - accumulate_into(): adds memory of any layout into a plain tensor (a reorder
//   with a sum post-op), which is how backward kernels "+=" into gradients.
// - PrimitiveCache: primitives are built once per shape and reused.
// - call(): runs oneDNN code, turning dnnl::error into bridle::Error naming the op.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <unordered_map>

#include "core/tensor.h"

namespace bridle::onednn {

dnnl::engine& engine();
dnnl::stream& stream();

dnnl::memory::dims dims_of(const Shape& shape);

// The plain (row-major) descriptor of a float tensor of this shape, or with the
// given dims (e.g. 5-D goihw for grouped weights over the same memory).
dnnl::memory::desc plain_desc(const dnnl::memory::dims& dims);

// t's memory, no copy, with t's shape or the given dims (same element count).
dnnl::memory wrap(const Tensor& t);
dnnl::memory wrap(const Tensor& t, const dnnl::memory::dims& dims);

// Memory holding `mem`'s values in layout `desc`: mem itself when the layouts
// match, else a reordered copy whose buffer `keep` owns (from the caching allocator).
dnnl::memory to_layout(const dnnl::memory& mem, const dnnl::memory::desc& desc, Tensor& keep);

// Fresh memory of layout desc, backed by a bridle tensor that `keep` owns.
dnnl::memory make_memory(const dnnl::memory::desc& desc, Tensor& keep);

// plain_dst += src (src in any layout, same logical dims).
void accumulate_into(const dnnl::memory& src, const dnnl::memory& plain_dst);
// plain_dst = src.
void copy_into(const dnnl::memory& src, const dnnl::memory& plain_dst);

// Runs fn, converting a dnnl::error into bridle::Error("op: oneDNN ...").
void call(const char* op, const std::function<void()>& fn);

// A map from a shape key to whatever an op builds for that shape (primitive
// descriptors, primitives). Thread-safe lookup; entries live for the process.
template <typename Entry>
class PrimitiveCache {
 public:
  // Returns the entry for key, building it with make() the first time.
  Entry& get(const std::string& key, const std::function<std::unique_ptr<Entry>()>& make) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end()) it = entries_.emplace(key, make()).first;
    return *it->second;
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mutex_);
    return entries_.size();
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, std::unique_ptr<Entry>> entries_;
};

}  // namespace bridle::onednn
