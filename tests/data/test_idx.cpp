// IDX and MNIST loading: good plain and gzip files, and every way a file can be
// wrong (truncated, wrong magic, corrupt gzip, trailing bytes, bad labels,
// mismatched counts), each checked for an error that names the file and the
// offending offset or value. Ends with the committed MNIST subset
// (tests/fixtures/mnist_subset, made by scripts/make_mnist_subset.py).
#include <gtest/gtest.h>

#include <filesystem>
#include <numeric>
#include <random>

#include "data/idx.h"
#include "data/mnist.h"
#include "data_test_util.h"

namespace bridle {
namespace {

using testing::error_message;
using testing::idx_header;
using testing::read_bytes;
using testing::ScratchDir;
using testing::write_bytes;
using testing::write_gzip_bytes;

// Pseudo-random pixels (incompressible enough that a cut gzip stream is cut
// in the middle of the data, not in a run of zeros).
IdxArray random_images(int64_t n, int64_t rows, int64_t cols, uint32_t seed = 1) {
  IdxArray a;
  a.dims = {n, rows, cols};
  a.data.resize(static_cast<size_t>(n * rows * cols));
  std::mt19937 rng(seed);
  for (auto& b : a.data) b = static_cast<uint8_t>(rng());
  return a;
}

IdxArray labels(std::vector<uint8_t> values) {
  IdxArray a;
  a.dims = {static_cast<int64_t>(values.size())};
  a.data = std::move(values);
  return a;
}

// Writes a four-file MNIST directory: n_train / n_test examples, labels i % 10.
void write_mnist_dir(const ScratchDir& dir, int64_t n_train, int64_t n_test, bool gzip) {
  for (auto [prefix, n] : {std::pair{"train", n_train}, std::pair{"t10k", n_test}}) {
    std::vector<uint8_t> l(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) l[i] = static_cast<uint8_t>(i % 10);
    const std::string ext = gzip ? ".gz" : "";
    write_idx(dir.file(std::string(prefix) + "-images-idx3-ubyte" + ext),
              random_images(n, 28, 28, static_cast<uint32_t>(n)), gzip);
    write_idx(dir.file(std::string(prefix) + "-labels-idx1-ubyte" + ext), labels(l), gzip);
  }
}

TEST(Idx, ReadsPlainFile) {
  ScratchDir dir;
  IdxArray images = random_images(3, 4, 5);
  write_idx(dir.file("images"), images, /*gzip=*/false);
  EXPECT_EQ(std::filesystem::file_size(dir.file("images")), 16u + 60u);
  IdxArray back = read_idx(dir.file("images"), kIdxImagesMagic);
  EXPECT_EQ(back.dims, (std::vector<int64_t>{3, 4, 5}));
  EXPECT_EQ(back.data, images.data);
}

TEST(Idx, ReadsGzipFile) {
  ScratchDir dir;
  IdxArray l = labels({3, 1, 4, 1, 5, 9, 2, 6});
  write_idx(dir.file("labels.gz"), l, /*gzip=*/true);
  std::vector<uint8_t> raw = read_bytes(dir.file("labels.gz"));
  ASSERT_GE(raw.size(), 2u);
  EXPECT_EQ(raw[0], 0x1F);
  EXPECT_EQ(raw[1], 0x8B);
  IdxArray back = read_idx(dir.file("labels.gz"), kIdxLabelsMagic);
  EXPECT_EQ(back.dims, (std::vector<int64_t>{8}));
  EXPECT_EQ(back.data, l.data);
}

TEST(Idx, DetectsGzipByContentNotByName) {
  ScratchDir dir;
  IdxArray l = labels({7, 7, 7});
  write_idx(dir.file("gzip-without-extension"), l, /*gzip=*/true);
  write_idx(dir.file("plain-with-extension.gz"), l, /*gzip=*/false);
  EXPECT_EQ(read_idx(dir.file("gzip-without-extension"), kIdxLabelsMagic).data, l.data);
  EXPECT_EQ(read_idx(dir.file("plain-with-extension.gz"), kIdxLabelsMagic).data, l.data);
}

TEST(Idx, TruncatedPlainFileNamesFileAndOffset) {
  ScratchDir dir;
  const std::string path = dir.file("train-images-idx3-ubyte");
  write_idx(path, random_images(10, 28, 28), false);
  std::filesystem::resize_file(path, 1234);
  std::string msg = error_message([&] { read_idx(path, kIdxImagesMagic, "mnist"); });
  EXPECT_CONTAINS(msg, "mnist: ");
  EXPECT_CONTAINS(msg, path + " is truncated");
  EXPECT_CONTAINS(msg, "expected 7856 bytes");
  EXPECT_CONTAINS(msg, "10x28x28");
  EXPECT_CONTAINS(msg, "file ends at byte 1234");
}

TEST(Idx, TruncatedHeader) {
  ScratchDir dir;
  std::vector<uint8_t> bytes = idx_header({10, 28, 28});
  bytes.resize(9);
  write_bytes(dir.file("short"), bytes);
  std::string msg = error_message([&] { read_idx(dir.file("short"), kIdxImagesMagic); });
  EXPECT_CONTAINS(msg, "is truncated");
  EXPECT_CONTAINS(msg, "header is 16 bytes");
  EXPECT_CONTAINS(msg, "file ends at byte 9");

  write_bytes(dir.file("empty"), {});
  msg = error_message([&] { read_idx(dir.file("empty"), kIdxImagesMagic); });
  EXPECT_CONTAINS(msg, "ends at byte 0");
}

TEST(Idx, GzipWithFewerBytesThanItsHeaderSays) {
  ScratchDir dir;
  std::vector<uint8_t> bytes = idx_header({4, 2, 2});
  bytes.resize(bytes.size() + 10, 0x55);  // 10 of the 16 data bytes
  write_gzip_bytes(dir.file("images.gz"), bytes);
  std::string msg = error_message([&] { read_idx(dir.file("images.gz"), kIdxImagesMagic); });
  EXPECT_CONTAINS(msg, dir.file("images.gz") + " is truncated");
  EXPECT_CONTAINS(msg, "expected 32 bytes");
  EXPECT_CONTAINS(msg, "file ends at byte 26 of its decompressed contents");
}

TEST(Idx, CutOffGzipStream) {
  ScratchDir dir;
  const std::string path = dir.file("train-images-idx3-ubyte.gz");
  write_idx(path, random_images(20, 28, 28), true);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  std::string msg = error_message([&] { read_idx(path, kIdxImagesMagic, "mnist"); });
  EXPECT_CONTAINS(msg, path + " is truncated");
  EXPECT_CONTAINS(msg, "expected 15696 bytes");
  EXPECT_CONTAINS(msg, "the gzip stream is cut off");
}

TEST(Idx, GzipMissingOnlyItsTrailer) {
  ScratchDir dir;
  const std::string path = dir.file("labels.gz");
  write_idx(path, labels({1, 2, 3}), true);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 4);  // drop ISIZE
  std::string msg = error_message([&] { read_idx(path, kIdxLabelsMagic); });
  EXPECT_CONTAINS(msg, path + " is truncated");
  EXPECT_CONTAINS(msg, "cut off");
}

TEST(Idx, CorruptGzipChecksum) {
  ScratchDir dir;
  const std::string path = dir.file("labels.gz");
  write_idx(path, labels({1, 2, 3, 4, 5}), true);
  std::vector<uint8_t> raw = read_bytes(path);
  raw[raw.size() - 8] ^= 0xFF;  // first byte of the CRC-32 trailer
  write_bytes(path, raw);
  std::string msg = error_message([&] { read_idx(path, kIdxLabelsMagic); });
  EXPECT_CONTAINS(msg, path + " is a corrupt gzip file");
  EXPECT_CONTAINS(msg, "zlib: ");
}

TEST(Idx, CorruptGzipData) {
  ScratchDir dir;
  const std::string path = dir.file("images.gz");
  write_idx(path, random_images(20, 28, 28), true);
  std::vector<uint8_t> raw = read_bytes(path);
  for (size_t i = raw.size() / 2; i < raw.size() / 2 + 64; ++i) raw[i] = 0xFF;
  write_bytes(path, raw);
  std::string msg = error_message([&] { read_idx(path, kIdxImagesMagic); });
  EXPECT_CONTAINS(msg, path);
  EXPECT_CONTAINS(msg, "gzip");
}

TEST(Idx, TrailingGarbage) {
  ScratchDir dir;
  std::vector<uint8_t> bytes = idx_header({3});
  bytes.insert(bytes.end(), {1, 2, 3, 0xDE, 0xAD});
  write_bytes(dir.file("labels"), bytes);
  std::string msg = error_message([&] { read_idx(dir.file("labels"), kIdxLabelsMagic); });
  EXPECT_CONTAINS(msg, dir.file("labels") + " has 2 bytes of trailing garbage");
  EXPECT_CONTAINS(msg, "describes 11 bytes");
  EXPECT_CONTAINS(msg, "file ends at byte 13");
}

TEST(Idx, WrongMagic) {
  ScratchDir dir;
  write_idx(dir.file("labels"), labels({1, 2}), false);
  std::string msg = error_message([&] { read_idx(dir.file("labels"), kIdxImagesMagic); });
  EXPECT_CONTAINS(msg, dir.file("labels"));
  EXPECT_CONTAINS(msg, "magic number 0x00000801");
  EXPECT_CONTAINS(msg, "expected 0x00000803");

  const std::string html = "<!DOCTYPE html><title>404</title>";
  write_bytes(dir.file("page"), std::vector<uint8_t>(html.begin(), html.end()));
  msg = error_message([&] { read_idx(dir.file("page"), kIdxImagesMagic); });
  EXPECT_CONTAINS(msg, "not an IDX file");
  EXPECT_CONTAINS(msg, "HTML");
}

TEST(Idx, MissingFile) {
  ScratchDir dir;
  std::string msg = error_message([&] { read_idx(dir.file("nope"), kIdxImagesMagic, "mnist"); });
  EXPECT_CONTAINS(msg, "mnist: cannot open " + dir.file("nope"));
}

TEST(Idx, WriteRejectsInconsistentSizes) {
  ScratchDir dir;
  IdxArray a;
  a.dims = {2, 3};
  a.data = {1, 2, 3};
  std::string msg = error_message([&] { write_idx(dir.file("x"), a, false); });
  EXPECT_CONTAINS(msg, "dims 2x3 need 6 bytes, data has 3");
}

TEST(Mnist, LoadsPlainAndGzip) {
  for (bool gzip : {false, true}) {
    ScratchDir dir;
    write_mnist_dir(dir, 30, 20, gzip);
    EXPECT_TRUE(has_mnist(dir.str()));
    MnistData train = load_mnist(dir.str(), "train");
    MnistData test = load_mnist(dir.str(), "test");
    EXPECT_EQ(train.images.shape(), (Shape{30, 1, 28, 28}));
    EXPECT_EQ(train.labels.shape(), (Shape{30}));
    EXPECT_EQ(train.images.dtype(), kFloat32);
    EXPECT_EQ(train.labels.dtype(), kInt64);
    EXPECT_EQ(test.images.shape(), (Shape{20, 1, 28, 28}));
    EXPECT_EQ(test.labels.to_int_vector()[13], 3);

    // Pixels are byte / 255 exactly.
    IdxArray raw = random_images(30, 28, 28, 30);
    const float* pixels = train.images.data<float>();
    for (size_t i = 0; i < raw.data.size(); ++i)
      ASSERT_EQ(pixels[i], static_cast<float>(raw.data[i]) / 255.0f) << "pixel " << i;
  }
}

TEST(Mnist, MaxExamplesKeepsTheFirst) {
  ScratchDir dir;
  write_mnist_dir(dir, 30, 20, false);
  MnistData train = load_mnist(dir.str(), "train", 7);
  EXPECT_EQ(train.images.shape(), (Shape{7, 1, 28, 28}));
  EXPECT_EQ(train.labels.to_int_vector(), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6}));
}

