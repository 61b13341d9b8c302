// CIFAR-10 and CIFAR-100 in their official binary layout, loaded as tensors.
//
//   images: [N, 3, 32, 32] float32, pixel / 255 so in [0, 1] (RGB planes, NCHW)
//   labels: [N] int64, 0..9 (CIFAR-10), 0..99 fine or 0..19 coarse (CIFAR-100)
//
// A CIFAR-10 record is 1 label byte and 3072 pixel bytes: 1024 red, 1024 green,
// 1024 blue, each plane 32 rows of 32, which is already the CHW order of a
// tensor. A CIFAR-100 record has 2 label bytes (coarse, then fine) before the
// pixels. Files hold whole records and nothing else:
//
//   CIFAR-10   cifar-10-batches-bin/  data_batch_{1..5}.bin (train, in that order),
//                                     test_batch.bin, batches.meta.txt (class names)
//   CIFAR-100  cifar-100-binary/      train.bin, test.bin,
//                                     fine_label_names.txt, coarse_label_names.txt
//
// `path` may name that folder, its parent (datasets/fetch.sh cifar10 leaves
// data/cifar10/cifar-10-batches-bin/), or the official archive itself
// (cifar-10-binary.tar.gz, cifar-100-binary.tar.gz, or the same .tar
// uncompressed), which is streamed once without unpacking it to disk. Batches
// come from a TensorDataset and a DataLoader (dataset.h, dataloader.h), with the
// usual augmentation from augment.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace bridle {

struct CifarData {
  Tensor images;  // [N, 3, 32, 32] float32 in [0, 1]
  Tensor labels;  // [N] int64
};

// Loads split "train" (50000 examples: data_batch_1..5 in order) or "test"
// (10000). With max_examples >= 0 only the first max_examples are kept (the
// files are still read and checked in full). Throws bridle::Error naming the
// file (for an archive "archive.tar.gz:member") and the byte offset when a file
// is missing, is not a whole number of records, has a label outside 0..9, or the
// archive is corrupt or cut off.
CifarData load_cifar10(const std::string& path, const std::string& split,
                       int64_t max_examples = -1);

// CIFAR-100: split "train" (50000) or "test" (10000); label "fine" (0..99) or
// "coarse" (0..19, the 20 superclasses). Both labels are checked either way.
CifarData load_cifar100(const std::string& path, const std::string& split,
                        const std::string& label = "fine", int64_t max_examples = -1);

// The class names in label order, from batches.meta.txt (CIFAR-10: "airplane",
// "automobile", ..., "truck") or {fine,coarse}_label_names.txt (CIFAR-100).
std::vector<std::string> cifar10_class_names(const std::string& path);
std::vector<std::string> cifar100_class_names(const std::string& path,
                                              const std::string& label = "fine");

// Whether path is a file (taken to be an archive; it is not opened) or a folder
// holding every CIFAR-10 batch file, itself or in cifar-10-batches-bin/. Lets an
// example say how to fetch the data instead of failing.
bool has_cifar10(const std::string& path);

// Per-channel mean and standard deviation of the CIFAR-10 training images in
// [0, 1], for DataLoaderOptions::mean / stddev: the published values. (The
// JPEG-rebuilt copy in ../shared/datasets has the same means to 1e-4 and
// standard deviations 0.001 to 0.002 lower: 0.2452, 0.2428, 0.2606.)
inline const std::vector<float> kCifar10Mean = {0.4914f, 0.4822f, 0.4465f};
inline const std::vector<float> kCifar10Std = {0.2470f, 0.2435f, 0.2616f};

}  // namespace bridle
