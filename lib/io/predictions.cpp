// Prediction export; see predictions.h for the two formats.
#include "io/predictions.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/atomic_file.h"
#include "io/hdf5.h"
#include "ops/softmax.h"

namespace bridle {
namespace {

enum class Format { kHdf5, kCsv };

Format format_of(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".h5" || ext == ".hdf5") return Format::kHdf5;
  if (ext == ".csv") return Format::kCsv;
  BRIDLE_FAIL("'{}': cannot tell the format from the extension '{}' (use .h5, .hdf5 or .csv)", path,
              ext);
}

// Labels as int64 [N], checked against C classes.
Tensor checked_labels(const std::string& path, const Tensor& logits, const Tensor& labels) {
  BRIDLE_CHECK(logits.dim() == 2 && logits.dtype() == kFloat32,
               "'{}': logits must be float32 [N, C], got {} {}", path, dtype_name(logits.dtype()),
               shape_str(logits.shape()));
  BRIDLE_CHECK(labels.dim() == 1 && labels.size(0) == logits.size(0) &&
                   (labels.dtype() == kInt64 || labels.dtype() == kInt32),
               "'{}': labels must be int32/int64 [{}] to match logits {}, got {} {}", path,
               logits.size(0), shape_str(logits.shape()), dtype_name(labels.dtype()),
               shape_str(labels.shape()));
  Tensor out = labels.to(kInt64);
  const int64_t* y = out.data<int64_t>();
  for (int64_t i = 0; i < out.numel(); ++i)
    BRIDLE_CHECK(y[i] >= 0 && y[i] < logits.size(1),
                 "'{}': label {} of sample {} is outside [0, {})", path, y[i], i, logits.size(1));
  return out;
}

void write_hdf5(const std::string& temp, const std::string& path, const Predictions& p) {
  h5::silence_errors();
  h5::Handle file(BRIDLE_H5_CHECK(H5Fcreate(temp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                                  path, "creating the temporary file '{}'", temp),
                  H5Fclose);
  h5::write_tensor(file, "logits", p.logits, path);
  h5::write_tensor(file, "labels", p.labels, path);
  h5::write_tensor(file, "probabilities", p.probabilities, path);
  h5::write_attr(file, "num_samples", p.logits.size(0), path);
  h5::write_attr(file, "num_classes", p.logits.size(1), path);
  BRIDLE_H5_CHECK(file.close(), path, "closing the temporary file '{}'", temp);
}

void write_csv(const std::string& temp, const std::string& path, const Predictions& p) {
  std::ofstream out(temp);
  BRIDLE_CHECK(out, "'{}': cannot create the temporary file '{}': {}", path, temp,
               std::strerror(errno));
  const int64_t n = p.logits.size(0), c = p.logits.size(1);
  out << "label";
  for (int64_t j = 0; j < c; ++j) out << ",logit_" << j;
  for (int64_t j = 0; j < c; ++j) out << ",prob_" << j;
  out << '\n';
  const float* z = p.logits.data<float>();
  const float* q = p.probabilities.data<float>();
  const int64_t* y = p.labels.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    std::string row = std::to_string(y[i]);
    for (int64_t j = 0; j < c; ++j) row += fmt::format(",{:.9g}", z[i * c + j]);
    for (int64_t j = 0; j < c; ++j) row += fmt::format(",{:.9g}", q[i * c + j]);
    out << row << '\n';
  }
  out.close();
  BRIDLE_CHECK(out, "'{}': writing the temporary file '{}' failed", path, temp);
}

Predictions read_hdf5(const std::string& path) {
  h5::silence_errors();
  h5::Handle file(
      BRIDLE_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), path, "opening the file"),
      H5Fclose);
  Predictions p;
  for (const char* name : {"logits", "labels", "probabilities"})
    BRIDLE_CHECK(h5::has_link(file, name, path), "'{}' has no /{} dataset", path, name);
  p.logits = h5::read_tensor(file, "logits", path);
  p.labels = h5::read_tensor(file, "labels", path);
  p.probabilities = h5::read_tensor(file, "probabilities", path);
  return p;
}

