// The op profiler; see profiler.h.
#include "autograd/profiler.h"

#include <algorithm>
#include <unordered_map>

#include "autograd/node.h"

namespace bridle {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

double tensor_bytes(const Tensor& t) {
  return t.defined() ? static_cast<double>(t.numel()) * static_cast<double>(dtype_size(t.dtype()))
                     : 0.0;
}

// All of it lives on the profiled thread.
struct ProfilerState {
  bool enabled = false;
  int suppressed = 0;  // > 0 inside a backward node or a region: inner ops are not charged
  Clock::time_point lap_start, reset_time;
  std::unordered_map<std::string, OpProfile> ops;
  int64_t steps = 0;
  double step_seconds = 0;

  OpProfile& op(const std::string& name, const std::string& shape) {
    OpProfile& entry = ops[name + " " + shape];
    entry.name = name;
    entry.shape = shape;
    return entry;
  }
};

thread_local ProfilerState state;

}  // namespace

void set_profiling(bool enabled) {
  if (enabled && !state.enabled) state.lap_start = Clock::now();  // the pause is nobody's lap
  state.enabled = enabled;
}

bool profiling() { return state.enabled; }

void reset_profile() {
  state.ops.clear();
  state.steps = 0;
  state.step_seconds = 0;
  state.lap_start = state.reset_time = Clock::now();
}

ProfileStep::ProfileStep() : start_(Clock::now()), active_(state.enabled) {
  if (active_) state.lap_start = start_;
}

ProfileStep::~ProfileStep() {
  if (!active_ || !state.enabled) return;
  Clock::time_point now = Clock::now();
  state.step_seconds += seconds_between(start_, now);
  ++state.steps;
  state.lap_start = now;
}

ProfileRegion::ProfileRegion(std::string name)
    : name_(std::move(name)), start_(Clock::now()), active_(state.enabled) {
  if (active_) ++state.suppressed;
}

ProfileRegion::~ProfileRegion() {
  if (!active_) return;
  --state.suppressed;
  Clock::time_point now = Clock::now();
  OpProfile& entry = state.op(name_, "");
  entry.is_region = true;
  ++entry.forward_calls;
  entry.forward_seconds += seconds_between(start_, now);
  state.lap_start = now;
}

namespace detail {

void profile_op(const std::string& name, const std::vector<Tensor>& inputs, const Tensor& output) {
  if (!state.enabled || state.suppressed > 0) return;
  Clock::time_point now = Clock::now();
  OpProfile& entry = state.op(name, shape_str(output.shape()));
  ++entry.forward_calls;
  entry.forward_seconds += seconds_between(state.lap_start, now);
  double bytes = tensor_bytes(output);
  for (const Tensor& input : inputs) bytes += tensor_bytes(input);
  entry.forward_bytes += bytes;
  state.lap_start = now;
}

ProfiledBackward::ProfiledBackward(const Node& node, const Tensor& grad_output) {
  if (!state.enabled || state.suppressed > 0) return;
  active_ = true;
  name_ = node.name();
  shape_ = shape_str(grad_output.shape());  // the shape of the node's output
  bytes_ = tensor_bytes(grad_output);
  for (const Tensor& input : node.inputs()) {
    bytes_ += tensor_bytes(input);
    if (input.defined() && input.requires_grad()) bytes_ += tensor_bytes(input);
  }
  ++state.suppressed;
  start_ = Clock::now();
}

ProfiledBackward::~ProfiledBackward() {
  if (!active_) return;
  --state.suppressed;
  Clock::time_point now = Clock::now();
  OpProfile& entry = state.op(name_, shape_);
  ++entry.backward_calls;
  entry.backward_seconds += seconds_between(start_, now);
  entry.backward_bytes += bytes_;
  state.lap_start = now;
}

}  // namespace detail

ProfileReport profile_report() {
  ProfileReport report;
  for (const auto& [name, entry] : state.ops) report.ops.push_back(entry);
  std::sort(report.ops.begin(), report.ops.end(),
            [](const OpProfile& a, const OpProfile& b) { return a.seconds() > b.seconds(); });
  report.steps = state.steps;
  report.step_seconds = state.step_seconds;
  report.wall_seconds = seconds_between(state.reset_time, Clock::now());
  return report;
}

std::string ProfileReport::table() const {
  // Figures per step when steps were marked, else totals over the whole run.
  const bool per_step = steps > 0;
  const double divisor = per_step ? static_cast<double>(steps) : 1.0;
  const double total_seconds = (per_step ? step_seconds : wall_seconds) / divisor;
  std::string out =
      per_step ? fmt::format("profile: {} steps, {:.3f} ms per step\n", steps, total_seconds * 1e3)
               : fmt::format("profile: {:.3f} ms in total\n", total_seconds * 1e3);
  out += fmt::format("{:<36} {:>7} {:>11} {:>11} {:>10} {:>6} {:>10} {:>7}\n", "op", "calls",
                     "forward ms", "backward ms", "total ms", "share", "MB moved", "GB/s");
  double accounted = 0;
  auto ms = [&](double seconds) { return fmt::format("{:.3f}", seconds / divisor * 1e3); };
  for (const OpProfile& op : ops) {
    const double seconds = op.seconds() / divisor;
    accounted += seconds;
    const double calls =
        static_cast<double>(std::max(op.forward_calls, op.backward_calls)) / divisor;
    const double share = total_seconds > 0 ? 100.0 * seconds / total_seconds : 0.0;
    std::string forward = op.is_region ? "-" : ms(op.forward_seconds);
    std::string backward = op.is_region ? "-" : ms(op.backward_seconds);
    std::string megabytes = op.is_region ? "-" : fmt::format("{:.2f}", op.bytes() / divisor / 1e6);
    std::string bandwidth = op.is_region || seconds <= 0
                                ? "-"
                                : fmt::format("{:.1f}", op.bytes() / divisor / seconds / 1e9);
    const std::string label = op.is_region ? op.name : op.name + " " + op.shape;
    out += fmt::format("{:<36} {:>7.1f} {:>11} {:>11} {:>10.3f} {:>5.1f}% {:>10} {:>7}\n", label,
                       calls, forward, backward, seconds * 1e3, share, megabytes, bandwidth);
  }
  if (per_step) {
    const double other = std::max(0.0, total_seconds - accounted);
    out += fmt::format("{:<36} {:>7} {:>11} {:>11} {:>10.3f} {:>5.1f}% {:>10} {:>7}\n",
                       "(not in any op)", "", "", "", other * 1e3,
                       total_seconds > 0 ? 100.0 * other / total_seconds : 0.0, "", "");
  }
  return out;
}

}  // namespace bridle
