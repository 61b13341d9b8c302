// The shared classifier training loop; see classifier.h.
#include "common/classifier.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>

#include "common/distributed.h"
#include "common/training_flags.h"

namespace bridle::examples {

EvalResult evaluate_classifier(Module& model, DataLoader& loader) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  double loss_sum = 0;
  int64_t correct = 0, seen = 0;
  const Device device = model_device(model);
  for (Batch& batch : loader.epoch(0)) {
    Tensor logits = model.forward(batch.inputs.to(device));
    loss_sum += cross_entropy(logits, batch.targets.to(device), {Reduction::kSum}).item();
    const std::vector<int64_t> predicted = argmax(logits, 1).to_int_vector();
    const int64_t* y = batch.targets.data<int64_t>();
    for (int64_t i = 0; i < batch.size(); ++i) correct += predicted[i] == y[i];
    seen += batch.size();
  }
  model.train(was_training);
  return {static_cast<double>(correct) / seen, loss_sum / seen};
}

int run_classifier(const CommonFlags& flags, const CheckpointFlags& checkpoint_flags,
                   ClassifierRun& run) {
  Module& model = *run.model;
  Optimizer& optimizer = *run.optimizer;
  if (!checkpoint_flags.eval.empty()) {
    const int64_t trained = load_weights(checkpoint_flags.eval, model);
    EvalResult result = evaluate_classifier(model, *run.test_loader);
    nlohmann::json calibration = calibrate_at_end(model, run.held_out_loader, *run.test_loader,
                                                  run.calibration, run.example, flags.smoke);
    report_metrics(flags, {{"example", run.example},
                           {"test_accuracy", result.accuracy},
                           {"test_nll", result.nll},
                           {"epochs", trained},
                           {"eval", checkpoint_flags.eval},
                           {"calibration", calibration}});
    return 0;
  }
  run.config["heldout"] = run.held_out_loader ? run.held_out_loader->num_examples() : 0;

  Checkpoint checkpoint{.model = &model, .optimizer = &optimizer, .generators = run.generators};
  const int64_t first_epoch = resume(checkpoint_flags, checkpoint, run.config);
  resume_schedule(run.schedule, optimizer);  // a resumed run continues its schedule
  // --distributed: rank 0's weights everywhere, gradients averaged after every backward.
  std::unique_ptr<DistributedDataParallel> data_parallel = wrap_data_parallel(flags, model);
  const Device device = model_device(model);
  double train_seconds = 0;
  int64_t trained_examples = 0;
  EvalResult result;
  StepProfiler step_profiler(flags, run.example + " training");  // --profile
  for (int64_t epoch = first_epoch; epoch <= run.epochs; ++epoch) {
    auto start = std::chrono::steady_clock::now();
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    for (Batch& batch : run.train_loader->epoch(epoch)) {
      auto profiled = step_profiler.step();
      optimizer.zero_grad();
      Tensor logits = model.forward(batch.inputs.to(device));
      Tensor loss = cross_entropy(logits, batch.targets.to(device));
      loss.backward();
      {
        ProfileRegion region("optimizer step");
        optimizer.step();
        if (run.schedule != nullptr) run.schedule->step();
      }

      loss_sum += loss.item() * batch.size();
      const std::vector<int64_t> predicted = argmax(logits.detach(), 1).to_int_vector();
      const int64_t* y = batch.targets.data<int64_t>();
      for (int64_t i = 0; i < batch.size(); ++i) correct += predicted[i] == y[i];
      seen += batch.size();
      if (flags.smoke && seen >= 20 * batch.size())
        break;  // a few batches are enough to smoke-test
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    train_seconds += seconds;
    std::vector<double> totals = {loss_sum, static_cast<double>(correct),
                                  static_cast<double>(seen)};
    sum_over_ranks(totals);  // --distributed: the whole job's figures
    loss_sum = totals[0];
    correct = static_cast<int64_t>(totals[1]);
    seen = static_cast<int64_t>(totals[2]);
    trained_examples += seen;
    // Local batch norm leaves each rank its own running statistics: evaluate
    // (and save) rank 0's everywhere.
    if (data_parallel) data_parallel->sync_buffers();
    result = evaluate_classifier(model, *run.test_loader);
    spdlog::info(
        "epoch {}/{}: loss {:.4f}, train accuracy {:.2f}%, test accuracy {:.2f}%, test nll {:.4f}, "
        "lr {:.4g}, {:.0f} images/s",
        epoch, run.epochs, loss_sum / seen, 100.0 * correct / seen, 100.0 * result.accuracy,
        result.nll, optimizer.lr(), seen / seconds);
    save_epoch(checkpoint_flags, checkpoint, epoch, run.config);
  }
  if (trained_examples == 0)
    result = evaluate_classifier(model, *run.test_loader);  // resumed a finished run
  nlohmann::json calibration = calibrate_at_end(model, run.held_out_loader, *run.test_loader,
                                                run.calibration, run.example, flags.smoke);
  report_metrics(flags,
                 {{"example", run.example},
                  {"test_accuracy", result.accuracy},
                  {"test_nll", result.nll},
                  {"epochs", run.epochs},
                  {"train_seconds", train_seconds},
                  {"images_per_second", train_seconds > 0 ? trained_examples / train_seconds : 0.0},
                  {"threads", get_num_threads()},
                  {"ranks", process_group() ? process_group()->size() : 1},
                  {"smoke", flags.smoke},
                  {"calibration", calibration}});
  return 0;
}

void add_classifier_flags(CLI::App& app, ClassifierFlags& flags) {
  add_common_flags(app, flags.common);
  add_distributed_flags(app, flags.common);
  add_checkpoint_flags(app, flags.checkpoint);
  add_calibration_flags(app, flags.calibration);
  add_optimizer_flags(app, flags.optimizer);
}

int train_classifier(const ClassifierFlags& flags, const std::string& example, Module& model,
                     const Loaders& data, const nlohmann::json& config,
                     std::map<std::string, Generator*> generators) {
  model.to(training_device(flags.common));  // --device cuda: before the optimizer sees it
  std::unique_ptr<Optimizer> optimizer =
      make_optimizer(flags.optimizer, flags.common.lr, model.parameters());
  const int64_t epochs = flags.common.smoke ? 1 : flags.common.epochs;
  const int64_t steps_per_epoch = data.train->num_batches();
  std::unique_ptr<LRScheduler> schedule =
      make_schedule(flags.optimizer, *optimizer, epochs * steps_per_epoch, steps_per_epoch);
  nlohmann::json run_settings = run_config(flags.common);
  run_settings.update(optimizer_config(flags.optimizer));
  if (!config.is_null()) run_settings.update(config);
  ClassifierRun run{.example = example,
                    .model = &model,
                    .optimizer = optimizer.get(),
                    .train_loader = data.train.get(),
                    .test_loader = data.test.get(),
                    .held_out_loader = data.held_out.get(),
                    .calibration = flags.calibration,
                    .epochs = epochs,
                    .schedule = schedule.get(),
                    .config = run_settings,
                    .generators = std::move(generators)};
  return run_classifier(flags.common, flags.checkpoint, run);
}

}  // namespace bridle::examples
