// calibrate: is the classifier's confidence honest, and temperature scaling to fix it.
//
// What it teaches: a classifier's top probability should match how often it is
// right (of the images it gives 0.9, 90% should be correct). The reliability
// diagram and the expected calibration error (ECE) measure the mismatch
// (lib/calib/metrics.h). Temperature scaling (Guo et al. 2017;
// lib/calib/temperature_scaling.h) divides the logits by one scalar T, fitted by
// minimizing the NLL on a held-out split: the argmax, so the accuracy, stays, and
// the confidence moves down (T > 1) or up (T < 1). T is fitted on the last 5000
// training images, which the model never trains on, and judged on the test set;
// fitting it on the test set would flatter the result.
//
// The model is mnist_mlp's 784-512-512-10 MLP, trained here for --epochs (2) on
// the first 55000 training images, or loaded with --load from
// `mnist_mlp --save PATH` (that run trained on all 60000 images, the held-out ones
// included, so its held-out logits are a little too confident and T a little low).
// An MNIST MLP is only mildly miscalibrated, so the example also reports the same
// logits multiplied by --logit-scale (3): an overconfident model by construction,
// for which the fit must find T = 3 x the first T exactly, since
// softmax(3z / 3T) = softmax(z / T).
//
// Then every calibrator of lib/calib (temperature, vector and matrix scaling,
// histogram binning, isotonic regression) is fitted on the same held-out logits and
// compared on the test set in one table.
//
// --model cifar10-resnet20 --load CKPT (a cifar10_resnet --save checkpoint) shows
// what Guo et al. report for deep convolutional networks: overconfidence, removed
// by temperature scaling. The README's checkpoint trained on all 50000 training
// images, so the test set is split instead: T is fitted on its first half and
// judged on the second (disjoint, and neither was trained on). Measured on the
// 88.16% ResNet-20: T = 1.47, ECE 4.62% -> 1.06%, NLL 0.381 -> 0.347, MCE 25.9% ->
// 17.2%; vector scaling ECE 1.00%, matrix scaling 0.89% (NLL 0.354, it overfits
// a little), histogram binning 3.48% (NLL 0.431), isotonic 1.58%.
//
// Run:    datasets/fetch.sh mnist && ./build/examples/calibrate --data data/mnist --out /tmp/cal
// Expect: (measured: 2 epochs, seed 0, about 70 s on 2 threads) test accuracy 97.8%;
//         the model as trained is nearly calibrated: T = 0.96, test ECE 0.49% -> 0.34%,
//         NLL 0.0724 -> 0.0721. With logits x 3: T = 2.88 (= 3 x 0.96), test ECE
//         1.59% -> 0.34%, NLL 0.133 -> 0.072, MCE 44% -> 12%.
//         Files in --out: calibration_reliability.svg (before | after: per-bin accuracy
//         against the diagonal, the gap shaded red, a confidence histogram under each),
//         calibration_bins_{before,after}.csv, and the same three as calibration_x3_*
//         for the scaled logits.
//         --smoke trains 5 epochs on the 1488 training images of
//         tests/fixtures/mnist_subset (under a second), writes to a temporary directory
//         (or --out), and exits nonzero unless the held-out NLL did not rise, T scales
//         with the logits and the figures were written.
#include <spdlog/spdlog.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bridle.h"
#include "common/calibration_report.h"
#include "common/checkpointing.h"
#include "common/example_main.h"
#include "common/svg_plot.h"
#include "models/cifar_resnet.h"
#include "models/mnist_mlp.h"

using namespace bridle;

namespace {

// SGD with momentum and a cosine learning rate, as in mnist_mlp.
void train(models::Mlp& model, DataLoader& loader, const examples::CommonFlags& flags, int epochs) {
  SGD optimizer(model.parameters(), {.lr = flags.lr, .momentum = 0.9f});
  const int64_t total_steps = epochs * loader.num_batches();
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    double loss_sum = 0;
    int64_t seen = 0;
    for (Batch& batch : loader.epoch(epoch)) {
      const int64_t step = optimizer.step_count();
      optimizer.set_lr(0.5f * flags.lr * (1.0f + std::cos(M_PI * step / total_steps)));
      optimizer.zero_grad();
      Tensor loss = cross_entropy(model.forward(batch.inputs), batch.targets);
      loss.backward();
      optimizer.step();
      loss_sum += loss.item() * batch.size();
      seen += batch.size();
    }
    spdlog::info("epoch {}/{}: training loss {:.4f}", epoch, epochs, loss_sum / seen);
  }
}

