// ProcessGroup: the ranks of one data-parallel job and the collective operations
// between them (after torch.distributed's process groups).
//
// Every rank runs the same program on its own share of the data. The
// collectives below must be called by every rank, in the same order, with the
// same sizes; MPI matches them by that order alone.
//
//   auto group = init_process_group();          // under mpirun: one rank each
//   group->broadcast(params, /*root=*/0);       // everyone starts from rank 0's
//   group->all_reduce(grads);                    // summed over the ranks, in place
//
// Failures. A collective that the other ranks never join (a rank crashed, threw,
// or stalls) would wait forever; here every wait has a deadline (`timeout`, 5
// minutes by default) and then throws bridle::Error naming the operation, its
// size and the time waited. abort() ends every rank of the job at once; the
// examples call it when they catch an error, so one failing rank stops the job
// with its own message instead of leaving the others to time out.
//
// Implementations: MpiProcessGroup (mpi_process_group.cpp; Open MPI from Debian)
// when the build found MPI, on host memory; NcclProcessGroup
// (nccl_process_group.h) in builds with CUDA, MPI and NCCL, on GPU memory.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace bridle {

enum class ReduceOp { kSum, kMax, kMin };
const char* reduce_op_name(ReduceOp op);  // "sum", "max", "min": for messages

// One collective in flight (all_reduce_async).
class CollectiveWork {
 public:
  virtual ~CollectiveWork() = default;
  // True once the operation is complete on this rank; also lets it progress.
  virtual bool test() = 0;
  // Blocks until complete; throws bridle::Error after the group's timeout.
  virtual void wait() = 0;
};

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;

  virtual int rank() const = 0;  // 0 .. size()-1
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "mpi" or "nccl"
  // Where the float data of the collectives lives: the cpu for MPI, this rank's
  // GPU for NCCL. DistributedDataParallel wants the model there.
  virtual Device device() const { return Device::cpu(); }

  // In place: data[i] becomes op over every rank's data[i]. Float32 and float64.
  virtual std::unique_ptr<CollectiveWork> all_reduce_async(float* data, int64_t count,
                                                           ReduceOp op = ReduceOp::kSum) = 0;
  virtual void all_reduce(double* data, int64_t count, ReduceOp op = ReduceOp::kSum) = 0;
  // Every rank's bytes become root's.
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  virtual void barrier() = 0;
  // Ends every process of the job with exit code `code`, after logging message.
  [[noreturn]] virtual void abort(int code, const std::string& message) = 0;

  // Blocking forms on tensors (on the cpu or on device(); float32 for all_reduce).
  void all_reduce(float* data, int64_t count, ReduceOp op = ReduceOp::kSum) {
    all_reduce_async(data, count, op)->wait();
  }
  void all_reduce(const Tensor& t, ReduceOp op = ReduceOp::kSum);
  void broadcast(const Tensor& t, int root);

  // How long a collective may wait for the other ranks before it throws.
  std::chrono::milliseconds timeout() const { return timeout_; }
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }

 private:
  std::chrono::milliseconds timeout_ = std::chrono::minutes(5);
};

// Whether this build has the MPI process group.
bool mpi_is_available();

// The MPI process group of every rank of the job (MPI_COMM_WORLD), initializing
// MPI on the first call; later calls return the same group. A program run
// without mpirun is a job of one rank. Throws when the build has no MPI.
std::shared_ptr<ProcessGroup> init_process_group();

// Ranks are often named in messages and logs: "rank 1/2".
std::string rank_str(const ProcessGroup& group);

}  // namespace bridle
