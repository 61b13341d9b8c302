// Where the time goes: wall time per op, forward and backward, for learners who
// want to see what share of a training step softmax takes.
//
//   set_profiling(true);
//   reset_profile();
//   for (...) {
//     ProfileStep step;                       // one training step
//     Tensor loss = cross_entropy(model.forward(x), y);
//     loss.backward();
//     { ProfileRegion region("optimizer step"); sgd.step(); }
//   }
//   std::cout << profile_report().table();
//
// How ops are timed. Every op ends by recording itself on the tape (record(),
// autograd/node.h), whether or not it needs a backward; the profiler charges an
// op with the wall time since the previous op, region or step start on the
// thread: its "lap". Between the ops of a forward pass there is only the
// glue of module code, so a lap is the op's own time; work that is not an op
// belongs in a ProfileRegion so that it gets its own row instead of inflating
// the next op's. A backward node is timed exactly, around its backward call,
// and ops run inside it (or inside a region) are not charged separately. An op
// made of other ops (a Function, a composite loss) shows its parts under their
// own names and the remainder under its own.
//
// Bytes moved is an estimate: in forward, the inputs and the output once each;
// in backward, the incoming gradient, the inputs and the gradients written for
// the inputs that require grad, once each. It is a lower bound for ops that
// take several passes over memory.
//
// The profiler watches the thread that turned it on; ops on other threads (data
// loader workers) are not counted. Off, it costs one thread-local test per op.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace bridle {

class Node;

// Turns profiling on or off for the calling thread. The figures are kept, so a
// program can pause it (between training steps, say) and resume.
void set_profiling(bool enabled);
bool profiling();
// Clears the figures and starts a new lap.
void reset_profile();

// One training step: the steps' wall time is the denominator of each op's share,
// and the report divides by the number of steps.
class ProfileStep {
 public:
  ProfileStep();
  ~ProfileStep();
  ProfileStep(const ProfileStep&) = delete;
  ProfileStep& operator=(const ProfileStep&) = delete;

 private:
  std::chrono::steady_clock::time_point start_;
  bool active_;
};

// Work that is not an op (an optimizer step, a metric), timed as a row of its own.
class ProfileRegion {
 public:
  explicit ProfileRegion(std::string name);
  ~ProfileRegion();
  ProfileRegion(const ProfileRegion&) = delete;
  ProfileRegion& operator=(const ProfileRegion&) = delete;

 private:
  std::string name_;
  std::chrono::steady_clock::time_point start_;
  bool active_;
};

// One row: an op at one output shape (a model's two Linear layers of different
// sizes are two rows), or a region.
struct OpProfile {
  std::string name;
  std::string shape;       // of the op's output, e.g. "[256, 10]"; empty for a region
  bool is_region = false;  // a ProfileRegion, not an op
  int64_t forward_calls = 0, backward_calls = 0;
  double forward_seconds = 0, backward_seconds = 0;
  double forward_bytes = 0, backward_bytes = 0;
  double seconds() const { return forward_seconds + backward_seconds; }
  double bytes() const { return forward_bytes + backward_bytes; }
};

struct ProfileReport {
  std::vector<OpProfile> ops;  // most time first
  int64_t steps = 0;           // ProfileSteps completed
  double step_seconds = 0;     // their total wall time
  double wall_seconds = 0;     // since profiling was turned on or reset

  // Per step (or, when no ProfileStep ran, in total): one row per op and shape with calls,
  // forward, backward and total milliseconds, share of the step time, MB moved
  // and GB/s; then the time in the steps outside any op.
  std::string table() const;
};

ProfileReport profile_report();

namespace detail {

// Called by record() for every op: charges the lap to `name`.
void profile_op(const std::string& name, const std::vector<Tensor>& inputs, const Tensor& output);

// Times one node's backward, from construction to destruction (the engine).
class ProfiledBackward {
 public:
  ProfiledBackward(const Node& node, const Tensor& grad_output);
  ~ProfiledBackward();
  ProfiledBackward(const ProfiledBackward&) = delete;
  ProfiledBackward& operator=(const ProfiledBackward&) = delete;

 private:
  std::string name_, shape_;  // empty when not profiling
  bool active_ = false;
  double bytes_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace detail
}  // namespace bridle
