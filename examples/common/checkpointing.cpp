// --save, --resume and --eval for the training examples; see checkpointing.h.
#include "common/checkpointing.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <string>

#include "common/distributed.h"

namespace bridle::examples {

void add_checkpoint_flags(CLI::App& app, CheckpointFlags& flags) {
  auto* save = app.add_option("--save", flags.save, "Save a checkpoint here after every epoch");
  auto* resume =
      app.add_option("--resume", flags.resume, "Continue the run saved in this checkpoint");
  app.add_option("--eval", flags.eval, "Only evaluate the model saved in this checkpoint")
      ->excludes(save)
      ->excludes(resume);
}

nlohmann::json json_float(float value) {
  const std::string text = fmt::format("{}", value);  // shortest round trip, any locale
  double out = value;
  std::from_chars(text.data(), text.data() + text.size(), out);
  return out;
}

nlohmann::json run_config(const CommonFlags& flags) {
  return {{"epochs", flags.epochs}, {"batch_size", flags.batch_size}, {"lr", json_float(flags.lr)},
          {"seed", flags.seed},     {"threads", flags.threads},       {"smoke", flags.smoke}};
}

int64_t resume(const CheckpointFlags& flags, Checkpoint& checkpoint, const nlohmann::json& config) {
  if (flags.resume.empty()) return 1;
  load_checkpoint(flags.resume, checkpoint);
  nlohmann::json saved = nlohmann::json::parse(checkpoint.config);
  for (const auto& [key, value] : config.items())
    if (saved.value(key, nlohmann::json()) != value)
      spdlog::warn(
          "--resume: {} is {} but the saved run had {}; the run will not match an "
          "uninterrupted one",
          key, value.dump(), saved.value(key, nlohmann::json()).dump());
  spdlog::info("resumed from {} after epoch {} (step {})", flags.resume, checkpoint.epoch,
               checkpoint.global_step);
  return checkpoint.epoch + 1;
}

void save_epoch(const CheckpointFlags& flags, Checkpoint& checkpoint, int64_t epoch,
                const nlohmann::json& config) {
  if (flags.save.empty() || !is_main_rank()) return;  // one writer per job: rank 0
  checkpoint.epoch = epoch;
  checkpoint.global_step = checkpoint.optimizer ? checkpoint.optimizer->step_count() : 0;
  checkpoint.config = config.dump();
  save_checkpoint(flags.save, checkpoint);
  spdlog::info("saved {} (epoch {}, step {})", flags.save, epoch, checkpoint.global_step);
}

int64_t load_weights(const std::string& path, Module& model) {
  Checkpoint checkpoint{.model = &model, .with_default_generator = false};
  load_checkpoint(path, checkpoint);
  spdlog::info("loaded the weights in {} (saved after epoch {})", path, checkpoint.epoch);
  return checkpoint.epoch;
}

}  // namespace bridle::examples
