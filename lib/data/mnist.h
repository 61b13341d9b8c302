// MNIST and Fashion-MNIST: the four IDX files of a split, loaded as tensors.
//
//   images: [N, 1, rows, cols] float32, pixel / 255 so in [0, 1] (28x28 for both)
//   labels: [N] int64, 0..9
//
// A directory holds train-{images-idx3,labels-idx1}-ubyte and
// t10k-{images-idx3,labels-idx1}-ubyte, each plain or .gz (the
// train-images.idx3-ubyte spelling is accepted too). datasets/fetch.sh puts them
// in data/mnist or data/fashion-mnist. The file format is read by idx.h; batches
// come from a TensorDataset and a DataLoader (dataset.h, dataloader.h).
#pragma once

#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace bridle {

struct MnistData {
  Tensor images;  // [N, 1, rows, cols] float32 in [0, 1]
  Tensor labels;  // [N] int64 in 0..9
};

// Loads split "train" (60000 examples) or "test" (10000) from dir. With
// max_examples >= 0 only the first max_examples are kept (the files are still
// checked in full). Throws bridle::Error naming the file when one is missing,
// malformed, when image and label counts differ, or a label is outside 0..9.
MnistData load_mnist(const std::string& dir, const std::string& split, int64_t max_examples = -1);

// The path of an MNIST file in dir under any accepted spelling, e.g.
// find_mnist_file("data/mnist", "train-images-idx3-ubyte") may give
// "data/mnist/train-images-idx3-ubyte.gz"; "" when there is none.
std::string find_mnist_file(const std::string& dir, const std::string& name);

// Whether dir holds all four files (so an example can say how to fetch them).
bool has_mnist(const std::string& dir);

}  // namespace bridle
