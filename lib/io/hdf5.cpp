// HDF5 glue: handles, the error stack, tensors and attributes; see hdf5.h.
#include "io/hdf5.h"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace bridle::h5 {
namespace {

herr_t collect_error(unsigned /*n*/, const H5E_error2_t* err, void* data) {
  auto& lines = *static_cast<std::vector<std::string>*>(data);
  if (err->desc != nullptr && err->desc[0] != '\0') {
    std::string line;
    for (const char* c = err->desc; *c != '\0'; ++c)  // one line: no newlines or runs of blanks
      if (!std::isspace(static_cast<unsigned char>(*c)) || (!line.empty() && line.back() != ' '))
        line += std::isspace(static_cast<unsigned char>(*c)) ? ' ' : *c;
    // The same description often repeats down the stack ("unable to open file").
    if (lines.empty() || lines.back() != line) lines.push_back(std::move(line));
  }
  return 0;
}

herr_t collect_attr_name(hid_t /*obj*/, const char* name, const H5A_info_t* /*info*/, void* data) {
  static_cast<std::vector<std::string>*>(data)->emplace_back(name);
  return 0;
}

// The in-memory type of a dtype, and the little-endian type stored in the file.
hid_t memory_type(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return H5T_NATIVE_FLOAT;
    case DType::kInt32:
      return H5T_NATIVE_INT32;
    case DType::kInt64:
      return H5T_NATIVE_INT64;
  }
  BRIDLE_FAIL("hdf5: unknown dtype {}", static_cast<int>(dtype));
}

hid_t file_type(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return H5T_IEEE_F32LE;
    case DType::kInt32:
      return H5T_STD_I32LE;
    case DType::kInt64:
      return H5T_STD_I64LE;
  }
  BRIDLE_FAIL("hdf5: unknown dtype {}", static_cast<int>(dtype));
}

// A file type's description for error messages, e.g. "float64" or "uint8".
std::string type_description(hid_t type) {
  const H5T_class_t cls = H5Tget_class(type);
  const size_t bits = 8 * H5Tget_size(type);
  if (cls == H5T_FLOAT) return fmt::format("float{}", bits);
  if (cls == H5T_INTEGER)
    return fmt::format("{}int{}", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits);
  if (cls == H5T_STRING) return "string";
  return fmt::format("HDF5 type class {}", static_cast<int>(cls));
}

Handle scalar_space(const std::string& file) {
  return {BRIDLE_H5_CHECK(H5Screate(H5S_SCALAR), file, "creating a scalar dataspace"), H5Sclose};
}

// A fixed-length UTF-8 string type of `width` bytes, padded with nulls (numpy's
// "S" type). Not variable-length strings: those live in HDF5's global heap,
// which has no checksum, and HDF5 crashes on some corrupt heaps.
Handle string_type(size_t width, const std::string& file) {
  Handle type(BRIDLE_H5_CHECK(H5Tcopy(H5T_C_S1), file, "copying the string type"), H5Tclose);
  BRIDLE_H5_CHECK(H5Tset_size(type, std::max<size_t>(width, 1)), file, "sizing a string type");
  BRIDLE_H5_CHECK(H5Tset_strpad(type, H5T_STR_NULLPAD), file, "padding a string type");
  BRIDLE_H5_CHECK(H5Tset_cset(type, H5T_CSET_UTF8), file, "setting a string type to UTF-8");
  return type;
}

Handle open_attr(hid_t obj, const std::string& name, const std::string& file) {
  return {BRIDLE_H5_CHECK(H5Aopen(obj, name.c_str(), H5P_DEFAULT), file, "opening attribute '{}'",
                          name),
          H5Aclose};
}

void write_scalar_attr(hid_t obj, const std::string& name, hid_t type, const void* value,
                       const std::string& file) {
  Handle space = scalar_space(file);
  Handle attr(BRIDLE_H5_CHECK(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
                              file, "creating attribute '{}'", name),
              H5Aclose);
  BRIDLE_H5_CHECK(H5Awrite(attr, type, value), file, "writing attribute '{}'", name);
}

