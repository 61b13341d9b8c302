// DistributedDataParallel: the same model on every rank, each rank training on
// its own share of every batch, gradients averaged across ranks so every rank
// takes the same optimizer step (after PyTorch's nn.parallel.DistributedDataParallel).
//
//   auto group = init_process_group();
//   models::Mlp model;
//   DistributedDataParallel ddp(model, group);      // rank 0's weights everywhere
//   for (Batch& batch : loader.epoch(e)) {          // loader sharded by rank
//     optimizer.zero_grad();
//     cross_entropy(model.forward(batch.inputs), batch.targets).backward();
//     optimizer.step();                             // grads are already averaged
//   }
//
// 2 ranks with batch B then follow the same trajectory as 1 rank with batch 2B
// (to float rounding): the mean loss over 2B examples has the average of the two
// ranks' mean-over-B gradients as its gradient.
//
// How the gradients travel. The parameters are cut into buckets of about
// `bucket_bytes`, in reverse registration order (the order backward tends to
// finish them: the last layer's first). Each parameter carries a hook
// (Tensor::register_post_accumulate_grad_hook) that runs as soon as its
// gradient is complete; when a bucket's last gradient is in, the bucket is
// copied into one flat buffer and its all-reduce starts, while backward goes on
// with the layers below. At the end of backward (queue_backward_callback) the
// remaining buckets start, every all-reduce is waited for, and the sums, divided
// by the number of ranks, are copied back into .grad. So optimizer.step() after
// backward() needs nothing else.
//
// Buckets start strictly in order on every rank, so the collectives match even
// when ranks finish their gradients in different orders. A parameter that this
// rank's backward did not reach (an unused branch) counts as a zero gradient,
// and after the exchange holds the average like every other. Buffers (batch
// norm's running statistics) are not averaged: call sync_buffers() to copy
// rank 0's, or use synchronized batch norm (sync_batch_norm.h).
//
// Devices. With the MPI group the model is on the cpu and the buckets are host
// memory; with the NCCL group (nccl_process_group.h) the model is on the
// group's GPU, and the buckets, their copies and the averaging stay there.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "distributed/process_group.h"
#include "nn/module.h"

namespace bridle {

struct DataParallelOptions {
  int64_t bucket_bytes = int64_t{25} << 20;  // gradient bytes per all-reduce (PyTorch's default)
  bool broadcast_at_start = true;            // parameters and buffers from rank 0 when wrapping
};

// What the gradient exchange did, summed since construction.
struct DataParallelStats {
  int64_t backward_passes = 0;
  int64_t all_reduces = 0;            // bucket all-reduces started
  int64_t bytes_reduced = 0;          // their payload, per rank
  int64_t buckets_started_early = 0;  // started from a hook, before backward ended
  double wait_seconds = 0;            // spent in the end-of-backward wait
};

class DistributedDataParallel {
 public:
  DistributedDataParallel(Module& module, std::shared_ptr<ProcessGroup> group,
                          DataParallelOptions options = {});
  ~DistributedDataParallel();  // removes the hooks
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  Tensor forward(const Tensor& input) { return module_.forward(input); }
  Module& module() { return module_; }
  ProcessGroup& group() { return *group_; }

  // Copies every parameter and buffer from rank 0 to the others.
  void broadcast_parameters();
  // Copies every buffer (running statistics, counters) from rank 0.
  void sync_buffers();

  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
  const DataParallelStats& stats() const { return stats_; }

 private:
  struct Bucket {
    std::vector<Tensor> params;  // in bucket order
    Tensor flat;                 // one float buffer for all of them
    int64_t pending = 0;         // gradients not yet complete in this backward
    std::unique_ptr<CollectiveWork> work;
  };

  void on_gradient_ready(size_t bucket_index);
  void start_ready_buckets();  // in order, up to the first one still pending
  void start(Bucket& bucket);
  void finish_backward();                                 // the end-of-backward callback
  void unflatten_on_device(Bucket& bucket, float scale);  // CUDA: averages into .grad

  Module& module_;
  std::shared_ptr<ProcessGroup> group_;
  Device device_;  // the parameters' and the group's: the cpu (MPI) or a GPU (NCCL)
  DataParallelOptions options_;
  std::vector<Bucket> buckets_;
  std::vector<std::pair<Tensor, int64_t>> hooks_;  // (parameter, hook handle)
  bool in_backward_ = false;
  size_t next_to_start_ = 0;
  DataParallelStats stats_;
};

}  // namespace bridle
