// oneDNN glue; see onednn.h.
#include "ops/onednn.h"

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