// Reads a numeric scalar attribute as `mem_type` after checking its class.
void read_scalar_attr(hid_t obj, const std::string& name, hid_t mem_type, void* value,
                      const std::string& file) {
  Handle attr = open_attr(obj, name, file);
  Handle type(BRIDLE_H5_CHECK(H5Aget_type(attr), file, "reading the type of attribute '{}'", name),
              H5Tclose);
  Handle space(
      BRIDLE_H5_CHECK(H5Aget_space(attr), file, "reading the shape of attribute '{}'", name),
      H5Sclose);
  const H5T_class_t cls =
      BRIDLE_H5_CHECK(H5Tget_class(type), file, "reading the type class of attribute '{}'", name);
  const hssize_t count = BRIDLE_H5_CHECK(H5Sget_simple_extent_npoints(space), file,
                                         "counting the values of attribute '{}'", name);
  BRIDLE_CHECK(
      (cls == H5T_INTEGER || cls == H5T_FLOAT) && count == 1,
      "'{}': attribute '{}' should be a single {} number, but it holds {} value(s) of type {}",
      file, name, H5Tget_class(mem_type) == H5T_FLOAT ? "real" : "integer", count,
      type_description(type));
  BRIDLE_H5_CHECK(H5Aread(attr, mem_type, value), file, "reading attribute '{}'", name);
}

}  // namespace

std::string error_stack() {
  std::vector<std::string> lines;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_error, &lines);
  H5Eclear2(H5E_DEFAULT);
  std::string out;
  for (const std::string& line : lines) out += (out.empty() ? "" : "; ") + line;
  return out;
}

void silence_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

void keep_compact(hid_t group_creation_plist, const std::string& file) {
  BRIDLE_H5_CHECK(H5Pset_link_phase_change(group_creation_plist, 65535, 0), file,
                  "keeping links in the group header");
  BRIDLE_H5_CHECK(H5Pset_attr_phase_change(group_creation_plist, 65535, 0), file,
                  "keeping attributes in the group header");
}

Handle create_group(hid_t loc, const std::string& name, const std::string& file) {
  Handle create(BRIDLE_H5_CHECK(H5Pcreate(H5P_GROUP_CREATE), file, "creating a property list"),
                H5Pclose);
  keep_compact(create, file);
  return {BRIDLE_H5_CHECK(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, create, H5P_DEFAULT), file,
                          "creating group '{}'", name),
          H5Gclose};
}

Handle open_group(hid_t loc, const std::string& name, const std::string& file) {
  return {
      BRIDLE_H5_CHECK(H5Gopen2(loc, name.c_str(), H5P_DEFAULT), file, "opening group '{}'", name),
      H5Gclose};
}

bool has_link(hid_t loc, const std::string& name, const std::string& file) {
  return BRIDLE_H5_CHECK(H5Lexists(loc, name.c_str(), H5P_DEFAULT), file, "looking up '{}'", name) >
         0;
}

std::vector<std::string> link_names(hid_t group, const std::string& file) {
  H5G_info_t info;
  BRIDLE_H5_CHECK(H5Gget_info(group, &info), file, "listing a group");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t size = BRIDLE_H5_CHECK(
        H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT),
        file, "reading the name of link {}", i);
    std::string name(static_cast<size_t>(size) + 1, '\0');
    BRIDLE_H5_CHECK(H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(),
                                       name.size(), H5P_DEFAULT),
                    file, "reading the name of link {}", i);
    name.resize(static_cast<size_t>(size));
    names.push_back(std::move(name));
  }
  return names;
}

Handle write_tensor(hid_t loc, const std::string& name, const Tensor& tensor,
                    const std::string& file) {
  const Tensor t = tensor.device().is_cpu() ? tensor : tensor.to(Device::cpu());
  std::vector<hsize_t> dims(t.shape().begin(), t.shape().end());
  Handle space(
      BRIDLE_H5_CHECK(t.dim() == 0
                          ? H5Screate(H5S_SCALAR)
                          : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                      file, "creating the dataspace {} of '{}'", shape_str(t.shape()), name),
      H5Sclose);
  // Checksums, so that a corrupt file is an error rather than wrong weights: a
  // scalar is stored in the (checksummed) object header; anything larger in
  // chunks of at most 1 GiB, each with a Fletcher-32 checksum.
  Handle create(BRIDLE_H5_CHECK(H5Pcreate(H5P_DATASET_CREATE), file, "creating a property list"),
                H5Pclose);
  if (t.dim() == 0) {
    BRIDLE_H5_CHECK(H5Pset_layout(create, H5D_COMPACT), file, "making '{}' compact", name);
  } else if (t.numel() > 0) {
    std::vector<hsize_t> chunk = dims;
    auto chunk_bytes = [&] {
      return shape_numel({chunk.begin(), chunk.end()}) * dtype_size(t.dtype());
    };
    for (size_t d = 0; d < chunk.size(); ++d)
      while (chunk_bytes() > (int64_t{1} << 30) && chunk[d] > 1) chunk[d] = (chunk[d] + 1) / 2;
    BRIDLE_H5_CHECK(H5Pset_chunk(create, static_cast<int>(chunk.size()), chunk.data()), file,
                    "setting the chunks of '{}'", name);
    BRIDLE_H5_CHECK(H5Pset_fletcher32(create), file, "adding a checksum to '{}'", name);
  }
  Handle dataset(BRIDLE_H5_CHECK(H5Dcreate2(loc, name.c_str(), file_type(t.dtype()), space,
                                            H5P_DEFAULT, create, H5P_DEFAULT),
                                 file, "creating dataset '{}'", name),
                 H5Dclose);
  if (t.numel() > 0)
    BRIDLE_H5_CHECK(
        H5Dwrite(dataset, memory_type(t.dtype()), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw_data()),
        file, "writing dataset '{}'", name);
  return dataset;
}

