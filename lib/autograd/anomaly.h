// Anomaly detection: find the first op that produced a NaN or an infinity.
//
// A NaN in the loss says that something went wrong, not where. With anomaly
// detection on, every op checks its output as it is recorded, and the backward
// pass checks the gradients each node writes; the first bad value stops the run
// with an Error that names the op, the pass (forward or backward), the shapes of
// its inputs and which of them were already non-finite (PyTorch's
// torch.autograd.detect_anomaly checks the backward only). Bad means:
//   forward:  a NaN; or an infinity made from finite inputs (log(0), exp(100)),
//             not one passed on from an input (a -inf attention mask is fine);
//   backward: a NaN or an infinity in any gradient.
// It reads every tensor once more, so it is for debugging, not for training runs.
//
//   DetectAnomalyGuard guard;        // or set_detect_anomaly(true)
//   Tensor loss = ...;               // throws at the op that made the NaN
//   loss.backward();                 // throws at the node whose gradient is NaN
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"

namespace bridle {

class Node;

// Process-wide, off by default.
void set_detect_anomaly(bool enabled);
bool detect_anomaly();

// Turns anomaly detection on for its scope.
class DetectAnomalyGuard {
 public:
  DetectAnomalyGuard() : previous_(detect_anomaly()) { set_detect_anomaly(true); }
  ~DetectAnomalyGuard() { set_detect_anomaly(previous_); }
  DetectAnomalyGuard(const DetectAnomalyGuard&) = delete;
  DetectAnomalyGuard& operator=(const DetectAnomalyGuard&) = delete;

 private:
  bool previous_;
};

namespace detail {

// Called by record() for every op: throws if output has a NaN or an infinity.
void check_forward_anomaly(const std::string& name, const std::vector<Tensor>& inputs,
                           const Tensor& output);

// Marks the engine running a node's backward: ops inside it are checked through
// the gradients the node writes, not one by one.
class AnomalyBackwardScope {
 public:
  AnomalyBackwardScope();
  ~AnomalyBackwardScope();
  AnomalyBackwardScope(const AnomalyBackwardScope&) = delete;
  AnomalyBackwardScope& operator=(const AnomalyBackwardScope&) = delete;
};

// Called by the engine after a node's backward: throws if a gradient it wrote
// has a NaN or an infinity.
void check_backward_anomaly(const Node& node, const Tensor& grad_output);

}  // namespace detail
}  // namespace bridle
