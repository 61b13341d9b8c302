// mnist_mlp: the default bridle classifier, a 784-512-512-10 ReLU MLP trained on
// MNIST with SGD + momentum and the fused softmax cross-entropy loss.
//
// What it teaches: the whole training loop in one page. A model is a Module
// with named layers; each step is forward, loss, backward, step; evaluation runs
// under NoGradGuard in eval mode.
//
// Run:    datasets/fetch.sh mnist && ./build/examples/mnist_mlp --data data/mnist
// Expect: test accuracy >= 98.0% after 5 epochs (measured 98.3%; see README.md),
//         one progress line per epoch and a final JSON line such as
//         {"example":"mnist_mlp","test_accuracy":0.983,"test_nll":0.06,"epochs":5,...}
//
// Data-parallel (common/distributed.h): mpirun -np 2 ./build/examples/mnist_mlp
// --distributed --threads 1 trains on 2 processes, each on half of every epoch.
//
// Checkpoints (common/checkpointing.h): --save ckpt.h5 writes one after every
// epoch; --resume ckpt.h5 continues that run, and with the same flags ends with
// the same figures as the uninterrupted run; --eval ckpt.h5 only evaluates.
#include "models/mnist_mlp.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "bridle.h"
#include "common/checkpointing.h"
#include "common/classifier.h"
#include "common/datasets.h"
#include "common/distributed.h"
#include "common/example_main.h"
#include "common/training_flags.h"

using namespace bridle;

