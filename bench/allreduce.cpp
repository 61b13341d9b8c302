// allreduce: the bandwidth of bridle's all-reduce (ProcessGroup::all_reduce:
// MPI_Iallreduce polled against a deadline) against Open MPI's own blocking
// MPI_Allreduce, on the same float buffers, in the same run.
//
// Run:    mpirun -np 2 build/bench/allreduce        (bench/run_distributed.sh does)
// Prints: on rank 0, one JSON line per buffer size: median seconds per call for
//         both, and their bus bandwidth, 2 (n - 1) / n x bytes / time (the
//         figure NCCL's tests report: what each rank's link carries).
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

#include "bench_util.h"
#include "bridle.h"

using namespace bridle;

namespace {

template <typename Fn>
double median_seconds(Fn fn, int reps, ProcessGroup& group) {
  std::vector<double> times;
  for (int r = 0; r < reps + 2; ++r) {
    group.barrier();  // start together: time the collective, not the skew
    auto start = std::chrono::steady_clock::now();
    fn();
    times.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  // Every rank takes rank 0's view of the time: the slowest rank sets it anyway.
  return bench::median(times, 2);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bridle's all-reduce vs MPI_Allreduce"};
  int64_t max_mb = 64;
  double min_seconds = 0.3;
  app.add_option("--max-mb", max_mb, "Largest buffer, in MB")->capture_default_str();
  app.add_option("--min-seconds", min_seconds, "Time per size and method")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto group = init_process_group();
  const int n = group->size();
  for (int64_t bytes = 4096; bytes <= max_mb << 20; bytes *= 4) {
    const int64_t count = bytes / 4;
    std::vector<float> a(count, 1.0f), b(count, 1.0f);
    // Enough repetitions for min_seconds, from one timed call (agreed by all ranks).
    auto t0 = std::chrono::steady_clock::now();
    MPI_Allreduce(MPI_IN_PLACE, a.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM,
                  MPI_COMM_WORLD);
    double once = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    group->all_reduce(&once, 1, ReduceOp::kMax);
    const int reps = std::clamp(static_cast<int>(min_seconds / std::max(once, 1e-6)), 5, 2000);

    const double mpi = median_seconds(
        [&] {
          MPI_Allreduce(MPI_IN_PLACE, a.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM,
                        MPI_COMM_WORLD);
        },
        reps, *group);
    const double ours = median_seconds([&] { group->all_reduce(b.data(), count); }, reps, *group);
    const double bus = 2.0 * (n - 1) / n * static_cast<double>(bytes);
    if (group->rank() == 0)
      std::cout << nlohmann::json{{"bench", "allreduce"},
                                  {"ranks", n},
                                  {"bytes", bytes},
                                  {"reps", reps},
                                  {"mpi_allreduce_seconds", mpi},
                                  {"bridle_seconds", ours},
                                  {"mpi_busbw_gbs", bus / mpi / 1e9},
                                  {"bridle_busbw_gbs", bus / ours / 1e9},
                                  {"bridle_over_mpi", ours / mpi}}
                       .dump()
                << std::endl;
  }
  return 0;
}