Predictions read_csv(const std::string& path) {
  std::ifstream in(path);
  BRIDLE_CHECK(in, "'{}': cannot open it: {}", path, std::strerror(errno));
  std::string line;
  BRIDLE_CHECK(std::getline(in, line) && line.rfind("label,", 0) == 0,
               "'{}': the first line is not the header 'label,logit_0,...'", path);
  const int64_t columns = std::count(line.begin(), line.end(), ',');
  BRIDLE_CHECK(columns >= 2 && columns % 2 == 0, "'{}': the header has {} columns, not 1 + 2C",
               path, columns + 1);
  const int64_t c = columns / 2;
  std::vector<float> logits, probs;
  std::vector<int64_t> labels;
  for (int64_t row = 2; std::getline(in, line); ++row) {
    std::istringstream fields(line);
    std::string field;
    std::vector<std::string> values;
    while (std::getline(fields, field, ',')) values.push_back(field);
    BRIDLE_CHECK(static_cast<int64_t>(values.size()) == columns + 1,
                 "'{}': line {} has {} fields, the header {}", path, row, values.size(),
                 columns + 1);
    try {
      size_t used = 0;
      labels.push_back(std::stoll(values[0], &used));
      BRIDLE_CHECK(used == values[0].size(), "trailing characters");
      for (int64_t j = 0; j < 2 * c; ++j) {
        const float v = std::stof(values[1 + j], &used);
        BRIDLE_CHECK(used == values[1 + j].size(), "trailing characters");
        (j < c ? logits : probs).push_back(v);
      }
    } catch (const std::exception& e) {
      BRIDLE_FAIL("'{}': line {} is not a label and {} numbers: '{}'", path, row, 2 * c,
                  line.substr(0, 80));
    }
  }
  const int64_t n = static_cast<int64_t>(labels.size());
  Predictions p;
  p.logits = Tensor::empty({n, c});
  p.probabilities = Tensor::empty({n, c});
  p.labels = Tensor::empty({n}, kInt64);
  std::copy(logits.begin(), logits.end(), p.logits.data<float>());
  std::copy(probs.begin(), probs.end(), p.probabilities.data<float>());
  std::copy(labels.begin(), labels.end(), p.labels.data<int64_t>());
  return p;
}

}  // namespace

void save_predictions(const std::string& path, const Tensor& logits, const Tensor& labels) {
  const Format format = format_of(path);
  Predictions p;
  p.logits = (logits.device().is_cpu() ? logits : logits.to(Device::cpu())).detach();
  p.labels =
      checked_labels(path, p.logits, labels.device().is_cpu() ? labels : labels.to(Device::cpu()));
  p.probabilities = softmax(p.logits, 1);

  write_file_atomically(path, [&](const std::string& temp) {
    if (format == Format::kHdf5)
      write_hdf5(temp, path, p);
    else
      write_csv(temp, path, p);
  });
}

Predictions load_predictions(const std::string& path) {
  const Format format = format_of(path);
  std::error_code ec;
  BRIDLE_CHECK(std::filesystem::is_regular_file(path, ec), "'{}': no such file", path);
  Predictions p = format == Format::kHdf5 ? read_hdf5(path) : read_csv(path);
  BRIDLE_CHECK(p.logits.dim() == 2 && p.logits.dtype() == kFloat32 &&
                   p.probabilities.shape() == p.logits.shape() &&
                   p.probabilities.dtype() == kFloat32,
               "'{}': logits {} {} and probabilities {} {} must be float32 [N, C] alike", path,
               dtype_name(p.logits.dtype()), shape_str(p.logits.shape()),
               dtype_name(p.probabilities.dtype()), shape_str(p.probabilities.shape()));
  p.labels = checked_labels(path, p.logits, p.labels);
  return p;
}

}  // namespace bridle
