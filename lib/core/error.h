// The one exception type bridle throws, and the macro every check goes through.
//
// Ops validate their arguments and throw bridle::Error with a message that names
// the op, the shapes and the offending value; kernels never check. Vendor calls
// (oneDNN, HDF5, CUDA, ...) get their own checking macros next to their use.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace bridle {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace bridle

// BRIDLE_CHECK(cond, "fmt {}", args...): throws bridle::Error with the formatted
// message when cond is false. The message should say which op failed and why.
#define BRIDLE_CHECK(cond, ...)                                   \
  do {                                                            \
    if (!(cond)) throw ::bridle::Error(fmt::format(__VA_ARGS__)); \
  } while (0)

#define BRIDLE_FAIL(...) throw ::bridle::Error(fmt::format(__VA_ARGS__))
