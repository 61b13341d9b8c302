// Checkpoints: the file layout (docs/checkpoints.md), atomic saving and
// all-or-nothing loading; see checkpoint.h.
//
//   /                       attrs format = "bridle-checkpoint", format_version = 1,
//                                 epoch, global_step (int64), config (JSON text)
//   /model/<key>            one dataset per parameter or buffer, attr kind
//   /optimizer              attrs type, step_count, param_names, one float64 per
//                                 hyper-parameter and one per parameter-group
//                                 setting, named param_groups.<g>.<setting>
//   /optimizer/<kind>/<key> per-parameter tensors, e.g. momentum_buffer/fc1.weight
//   /rng                    attrs default (and one per named generator): the
//                                 mt19937_64 state as text
//
// The format attribute is written last: a file without it is an incomplete save.
#include "io/checkpoint.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <unordered_map>

#include "io/atomic_file.h"
#include "io/hdf5.h"

namespace bridle {
namespace {

constexpr const char* kFormat = "bridle-checkpoint";
constexpr int64_t kFormatVersion = 1;
// Attributes of /optimizer that are not hyper-parameters.
const std::set<std::string> kOptimizerAttrs = {"type", "step_count", "param_names"};
// Parameter-group settings are attributes "param_groups.<g>.<setting>".
constexpr std::string_view kGroupPrefix = "param_groups.";

detail::CheckpointSaveHook save_hook = nullptr;

// The model's defined parameters and buffers, with their kind.
struct ModelEntry {
  std::string key;
  Tensor tensor;
  const char* kind;
};
std::vector<ModelEntry> model_entries(const Module& model) {
  std::vector<ModelEntry> entries;
  for (auto& [key, t] : model.named_parameters())
    if (t.defined()) entries.push_back({key, t, "parameter"});
  for (auto& [key, t] : model.named_buffers())
    if (t.defined()) entries.push_back({key, t, "buffer"});
  return entries;
}

// The optimizer's parameters named as in the model ("fc1.weight").
std::vector<std::string> optimizer_param_names(const Optimizer& optimizer, const Module* model,
                                               const std::string& file) {
  BRIDLE_CHECK(model != nullptr,
               "'{}': an optimizer needs its model in the Checkpoint too (its state is keyed by "
               "the model's parameter names)",
               file);
  std::unordered_map<const TensorImpl*, std::string> names;
  for (auto& [key, t] : model->named_parameters()) names.emplace(t.impl_ptr().get(), key);
  std::vector<std::string> out;
  for (size_t i = 0; i < optimizer.params().size(); ++i) {
    auto it = names.find(optimizer.params()[i].impl_ptr().get());
    BRIDLE_CHECK(it != names.end(),
                 "'{}': optimizer parameter {} {} is not a parameter of the model", file, i,
                 shape_str(optimizer.params()[i].shape()));
    out.push_back(it->second);
  }
  return out;
}

std::string join(const std::vector<std::string>& items, size_t limit = 8,
                 const char* separator = ", ") {
  std::string out;
  for (size_t i = 0; i < items.size() && i < limit; ++i) out += (i ? separator : "") + items[i];
  if (items.size() > limit) out += fmt::format(", ... ({} in all)", items.size());
  return out;
}

void write_contents(const std::string& temp, const std::string& file, const Checkpoint& c,
                    const std::vector<std::string>& optimizer_names,
                    const OptimizerState& optimizer_state) {
  // The HDF5 1.10 file format (readable by HDF5 >= 1.10, any h5py 3): its
  // metadata carries checksums, and a one-chunk dataset needs no B-tree.
  h5::Handle access(BRIDLE_H5_CHECK(H5Pcreate(H5P_FILE_ACCESS), file, "creating a property list"),
                    H5Pclose);
  BRIDLE_H5_CHECK(H5Pset_libver_bounds(access, H5F_LIBVER_V110, H5F_LIBVER_V110), file,
                  "choosing the HDF5 1.10 file format");
  h5::Handle create(BRIDLE_H5_CHECK(H5Pcreate(H5P_FILE_CREATE), file, "creating a property list"),
                    H5Pclose);
  h5::keep_compact(create, file);  // for the root group
  h5::Handle h5file(BRIDLE_H5_CHECK(H5Fcreate(temp.c_str(), H5F_ACC_TRUNC, create, access), file,
                                    "creating the temporary file '{}'", temp),
                    H5Fclose);
  if (c.model != nullptr) {
    h5::Handle group = h5::create_group(h5file, "model", file);
    for (const ModelEntry& e : model_entries(*c.model)) {
      BRIDLE_CHECK(e.key.find('/') == std::string::npos,
                   "'{}': model key '{}' contains '/', which HDF5 reads as a path", file, e.key);
      h5::Handle dataset = h5::write_tensor(group, e.key, e.tensor, file);
      h5::write_attr(dataset, "kind", std::string(e.kind), file);
    }
  }
  if (save_hook != nullptr) save_hook(temp);

  if (c.optimizer != nullptr) {
    h5::Handle group = h5::create_group(h5file, "optimizer", file);
    h5::write_attr(group, "type", optimizer_state.type, file);
    h5::write_attr(group, "step_count", optimizer_state.step_count, file);
    h5::write_attr(group, "param_names", optimizer_names, file);
    for (const auto& [name, value] : optimizer_state.hyperparameters) {
      BRIDLE_CHECK(!kOptimizerAttrs.count(name),
                   "'{}': optimizer hyper-parameter '{}' clashes with a reserved attribute", file,
                   name);
      h5::write_attr(group, name, value, file);
    }
    for (size_t g = 0; g < optimizer_state.param_groups.size(); ++g)
      for (const auto& [setting, value] : optimizer_state.param_groups[g])
        h5::write_attr(group, fmt::format("{}{}.{}", kGroupPrefix, g, setting), value, file);
    for (const auto& [kind, tensors] : optimizer_state.per_parameter) {
      BRIDLE_CHECK(tensors.size() == optimizer_names.size(),
                   "'{}': the optimizer's '{}' state has {} tensors for {} parameters", file, kind,
                   tensors.size(), optimizer_names.size());
      h5::Handle kind_group = h5::create_group(group, kind, file);
      for (size_t i = 0; i < tensors.size(); ++i)
        if (tensors[i].defined())
          h5::write_tensor(kind_group, optimizer_names[i], tensors[i], file);
    }
  }

  if (c.with_default_generator || !c.generators.empty()) {
    h5::Handle group = h5::create_group(h5file, "rng", file);
    if (c.with_default_generator)
      h5::write_attr(group, "default", default_generator().state(), file);
    for (const auto& [name, gen] : c.generators) h5::write_attr(group, name, gen->state(), file);
  }

  h5::write_attr(h5file, "epoch", c.epoch, file);
  h5::write_attr(h5file, "global_step", c.global_step, file);
  h5::write_attr(h5file, "config", c.config, file);
  // Last: the mark of a complete file.
  h5::write_attr(h5file, "format_version", kFormatVersion, file);
  h5::write_attr(h5file, "format", std::string(kFormat), file);
  BRIDLE_H5_CHECK(h5file.close(), file, "closing (flushing) the temporary file '{}'", temp);
}

void save(const std::string& path, const Checkpoint& c) {
  // Everything that can be checked is checked before a file is touched.
  BRIDLE_CHECK(nlohmann::json::accept(c.config), "'{}': config is not valid JSON: '{}'", path,
               c.config.substr(0, 80));
  for (const auto& [name, gen] : c.generators) {
    BRIDLE_CHECK(gen != nullptr, "'{}': generator '{}' is null", path, name);
    BRIDLE_CHECK(!name.empty() && name.find('/') == std::string::npos && name != "default",
                 "'{}': '{}' cannot name a generator (non-empty, no '/', not 'default')", path,
                 name);
  }
  std::vector<std::string> optimizer_names;
  OptimizerState optimizer_state;
  if (c.optimizer != nullptr) {
    optimizer_names = optimizer_param_names(*c.optimizer, c.model, path);
    optimizer_state = c.optimizer->state();
  }

  write_file_atomically(path, [&](const std::string& temp) {
    write_contents(temp, path, c, optimizer_names, optimizer_state);
  });
}

// Everything read from the file, before any of it is applied.
struct Loaded {
  std::vector<std::pair<Tensor, Tensor>> model_copies;  // (destination, value from the file)
  OptimizerState optimizer_state;
  std::vector<std::pair<Generator*, Generator>> generators;  // (destination, restored copy)
};

h5::Handle open_checkpoint(const std::string& path) {
  std::error_code ec;
  BRIDLE_CHECK(std::filesystem::is_regular_file(path, ec), "'{}': no such file", path);
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  if (is_hdf5 <= 0) {
    std::string stack = h5::error_stack();
    BRIDLE_FAIL("'{}' is not an HDF5 file{}", path, stack.empty() ? "" : " (HDF5: " + stack + ")");
  }
  // Closing the file closes every object still open in it.
  h5::Handle access(BRIDLE_H5_CHECK(H5Pcreate(H5P_FILE_ACCESS), path, "creating a property list"),
                    H5Pclose);
  BRIDLE_H5_CHECK(H5Pset_fclose_degree(access, H5F_CLOSE_STRONG), path, "setting the close degree");
  return {BRIDLE_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, access), path,
                          "opening the file (truncated or corrupt?)"),
          H5Fclose};
}