TEST(Mnist, AcceptsDottedSpelling) {
  ScratchDir dir;
  write_mnist_dir(dir, 5, 5, false);
  std::filesystem::rename(dir.file("train-images-idx3-ubyte"), dir.file("train-images.idx3-ubyte"));
  EXPECT_EQ(find_mnist_file(dir.str(), "train-images-idx3-ubyte"),
            dir.file("train-images.idx3-ubyte"));
  EXPECT_EQ(load_mnist(dir.str(), "train").images.size(0), 5);
}

TEST(Mnist, LabelOutOfRange) {
  ScratchDir dir;
  write_mnist_dir(dir, 5, 5, false);
  write_idx(dir.file("train-labels-idx1-ubyte"), labels({0, 1, 2, 12, 4}), false);
  std::string msg = error_message([&] { load_mnist(dir.str(), "train"); });
  EXPECT_CONTAINS(msg, dir.file("train-labels-idx1-ubyte"));
  EXPECT_CONTAINS(msg, "label 12 at index 3");
  EXPECT_CONTAINS(msg, "outside 0..9");
}

TEST(Mnist, ImageAndLabelCountsDiffer) {
  ScratchDir dir;
  write_mnist_dir(dir, 5, 5, true);
  write_idx(dir.file("t10k-labels-idx1-ubyte.gz"), labels({0, 1, 2, 3}), true);
  std::string msg = error_message([&] { load_mnist(dir.str(), "test"); });
  EXPECT_CONTAINS(msg, dir.file("t10k-images-idx3-ubyte.gz") + " has 5 images");
  EXPECT_CONTAINS(msg, dir.file("t10k-labels-idx1-ubyte.gz") + " has 4 labels");
}

