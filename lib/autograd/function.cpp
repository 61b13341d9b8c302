// The user-facing custom-function API; see function.h.
#include "autograd/function.h"

#include <algorithm>

#include "autograd/anomaly.h"
#include "autograd/node.h"
#include "autograd/profiler.h"

namespace bridle {
namespace {

// The node that carries a user Function on the tape.
class FunctionNode : public Node {
 public:
  FunctionNode(std::shared_ptr<Function> function, std::vector<Tensor> inputs)
      : Node(function->name(), std::move(inputs)), function_(std::move(function)) {}

  void backward(const Tensor& grad_output, const Tensor&) override {
    std::vector<Tensor> grads = function_->backward(grad_output);
    BRIDLE_CHECK(grads.size() == inputs_.size(), "{}::backward returned {} gradients for {} inputs",
                 name(), grads.size(), inputs_.size());
    for (size_t i = 0; i < grads.size(); ++i) {
      const Tensor& input = inputs_[i];
      if (!input.requires_grad() || !grads[i].defined()) continue;
      BRIDLE_CHECK(grads[i].shape() == input.shape(),
                   "{}::backward: gradient {} has shape {} but input {} has shape {}", name(), i,
                   shape_str(grads[i].shape()), i, shape_str(input.shape()));
      accumulate_grad(input, grads[i]);
    }
  }

  void release() override {
    Node::release();
    function_.reset();  // the function's members are its saved state
  }

 private:
  std::shared_ptr<Function> function_;
};

}  // namespace

Tensor apply_function(std::shared_ptr<Function> function, const std::vector<Tensor>& inputs) {
  BRIDLE_CHECK(function != nullptr, "apply_function: null Function");
  bool record_node = any_requires_grad(inputs);
  Tensor output;
  {
    NoGradGuard no_grad;
    output = function->forward(inputs);
  }
  BRIDLE_CHECK(output.defined(), "{}::forward returned an undefined tensor", function->name());
  detail::check_forward_anomaly(function->name(), inputs, output);
  detail::profile_op(function->name(), inputs, output);
  if (!record_node) return output;
  // forward may have returned an input or a view of one: give the output its own
  // autograd record so the node does not attach to the caller's tensor.
  if (!output.is_leaf() || output.requires_grad() ||
      std::any_of(inputs.begin(), inputs.end(), [&](const Tensor& t) { return t.same(output); }))
    output = output.detach();
  TensorImpl& impl = output.impl();
  impl.requires_grad = true;
  impl.grad_fn = std::make_shared<FunctionNode>(std::move(function), inputs);
  return output;
}

}  // namespace bridle
