// The NCCL process group; see nccl_process_group.h.
//
// The group owns a CUDA stream of its own, so NCCL's kernels can run beside
// bridle's (DistributedDataParallel's next buckets are copied while the last
// ones are reduced). A collective is ordered after the work already queued on
// bridle's stream (core/cuda/cuda.h) by an event that the group's stream
// waits for, and a second event, recorded after it, tells when it is done.
//
// Waiting polls that event, and NCCL's asynchronous error, against the
// group's deadline, as the MPI group polls its requests: a rank that has died
// would otherwise leave NCCL's kernel spinning on the GPU forever. On a timeout
// or an error the communicator is aborted (ncclCommAbort), which stops the
// kernel, and the wait throws bridle::Error naming the rank, the operation,
// its size and the time waited.
#include "distributed/nccl_process_group.h"

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "core/cuda/cuda_check.h"

namespace bridle {
namespace {

#define BRIDLE_NCCL_CHECK(call)                                                        \
  do {                                                                                 \
    const ncclResult_t bridle_nccl_status_ = (call);                                   \
    if (bridle_nccl_status_ != ncclSuccess)                                            \
      BRIDLE_FAIL("NCCL call {} failed at {}:{}: {} ({})", #call, __FILE__, __LINE__,  \
                  ncclGetErrorString(bridle_nccl_status_), ncclGetLastError(nullptr)); \
  } while (0)

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kMax:
      return ncclMax;
    case ReduceOp::kMin:
      return ncclMin;
  }
  BRIDLE_FAIL("unknown ReduceOp");
}

// The rank among the processes on this machine (see nccl_process_group.h).
int local_rank(int rank) {
  const char* text = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
  if (text == nullptr || *text == '\0') return rank;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  BRIDLE_CHECK(*end == '\0' && value >= 0, "OMPI_COMM_WORLD_LOCAL_RANK='{}' is not a rank", text);
  return static_cast<int>(value);
}

class NcclProcessGroup;

// One collective in flight: the event recorded after it on the group's stream.
class NcclWork : public CollectiveWork {
 public:
  NcclWork(NcclProcessGroup& group, cudaEvent_t done, std::string what)
      : group_(group), done_event_(done), what_(std::move(what)) {}
  ~NcclWork() override { cudaEventDestroy(done_event_); }

  bool test() override;
  void wait() override;

 private:
  NcclProcessGroup& group_;
  cudaEvent_t done_event_;
  std::string what_;
  bool done_ = false;
};

