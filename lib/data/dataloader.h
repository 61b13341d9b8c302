// DataLoader: a dataset cut into (shuffled, augmented, normalized) batches, the
// next one prepared on a background thread while the current one trains.
//
//   auto train = std::make_shared<TensorDataset>(mnist.images, mnist.labels);
//   DataLoader loader(train, {.batch_size = 64, .shuffle = true, .seed = 1,
//                             .mean = {0.1307f}, .stddev = {0.3081f}});
//   for (int64_t epoch = 0; epoch < 10; ++epoch)
//     for (Batch& batch : loader.epoch(epoch))   // inputs [64, 1, 28, 28], targets [64]
//       train_step(batch.inputs, batch.targets);
//
// The same loop by hand: loader.start_epoch(epoch); while (auto b = loader.next()) ...
//
// A batch is made in three steps: the dataset gathers the examples, the
// `augment` transforms (augment.h: random crops and flips, seeded per example
// from (seed, epoch, index)) change them, and `mean`/`stddev` normalize them;
// with `pin_memory` the result is then copied into pinned memory for the GPU.
// Set `augment` on the training loader only.
//
// Order. Epoch e visits every example once, in order 0..N-1 or, with shuffle, in a
// Fisher-Yates permutation: for i = N-1 down to 1, swap(order[i], order[j]) with
// j uniform in [0, i], drawn by rejection sampling from
// std::mt19937_64(splitmix64(seed ^ splitmix64(e))). The order depends only on
// (seed, e, N), is the same on every platform and standard library, and differs
// from epoch to epoch. Batch k is order[k*B, (k+1)*B); drop_last drops a short
// last batch.
//
// Threads. With prefetch > 0 one worker thread per epoch gathers, augments and
// normalizes up to `prefetch` batches ahead. One is plenty: it gathers, crops,
// flips and normalizes over 100000 CIFAR images a second on one core, while a
// ResNet trains on about 600. Every random draw is seeded per example, so the
// batches are the same with or without prefetching. It stops when the next epoch starts or the
// loader is destroyed, so breaking out of the loop early is fine. An exception
// thrown while preparing a batch reaches the caller from next() in that batch's
// place and ends the epoch. Dataset::get_batch must be safe to call from
// another thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"

namespace bridle {

struct DataLoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = false;    // on for training, off for evaluation
  bool drop_last = false;  // drop a last batch smaller than batch_size
  uint64_t seed = 0;       // shuffling and augmentation seed; see the order above
  // Random transforms of each batch's inputs [B, C, H, W], in this order, e.g.
  // {RandomCrop{.padding = 4}, RandomHorizontalFlip{}} (augment.h). Empty: none.
  std::vector<Augmentation> augment = {};
  // Per-channel normalization of the inputs, x = (x - mean[c]) / stddev[c], with c
  // indexing dim 1 (NCHW). One value applies to every channel. Empty: none.
  std::vector<float> mean = {};
  std::vector<float> stddev = {};
  int prefetch = 2;  // batches prepared ahead on a background thread; 0: none, no thread
  // Copy each batch into pinned (page-locked) host memory where it is made (on
  // the worker thread with prefetch), as PyTorch's pin_memory: then
  // batch.inputs.to(cuda) is a DMA that runs while the GPU works, instead of a
  // copy through a staging buffer that holds up the host. Needs a GPU: without
  // one (or in a build without CUDA) the loader's constructor says so.
  bool pin_memory = false;
  // Data-parallel sharding (a distributed sampler). With num_shards R, the loader
  // of rank `shard` visits positions shard, shard + R, shard + 2R, ... of each
  // epoch's order, so the ranks' shards are disjoint and their batch k together
  // are batch k of one loader with R times the batch size. even_shards (for
  // training) pads every shard to ceil(N / R) examples by wrapping around to the
  // start of the order, so every rank takes the same number of steps; off (for
  // evaluation), the shards hold each example exactly once and differ in length
  // by at most one.
  int64_t num_shards = 1;
  int64_t shard = 0;
  bool even_shards = true;
};

// splitmix64 (Steele, Lea and Flood 2014): turns nearby seeds (0, 1, 2, ...) into
// unrelated mt19937_64 seeds. Exposed so the documented order can be reproduced.
uint64_t splitmix64(uint64_t x);

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options = {});
  ~DataLoader();  // stops and joins the worker
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t num_batches() const { return num_batches_; }    // per epoch
  int64_t num_examples() const { return num_examples_; }  // per epoch (this shard's, when sharded)
  const DataLoaderOptions& options() const { return options_; }
  const Dataset& dataset() const { return *dataset_; }

  // The order in which epoch `epoch` visits the examples (see the top of this
  // file): num_examples() dataset indices, this loader's shard when sharded.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

  // Starts epoch `epoch` (any epoch, in any order), abandoning the current one.
  void start_epoch(int64_t epoch);
  // The next batch of the current epoch, or nullopt once it is over.
  std::optional<Batch> next();

  // for (Batch& batch : loader.epoch(e)): start_epoch(e), then next() until done.
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    using pointer = Batch*;
    using reference = Batch&;

    explicit Iterator(DataLoader* loader) : loader_(loader) { ++*this; }
    Batch& operator*() { return *batch_; }
    Batch* operator->() { return &*batch_; }
    Iterator& operator++() {
      batch_ = loader_->next();
      return *this;
    }
    bool operator==(std::default_sentinel_t) const { return !batch_.has_value(); }

   private:
    DataLoader* loader_;
    std::optional<Batch> batch_;
  };

  class EpochRange {
   public:
    EpochRange(DataLoader* loader, int64_t epoch) : loader_(loader), epoch_(epoch) {}
    Iterator begin() {
      loader_->start_epoch(epoch_);
      return Iterator(loader_);
    }
    std::default_sentinel_t end() const { return {}; }

   private:
    DataLoader* loader_;
    int64_t epoch_;
  };

  EpochRange epoch(int64_t epoch) { return EpochRange(this, epoch); }

 private:
  Batch make_batch(int64_t index) const;  // gather batch `index` of order_, augment, normalize
  void normalize(Tensor& inputs) const;
  void worker_loop();
  void stop_worker();

  std::shared_ptr<const Dataset> dataset_;
  DataLoaderOptions options_;
  int64_t dataset_size_ = 0;
  int64_t num_examples_ = 0;  // per epoch: dataset_size_, or this shard's share
  int64_t num_batches_ = 0;

  // The current epoch. order_ and epoch_ are written only while no worker runs.
  bool started_ = false;
  int64_t epoch_ = 0;
  std::vector<int64_t> order_;
  int64_t consumed_ = 0;  // batches handed out by next()

  // Prefetch: the worker fills queue_ (at most options_.prefetch batches).
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable not_full_;   // the worker waits for room (or stop_)
  std::condition_variable not_empty_;  // next() waits for a batch (or worker_done_)
  std::deque<Batch> queue_;
  std::exception_ptr error_;  // what the worker threw; delivered after the queued batches
  bool worker_done_ = false;
  bool stop_ = false;
};

}  // namespace bridle
