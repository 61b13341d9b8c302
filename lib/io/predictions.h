// Exporting a classifier's predictions, so that any metric can be re-checked
// outside bridle (numpy, pandas, scikit-learn, torchmetrics).
//
//   save_predictions("test_predictions.h5", logits, labels);   // or .csv
//   Predictions p = load_predictions("test_predictions.h5");
//
// Shapes: logits [N, C] float32, labels [N] int32/int64 in [0, C); the file also
// holds probabilities = softmax(logits) [N, C].
//
// HDF5 (.h5, .hdf5): datasets /logits [N, C] float32, /labels [N] int64 and
// /probabilities [N, C] float32, and attributes num_samples and num_classes on /:
//   with h5py.File("test_predictions.h5") as f: logits = f["logits"][:]
// CSV (.csv): a header "label,logit_0,..,logit_{C-1},prob_0,..,prob_{C-1}", then
// one row per sample; floats with 9 significant digits, so that float32 values
// read back exactly:
//   pandas.read_csv("test_predictions.csv")
//
// Both are written to "<path>.tmp.<pid>" and renamed over path, so a crash never
// leaves half a file under the final name.
#pragma once

#include <string>

#include "core/tensor.h"

namespace bridle {

struct Predictions {
  Tensor logits;         // [N, C] float32
  Tensor labels;         // [N] int64
  Tensor probabilities;  // [N, C] float32
};

// Writes logits, labels and softmax(logits); the format follows the extension.
void save_predictions(const std::string& path, const Tensor& logits, const Tensor& labels);

// Reads a file written by save_predictions (either format), checking shapes and labels.
Predictions load_predictions(const std::string& path);

}  // namespace bridle
