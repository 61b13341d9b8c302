// DataLoader: epoch orders, batching, augmentation, normalization and the
// prefetch worker; see dataloader.h for the order and the threading contract.
#include "data/dataloader.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <utility>

#include "core/error.h"

namespace bridle {
namespace {

// Uniform in [0, bound) from raw 64-bit draws. std::uniform_int_distribution
// would do, but its algorithm differs between standard libraries, and the
// order must not. Rejecting draws above the largest multiple of bound removes
// the modulo bias; at most one draw in two is rejected, almost never one.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  const uint64_t excess = (kMax % bound + 1) % bound;  // 2^64 mod bound
  uint64_t x = rng();
  while (x > kMax - excess) x = rng();
  return x % bound;
}

}  // namespace

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), options_(std::move(options)) {
  BRIDLE_CHECK(dataset_ != nullptr, "DataLoader: the dataset is null");
  BRIDLE_CHECK(options_.batch_size > 0, "DataLoader: batch_size must be positive, got {}",
               options_.batch_size);
  BRIDLE_CHECK(options_.prefetch >= 0, "DataLoader: prefetch must be >= 0, got {}",
               options_.prefetch);
  BRIDLE_CHECK(options_.mean.size() == options_.stddev.size(),
               "DataLoader: normalization has {} means but {} stddevs", options_.mean.size(),
               options_.stddev.size());
  for (size_t c = 0; c < options_.stddev.size(); ++c)
    BRIDLE_CHECK(options_.stddev[c] > 0 && std::isfinite(options_.stddev[c]),
                 "DataLoader: stddev[{}] = {} must be positive and finite", c, options_.stddev[c]);
  for (const Augmentation& augmentation : options_.augment) check_augmentation(augmentation);
  BRIDLE_CHECK(options_.num_shards >= 1, "DataLoader: num_shards must be >= 1, got {}",
               options_.num_shards);
  BRIDLE_CHECK(options_.shard >= 0 && options_.shard < options_.num_shards,
               "DataLoader: shard {} is not in [0, {}) (num_shards)", options_.shard,
               options_.num_shards);
  BRIDLE_CHECK(!options_.pin_memory || cuda_is_available(),
               "DataLoader: pin_memory is for copies to a GPU, and {}",
               kCudaBuild ? "no CUDA device is available" : "this build has no CUDA backend");
  dataset_size_ = dataset_->size();
  const int64_t shards = options_.num_shards;
  num_examples_ = options_.even_shards ? (dataset_size_ + shards - 1) / shards
                                       : (dataset_size_ - options_.shard + shards - 1) / shards;
  const int64_t b = options_.batch_size;
  num_batches_ = options_.drop_last ? num_examples_ / b : (num_examples_ + b - 1) / b;
}

DataLoader::~DataLoader() { stop_worker(); }

std::vector<int64_t> DataLoader::epoch_order(int64_t epoch) const {
  std::vector<int64_t> order(static_cast<size_t>(dataset_size_));
  for (int64_t i = 0; i < dataset_size_; ++i) order[i] = i;
  if (options_.shuffle) {
    std::mt19937_64 rng(splitmix64(options_.seed ^ splitmix64(static_cast<uint64_t>(epoch))));
    for (int64_t i = dataset_size_ - 1; i > 0; --i) {
      auto j = static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(i) + 1));
      std::swap(order[i], order[j]);
    }
  }
  if (options_.num_shards == 1) return order;
  // This shard: every num_shards-th position from its own, the full order
  // wrapping around for the padding of even shards.
  std::vector<int64_t> shard(static_cast<size_t>(num_examples_));
  for (int64_t i = 0; i < num_examples_; ++i)
    shard[i] = order[(options_.shard + i * options_.num_shards) % dataset_size_];
  return shard;
}

void DataLoader::start_epoch(int64_t epoch) {
  stop_worker();
  order_ = epoch_order(epoch);
  epoch_ = epoch;
  consumed_ = 0;
  started_ = true;
  queue_.clear();
  error_ = nullptr;
  worker_done_ = false;
  stop_ = false;
  // Starting the thread publishes order_ and the reset state to it.
  if (options_.prefetch > 0 && num_batches_ > 0) worker_ = std::thread([this] { worker_loop(); });
}