namespace {

DatasetInfo info_of(hid_t dataset, const std::string& name, const std::string& file) {
  Handle type(BRIDLE_H5_CHECK(H5Dget_type(dataset), file, "reading the type of '{}'", name),
              H5Tclose);
  Handle space(BRIDLE_H5_CHECK(H5Dget_space(dataset), file, "reading the shape of '{}'", name),
               H5Sclose);
  DatasetInfo info;
  const H5T_class_t cls =
      BRIDLE_H5_CHECK(H5Tget_class(type), file, "reading the type class of '{}'", name);
  const size_t size = H5Tget_size(type);  // 0 on failure: an unsupported type below
  if (cls == H5T_FLOAT && size == 4) {
    info.dtype = kFloat32;
  } else if (cls == H5T_INTEGER && (size == 4 || size == 8) &&
             BRIDLE_H5_CHECK(H5Tget_sign(type), file, "reading the sign of '{}'", name) ==
                 H5T_SGN_2) {
    info.dtype = size == 4 ? kInt32 : kInt64;
  } else {
    BRIDLE_FAIL("'{}': dataset '{}' has type {}; bridle reads float32, int32 and int64", file, name,
                type_description(type));
  }
  const H5S_class_t space_class = BRIDLE_H5_CHECK(H5Sget_simple_extent_type(space), file,
                                                  "reading the dataspace class of '{}'", name);
  BRIDLE_CHECK(space_class == H5S_SCALAR || space_class == H5S_SIMPLE,
               "'{}': dataset '{}' has no shape (an empty dataspace)", file, name);
  const int rank =
      BRIDLE_H5_CHECK(H5Sget_simple_extent_ndims(space), file, "reading the rank of '{}'", name);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  BRIDLE_H5_CHECK(H5Sget_simple_extent_dims(space, dims.data(), nullptr), file,
                  "reading the dimensions of '{}'", name);
  info.shape.assign(dims.begin(), dims.end());
  return info;
}

}  // namespace

DatasetInfo dataset_info(hid_t loc, const std::string& name, const std::string& file) {
  Handle dataset(
      BRIDLE_H5_CHECK(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), file, "opening dataset '{}'", name),
      H5Dclose);
  return info_of(dataset, name, file);
}

Tensor read_tensor(hid_t loc, const std::string& name, const std::string& file) {
  Handle dataset(
      BRIDLE_H5_CHECK(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), file, "opening dataset '{}'", name),
      H5Dclose);
  DatasetInfo info = info_of(dataset, name, file);
  Tensor t = Tensor::empty(info.shape, info.dtype);
  if (t.numel() > 0)
    BRIDLE_H5_CHECK(
        H5Dread(dataset, memory_type(t.dtype()), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw_data()), file,
        "reading dataset '{}'", name);
  return t;
}

void write_attr(hid_t obj, const std::string& name, int64_t value, const std::string& file) {
  write_scalar_attr(obj, name, H5T_NATIVE_INT64, &value, file);
}

void write_attr(hid_t obj, const std::string& name, double value, const std::string& file) {
  write_scalar_attr(obj, name, H5T_NATIVE_DOUBLE, &value, file);
}

void write_attr(hid_t obj, const std::string& name, const std::string& value,
                const std::string& file) {
  Handle type = string_type(value.size(), file);
  std::string padded = value;
  padded.resize(std::max<size_t>(value.size(), 1), '\0');
  write_scalar_attr(obj, name, type, padded.data(), file);
}

