// The examples' data-parallel plumbing; see distributed.h.
#include "common/distributed.h"

#include <spdlog/spdlog.h>

namespace bridle::examples {
namespace {

std::shared_ptr<ProcessGroup>& group_slot() {
  static std::shared_ptr<ProcessGroup> group;
  return group;
}

}  // namespace

void init_distributed(const CommonFlags& flags) {
  if (!flags.distributed) return;
  BRIDLE_CHECK(mpi_is_available(),
               "--distributed: this build has no MPI; install libopenmpi-dev and openmpi-bin, "
               "configure again, and launch with mpirun -np N");
  // A model on the GPU exchanges its gradients there, through NCCL.
  const bool on_gpu = Device::parse(flags.device).is_cuda();
  BRIDLE_CHECK(!on_gpu || nccl_is_available(),
               "--distributed --device {}: this build has no NCCL process group; it needs the "
               "CUDA backend, MPI and NCCL (nccl.h and libnccl) when configured",
               flags.device);
  std::shared_ptr<ProcessGroup> group = on_gpu ? init_nccl_process_group() : init_process_group();
  group->set_timeout(
      std::chrono::milliseconds(static_cast<int64_t>(flags.collective_timeout_seconds * 1000)));
  group_slot() = group;
  if (group->rank() != 0) spdlog::set_level(spdlog::level::warn);
  spdlog::info(
      "distributed: {} ranks over {}; --batch-size {} per rank, {} in all; collectives "
      "time out after {} s",
      group->size(), group->backend(), flags.batch_size, flags.batch_size * group->size(),
      flags.collective_timeout_seconds);
  if (group->size() == 1)
    spdlog::warn("--distributed with a single rank: launch with mpirun -np N to train on N");
}

const std::shared_ptr<ProcessGroup>& process_group() { return group_slot(); }

Device training_device(const CommonFlags& flags) {
  const Device device = Device::parse(flags.device);
  if (device.is_cuda() && process_group()) return process_group()->device();
  return device;
}

bool is_main_rank() { return !process_group() || process_group()->rank() == 0; }

std::unique_ptr<DistributedDataParallel> wrap_data_parallel(const CommonFlags& flags,
                                                            Module& model) {
  if (!process_group()) return nullptr;
  auto ddp = std::make_unique<DistributedDataParallel>(
      model, process_group(),
      DataParallelOptions{.bucket_bytes = static_cast<int64_t>(flags.bucket_mb * (1 << 20))});
  int64_t synchronized = 0;
  if (flags.sync_batch_norm) synchronized = convert_sync_batch_norm(model, process_group());
  spdlog::info(
      "data parallel: {} gradient buckets of up to {} MB{}", ddp->num_buckets(), flags.bucket_mb,
      flags.sync_batch_norm ? fmt::format(", {} batch norm layers synchronized", synchronized)
                            : "");
  return ddp;
}

void sum_over_ranks(std::vector<double>& values) {
  if (!process_group()) return;
  process_group()->all_reduce(values.data(), static_cast<int64_t>(values.size()));
}

void shard_by_rank(DataLoaderOptions& options) {
  if (!process_group()) return;
  options.num_shards = process_group()->size();
  options.shard = process_group()->rank();
}

int exit_with_error(const std::exception& e) {
  spdlog::error("{}", e.what());
  if (process_group() && process_group()->size() > 1) process_group()->abort(1, e.what());
  return 1;
}

}  // namespace bridle::examples