std::optional<Batch> DataLoader::next() {
  BRIDLE_CHECK(started_,
               "DataLoader::next: no epoch started; call start_epoch(epoch) first, or iterate "
               "`for (Batch& b : loader.epoch(epoch))`");
  if (consumed_ >= num_batches_) return std::nullopt;
  if (options_.prefetch == 0) {
    try {
      return make_batch(consumed_++);
    } catch (...) {
      consumed_ = num_batches_;  // a failed batch ends the epoch, as with prefetch
      throw;
    }
  }

  std::unique_lock<std::mutex> lock(mutex_);
  not_empty_.wait(lock, [this] { return !queue_.empty() || worker_done_; });
  if (queue_.empty()) {
    // The worker stopped early: it failed on this batch. End the epoch and
    // hand its exception to the caller.
    consumed_ = num_batches_;
    std::exception_ptr error = std::exchange(error_, nullptr);
    lock.unlock();
    if (error) std::rethrow_exception(error);
    BRIDLE_FAIL("DataLoader::next: the prefetch worker stopped without a batch or an error");
  }
  Batch batch = std::move(queue_.front());
  queue_.pop_front();
  ++consumed_;
  lock.unlock();
  not_full_.notify_one();
  return batch;
}

Batch DataLoader::make_batch(int64_t index) const {
  const int64_t begin = index * options_.batch_size;
  const int64_t end = std::min(begin + options_.batch_size, num_examples_);
  std::vector<int64_t> indices(order_.begin() + begin, order_.begin() + end);
  Batch batch = dataset_->get_batch(indices);
  BRIDLE_CHECK(
      batch.inputs.defined() && batch.inputs.dim() >= 1 && batch.inputs.size(0) == end - begin,
      "DataLoader: the dataset returned inputs {} for a batch of {} indices",
      batch.inputs.defined() ? shape_str(batch.inputs.shape()) : "(undefined)", end - begin);
  if (!options_.augment.empty())
    batch.inputs =
        augment_batch(std::move(batch.inputs), options_.augment, indices, options_.seed, epoch_);
  if (!options_.mean.empty()) normalize(batch.inputs);
  if (options_.pin_memory) {
    batch.inputs = batch.inputs.pin_memory();
    if (batch.targets.defined()) batch.targets = batch.targets.pin_memory();
  }
  return batch;
}

void DataLoader::normalize(Tensor& inputs) const {
  const auto channels = static_cast<int64_t>(options_.mean.size());
  BRIDLE_CHECK(inputs.dtype() == kFloat32, "DataLoader: normalization needs float32 inputs, got {}",
               dtype_name(inputs.dtype()));
  BRIDLE_CHECK(channels == 1 || (inputs.dim() >= 2 && inputs.size(1) == channels),
               "DataLoader: {} normalization means/stddevs need inputs [B, {}, ...], got {}",
               channels, channels, shape_str(inputs.shape()));
  const int64_t batch = inputs.size(0);
  const int64_t inner = batch == 0 ? 0 : inputs.numel() / (batch * channels);
  float* x = inputs.data<float>();
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t c = 0; c < channels; ++c) {
      const float mean = options_.mean[c], stddev = options_.stddev[c];
      float* p = x + (b * channels + c) * inner;
      for (int64_t i = 0; i < inner; ++i) p[i] = (p[i] - mean) / stddev;
    }
  }
}

void DataLoader::worker_loop() {
  for (int64_t index = 0; index < num_batches_; ++index) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      not_full_.wait(lock, [this] {
        return stop_ || static_cast<int64_t>(queue_.size()) < options_.prefetch;
      });
      if (stop_) return;
    }
    // Gathering runs unlocked: this is the work that overlaps with training.
    std::optional<Batch> batch;
    std::exception_ptr error;
    try {
      batch = make_batch(index);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (error) {
        // Moved, not copied: the caller must hold the only reference, since
        // libstdc++'s (uninstrumented) exception refcount would otherwise
        // free it on this thread in a way ThreadSanitizer cannot follow.
        error_ = std::move(error);
        worker_done_ = true;
      } else {
        queue_.push_back(std::move(*batch));
      }
    }
    not_empty_.notify_one();
    if (!batch) return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    worker_done_ = true;
  }
  not_empty_.notify_one();
}

void DataLoader::stop_worker() {
  if (!worker_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  not_full_.notify_all();
  worker_.join();
}

}  // namespace bridle