void read_model(hid_t h5file, const std::string& path, const Module& model, Loaded& out) {
  BRIDLE_CHECK(h5::has_link(h5file, "model", path),
               "'{}' has no model (no /model group): it was saved without one", path);
  h5::Handle group = h5::open_group(h5file, "model", path);
  const std::vector<std::string> file_keys = h5::link_names(group, path);
  const std::set<std::string> in_file(file_keys.begin(), file_keys.end());
  const std::vector<ModelEntry> entries = model_entries(model);
  std::set<std::string> in_model;
  std::vector<std::string> missing, unexpected;
  for (const ModelEntry& e : entries) {
    in_model.insert(e.key);
    if (!in_file.count(e.key)) missing.push_back(e.key);
  }
  for (const std::string& key : file_keys)
    if (!in_model.count(key)) unexpected.push_back(key);
  BRIDLE_CHECK(
      missing.empty() && unexpected.empty(), "'{}' does not match the model: {}{}{}", path,
      missing.empty() ? "" : "missing key(s) " + join(missing) + " (in the model, not the file)",
      missing.empty() || unexpected.empty() ? "" : "; ",
      unexpected.empty()
          ? ""
          : "unexpected key(s) " + join(unexpected) + " (in the file, not the model)");
  // Shapes and dtypes first (cheap), so a mismatch is reported before any data is read.
  std::vector<std::string> mismatches;
  for (const ModelEntry& e : entries) {
    h5::DatasetInfo info = h5::dataset_info(group, e.key, path);
    if (info.shape != e.tensor.shape() || info.dtype != e.tensor.dtype())
      mismatches.push_back(fmt::format("key '{}' is {} {} in the file but {} {} in the model",
                                       e.key, dtype_name(info.dtype), shape_str(info.shape),
                                       dtype_name(e.tensor.dtype()), shape_str(e.tensor.shape())));
  }
  BRIDLE_CHECK(mismatches.empty(), "'{}': {}", path, join(mismatches, 4, "; "));
  for (const ModelEntry& e : entries)
    out.model_copies.emplace_back(e.tensor, h5::read_tensor(group, e.key, path));
}

