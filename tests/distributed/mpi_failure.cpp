// mpi_failure: a two-rank training job in which rank 1 fails on purpose at its
// third step, to show that the whole job then ends with a clear message instead
// of hanging. run_failure_tests.sh runs it under mpirun in each mode and checks
// the exit status, the message and the time taken.
//
//   mpirun -np 2 mpi_failure throw   rank 1 throws a bridle::Error: it logs it and
//                                    aborts the job (ProcessGroup::abort)
//   mpirun -np 2 mpi_failure stall   rank 1 stops answering: rank 0's all-reduce
//                                    times out (2 s here) and rank 0 aborts the job
//   mpirun -np 2 mpi_failure crash   rank 1 dies on a signal: mpirun ends the job
//   mpirun -np 2 mpi_failure none    no failure: both ranks finish, exit 0
#include <spdlog/spdlog.h>

#include <chrono>
#include <csignal>
#include <string>
#include <thread>

#include "bridle.h"
#include "distributed_test_util.h"

using namespace bridle;

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "none";
  auto group = init_process_group();
  group->set_timeout(std::chrono::seconds(2));
  try {
    testing::SmallNet model;
    DistributedDataParallel ddp(model, group);
    SGD sgd(model.parameters(), {.lr = 0.1f});
    std::vector<Batch> batches = testing::random_batches(5, 8, group->rank());
    for (size_t step = 0; step < batches.size(); ++step) {
      if (group->rank() == 1 && step == 2) {
        if (mode == "throw") BRIDLE_FAIL("rank 1 failed on purpose at step {}", step);
        if (mode == "stall") std::this_thread::sleep_for(std::chrono::seconds(60));
        if (mode == "crash") std::raise(SIGKILL);
      }
      sgd.zero_grad();
      cross_entropy(model.forward(batches[step].inputs), batches[step].targets).backward();
      sgd.step();
    }
    spdlog::info("{}: finished {} steps", rank_str(*group), batches.size());
    return 0;
  } catch (const Error& e) {
    group->abort(1, e.what());
  }
}
