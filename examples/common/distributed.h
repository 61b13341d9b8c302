// --distributed: the examples' data-parallel training over MPI (lib/distributed),
// in mnist_mlp, the classifiers (common/classifier.h) and word_lm.
//
//   mpirun -np 2 build/examples/mnist_mlp --distributed --threads 1
//   mpirun -np 2 build/examples/mnist_mlp --distributed --device cuda   # NCCL, a GPU each
//
// With --device cuda the gradients go through the NCCL process group
// (distributed/nccl_process_group.h), and each rank trains on the GPU that
// group picked for it (training_device).
//
// Every rank builds the same model and DistributedDataParallel gives it rank 0's
// weights; each rank trains on its own shard of every epoch (--batch-size is
// per rank, so the global batch is ranks x batch size) and the gradients are
// averaged after every backward. Rank 0 alone prints progress, writes
// checkpoints (--save), reports and the metrics line; every rank loads --resume.
// Training loss and accuracy are summed over the ranks before they are printed;
// every rank evaluates the whole test set with rank 0's batch norm statistics,
// so the test figures are the same on every rank. An error on any rank ends the
// whole job (exit_with_error), and a rank that stops answering ends it after
// --collective-timeout seconds.
#pragma once

#include <exception>
#include <memory>
#include <vector>

#include "bridle.h"
#include "common/example_main.h"

namespace bridle::examples {

// Starts the process group for --distributed (from apply_common_flags); quiets
// the info logs of every rank but 0.
void init_distributed(const CommonFlags& flags);

// The job's process group; null without --distributed.
const std::shared_ptr<ProcessGroup>& process_group();
// --device, except that under --distributed --device cuda each rank gets its own
// GPU: the NCCL group's (local rank modulo the number of GPUs).
Device training_device(const CommonFlags& flags);
// Rank 0, or the only process: the one that prints and writes files.
bool is_main_rank();

// Wraps model for --distributed (and --sync-batch-norm); null without it.
std::unique_ptr<DistributedDataParallel> wrap_data_parallel(const CommonFlags& flags,
                                                            Module& model);

// Sums each value over the ranks, in place (nothing without --distributed).
void sum_over_ranks(std::vector<double>& values);

// Shards a training loader's options by rank (nothing without --distributed).
void shard_by_rank(DataLoaderOptions& options);

// Logs e and returns 1; in a job of several ranks, ends every rank instead.
int exit_with_error(const std::exception& e);

}  // namespace bridle::examples
