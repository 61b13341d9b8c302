// The MPI process group; see process_group.h.
//
// Every collective is MPI's non-blocking form (MPI_Iallreduce, MPI_Ibcast,
// MPI_Ibarrier) followed by a wait that polls MPI_Test against a deadline: MPI's
// blocking collectives have no timeout, and a job whose rank died mid-step
// would otherwise hang until someone kills it. Polling is also what drives a
// non-blocking collective forward: Open MPI's shared-memory and TCP transports
// make progress only inside MPI calls, so DistributedDataParallel tests its
// in-flight buckets as the backward goes on.
//
// The group works on its own duplicate of MPI_COMM_WORLD, so a program's own
// MPI traffic never matches bridle's by accident, and with MPI_ERRORS_RETURN on
// it, so an MPI error becomes a bridle::Error with MPI's own message.
#include <mpi.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "distributed/process_group.h"

namespace bridle {
namespace {

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, length);
}

#define BRIDLE_MPI_CHECK(call)                                                \
  do {                                                                        \
    int bridle_mpi_code = (call);                                             \
    if (bridle_mpi_code != MPI_SUCCESS)                                       \
      BRIDLE_FAIL("{} failed: {}", #call, mpi_error_string(bridle_mpi_code)); \
  } while (0)

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return MPI_SUM;
    case ReduceOp::kMax:
      return MPI_MAX;
    case ReduceOp::kMin:
      return MPI_MIN;
  }
  BRIDLE_FAIL("unknown ReduceOp");
}

// MPI counts are int: larger buffers go in pieces of at most this many elements.
constexpr int64_t kMaxCount = INT_MAX / 2;

// Waits for every request, polling. For the first 5 ms the wait only yields
// between polls (a gradient bucket between two processes on one machine takes
// from microseconds to a few milliseconds, and sleeping would add up to a
// scheduler tick to each); after that it sleeps between polls, up to 1 ms, so
// a rank waiting for a slow one does not burn the core that rank may need.
void wait_all(std::vector<MPI_Request>& requests, std::chrono::milliseconds timeout,
              const std::string& what, const std::string& who) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto pause = std::chrono::microseconds(0);
  while (true) {
    int done = 0;
    BRIDLE_MPI_CHECK(MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done,
                                 MPI_STATUSES_IGNORE));
    if (done) return;
    const auto waited = Clock::now() - start;
    if (waited > timeout)
      BRIDLE_FAIL(
          "{}: {} waited {:.1f} s for the other ranks and gave up (timeout {:.1f} s): a rank has "
          "failed, stalled, or called the collectives in a different order",
          who, what, std::chrono::duration<double>(waited).count(),
          std::chrono::duration<double>(timeout).count());
    if (waited < std::chrono::milliseconds(5)) {
      std::this_thread::yield();
    } else {
      pause = std::min(std::chrono::microseconds(1000), pause + std::chrono::microseconds(50));
      std::this_thread::sleep_for(pause);
    }
  }
}

class MpiProcessGroup;

class MpiWork : public CollectiveWork {
 public:
  MpiWork(std::vector<MPI_Request> requests, std::chrono::milliseconds timeout, std::string what,
          std::string who)
      : requests_(std::move(requests)),
        timeout_(timeout),
        what_(std::move(what)),
        who_(std::move(who)) {}

  bool test() override {
    if (done_) return true;
    int done = 0;
    BRIDLE_MPI_CHECK(MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done,
                                 MPI_STATUSES_IGNORE));
    done_ = done != 0;
    return done_;
  }

  void wait() override {
    if (done_) return;
    wait_all(requests_, timeout_, what_, who_);
    done_ = true;
  }

 private:
  std::vector<MPI_Request> requests_;
  std::chrono::milliseconds timeout_;
  std::string what_, who_;
  bool done_ = false;
};

