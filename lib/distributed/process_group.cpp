// The parts of ProcessGroup that do not depend on MPI; see process_group.h.
#include "distributed/process_group.h"

#include <fmt/format.h>

namespace bridle {
namespace {

void check_cpu_plain(const char* op, const Tensor& t) {
  BRIDLE_CHECK(t.defined(), "{}: undefined tensor", op);
  BRIDLE_CHECK(t.device().is_cpu(), "{}: the tensor is on {}; this process group works on the cpu",
               op, t.device().str());
}

}  // namespace

void ProcessGroup::all_reduce(const Tensor& t, ReduceOp op) {
  check_cpu_plain("all_reduce", t);
  BRIDLE_CHECK(t.is_float(), "all_reduce: expected a float32 tensor, got {}",
               dtype_name(t.dtype()));
  all_reduce(t.data<float>(), t.numel(), op);
}

void ProcessGroup::broadcast(const Tensor& t, int root) {
  check_cpu_plain("broadcast", t);
  broadcast(t.raw_data(), t.numel() * static_cast<int64_t>(dtype_size(t.dtype())), root);
}

std::string rank_str(const ProcessGroup& group) {
  return fmt::format("rank {}/{}", group.rank(), group.size());
}

#ifndef BRIDLE_WITH_MPI
bool mpi_is_available() { return false; }

std::shared_ptr<ProcessGroup> init_process_group() {
  BRIDLE_FAIL(
      "init_process_group: this build has no MPI; install it (apt-get install libopenmpi-dev "
      "openmpi-bin) and configure again");
}
#endif

}  // namespace bridle
