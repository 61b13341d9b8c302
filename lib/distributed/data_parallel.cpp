// DistributedDataParallel; see data_parallel.h.
#include "distributed/data_parallel.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <unordered_set>

#include "autograd/engine.h"
#include "autograd/node.h"
#include "core/cuda/cuda.h"
#include "core/factory.h"
#include "ops/elementwise.h"

namespace bridle {
namespace {

// A fingerprint of the parameter shapes, so ranks that built different models
// fail at the start with a clear message instead of all-reducing garbage.
std::vector<double> layout_signature(const std::vector<Tensor>& params) {
  double count = 0, elements = 0, weighted = 0;
  for (const Tensor& p : params) {
    count += 1;
    elements += static_cast<double>(p.numel());
    weighted += count * static_cast<double>(p.numel());  // order-sensitive
  }
  return {count, elements, weighted};
}

// cuda::fill works on the current device.
void fill_zeros_on_device(float* data, Device device, int64_t n) {
  if constexpr (kCudaBuild) {
    cuda::DeviceGuard guard(device);
    cuda::fill(data, DType::kFloat32, n, 0.0);
  }
}

}  // namespace

DistributedDataParallel::DistributedDataParallel(Module& module,
                                                 std::shared_ptr<ProcessGroup> group,
                                                 DataParallelOptions options)
    : module_(module), group_(std::move(group)), options_(options) {
  BRIDLE_CHECK(group_ != nullptr, "DistributedDataParallel: no process group");
  BRIDLE_CHECK(options_.bucket_bytes > 0,
               "DistributedDataParallel: bucket_bytes must be > 0, got {}", options_.bucket_bytes);

  // The parameters that train, each once (a tied weight appears once).
  std::vector<Tensor> params;
  std::unordered_set<TensorImpl*> seen;
  for (const auto& [name, p] : module_.named_parameters()) {
    if (!p.requires_grad() || !seen.insert(&p.impl()).second) continue;
    BRIDLE_CHECK(p.is_float(),
                 "DistributedDataParallel: parameter '{}' is {}; the process group exchanges "
                 "float32 gradients",
                 name, dtype_name(p.dtype()));
    // The MPI group reduces host memory, the NCCL group its GPU's memory.
    BRIDLE_CHECK(p.device() == group_->device(),
                 "DistributedDataParallel: parameter '{}' is on {}, but the {} process group "
                 "exchanges gradients on {}: {}",
                 name, p.device().str(), group_->backend(), group_->device().str(),
                 p.device().is_cuda() ? "train a CUDA model with the NCCL group "
                                        "(init_nccl_process_group)"
                                      : "move the model to the group's device first, or train "
                                        "a CPU model with the MPI group (init_process_group)");
    params.push_back(p);
  }
  device_ = group_->device();

  // Every rank must hold the same parameters, in the same order.
  std::vector<double> mine = layout_signature(params), low = mine, high = mine;
  group_->all_reduce(low.data(), static_cast<int64_t>(low.size()), ReduceOp::kMin);
  group_->all_reduce(high.data(), static_cast<int64_t>(high.size()), ReduceOp::kMax);
  BRIDLE_CHECK(low == high,
               "DistributedDataParallel: {} has {} parameters with {} elements, but the ranks "
               "disagree (between {} and {} parameters, {} and {} elements): every rank must "
               "build the same model",
               rank_str(*group_), mine[0], mine[1], low[0], high[0], low[1], high[1]);

  // Buckets, last parameter first.
  const int64_t bucket_floats = std::max<int64_t>(1, options_.bucket_bytes / 4);
  int64_t filled = 0;  // floats in the last bucket
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    if (buckets_.empty() || filled >= bucket_floats) {
      buckets_.emplace_back();
      filled = 0;
    }
    buckets_.back().params.push_back(*it);
    filled += it->numel();
  }
  for (Bucket& bucket : buckets_) {
    int64_t size = 0;
    for (const Tensor& p : bucket.params) size += p.numel();
    bucket.flat = Tensor::empty({size}, device_);
  }
  for (size_t b = 0; b < buckets_.size(); ++b) {
    for (Tensor& p : buckets_[b].params) {
      Tensor param = p;
      const int64_t handle = param.register_post_accumulate_grad_hook(
          [this, b](const Tensor&) { on_gradient_ready(b); });
      hooks_.emplace_back(param, handle);
    }
  }

  if (options_.broadcast_at_start) broadcast_parameters();
}

DistributedDataParallel::~DistributedDataParallel() {
  for (auto& [param, handle] : hooks_) param.remove_post_accumulate_grad_hook(handle);
}