class MpiProcessGroup : public ProcessGroup {
 public:
  MpiProcessGroup() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      // Open MPI's non-blocking all-reduce (libnbc) defaults to an algorithm that
      // reached 40% of the blocking MPI_Allreduce's bandwidth at 4-16 MB here;
      // Rabenseifner's reduce-scatter + all-gather matches it at every size
      // (bench/run_distributed.sh). Read at MPI_Init; a user's own setting wins.
      setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", /*overwrite=*/0);
      // Only the thread that made the group calls MPI (the data loader's worker
      // never does), so FUNNELED is enough.
      int provided = 0;
      BRIDLE_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
      BRIDLE_CHECK(provided >= MPI_THREAD_FUNNELED,
                   "MPI_Init_thread: this MPI gives thread level {}, bridle needs FUNNELED ({})",
                   provided, MPI_THREAD_FUNNELED);
      owns_mpi_ = true;
    }
    BRIDLE_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
    BRIDLE_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    BRIDLE_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    BRIDLE_MPI_CHECK(MPI_Comm_size(comm_, &size_));
    who_ = rank_str(*this);
  }

  ~MpiProcessGroup() override {
    // Finalize only after a clean run: with a collective still waiting on a
    // failed rank, MPI_Finalize could block; a failed program calls abort().
    MPI_Comm_free(&comm_);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_mpi_ && !finalized) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }
  using ProcessGroup::all_reduce;

  std::unique_ptr<CollectiveWork> all_reduce_async(float* data, int64_t count,
                                                   ReduceOp op) override {
    std::vector<MPI_Request> requests;
    for (int64_t begin = 0; begin < count; begin += kMaxCount) {
      const int n = static_cast<int>(std::min(kMaxCount, count - begin));
      requests.emplace_back();
      BRIDLE_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data + begin, n, MPI_FLOAT, mpi_op(op), comm_,
                                      &requests.back()));
    }
    return std::make_unique<MpiWork>(
        std::move(requests), timeout(),
        fmt::format("all_reduce ({}) of {} floats", reduce_op_name(op), count), who_);
  }

  void all_reduce(double* data, int64_t count, ReduceOp op) override {
    BRIDLE_CHECK(count <= kMaxCount, "all_reduce: {} doubles is more than one call takes", count);
    std::vector<MPI_Request> requests(1);
    BRIDLE_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(count), MPI_DOUBLE,
                                    mpi_op(op), comm_, &requests[0]));
    wait_all(requests, timeout(),
             fmt::format("all_reduce ({}) of {} doubles", reduce_op_name(op), count), who_);
  }

  void broadcast(void* data, int64_t bytes, int root) override {
    BRIDLE_CHECK(root >= 0 && root < size_, "broadcast: root {} is not a rank of a job of {}", root,
                 size_);
    std::vector<MPI_Request> requests;
    auto* bytes_ptr = static_cast<char*>(data);
    for (int64_t begin = 0; begin < bytes; begin += kMaxCount) {
      const int n = static_cast<int>(std::min(kMaxCount, bytes - begin));
      requests.emplace_back();
      BRIDLE_MPI_CHECK(MPI_Ibcast(bytes_ptr + begin, n, MPI_BYTE, root, comm_, &requests.back()));
    }
    wait_all(requests, timeout(), fmt::format("broadcast of {} bytes from rank {}", bytes, root),
             who_);
  }

  void barrier() override {
    std::vector<MPI_Request> requests(1);
    BRIDLE_MPI_CHECK(MPI_Ibarrier(comm_, &requests[0]));
    wait_all(requests, timeout(), "barrier", who_);
  }

  [[noreturn]] void abort(int code, const std::string& message) override {
    spdlog::error("{}: ending the job: {}", who_, message);
    spdlog::default_logger()->flush();
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; in case it does
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  bool owns_mpi_ = false;
  std::string who_;
};

}  // namespace

bool mpi_is_available() { return true; }

std::shared_ptr<ProcessGroup> init_process_group() {
  // MPI may be initialized and finalized only once per process: the group lives
  // until the program exits, and MPI_Finalize runs then.
  static std::mutex mutex;
  static std::shared_ptr<ProcessGroup> group;
  std::lock_guard<std::mutex> lock(mutex);
  if (!group) group = std::make_shared<MpiProcessGroup>();
  return group;
}

}  // namespace bridle