class NcclProcessGroup : public ProcessGroup {
 public:
  explicit NcclProcessGroup(std::shared_ptr<ProcessGroup> mpi) : mpi_(std::move(mpi)) {
    rank_ = mpi_->rank();
    size_ = mpi_->size();
    who_ = rank_str(*this);
    const int devices = cuda::device_count();
    BRIDLE_CHECK(devices > 0, "init_nccl_process_group: {} sees no CUDA device", who_);
    device_ = local_rank(rank_) % devices;
    // This rank's GPU becomes the current device for good: NCCL binds the
    // communicator to it, and no rank should create a context on another GPU.
    BRIDLE_CUDA_CHECK(cudaSetDevice(device_));
    BRIDLE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));

    ncclUniqueId id;
    if (rank_ == 0) BRIDLE_NCCL_CHECK(ncclGetUniqueId(&id));
    mpi_->broadcast(&id, sizeof(id), /*root=*/0);
    BRIDLE_NCCL_CHECK(ncclCommInitRank(&comm_, size_, id, rank_));
    spdlog::debug("{}: NCCL {} on cuda:{} (local rank {})", who_, NCCL_VERSION_CODE, device_,
                  local_rank(rank_));
  }

  ~NcclProcessGroup() override {
    // Errors are ignored: at exit the CUDA runtime may already be going away.
    if (comm_ != nullptr && !aborted_) ncclCommDestroy(comm_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }
  Device device() const override { return Device::cuda(device_); }
  using ProcessGroup::all_reduce;

  std::unique_ptr<CollectiveWork> all_reduce_async(float* data, int64_t count,
                                                   ReduceOp op) override {
    if (!is_device_memory(data, "all_reduce")) return mpi().all_reduce_async(data, count, op);
    const std::string what = fmt::format("all_reduce ({}) of {} floats", reduce_op_name(op), count);
    return enqueue(what, [&] {
      return ncclAllReduce(data, data, count, ncclFloat32, nccl_op(op), comm_, stream_);
    });
  }

  // DistributedDataParallel reduces doubles on the host (its layout check):
  // those go to the MPI group; doubles on the GPU go through NCCL.
  void all_reduce(double* data, int64_t count, ReduceOp op) override {
    if (!is_device_memory(data, "all_reduce")) return mpi().all_reduce(data, count, op);
    const std::string what =
        fmt::format("all_reduce ({}) of {} doubles", reduce_op_name(op), count);
    enqueue(what, [&] {
      return ncclAllReduce(data, data, count, ncclFloat64, nccl_op(op), comm_, stream_);
    })->wait();
  }

  // Parameters and buffers on the GPU go through NCCL; host memory through MPI.
  void broadcast(void* data, int64_t bytes, int root) override {
    BRIDLE_CHECK(root >= 0 && root < size_, "broadcast: root {} is not a rank of a job of {}", root,
                 size_);
    if (!is_device_memory(data, "broadcast")) return mpi().broadcast(data, bytes, root);
    const std::string what = fmt::format("broadcast of {} bytes from rank {}", bytes, root);
    enqueue(what, [&] {
      return ncclBroadcast(data, data, bytes, ncclUint8, root, comm_, stream_);
    })->wait();
  }

  // The processes meet through MPI; GPU work is ordered by the collectives.
  void barrier() override { mpi().barrier(); }

  [[noreturn]] void abort(int code, const std::string& message) override {
    mpi_->abort(code, message);  // MPI_Abort ends every rank, and their NCCL kernels with them
    std::abort();                // not reached; GCC does not carry [[noreturn]] through the call
  }

  // Polls NCCL's error state; on an error, aborts the communicator and throws.
  void check_async_error(const std::string& what) {
    // After an abort comm_ is gone: a collective still waited on (another of
    // DistributedDataParallel's buckets) must not touch it.
    BRIDLE_CHECK(!aborted_, "{}: {}: the NCCL communicator was aborted after an earlier error",
                 who_, what);
    ncclResult_t state = ncclSuccess;
    BRIDLE_NCCL_CHECK(ncclCommGetAsyncError(comm_, &state));
    if (state == ncclSuccess || state == ncclInProgress) return;
    abort_communicator();
    BRIDLE_FAIL("{}: {} failed in NCCL: {} ({}); the NCCL communicator was aborted", who_, what,
                ncclGetErrorString(state), ncclGetLastError(nullptr));
  }

  // Stops NCCL's kernels for good; the group cannot be used afterwards.
  void abort_communicator() {
    if (aborted_) return;
    aborted_ = true;
    ncclCommAbort(comm_);
  }

  const std::string& who() const { return who_; }

 private:
  ProcessGroup& mpi() {
    mpi_->set_timeout(timeout());  // this group's timeout holds for what it hands over
    return *mpi_;
  }

  // Whether ptr is memory on this rank's GPU (true) or on the host (false).
  bool is_device_memory(const void* ptr, const char* op) const {
    cudaPointerAttributes attributes{};
    BRIDLE_CUDA_CHECK(cudaPointerGetAttributes(&attributes, ptr));
    if (attributes.type != cudaMemoryTypeDevice && attributes.type != cudaMemoryTypeManaged)
      return false;
    BRIDLE_CHECK(attributes.device == device_,
                 "{}: {} got memory on cuda:{}, but this rank's NCCL group is on cuda:{}", who_, op,
                 attributes.device, device_);
    return true;
  }

  // Queues one NCCL call on the group's stream after bridle's queued work.
  template <typename NcclCall>
  std::unique_ptr<CollectiveWork> enqueue(const std::string& what, NcclCall call) {
    BRIDLE_CHECK(!aborted_, "{}: {}: the NCCL communicator was aborted after an earlier error",
                 who_, what);
    cuda::DeviceGuard guard(device_);
    cudaEvent_t ready = nullptr, done = nullptr;
    BRIDLE_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    BRIDLE_CUDA_CHECK(cudaEventRecord(ready, cuda::stream()));
    BRIDLE_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready, 0));
    BRIDLE_CUDA_CHECK(cudaEventDestroy(ready));  // freed once the wait is satisfied
    const ncclResult_t status = call();
    if (status != ncclSuccess && status != ncclInProgress) {
      abort_communicator();
      BRIDLE_FAIL("{}: {}: NCCL failed: {} ({})", who_, what, ncclGetErrorString(status),
                  ncclGetLastError(comm_));
    }
    BRIDLE_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    BRIDLE_CUDA_CHECK(cudaEventRecord(done, stream_));
    return std::make_unique<NcclWork>(*this, done, what);
  }

  std::shared_ptr<ProcessGroup> mpi_;
  int rank_ = 0, size_ = 1, device_ = 0;
  std::string who_;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
  bool aborted_ = false;
};

bool NcclWork::test() {
  if (done_) return true;
  group_.check_async_error(what_);
  const cudaError_t status = cudaEventQuery(done_event_);
  if (status == cudaErrorNotReady) {
    cudaGetLastError();  // not an error: keep it from the next launch check
    return false;
  }
  BRIDLE_CUDA_CHECK(status);
  done_ = true;
  return true;
}

// Polls as the MPI group's waits do: yields for the first 5 ms (a bucket
// within one machine takes microseconds to milliseconds), then sleeps up to
// 1 ms between polls.
void NcclWork::wait() {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto pause = std::chrono::microseconds(0);
  while (!test()) {
    const auto waited = Clock::now() - start;
    if (waited > group_.timeout()) {
      group_.abort_communicator();
      BRIDLE_FAIL(
          "{}: {} waited {:.1f} s for the other ranks and gave up (timeout {:.1f} s): a rank has "
          "failed, stalled, or called the collectives in a different order; the NCCL "
          "communicator was aborted",
          group_.who(), what_, std::chrono::duration<double>(waited).count(),
          std::chrono::duration<double>(group_.timeout()).count());
    }
    if (waited < std::chrono::milliseconds(5)) {
      std::this_thread::yield();
    } else {
      pause = std::min(std::chrono::microseconds(1000), pause + std::chrono::microseconds(50));
      std::this_thread::sleep_for(pause);
    }
  }
}

}  // namespace

bool nccl_is_available() { return true; }

std::shared_ptr<ProcessGroup> init_nccl_process_group() {
  static std::mutex mutex;
  static std::shared_ptr<ProcessGroup> group;
  std::lock_guard<std::mutex> lock(mutex);
  if (!group) group = std::make_shared<NcclProcessGroup>(init_process_group());
  return group;
}

}  // namespace bridle