void DistributedDataParallel::broadcast_parameters() {
  NoGradGuard no_grad;
  for (const auto& [name, p] : module_.named_parameters()) group_->broadcast(p, 0);
  sync_buffers();
}

void DistributedDataParallel::sync_buffers() {
  for (const auto& [name, b] : module_.named_buffers()) group_->broadcast(b, 0);
}

void DistributedDataParallel::on_gradient_ready(size_t bucket_index) {
  if (!in_backward_) {  // the first gradient of a new backward
    in_backward_ = true;
    next_to_start_ = 0;
    for (Bucket& bucket : buckets_) bucket.pending = static_cast<int64_t>(bucket.params.size());
    queue_backward_callback([this] { finish_backward(); });
  }
  Bucket& bucket = buckets_[bucket_index];
  --bucket.pending;
  if (bucket.pending == 0) start_ready_buckets();
  // Let the buckets already in flight progress (MPI moves data only inside calls).
  for (size_t b = 0; b < next_to_start_; ++b)
    if (buckets_[b].work) buckets_[b].work->test();
}

void DistributedDataParallel::start_ready_buckets() {
  while (next_to_start_ < buckets_.size() && buckets_[next_to_start_].pending == 0) {
    start(buckets_[next_to_start_]);
    ++next_to_start_;
    ++stats_.buckets_started_early;
  }
}

void DistributedDataParallel::start(Bucket& bucket) {
  float* flat = bucket.flat.data<float>();
  int64_t offset = 0;
  for (const Tensor& p : bucket.params) {
    const Tensor grad = p.grad();
    const int64_t n = p.numel();
    if (device_.is_cpu()) {
      if (grad.defined())
        std::memcpy(flat + offset, grad.data<float>(), n * sizeof(float));
      else
        std::memset(flat + offset, 0, n * sizeof(float));  // not reached on this rank
    } else if constexpr (kCudaBuild) {
      // Queued on bridle's stream after the gradient's own kernels; the NCCL
      // group orders its all-reduce after them.
      if (grad.defined())
        cuda::copy_bytes(flat + offset, device_, grad.data<float>(), device_, n * sizeof(float));
      else
        fill_zeros_on_device(flat + offset, device_, n);  // not reached on this rank
    }
    offset += n;
  }
  bucket.work = group_->all_reduce_async(flat, offset, ReduceOp::kSum);
  ++stats_.all_reduces;
  stats_.bytes_reduced += offset * static_cast<int64_t>(sizeof(float));
}

void DistributedDataParallel::finish_backward() {
  const auto start_time = std::chrono::steady_clock::now();
  // Whatever is left (a parameter this rank did not reach holds its bucket
  // back), in order, so every rank starts the same all-reduces in the same order.
  while (next_to_start_ < buckets_.size()) start(buckets_[next_to_start_++]);
  const float scale = 1.0f / static_cast<float>(group_->size());
  for (Bucket& bucket : buckets_) {
    bucket.work->wait();
    bucket.work.reset();
    if (device_.is_cuda()) {
      unflatten_on_device(bucket, scale);
      continue;
    }
    const float* flat = bucket.flat.data<float>();
    int64_t offset = 0;
    for (Tensor& p : bucket.params) {
      Tensor grad = p.grad();
      if (!grad.defined()) {
        grad = Tensor::empty(p.shape());
        p.set_grad(grad);
      }
      float* g = grad.data<float>();
      const int64_t n = p.numel();
      for (int64_t i = 0; i < n; ++i) g[i] = flat[offset + i] * scale;
      offset += n;
    }
  }
  in_backward_ = false;
  ++stats_.backward_passes;
  stats_.wait_seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
}

// The averages back into .grad with one scaling kernel (mul) over the bucket and
// a device copy per parameter, all queued on bridle's stream.
void DistributedDataParallel::unflatten_on_device(Bucket& bucket, float scale) {
  if constexpr (kCudaBuild) {
    NoGradGuard no_grad;
    const Tensor averaged = mul(bucket.flat, scale);
    const float* flat = averaged.data<float>();
    int64_t offset = 0;
    for (Tensor& p : bucket.params) {
      Tensor grad = p.grad();
      if (!grad.defined()) {
        grad = Tensor::empty(p.shape(), device_);
        p.set_grad(grad);
      }
      const int64_t n = p.numel();
      cuda::copy_bytes(grad.data<float>(), device_, flat + offset, device_, n * sizeof(float));
      offset += n;
    }
  }
}

}  // namespace bridle
