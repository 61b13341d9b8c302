// Datasets: indexed collections of (input, target) examples that hand out
// whole batches.
//
//   Batch::inputs  [B, ...]  e.g. [B, 1, 28, 28] float32 images
//   Batch::targets [B, ...]  e.g. [B] int64 class labels
//
// A dataset gathers a batch in one call (get_batch) rather than example by
// example, so an in-memory dataset copies contiguous rows with memcpy and no
// per-example tensors exist. DataLoader (dataloader.h) picks the indices.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace bridle {

struct Batch {
  Tensor inputs;
  Tensor targets;

  int64_t size() const { return inputs.size(0); }
};

class Dataset {
 public:
  virtual ~Dataset() = default;

  // Number of examples.
  virtual int64_t size() const = 0;

  // The examples at `indices`, stacked along a new dim 0 in that order. The
  // DataLoader calls this from its prefetch thread while the caller trains, so
  // an implementation must not touch shared mutable state (const is meant).
  virtual Batch get_batch(const std::vector<int64_t>& indices) const = 0;
};

// A dataset over two in-memory tensors whose dim 0 indexes the examples, e.g.
// MNIST's images [N, 1, 28, 28] and labels [N]. get_batch copies rows; the
// tensors are shared, not copied, and must stay unchanged while in use.
class TensorDataset : public Dataset {
 public:
  TensorDataset(Tensor inputs, Tensor targets);

  int64_t size() const override { return inputs_.size(0); }
  Batch get_batch(const std::vector<int64_t>& indices) const override;

  const Tensor& inputs() const { return inputs_; }
  const Tensor& targets() const { return targets_; }

 private:
  Tensor inputs_;
  Tensor targets_;
};

}  // namespace bridle