void read_optimizer(hid_t h5file, const std::string& path, const Optimizer& optimizer,
                    const Module* model, Loaded& out) {
  const std::vector<std::string> names = optimizer_param_names(optimizer, model, path);
  BRIDLE_CHECK(h5::has_link(h5file, "optimizer", path),
               "'{}' has no optimizer state (no /optimizer group): it was saved without one", path);
  h5::Handle group = h5::open_group(h5file, "optimizer", path);
  OptimizerState& state = out.optimizer_state;
  state.type = h5::read_string_attr(group, "type", path);
  state.step_count = h5::read_int_attr(group, "step_count", path);
  const std::vector<std::string> saved = h5::read_strings_attr(group, "param_names", path);
  for (const std::string& attr : h5::attr_names(group, path)) {
    if (kOptimizerAttrs.count(attr)) continue;
    const double value = h5::read_double_attr(group, attr, path);
    if (attr.compare(0, kGroupPrefix.size(), kGroupPrefix) != 0) {
      state.hyperparameters[attr] = value;
      continue;
    }
    // param_groups.<g>.<setting>
    const std::string rest = attr.substr(kGroupPrefix.size());
    const size_t dot = rest.find('.');
    const std::string digits = rest.substr(0, dot);
    BRIDLE_CHECK(dot != std::string::npos && dot > 0 && dot < 6 && dot + 1 < rest.size() &&
                     digits.find_first_not_of("0123456789") == std::string::npos,
                 "'{}': /optimizer attribute '{}' is not param_groups.<number>.<setting>", path,
                 attr);
    const size_t g = std::stoul(digits);
    if (state.param_groups.size() <= g) state.param_groups.resize(g + 1);
    state.param_groups[g][rest.substr(dot + 1)] = value;
  }
  for (size_t g = 0; g < state.param_groups.size(); ++g)
    BRIDLE_CHECK(!state.param_groups[g].empty(),
                 "'{}': /optimizer has settings for parameter group {} but none for group {}", path,
                 state.param_groups.size() - 1, g);

  // The same parameters, by name (their order may differ).
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < names.size(); ++i) index.emplace(names[i], i);
  const std::set<std::string> saved_set(saved.begin(), saved.end());
  std::vector<std::string> missing, unexpected;
  for (const std::string& name : names)
    if (!saved_set.count(name)) missing.push_back(name);
  for (const std::string& name : saved)
    if (!index.count(name)) unexpected.push_back(name);
  BRIDLE_CHECK(missing.empty() && unexpected.empty() && saved.size() == names.size(),
               "'{}': the optimizer's parameters differ from the saved ones: saved {} [{}], "
               "now {} [{}]",
               path, saved.size(), join(saved), names.size(), join(names));

  for (const std::string& kind : h5::link_names(group, path)) {
    h5::Handle kind_group = h5::open_group(group, kind, path);
    std::vector<Tensor>& tensors = state.per_parameter[kind];
    tensors.resize(names.size());
    for (const std::string& key : h5::link_names(kind_group, path)) {
      auto it = index.find(key);
      BRIDLE_CHECK(it != index.end(), "'{}': /optimizer/{}/{} names no parameter of the optimizer",
                   path, kind, key);
      tensors[it->second] = h5::read_tensor(kind_group, key, path);
    }
  }
}

