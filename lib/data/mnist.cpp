// MNIST loading: file lookup, IDX reading (idx.cpp) and conversion to tensors;
// see mnist.h for the shapes and the directory layout.
#include "data/mnist.h"

#include <array>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "data/idx.h"

namespace bridle {
namespace {

constexpr int64_t kNumClasses = 10;

// "train-images-idx3-ubyte" -> {itself, ".gz", "train-images.idx3-ubyte", ".gz"}:
// the second spelling is how some mirrors (and Kaggle) name the files.
std::vector<std::string> spellings(const std::string& name) {
  std::string dotted = name;
  if (size_t at = dotted.rfind("-idx"); at != std::string::npos) dotted[at] = '.';
  return {name, name + ".gz", dotted, dotted + ".gz"};
}

std::string require_file(const std::string& dir, const std::string& name) {
  std::string path = find_mnist_file(dir, name);
  if (!path.empty()) return path;
  std::error_code ec;
  BRIDLE_CHECK(std::filesystem::is_directory(dir, ec),
               "mnist: directory {} does not exist; fetch the data with "
               "`datasets/fetch.sh mnist {}` (or fashion-mnist)",
               dir, dir);
  BRIDLE_FAIL(
      "mnist: {} has no {} (nor {}.gz, nor the .idx spelling); fetch the data with "
      "`datasets/fetch.sh mnist {}` (or fashion-mnist)",
      dir, name, name, dir);
}

}  // namespace

std::string find_mnist_file(const std::string& dir, const std::string& name) {
  for (const std::string& candidate : spellings(name)) {
    std::filesystem::path path = std::filesystem::path(dir) / candidate;
    std::error_code ec;
    if (std::filesystem::is_regular_file(path, ec)) return path.string();
  }
  return "";
}

bool has_mnist(const std::string& dir) {
  for (const char* name : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"})
    if (find_mnist_file(dir, name).empty()) return false;
  return true;
}

MnistData load_mnist(const std::string& dir, const std::string& split, int64_t max_examples) {
  BRIDLE_CHECK(split == "train" || split == "test",
               "mnist: split must be \"train\" or \"test\", got \"{}\"", split);
  const std::string prefix = split == "train" ? "train" : "t10k";
  const std::string images_path = require_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = require_file(dir, prefix + "-labels-idx1-ubyte");

  IdxArray images = read_idx(images_path, kIdxImagesMagic, "mnist");
  IdxArray labels = read_idx(labels_path, kIdxLabelsMagic, "mnist");
  const int64_t n = images.dims[0], rows = images.dims[1], cols = images.dims[2];
  BRIDLE_CHECK(labels.dims[0] == n, "mnist: {} has {} images but {} has {} labels", images_path, n,
               labels_path, labels.dims[0]);
  for (int64_t i = 0; i < n; ++i)
    BRIDLE_CHECK(labels.data[i] < kNumClasses, "mnist: {}: label {} at index {} is outside 0..{}",
                 labels_path, labels.data[i], i, kNumClasses - 1);

  const int64_t keep = max_examples >= 0 ? std::min(max_examples, n) : n;
  MnistData out;
  out.images = Tensor::empty({keep, 1, rows, cols}, kFloat32);
  out.labels = Tensor::empty({keep}, kInt64);

  // A table gives exactly byte / 255.0f (as torchvision's ToTensor does) at the
  // cost of a load per pixel.
  std::array<float, 256> scale;
  for (int v = 0; v < 256; ++v) scale[v] = static_cast<float>(v) / 255.0f;
  float* pixels = out.images.data<float>();
  const int64_t num_pixels = keep * rows * cols;
  for (int64_t i = 0; i < num_pixels; ++i) pixels[i] = scale[images.data[i]];
  int64_t* targets = out.labels.data<int64_t>();
  for (int64_t i = 0; i < keep; ++i) targets[i] = labels.data[i];
  return out;
}

}  // namespace bridle
