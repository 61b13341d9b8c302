// Synchronized batch norm; see sync_batch_norm.h. The normalization itself is
// BatchNorm's (nn/norm_pool.cpp), given a sum over ranks to use.
#include "distributed/sync_batch_norm.h"

#include "autograd/node.h"
#include "nn/norm_pool.h"

namespace bridle {

Tensor all_reduce_sum(const Tensor& x, const std::shared_ptr<ProcessGroup>& group) {
  BRIDLE_CHECK(group != nullptr, "all_reduce_sum: no process group");
  BRIDLE_CHECK(x.defined() && x.is_float(), "all_reduce_sum: expected a float32 tensor");
  Tensor out = x.clone();
  group->all_reduce(out);
  return record(out, "all_reduce_sum", {x}, [x, group](const Tensor& grad_output, const Tensor&) {
    Tensor grad = grad_output.clone();
    group->all_reduce(grad);
    accumulate_grad(x, grad);
  });
}

namespace {

int64_t convert(Module& module, const std::shared_ptr<ProcessGroup>& group) {
  int64_t changed = 0;
  if (auto* batch_norm = dynamic_cast<BatchNorm*>(&module)) {
    batch_norm->set_rank_sum([group](const Tensor& x) { return all_reduce_sum(x, group); });
    ++changed;
  }
  for (const auto& [name, child] : module.named_children()) changed += convert(*child, group);
  return changed;
}

}  // namespace

int64_t convert_sync_batch_norm(Module& module, const std::shared_ptr<ProcessGroup>& group) {
  BRIDLE_CHECK(group != nullptr, "convert_sync_batch_norm: no process group");
  return convert(module, group);
}

}  // namespace bridle