TEST(Mnist, MissingFilesSayHowToFetch) {
  ScratchDir dir;
  EXPECT_FALSE(has_mnist(dir.str()));
  std::string msg = error_message([&] { load_mnist(dir.str(), "train"); });
  EXPECT_CONTAINS(msg, "has no train-images-idx3-ubyte");
  EXPECT_CONTAINS(msg, "datasets/fetch.sh mnist");

  msg = error_message([&] { load_mnist(dir.file("not-there"), "train"); });
  EXPECT_CONTAINS(msg, "does not exist");

  msg = error_message([&] { load_mnist(dir.str(), "validation"); });
  EXPECT_CONTAINS(msg, "\"validation\"");
}

// The committed subset: the first 2000 training and 500 test examples of MNIST.
TEST(Mnist, LoadsCommittedSubset) {
  const std::string dir = std::string(BRIDLE_FIXTURES_DIR) + "/mnist_subset";
  MnistData train = load_mnist(dir, "train");
  MnistData test = load_mnist(dir, "test");
  ASSERT_EQ(train.images.shape(), (Shape{2000, 1, 28, 28}));
  ASSERT_EQ(test.images.shape(), (Shape{500, 1, 28, 28}));

  // MNIST's well-known first labels.
  std::vector<int64_t> first_train = train.labels.to_int_vector();
  first_train.resize(10);
  EXPECT_EQ(first_train, (std::vector<int64_t>{5, 0, 4, 1, 9, 2, 1, 3, 1, 4}));
  std::vector<int64_t> first_test = test.labels.to_int_vector();
  first_test.resize(10);
  EXPECT_EQ(first_test, (std::vector<int64_t>{7, 2, 1, 0, 4, 1, 4, 9, 5, 9}));

  // Byte sums computed from the files by Python: first image 27525, all 52050445.
  const float* pixels = train.images.data<float>();
  double first = 0, all = 0;
  for (int64_t i = 0; i < train.images.numel(); ++i) {
    all += std::round(pixels[i] * 255.0f);
    if (i < 784) first += std::round(pixels[i] * 255.0f);
  }
  EXPECT_EQ(first, 27525);
  EXPECT_EQ(all, 52050445);
  EXPECT_EQ(*std::max_element(pixels, pixels + train.images.numel()), 1.0f);
}

}  // namespace
}  // namespace bridle