void read_generators(hid_t h5file, const std::string& path, const Checkpoint& c, Loaded& out) {
  BRIDLE_CHECK(h5::has_link(h5file, "rng", path),
               "'{}' has no generator states (no /rng group): it was saved without them", path);
  h5::Handle group = h5::open_group(h5file, "rng", path);
  auto restore = [&](const std::string& attr, Generator* destination) {
    BRIDLE_CHECK(h5::has_attr(group, attr, path), "'{}' has no state for generator '{}' in /rng",
                 path, attr);
    Generator restored;
    try {
      restored.set_state(h5::read_string_attr(group, attr, path));
    } catch (const Error& e) {
      BRIDLE_FAIL("'{}': generator '{}': {}", path, attr, e.what());
    }
    out.generators.emplace_back(destination, restored);
  };
  if (c.with_default_generator) restore("default", &default_generator());
  for (const auto& [name, gen] : c.generators) {
    BRIDLE_CHECK(gen != nullptr, "'{}': generator '{}' is null", path, name);
    restore(name, gen);
  }
}

void load(const std::string& path, Checkpoint& c) {
  Loaded loaded;
  int64_t epoch = 0, global_step = 0;
  std::string config;
  {
    h5::Handle h5file = open_checkpoint(path);
    BRIDLE_CHECK(h5::has_attr(h5file, "format", path) &&
                     h5::read_string_attr(h5file, "format", path) == kFormat,
                 "'{}' is not a complete bridle checkpoint (no format = \"{}\" attribute on /: "
                 "another program's file, or a save that did not finish)",
                 path, kFormat);
    const int64_t version = h5::read_int_attr(h5file, "format_version", path);
    BRIDLE_CHECK(version >= 1 && version <= kFormatVersion,
                 "'{}' has checkpoint format version {}; this bridle reads versions 1 to {}", path,
                 version, kFormatVersion);
    epoch = h5::read_int_attr(h5file, "epoch", path);
    global_step = h5::read_int_attr(h5file, "global_step", path);
    config = h5::read_string_attr(h5file, "config", path);
    if (c.model != nullptr) read_model(h5file, path, *c.model, loaded);
    if (c.optimizer != nullptr) read_optimizer(h5file, path, *c.optimizer, c.model, loaded);
    if (c.with_default_generator || !c.generators.empty()) read_generators(h5file, path, c, loaded);
  }

  // Apply. The optimizer validates its state before changing anything, so it
  // goes first; the rest cannot fail any more.
  if (c.optimizer != nullptr) {
    try {
      c.optimizer->load_state(loaded.optimizer_state);
    } catch (const Error& e) {
      BRIDLE_FAIL("'{}': {}", path, e.what());
    }
  }
  for (auto& [destination, value] : loaded.model_copies) destination.copy_(value);
  for (auto& [destination, restored] : loaded.generators) *destination = restored;
  c.epoch = epoch;
  c.global_step = global_step;
  c.config = config;
}

}  // namespace

void save_checkpoint(const std::string& path, const Checkpoint& checkpoint) {
  h5::silence_errors();
  try {
    save(path, checkpoint);
  } catch (const Error& e) {
    throw Error(std::string("save_checkpoint: ") + e.what());
  }
}

void load_checkpoint(const std::string& path, Checkpoint& checkpoint) {
  h5::silence_errors();
  try {
    load(path, checkpoint);
  } catch (const Error& e) {
    throw Error(std::string("load_checkpoint: ") + e.what());
  }
}

namespace detail {
void set_checkpoint_save_hook(CheckpointSaveHook hook) { save_hook = hook; }
}  // namespace detail

}  // namespace bridle
