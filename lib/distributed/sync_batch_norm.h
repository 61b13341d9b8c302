// Synchronized batch norm: in training, every BatchNorm layer normalizes with
// the mean and variance of the whole global batch (every rank's share), not of
// its own rank's share (after PyTorch's nn.SyncBatchNorm).
//
//   DistributedDataParallel ddp(model, group);
//   convert_sync_batch_norm(model, group);  // every BatchNorm1d/2d inside model
//
// With it, 2 ranks x batch B train exactly like 1 rank x batch 2B (tested); with
// local batch norm each rank normalizes by its own B examples, which is what
// most data-parallel CNN recipes do anyway, and costs no communication. It
// costs two small all-reduces per layer in forward and two in backward.
//
// all_reduce_sum is the differentiable collective underneath: its output is the
// sum of x over the ranks, and its backward sums the incoming gradients over
// the ranks in the same way (each rank's x reaches every rank's loss).
#pragma once

#include <memory>

#include "core/tensor.h"
#include "distributed/process_group.h"
#include "nn/module.h"

namespace bridle {

// Sum of x over every rank, recorded by autograd. Every rank must call it with
// the same shape, and (when recording) run backward through it too.
Tensor all_reduce_sum(const Tensor& x, const std::shared_ptr<ProcessGroup>& group);

// Makes every BatchNorm in module (and below) synchronize its batch statistics
// over group; returns how many layers it changed. Evaluation mode is unchanged
// (running statistics, no communication).
int64_t convert_sync_batch_norm(Module& module, const std::shared_ptr<ProcessGroup>& group);

}  // namespace bridle