void write_attr(hid_t obj, const std::string& name, const std::vector<std::string>& values,
                const std::string& file) {
  size_t width = 1;
  for (const std::string& v : values) width = std::max(width, v.size());
  Handle type = string_type(width, file);
  hsize_t n = values.size();
  Handle space(BRIDLE_H5_CHECK(H5Screate_simple(1, &n, nullptr), file,
                               "creating the dataspace of attribute '{}'", name),
               H5Sclose);
  Handle attr(BRIDLE_H5_CHECK(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
                              file, "creating attribute '{}'", name),
              H5Aclose);
  std::string packed(width * values.size(), '\0');
  for (size_t i = 0; i < values.size(); ++i) values[i].copy(packed.data() + i * width, width);
  if (!values.empty())
    BRIDLE_H5_CHECK(H5Awrite(attr, type, packed.data()), file, "writing attribute '{}'", name);
}

bool has_attr(hid_t obj, const std::string& name, const std::string& file) {
  return BRIDLE_H5_CHECK(H5Aexists(obj, name.c_str()), file, "looking up attribute '{}'", name) > 0;
}

std::vector<std::string> attr_names(hid_t obj, const std::string& file) {
  std::vector<std::string> names;
  hsize_t index = 0;
  BRIDLE_H5_CHECK(H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &index, collect_attr_name, &names),
                  file, "listing attributes");
  return names;
}

int64_t read_int_attr(hid_t obj, const std::string& name, const std::string& file) {
  int64_t value = 0;
  read_scalar_attr(obj, name, H5T_NATIVE_INT64, &value, file);
  return value;
}

double read_double_attr(hid_t obj, const std::string& name, const std::string& file) {
  double value = 0;
  read_scalar_attr(obj, name, H5T_NATIVE_DOUBLE, &value, file);
  return value;
}

std::vector<std::string> read_strings_attr(hid_t obj, const std::string& name,
                                           const std::string& file) {
  Handle attr = open_attr(obj, name, file);
  Handle type(BRIDLE_H5_CHECK(H5Aget_type(attr), file, "reading the type of attribute '{}'", name),
              H5Tclose);
  Handle space(
      BRIDLE_H5_CHECK(H5Aget_space(attr), file, "reading the shape of attribute '{}'", name),
      H5Sclose);
  BRIDLE_CHECK(BRIDLE_H5_CHECK(H5Tget_class(type), file, "reading the type class of '{}'", name) ==
                   H5T_STRING,
               "'{}': attribute '{}' should be text, but it is {}", file, name,
               type_description(type));
  const hssize_t count = BRIDLE_H5_CHECK(H5Sget_simple_extent_npoints(space), file,
                                         "counting the values of attribute '{}'", name);
  std::vector<std::string> out;
  if (count == 0) return out;
  Handle mem_type(BRIDLE_H5_CHECK(H5Tcopy(H5T_C_S1), file, "copying the string type"), H5Tclose);
  BRIDLE_H5_CHECK(H5Tset_cset(mem_type, H5Tget_cset(type)), file, "setting a string type's cset");
  const htri_t variable = BRIDLE_H5_CHECK(H5Tis_variable_str(type), file,
                                          "inspecting the string type of attribute '{}'", name);
  if (variable > 0) {
    // Variable-length (what h5py writes for str): HDF5 allocates each string.
    BRIDLE_H5_CHECK(H5Tset_size(mem_type, H5T_VARIABLE), file, "making a string type");
    std::vector<char*> texts(static_cast<size_t>(count), nullptr);
    herr_t status = H5Aread(attr, mem_type, texts.data());
    std::string stack = status < 0 ? error_stack() : "";
    for (char* text : texts) {
      if (text != nullptr) out.emplace_back(text);
      H5free_memory(text);
    }
    BRIDLE_CHECK(status >= 0, "'{}': reading attribute '{}' failed (HDF5: {})", file, name, stack);
  } else {
    // Fixed-length (what bridle writes; numpy bytes): read into null-terminated
    // slots one byte wider. (H5Tget_size returns 0 on failure; H5Aread then fails.)
    const size_t width = H5Tget_size(type) + 1;
    BRIDLE_H5_CHECK(H5Tset_size(mem_type, width), file, "making a string type");
    BRIDLE_H5_CHECK(H5Tset_strpad(mem_type, H5T_STR_NULLTERM), file, "making a string type");
    std::vector<char> buffer(width * static_cast<size_t>(count), '\0');
    BRIDLE_H5_CHECK(H5Aread(attr, mem_type, buffer.data()), file, "reading attribute '{}'", name);
    for (hssize_t i = 0; i < count; ++i) out.emplace_back(buffer.data() + i * width);
  }
  return out;
}

std::string read_string_attr(hid_t obj, const std::string& name, const std::string& file) {
  std::vector<std::string> values = read_strings_attr(obj, name, file);
  BRIDLE_CHECK(values.size() == 1, "'{}': attribute '{}' should be one string, but it holds {}",
               file, name, values.size());
  return values[0];
}

}  // namespace bridle::h5
