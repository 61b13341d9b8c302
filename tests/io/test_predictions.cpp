// Prediction export: HDF5 and CSV round trips (logits bit-exact, probabilities
// equal to softmax), and clear errors for bad inputs and bad files.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "../test_util.h"

namespace bridle {
namespace {

namespace fs = std::filesystem;
using testing::expect_error;

class PredictionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() /
        ("bridle_predictions_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

void expect_bitwise_equal(const Tensor& a, const Tensor& b, const char* what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  ASSERT_EQ(a.dtype(), b.dtype()) << what;
  EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.numel() * dtype_size(a.dtype())), 0) << what;
}

TEST_F(PredictionsTest, RoundTripsInBothFormats) {
  Generator gen(5);
  Tensor logits = randn({37, 4}, gen) * 3.0f;
  Tensor labels = from_vector(std::vector<int32_t>(37, 0), {37});
  for (int64_t i = 0; i < 37; ++i) labels.data<int32_t>()[i] = static_cast<int32_t>(i % 4);
  const Tensor expected_probs = softmax(logits, 1);
  for (const char* name : {"p.h5", "p.csv"}) {
    save_predictions(path(name), logits, labels);
    Predictions p = load_predictions(path(name));
    expect_bitwise_equal(p.logits, logits, name);  // 9 significant digits are exact in CSV
    expect_bitwise_equal(p.labels, labels.to(kInt64), name);
    ASSERT_EQ(p.probabilities.shape(), expected_probs.shape());
    for (int64_t k = 0; k < expected_probs.numel(); ++k)
      ASSERT_FLOAT_EQ(p.probabilities.data<float>()[k], expected_probs.data<float>()[k]) << name;
    // Nothing left over from the atomic write.
    int files = 0;
    for (const auto& entry : fs::directory_iterator(dir_)) files += entry.is_regular_file();
    EXPECT_EQ(files, name == std::string("p.h5") ? 1 : 2);
  }
  std::ifstream csv(path("p.csv"));
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header, "label,logit_0,logit_1,logit_2,logit_3,prob_0,prob_1,prob_2,prob_3");
}

TEST_F(PredictionsTest, BadInputsAndFilesAreClearErrors) {
  Tensor logits = zeros({3, 2});
  Tensor labels = from_vector(std::vector<int64_t>{0, 1, 2}, {3});
  expect_error([&] { save_predictions(path("a.h5"), logits, labels); },
               {"a.h5", "label 2 of sample 2", "[0, 2)"});
  expect_error([&] { save_predictions(path("a.h5"), zeros({3}), labels); },
               {"logits must be float32 [N, C]", "[3]"});
  expect_error(
      [&] {
        save_predictions(path("a.h5"), zeros({4, 3}), labels);
      },
      {"labels must be", "[4]"});
  expect_error([&] { save_predictions(path("a.txt"), logits, labels); },
               {"a.txt", "extension '.txt'"});
  EXPECT_FALSE(fs::exists(path("a.h5")));
  expect_error([&] { load_predictions(path("missing.csv")); }, {"missing.csv", "no such file"});

  std::ofstream(path("short.csv")) << "label,logit_0,logit_1,prob_0,prob_1\n1,0.5,0.25,0.5\n";
  expect_error([&] { load_predictions(path("short.csv")); }, {"short.csv", "line 2 has 4 fields"});
  std::ofstream(path("word.csv")) << "label,logit_0,logit_1,prob_0,prob_1\n1,0.5,x,0.5,0.5\n";
  expect_error([&] { load_predictions(path("word.csv")); }, {"word.csv", "line 2"});
  std::ofstream(path("range.csv")) << "label,logit_0,logit_1,prob_0,prob_1\n7,0.5,1,0.5,0.5\n";
  expect_error([&] { load_predictions(path("range.csv")); }, {"range.csv", "label 7"});
  std::ofstream(path("text.h5")) << "not hdf5";
  expect_error([&] { load_predictions(path("text.h5")); }, {"text.h5"});
}

}  // namespace
}  // namespace bridle
