// oneDNN glue; see onednn.h.
#include "ops/onednn.h"

#include <fmt/format.h>

#include <atomic>
#include <cstdlib>

namespace bridle::onednn {

using dnnl::memory;

dnnl::engine& engine() {
  static dnnl::engine cpu(dnnl::engine::kind::cpu, 0);
  return cpu;
}

dnnl::stream& stream() {
  // One stream per thread: a stream is not meant to be shared across threads.
  thread_local dnnl::stream s(engine());
  return s;
}

memory::dims dims_of(const Shape& shape) { return memory::dims(shape.begin(), shape.end()); }

memory::desc plain_desc(const memory::dims& dims) {
  memory::dims strides(dims.size(), 1);
  for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * dims[i + 1];
  return memory::desc(dims, memory::data_type::f32, strides);
}

std::string OneDnnLayout::name() const {
  // The format tag is not queryable in oneDNN 2.x; report the inner blocks instead.
  std::string name = "oneDNN blocked";
  const dnnl_memory_desc_t& d = desc_.data;
  if (d.format_kind == dnnl_blocked)
    for (int i = 0; i < d.format_desc.blocking.inner_nblks; ++i)
      name += fmt::format(" {}{}", d.format_desc.blocking.inner_blks[i],
                          static_cast<char>('a' + d.format_desc.blocking.inner_idxs[i]));
  return name;
}

void OneDnnLayout::to_plain(const void* src, void* dst) const {
  memory from(desc_, engine(), const_cast<void*>(src));
  memory to(plain_desc(desc_.dims()), engine(), dst);
  dnnl::reorder(from, to).execute(stream(), from, to);
}

bool OneDnnLayout::same_as(const OpaqueLayout& other) const {
  const auto* o = dynamic_cast<const OneDnnLayout*>(&other);
  return o != nullptr && o->desc_ == desc_;
}

memory::desc desc_of(const Tensor& t) {
  if (t.is_plain()) return plain_desc(dims_of(t.shape()));
  const auto* layout = dynamic_cast<const OneDnnLayout*>(t.layout().get());
  BRIDLE_CHECK(layout != nullptr, "oneDNN: tensor {} has a layout oneDNN cannot read: {}",
               shape_str(t.shape()), t.layout()->name());
  return layout->desc();
}

memory memory_of(const Tensor& t) { return memory(desc_of(t), engine(), t.opaque_data()); }

Tensor empty_in(const Shape& shape, const memory::desc& desc) {
  if (desc == plain_desc(dims_of(shape))) return Tensor::empty(shape);
  return Tensor::empty_opaque(shape, std::make_shared<OneDnnLayout>(desc));
}

namespace {
std::atomic<bool>& blocked_layouts_flag() {
  static std::atomic<bool> enabled = [] {
    const char* env = std::getenv("BRIDLE_PLAIN_LAYOUTS");
    return env == nullptr || std::string(env) == "0" || std::string(env).empty();
  }();
  return enabled;
}
}  // namespace

bool blocked_layouts_enabled() { return blocked_layouts_flag().load(); }
void set_blocked_layouts_enabled(bool enabled) { blocked_layouts_flag().store(enabled); }

Tensor finish(Tensor t) {
  if (!blocked_layouts_enabled()) t.make_plain();
  return t;
}

std::string desc_key(const memory::desc& desc) {
  const dnnl_memory_desc_t& d = desc.data;
  std::string key = fmt::format("k{} d{}", static_cast<int>(d.format_kind), d.ndims);
  if (d.format_kind != dnnl_blocked) return key;
  const auto& b = d.format_desc.blocking;
  for (int i = 0; i < d.ndims; ++i) key += fmt::format(" {}:{}", d.dims[i], b.strides[i]);
  for (int i = 0; i < b.inner_nblks; ++i)
    key += fmt::format(" b{}{}", b.inner_blks[i], b.inner_idxs[i]);
  return key;
}

memory wrap(const Tensor& t) { return wrap(t, dims_of(t.shape())); }

memory wrap(const Tensor& t, const memory::dims& dims) {
  return memory(plain_desc(dims), engine(), t.data<float>());
}

memory make_memory(const memory::desc& desc, Tensor& keep) {
  keep =
      Tensor::empty({static_cast<int64_t>((desc.get_size() + sizeof(float) - 1) / sizeof(float))});
  return memory(desc, engine(), keep.data<float>());
}

memory to_layout(const memory& mem, const memory::desc& desc, Tensor& keep) {
  if (mem.get_desc() == desc) return mem;
  memory out = make_memory(desc, keep);
  memory src = mem;
  dnnl::reorder(src, out).execute(stream(), src, out);
  return out;
}

void accumulate_into(const memory& src, const memory& plain_dst) {
  dnnl::post_ops ops;
  ops.append_sum(1.0f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  memory s = src, d = plain_dst;
  dnnl::reorder::primitive_desc pd(s, d, attr);
  dnnl::reorder(pd).execute(stream(), s, d);
}

void copy_into(const memory& src, const memory& plain_dst) {
  memory s = src, d = plain_dst;
  dnnl::reorder(s, d).execute(stream(), s, d);
}

void call(const char* op, const std::function<void()>& fn) {
  try {
    fn();
  } catch (const dnnl::error& e) {
    BRIDLE_FAIL("{}: oneDNN failed: {} (status {})", op, e.what(), static_cast<int>(e.status));
  }
}

}  // namespace bridle::onednn
