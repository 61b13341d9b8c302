// The NCCL process group: data-parallel training with one process per GPU,
// the gradients all-reduced by NCCL between the GPUs (over NVLink within a
// machine, over the network between machines). nccl_process_group.cpp.
//
//   mpirun -np 2 build/examples/mnist_mlp --distributed --device cuda
//
//   auto group = init_nccl_process_group();    // under mpirun: one rank per GPU
//   model.to(group->device());                 // this rank's GPU
//   DistributedDataParallel ddp(model, group);
//
// MPI still launches the ranks and starts the group: rank 0 creates NCCL's
// unique id and the MPI group (init_process_group) broadcasts it to the others.
// Each rank uses the CUDA device (local rank) % (number of devices), where the
// local rank, the rank among the processes on the same machine, is Open MPI's
// OMPI_COMM_WORLD_LOCAL_RANK, or the rank itself when that is not set. So
// `mpirun -np 8` on a machine with 8 GPUs gives each rank its own, and with
// CUDA_VISIBLE_DEVICES set per rank every rank sees one device and uses it.
//
// Collectives on GPU memory of that device go through NCCL; collectives on host
// memory (DistributedDataParallel's layout check, the examples' sums of
// losses) go through the MPI group. Same timeouts and errors as the MPI group
// (process_group.h); after a timeout the NCCL communicator is aborted, and
// the group can no longer be used.
#pragma once

#include <memory>

#include "distributed/process_group.h"

namespace bridle {

// Whether this build has the NCCL process group (cmake/BridleNccl.cmake).
bool nccl_is_available();

// The NCCL process group of every rank of the job, starting MPI and NCCL on the
// first call; later calls return the same group. A program run without mpirun
// is a job of one rank. Throws when the build has no NCCL or no GPU is present.
std::shared_ptr<ProcessGroup> init_nccl_process_group();

}  // namespace bridle
