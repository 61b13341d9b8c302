// Temperature scaling: recovers a known miscalibration, agrees with a fine grid
// search, never raises the held-out NLL, travels in checkpoints as a buffer, and
// refuses bad inputs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "../test_util.h"
#include "calibrated_data.h"

namespace bridle {
namespace {

using testing::calibrated_data;
using testing::expect_close;
using testing::expect_error;

TEST(CalibrationTemperature, RecoversAKnownScale) {
  auto [logits, labels] = calibrated_data(20000, 10, 1);
  for (float scale : {3.0f, 0.5f}) {  // over- and under-confident
    TemperatureFit fit = fit_temperature(logits * scale, labels);
    EXPECT_TRUE(fit.converged);
    EXPECT_NEAR(fit.temperature, scale, 0.05 * scale) << "scale " << scale;
    EXPECT_LT(fit.nll_after, fit.nll_before);
  }
  TemperatureFit at_one = fit_temperature(logits, labels);
  EXPECT_NEAR(at_one.temperature, 1.0, 0.05);
}

TEST(CalibrationTemperature, MatchesAFineGridSearch) {
  auto [logits, labels] = calibrated_data(3000, 5, 2);
  Tensor overconfident = logits * 2.5f;
  TemperatureFit fit = fit_temperature(overconfident, labels);
  // A coarse grid over [1, 5], then a fine one (1e-4) around its best point.
  double best_t = 0.0, best_nll = INFINITY;
  auto search = [&](double from, double to, double step) {
    for (double t = from; t <= to + 1e-12; t += step) {
      const double nll = temperature_nll(overconfident, labels, t);
      if (nll < best_nll) best_nll = nll, best_t = t;
    }
  };
  search(1.0, 5.0, 1e-2);
  search(best_t - 1e-2, best_t + 1e-2, 1e-4);
  EXPECT_NEAR(fit.temperature, best_t, 1e-3);
  EXPECT_LE(fit.nll_after, best_nll + 1e-12);
  EXPECT_NEAR(fit.nll_after, temperature_nll(overconfident, labels, fit.temperature), 1e-12);
}

TEST(CalibrationTemperature, NeverRaisesTheNll) {
  // Perfectly separable data: the NLL falls all the way to T -> 0, so the fit runs
  // towards its lower bound; it still never raises the NLL.
  Tensor logits = from_vector({2.0f, 0.0f, 0.0f, 3.0f, 1.0f, -1.0f}, {3, 2});
  Tensor labels = from_vector(std::vector<int64_t>{0, 1, 0});
  TemperatureFit fit = fit_temperature(logits, labels);
  EXPECT_LE(fit.nll_after, fit.nll_before);
  EXPECT_LT(fit.temperature, 0.2);
  // A single example with a wrong confident prediction: T grows, NLL falls.
  TemperatureFit wrong =
      fit_temperature(from_vector({5.0f, 0.0f}, {1, 2}), from_vector(std::vector<int64_t>{1}));
  EXPECT_GT(wrong.temperature, 1.0);
  EXPECT_LE(wrong.nll_after, wrong.nll_before);
}

TEST(CalibrationTemperature, ModuleAppliesAndStoresTheTemperature) {
  auto [logits, labels] = calibrated_data(4000, 4, 3);
  TemperatureScaling calibrator;
  EXPECT_EQ(calibrator.temperature(), 1.0);
  TemperatureFit fit = calibrator.fit(logits * 2.0f, labels);
  EXPECT_NEAR(calibrator.temperature(), fit.temperature, 1e-6 * fit.temperature);
  expect_close(calibrator(logits), logits * static_cast<float>(1.0 / calibrator.temperature()),
               0.0f, 1e-6f);
  auto buffers = calibrator.named_buffers();
  ASSERT_EQ(buffers.size(), 1u);
  EXPECT_EQ(buffers[0].first, "temperature");
  EXPECT_TRUE(calibrator.parameters().empty());
  EXPECT_NE(calibrator.str().find("temperature="), std::string::npos);
  // The argmax, and so the accuracy, never changes.
  Tensor before = argmax(logits, 1), after = argmax(calibrator(logits), 1);
  EXPECT_EQ(before.to(DType::kFloat32).to_vector(), after.to(DType::kFloat32).to_vector());
}

// A model that owns its calibrator saves and restores T with its weights.
TEST(CalibrationTemperature, TravelsInTheModelCheckpoint) {
  struct Calibrated : Module {
    std::shared_ptr<Linear> fc;
    std::shared_ptr<TemperatureScaling> calibrator;
    Calibrated() : Module("Calibrated") {
      fc = register_module("fc", std::make_shared<Linear>(3, 4));
      calibrator = register_module("calibrator", std::make_shared<TemperatureScaling>());
    }
    Tensor forward(const Tensor& x) override { return calibrator->forward(fc->forward(x)); }
  };
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("bridle_calibrated_" + std::to_string(::getpid()) + ".h5"))
                               .string();
  Calibrated saved;
  saved.calibrator->set_temperature(2.5);
  save_checkpoint(path, {.model = &saved, .with_default_generator = false});
  Calibrated loaded;
  EXPECT_EQ(loaded.calibrator->temperature(), 1.0);
  Checkpoint into{.model = &loaded, .with_default_generator = false};
  load_checkpoint(path, into);
  std::filesystem::remove(path);
  EXPECT_EQ(loaded.calibrator->temperature(), 2.5);
  Tensor x = from_vector({1.0f, -2.0f, 0.5f}, {1, 3});
  expect_close(loaded(x), saved(x), 0.0f, 0.0f);
}

TEST(CalibrationTemperature, BadInputsAreClearErrors) {
  Tensor logits = zeros({3, 4});
  expect_error(
      [&] {
        fit_temperature(logits, from_vector(std::vector<int64_t>{0, 4, 1}));
      },
      {"label 4", "row 1", "4 classes"});
  expect_error(
      [&] {
        fit_temperature(logits, from_vector(std::vector<int64_t>{0, 1}));
      },
      {"labels must be [3]"});
  expect_error([&] { fit_temperature(zeros({0, 4}), Tensor::empty({0}, kInt64)); }, {"N, C > 0"});
  Tensor with_nan = zeros({1, 2});
  with_nan.set({0, 1}, NAN);
  expect_error([&] { fit_temperature(with_nan, from_vector(std::vector<int64_t>{0})); },
               {"not finite", "row 0"});
  TemperatureScaling calibrator;
  expect_error([&] { calibrator.set_temperature(0.0); }, {"positive"});
  expect_error(
      [&] {
        temperature_nll(logits, from_vector(std::vector<int64_t>{0, 1, 2}), -1.0);
      },
      {"positive"});
}

}  // namespace
}  // namespace bridle
