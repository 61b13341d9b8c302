// oneDNN glue shared by the ops that run on it (convolution, pooling, batch norm).
//
// - One CPU engine and stream for the process (oneDNN threads with our OpenMP pool).
// - OneDnnLayout: a oneDNN memory descriptor as a tensor's opaque layout, so a
//   convolution's blocked output (e.g. nChw16c) flows into batch norm, ReLU, the
//   residual add and the next convolution without reorders (see core/layout.h).
// - memory_of(): a tensor seen as oneDNN memory in whatever layout it has, no copy;
//   wrap(): the same for plain data, with given dims.
// - empty_in(): a new tensor in a primitive's chosen layout (plain when it is).
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

// A oneDNN memory descriptor as an opaque tensor layout.
class OneDnnLayout : public OpaqueLayout {
 public:
  explicit OneDnnLayout(dnnl::memory::desc desc) : desc_(std::move(desc)) {}
  const dnnl::memory::desc& desc() const { return desc_; }
  std::string name() const override;
  size_t nbytes() const override { return desc_.get_size(); }
  void to_plain(const void* src, void* dst) const override;
  bool same_as(const OpaqueLayout& other) const override;

 private:
  dnnl::memory::desc desc_;
};

// t's memory descriptor: its OneDnnLayout's, or plain row-major for t's shape.
dnnl::memory::desc desc_of(const Tensor& t);
// t's memory as it is (plain or opaque), no copy.
dnnl::memory memory_of(const Tensor& t);
// A new float tensor of `shape` whose memory has layout desc: a plain tensor when
// desc is plain row-major for that shape, else an opaque one.
Tensor empty_in(const Shape& shape, const dnnl::memory::desc& desc);
// Whether oneDNN ops may leave their outputs (and fresh gradients) in blocked
// layouts (default on). Off, they convert them to plain before returning: slower,
// every tensor row-major; for tests and for debugging a suspected layout bug.
// The environment variable BRIDLE_PLAIN_LAYOUTS=1 turns it off at startup.
bool blocked_layouts_enabled();
void set_blocked_layouts_enabled(bool enabled);
// t, converted to plain when blocked layouts are off: what ops return.
Tensor finish(Tensor t);

// A string that tells memory descriptors apart, for primitive-cache keys.
std::string desc_key(const dnnl::memory::desc& desc);

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