// The CIFAR-10 ResNet-20 of a cifar10_resnet --save checkpoint, on the test set
// split in two: T is fitted on the first half and judged on the second. (The
// README's run trained on all 50000 training images, so no training image is
// held out; the two halves of the test set are disjoint, and neither was trained on.)
int calibrate_cifar10_resnet(const examples::CommonFlags& flags, const std::string& load_path,
                             const std::filesystem::path& dir) {
  BRIDLE_CHECK(!load_path.empty(),
               "--model cifar10-resnet20 needs --load PATH (a cifar10_resnet --save checkpoint)");
  BRIDLE_CHECK(has_cifar10(flags.data_dir),
               "CIFAR-10 not found in '{}': run datasets/fetch.sh cifar10 (or pass --data DIR)",
               flags.data_dir);
  CifarData test_data = load_cifar10(flags.data_dir, "test", flags.smoke ? 1000 : -1);
  const int64_t n = test_data.labels.numel(), half = n / 2;
  DataLoaderOptions options{
      .batch_size = 500, .shuffle = false, .mean = kCifar10Mean, .stddev = kCifar10Std};
  DataLoader fit_loader(std::make_shared<TensorDataset>(test_data.images.slice(0, half),
                                                        test_data.labels.slice(0, half)),
                        options);
  DataLoader report_loader(std::make_shared<TensorDataset>(test_data.images.slice(half, n),
                                                           test_data.labels.slice(half, n)),
                           options);
  spdlog::info("CIFAR-10 test set from {}: T fitted on images [0, {}), reported on [{}, {})",
               flags.data_dir, half, half, n);
  models::CifarResNet model(3);
  const int64_t epochs = examples::load_weights(load_path, model);
  spdlog::info("ResNet-20 from {} ({} epochs)", load_path, epochs);
  const examples::CalibrationResult result = examples::report_calibration(
      model, fit_loader, report_loader,
      {.name = "CIFAR-10 ResNet-20", .out_dir = dir.string(), .prefix = "calibration_resnet20"});
  const std::vector<examples::CalibratorRow> rows = examples::compare_calibrators(
      examples::collect_logits(model, fit_loader), examples::collect_logits(model, report_loader));
  const bool ok = result.fit.nll_after <= result.fit.nll_before &&
                  examples::svg::is_complete_svg(result.svg_path);
  if (!ok) spdlog::error("calibrate: the held-out NLL rose or the figure is incomplete");
  examples::report_metrics(flags, {{"example", "calibrate"},
                                   {"model", "cifar10-resnet20"},
                                   {"checkpoint", load_path},
                                   {"calibration", result.json()},
                                   {"calibrators", examples::calibrator_rows_json(rows)},
                                   {"threads", get_num_threads()},
                                   {"smoke", flags.smoke}});
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Calibrate an MNIST MLP with temperature scaling and draw reliability diagrams"};
  examples::CommonFlags flags;
  flags.data_dir = "data/mnist";
  flags.epochs = 2;
  std::string out_dir = ".", load_path, model_name = "mnist-mlp";
  float logit_scale = 3.0f;
  int64_t held_out_count = 5000;
  examples::add_common_flags(app, flags);
  auto* out_opt = app.add_option("--out", out_dir, "Directory for the SVG figures and CSV bins")
                      ->capture_default_str();
  app.add_option("--model", model_name,
                 "mnist-mlp (trained here, or --load a mnist_mlp checkpoint) or cifar10-resnet20 "
                 "(--load a cifar10_resnet checkpoint; --data defaults to data/cifar10)")
      ->check(CLI::IsMember({"mnist-mlp", "cifar10-resnet20"}))
      ->capture_default_str();
  app.add_option("--load", load_path, "Load weights from a --save checkpoint of the model");
  app.add_option("--logit-scale", logit_scale,
                 "Also report the logits times this (an overconfident model); 1: skip")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--heldout", held_out_count,
                 "The last this many training images fit T (the calibration split)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    examples::apply_common_flags(flags);
    if (model_name == "cifar10-resnet20") {
      if (app.count("--data") == 0) flags.data_dir = "data/cifar10";
      examples::TemporaryDir temporary;
      std::filesystem::path dir = out_dir;
      if (flags.smoke && out_opt->count() == 0) dir = temporary.make("bridle_calibrate_XXXXXX");
      return calibrate_cifar10_resnet(flags, load_path, dir);
    }
    BRIDLE_CHECK(has_mnist(flags.data_dir),
                 "MNIST not found in '{}': run datasets/fetch.sh mnist (or pass --data DIR)",
                 flags.data_dir);
    MnistData train_data = load_mnist(flags.data_dir, "train", flags.smoke ? 2048 : -1);
    MnistData test_data = load_mnist(flags.data_dir, "test", flags.smoke ? 1000 : -1);
    const int64_t n = train_data.labels.numel();
    if (flags.smoke) held_out_count = 512;
    BRIDLE_CHECK(held_out_count < n, "--heldout {} leaves no training images of {}", held_out_count,
                 n);
    // The split: train on [0, n - H), fit T on [n - H, n), report on the test set.
    const int64_t cut = n - held_out_count;
    DataLoaderOptions options{.batch_size = flags.batch_size,
                              .shuffle = true,
                              .seed = flags.seed,
                              .mean = {0.1307f},
                              .stddev = {0.3081f}};
    DataLoader train_loader(std::make_shared<TensorDataset>(train_data.images.slice(0, cut),
                                                            train_data.labels.slice(0, cut)),
                            options);
    options.batch_size = 500;
    options.shuffle = false;
    DataLoader held_out_loader(std::make_shared<TensorDataset>(train_data.images.slice(cut, n),
                                                               train_data.labels.slice(cut, n)),
                               options);
    DataLoader test_loader(std::make_shared<TensorDataset>(test_data.images, test_data.labels),
                           options);
    spdlog::info("MNIST: {} training, {} held-out (calibration) and {} test images from {}", cut,
                 held_out_count, test_data.labels.numel(), flags.data_dir);

    models::Mlp model;
    if (!load_path.empty()) {
      examples::load_weights(load_path, model);
      spdlog::warn(
          "a mnist_mlp checkpoint was trained on all training images, the held-out ones "
          "included: T will come out a little low");
    } else {
      train(model, train_loader, flags, flags.smoke ? 5 : flags.epochs);
    }

    std::filesystem::path dir = out_dir;
    examples::TemporaryDir temporary;
    if (flags.smoke && out_opt->count() == 0) dir = temporary.make("bridle_calibrate_XXXXXX");

    // The model as trained, then the same logits times --logit-scale.
    const examples::SplitLogits held_out = examples::collect_logits(model, held_out_loader);
    const examples::SplitLogits test = examples::collect_logits(model, test_loader);
    const examples::CalibrationResult plain = examples::report_calibration(
        held_out, test, {.name = "the MNIST MLP", .out_dir = dir.string()});
    const std::vector<examples::CalibratorRow> rows = examples::compare_calibrators(held_out, test);
    bool ok = plain.fit.nll_after <= plain.fit.nll_before &&
              examples::svg::is_complete_svg(plain.svg_path);
    nlohmann::json metrics = {{"example", "calibrate"},
                              {"calibration", plain.json()},
                              {"calibrators", examples::calibrator_rows_json(rows)}};
    if (logit_scale != 1.0f) {
      const examples::SplitLogits held_out_scaled{held_out.logits * logit_scale, held_out.labels};
      const examples::SplitLogits test_scaled{test.logits * logit_scale, test.labels};
      const examples::CalibrationResult scaled = examples::report_calibration(
          held_out_scaled, test_scaled,
          {.name = fmt::format("the MNIST MLP, logits x {:g}", logit_scale),
           .out_dir = dir.string(),
           .prefix = fmt::format("calibration_x{:g}", logit_scale)});
      const double ratio = scaled.fit.temperature / (logit_scale * plain.fit.temperature);
      fmt::print(
          "\nT with logits x {:g} is {:.4f} = {:.4f} x {:g} x the first T (exactly 1 in "
          "theory)\n",
          logit_scale, scaled.fit.temperature, ratio, logit_scale);
      ok = ok && scaled.fit.nll_after <= scaled.fit.nll_before &&
           examples::svg::is_complete_svg(scaled.svg_path) && std::abs(ratio - 1) < 1e-3;
      metrics["calibration_scaled"] = scaled.json();
      metrics["logit_scale"] = logit_scale;
    }
    if (!ok) spdlog::error("calibrate: a check failed (held-out NLL, T ratio or the figures)");
    metrics["svg"] = temporary.path().empty() ? plain.svg_path : "";
    metrics["threads"] = get_num_threads();
    metrics["smoke"] = flags.smoke;
    examples::report_metrics(flags, metrics);
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