int main(int argc, char** argv) {
  CLI::App app{"Train a 784-512-512-10 MLP on MNIST"};
  examples::CommonFlags flags;
  examples::CheckpointFlags checkpoint_flags;
  examples::CalibrationFlags calibration_flags;
  flags.data_dir = "data/mnist";
  examples::OptimizerFlags optimizer_flags;  // SGD, momentum 0.9, cosine decay
  std::string graph_path;
  examples::add_common_flags(app, flags);
  examples::add_distributed_flags(app, flags);  // --distributed: under mpirun
  examples::add_checkpoint_flags(app, checkpoint_flags);
  examples::add_calibration_flags(app, calibration_flags);
  examples::add_optimizer_flags(app, optimizer_flags);
  app.add_option("--graph", graph_path,
                 "Draw the graph of the first training step, with gradient norms (.svg, .png or "
                 ".pdf through Graphviz; .dot: the Graphviz source)");
  CLI11_PARSE(app, argc, argv);

  try {
    flags.takes_device = true;  // the model and batches go to --device
    examples::apply_common_flags(flags);
    // MNIST, normalized, shuffled by --seed (common/datasets.h). The last
    // --heldout training images are kept out of training, for calibration.
    examples::Loaders data = examples::mnist_loaders(flags, calibration_flags.held_out);
    DataLoader& train_loader = *data.train;
    DataLoader& test_loader = *data.test;

    models::Mlp model;
    const Device device = examples::training_device(flags);  // --device cuda: on the GPU
    model.to(device);
    spdlog::info("model: {} parameters on {}\n{}", model.num_parameters(), device.str(),
                 model.str());
    // SGD with momentum by default; --optimizer adam, adamw, ... (common/training_flags.h).
    std::unique_ptr<Optimizer> optimizer_ptr =
        examples::make_optimizer(optimizer_flags, flags.lr, model.parameters());
    Optimizer& optimizer = *optimizer_ptr;
    // Cosine decay from lr to 0 over the run by default: big steps early, fine
    // ones at the end. The schedule sets the lr before every step.
    const int64_t epochs = flags.smoke ? 1 : flags.epochs;
    std::unique_ptr<LRScheduler> schedule =
        examples::make_schedule(optimizer_flags, optimizer, epochs * train_loader.num_batches(),
                                train_loader.num_batches());
    nlohmann::json config = examples::run_config(flags);
    config.update(examples::optimizer_config(optimizer_flags));
    config["heldout"] = data.held_out ? data.held_out->num_examples() : 0;

    if (!checkpoint_flags.eval.empty()) {
      const int64_t trained = examples::load_weights(checkpoint_flags.eval, model);
      examples::EvalResult result = examples::evaluate_classifier(model, test_loader);
      nlohmann::json calibration = examples::calibrate_at_end(
          model, data.held_out.get(), test_loader, calibration_flags, "mnist_mlp", flags.smoke);
      examples::report_metrics(flags, {{"example", "mnist_mlp"},
                                       {"test_accuracy", result.accuracy},
                                       {"test_nll", result.nll},
                                       {"epochs", trained},
                                       {"eval", checkpoint_flags.eval},
                                       {"smoke", flags.smoke},
                                       {"calibration", calibration}});
      return 0;
    }

    // Everything a resumed run needs: the weights, the momentum buffers and step
    // count, the global generator, the epoch. The data order depends only on
    // (seed, epoch), so the loaders need nothing saved.
    Checkpoint checkpoint{.model = &model, .optimizer = &optimizer};
    const int64_t first_epoch = examples::resume(checkpoint_flags, checkpoint, config);
    examples::resume_schedule(schedule.get(), optimizer);  // --resume: continue the schedule
    // --distributed: rank 0's weights everywhere, and every backward ends with the
    // gradients averaged over the ranks (common/distributed.h).
    std::unique_ptr<DistributedDataParallel> data_parallel =
        examples::wrap_data_parallel(flags, model);

    double train_seconds = 0;
    examples::EvalResult result;
    examples::StepProfiler step_profiler(flags, "mnist_mlp training");
    for (int64_t epoch = first_epoch; epoch <= epochs; ++epoch) {
      auto start = std::chrono::steady_clock::now();
      double loss_sum = 0;
      int64_t correct = 0, seen = 0;
      for (Batch& batch : train_loader.epoch(epoch)) {
        auto profiled = step_profiler.step();  // --profile: time per op
        optimizer.zero_grad();
        Tensor logits = model.forward(batch.inputs.to(device));
        Tensor loss = cross_entropy(logits, batch.targets.to(device));
        if (!graph_path.empty() && seen == 0 && epoch == first_epoch) {
          // --graph: the step's graph, labelled with the gradient norms after backward.
          retain_grads(loss);
          loss.backward(/*retain_graph=*/true);
          examples::save_graph(loss, graph_path, model.named_parameters());
        } else {
          loss.backward();
        }
        {
          ProfileRegion region("optimizer step");
          optimizer.step();
          if (schedule) schedule->step();
        }

        loss_sum += loss.item() * batch.size();
        const std::vector<int64_t> predicted = argmax(logits.detach(), 1).to_int_vector();
        const int64_t* y = batch.targets.data<int64_t>();
        for (int64_t i = 0; i < batch.size(); ++i) correct += predicted[i] == y[i];
        seen += batch.size();
      }
      double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      train_seconds += seconds;
      std::vector<double> totals = {loss_sum, static_cast<double>(correct),
                                    static_cast<double>(seen)};
      examples::sum_over_ranks(totals);  // --distributed: the whole job's figures
      loss_sum = totals[0];
      correct = static_cast<int64_t>(totals[1]);
      seen = static_cast<int64_t>(totals[2]);
      result = examples::evaluate_classifier(model, test_loader);
      spdlog::info(
          "epoch {}/{}: loss {:.4f}, train accuracy {:.2f}%, test accuracy {:.2f}%, test nll "
          "{:.4f}, {:.0f} images/s",
          epoch, epochs, loss_sum / seen, 100.0 * correct / seen, 100.0 * result.accuracy,
          result.nll, seen / seconds);
      examples::save_epoch(checkpoint_flags, checkpoint, epoch, config);
    }
    const int64_t epochs_run = std::max<int64_t>(0, epochs - first_epoch + 1);
    const int ranks = examples::process_group() ? examples::process_group()->size() : 1;
    if (epochs_run == 0)
      result = examples::evaluate_classifier(model, test_loader);  // resumed a finished run
    // Is the model's confidence honest? Temperature scaling fitted on the held-out
    // images, reported on the test set (common/calibration_report.h).
    nlohmann::json calibration = examples::calibrate_at_end(
        model, data.held_out.get(), test_loader, calibration_flags, "mnist_mlp", flags.smoke);
    examples::report_metrics(
        flags,
        {{"example", "mnist_mlp"},
         {"test_accuracy", result.accuracy},
         {"test_nll", result.nll},
         {"epochs", epochs},
         {"train_seconds", train_seconds},
         {"images_per_second",
          epochs_run == 0 ? 0.0 : train_loader.num_examples() * ranks * epochs_run / train_seconds},
         {"threads", get_num_threads()},
         {"ranks", ranks},
         {"smoke", flags.smoke},
         {"calibration", calibration}});
    return 0;
  } catch (const Error& e) {
    return examples::exit_with_error(e);  // --distributed: ends every rank
  }
}
