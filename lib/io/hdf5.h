// HDF5 glue for lib/io: owning handles, the checking macro every HDF5 call goes
// through, and typed reads and writes of tensors, attributes and strings.
//
// Internal: only lib/ .cpp files include this (HDF5 is a private dependency of
// the bridle target). The public API is lib/io/checkpoint.h.
//
// Conventions, chosen so that h5py reads the files without surprises:
// - tensors are contiguous datasets of float32 / int32 / int64 (little-endian),
//   with the tensor's shape (shape [] is a scalar dataspace);
// - strings are fixed-length, null-padded UTF-8 (h5py returns numpy bytes:
//   .decode() them); reading accepts variable-length strings too;
// - every byte is under a checksum: metadata (the HDF5 1.10 format), scalars in
//   their object header, tensors in chunks with a Fletcher-32 checksum;
// - integers are int64, real numbers float64.
//
// Errors: BRIDLE_H5_CHECK(call, file, "what {}", args) runs an HDF5 call and, when
// it returns a negative status or id, throws bridle::Error
//   "'<file>': <what> failed (HDF5: <the library's error stack>)".
// Call silence_errors() first so that HDF5 does not also print its stack to stderr.
#pragma once

#include <hdf5.h>

#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace bridle::h5 {

// HDF5's error stack for this thread as one line ("unable to open file; file
// signature not found"), then cleared. Empty when the stack is empty.
std::string error_stack();

template <typename T, typename What>
T check(T result, const std::string& file, const What& what) {
  if (result < 0) {
    std::string stack = error_stack();
    throw Error(fmt::format("'{}': {} failed{}", file, what(),
                            stack.empty() ? "" : " (HDF5: " + stack + ")"));
  }
  return result;
}

}  // namespace bridle::h5

#define BRIDLE_H5_CHECK(call, file, ...) \
  ::bridle::h5::check((call), (file), [&] { return fmt::format(__VA_ARGS__); })

namespace bridle::h5 {

// Turns off HDF5's automatic printing of errors to stderr for the calling
// thread: our exceptions carry HDF5's error stack instead. It stays off. (Turned
// back on, HDF5 1.10 prints "infinite loop closing library" at exit after it
// has met a corrupt file.)
void silence_errors();

// An owned HDF5 id (file, group, dataset, dataspace, datatype, attribute or
// property list), closed by the destructor. close() closes early and checks.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() {
    if (id_ >= 0) closer_(id_);
  }
  Handle(Handle&& other) noexcept
      : id_(std::exchange(other.id_, H5I_INVALID_HID)), closer_(other.closer_) {}
  Handle& operator=(Handle&& other) noexcept {
    std::swap(id_, other.id_);
    std::swap(closer_, other.closer_);
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }  // NOLINT(google-explicit-constructor)
  // Closes now; returns the closer's status (negative on failure).
  herr_t close() {
    herr_t status = id_ >= 0 ? closer_(id_) : 0;
    id_ = H5I_INVALID_HID;
    return status;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

// Groups and links. Names are single path components relative to loc.
//
// Groups keep their links and attributes in the group's own (checksummed)
// header, up to 65535 of each, rather than in "dense" heap storage: HDF5 1.10
// crashes while cleaning up after some corrupt dense groups, and a checkpoint
// must fail cleanly. keep_compact() sets that on a group (or file) creation list.
void keep_compact(hid_t group_creation_plist, const std::string& file);
Handle create_group(hid_t loc, const std::string& name, const std::string& file);
Handle open_group(hid_t loc, const std::string& name, const std::string& file);
bool has_link(hid_t loc, const std::string& name, const std::string& file);
std::vector<std::string> link_names(hid_t group, const std::string& file);  // sorted

// Tensors.
// Writes t as dataset `name` and returns the open dataset (e.g. to add attributes).
Handle write_tensor(hid_t loc, const std::string& name, const Tensor& t, const std::string& file);
struct DatasetInfo {
  Shape shape;
  DType dtype = kFloat32;
};
DatasetInfo dataset_info(hid_t loc, const std::string& name, const std::string& file);
Tensor read_tensor(hid_t loc, const std::string& name, const std::string& file);

// Scalar attributes (and one array of strings).
void write_attr(hid_t obj, const std::string& name, int64_t value, const std::string& file);
void write_attr(hid_t obj, const std::string& name, double value, const std::string& file);
void write_attr(hid_t obj, const std::string& name, const std::string& value,
                const std::string& file);
void write_attr(hid_t obj, const std::string& name, const std::vector<std::string>& values,
                const std::string& file);
bool has_attr(hid_t obj, const std::string& name, const std::string& file);
std::vector<std::string> attr_names(hid_t obj, const std::string& file);  // in name order
int64_t read_int_attr(hid_t obj, const std::string& name, const std::string& file);
double read_double_attr(hid_t obj, const std::string& name, const std::string& file);
std::string read_string_attr(hid_t obj, const std::string& name, const std::string& file);
std::vector<std::string> read_strings_attr(hid_t obj, const std::string& name,
                                           const std::string& file);

}  // namespace bridle::h5
