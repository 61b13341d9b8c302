// The parts of ProcessGroup that do not depend on MPI; see process_group.h.
#include "distributed/process_group.h"

#include <fmt/format.h>

#include "distributed/nccl_process_group.h"

namespace bridle {
namespace {

// Host memory works with every group (NCCL's hands it to MPI); device memory
// only with a group on that device.
void check_device(const char* op, const ProcessGroup& group, const Tensor& t) {
  BRIDLE_CHECK(t.defined(), "{}: undefined tensor", op);
  BRIDLE_CHECK(t.device().is_cpu() || t.device() == group.device(),
               "{}: the tensor is on {}; the {} process group works on {}", op, t.device().str(),
               group.backend(), group.device().str());
}

}  // namespace

void ProcessGroup::all_reduce(const Tensor& t, ReduceOp op) {
  check_device("all_reduce", *this, t);
  BRIDLE_CHECK(t.is_float(), "all_reduce: expected a float32 tensor, got {}",
               dtype_name(t.dtype()));
  all_reduce(t.data<float>(), t.numel(), op);
}

void ProcessGroup::broadcast(const Tensor& t, int root) {
  check_device("broadcast", *this, t);
  broadcast(t.raw_data(), t.numel() * static_cast<int64_t>(dtype_size(t.dtype())), root);
}

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kMax:
      return "max";
    case ReduceOp::kMin:
      return "min";
  }
  return "?";
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

#ifndef BRIDLE_WITH_NCCL
bool nccl_is_available() { return false; }

std::shared_ptr<ProcessGroup> init_nccl_process_group() {
  BRIDLE_FAIL(
      "init_nccl_process_group: this build has no NCCL process group; it needs the CUDA backend, "
      "MPI and NCCL (nccl.h and libnccl, e.g. from the CUDA toolkit); configure again with them");
}
#endif

}  // namespace bridle
