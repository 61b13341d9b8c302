// word_lm: a next-word language model on the Brown corpus, with a softmax over
// the whole vocabulary (about 25,000 words) and each of the standard ways around
// its cost, trained side by side on the same data with the same model below them.
//
// What it teaches: where the time of a large-vocabulary model goes, and what the
// approximations give up for it. The model is an n-gram neural LM (Bengio et al.
// 2003): the embeddings of the n previous words, concatenated, through a tanh
// layer, then one of these output layers over the vocabulary (lib/nn):
//   full          Linear + fused softmax cross-entropy: every word, every step
//   hierarchical  a Huffman tree over the words (word2vec): ~log2(V) sigmoids
//   class         two levels, sqrt(V) frequency-binned clusters (Mikolov 2011)
//   sampled       sampled softmax, 1024 log-uniform samples (TensorFlow's)
//   nce           noise-contrastive estimation, the same samples
//   adaptive      adaptive softmax (Grave et al. 2017), PyTorch's semantics
// Every method is judged the same way: the exact test perplexity, with each
// model's full normalized distribution over the vocabulary (log_prob).
//
// Run:    datasets/fetch.sh brown && ./build/examples/word_lm --data data/brown
//         (--output full,adaptive to pick methods; --epochs, --hidden, --context;
//         --device cuda to train on a GPU; under mpirun -np N with --distributed,
//         data-parallel: common/distributed.h)
// Expect: one line per epoch and method, then a table of training tokens/s and
//         test perplexity; the approximations train several times faster than
//         the full softmax (README.md has the measured table).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <numeric>
#include <sstream>

#include "bridle.h"
#include "common/distributed.h"
#include "common/example_main.h"
#include "common/training_flags.h"

using namespace bridle;

namespace {

// The embeddings of the n previous words -> tanh(W [e_1; ...; e_n] + b) [B, hidden].
class ContextEncoder : public Module {
 public:
  ContextEncoder(int64_t vocab, int64_t context, int64_t embed, int64_t hidden)
      : context_(context), embed_dim_(embed) {
    embed_ = register_module("embed", std::make_shared<Embedding>(vocab, embed));
    proj_ = register_module("proj", std::make_shared<Linear>(context * embed, hidden));
  }
  Tensor forward(const Tensor& contexts) override {  // [B, n] int64
    Tensor e = embed_->forward(contexts);            // [B, n, embed]
    return tanh(proj_->forward(reshape(e, {contexts.size(0), context_ * embed_dim_})));
  }

 private:
  int64_t context_, embed_dim_;
  std::shared_ptr<Embedding> embed_;
  std::shared_ptr<Linear> proj_;
};

// The baseline: logits over every word, the fused softmax cross-entropy.
class FullSoftmax : public Module {
 public:
  FullSoftmax(int64_t hidden, int64_t vocab) {
    linear_ = register_module("linear", std::make_shared<Linear>(hidden, vocab));
  }
  Tensor loss(const Tensor& h, const Tensor& y) { return cross_entropy(linear_->forward(h), y); }
  Tensor log_prob(const Tensor& h) { return log_softmax(linear_->forward(h), 1); }

 private:
  std::shared_ptr<Linear> linear_;
};

// One output layer, whatever its type: each has loss(h, y) and log_prob(h).
struct OutputLayer {
  std::string name;
  std::shared_ptr<Module> module;
  std::function<Tensor(const Tensor&, const Tensor&)> loss;
  std::function<Tensor(const Tensor&)> log_prob;
};

template <typename Layer>
OutputLayer output_layer(const std::string& name, std::shared_ptr<Layer> layer) {
  return {name, layer, [layer](const Tensor& h, const Tensor& y) { return layer->loss(h, y); },
          [layer](const Tensor& h) { return layer->log_prob(h); }};
}

// Adaptive softmax cutoffs for this vocabulary: the head holds the words that
// make up 80% of the training tokens, the first tail the next 15%, the second
// the rest (rare words, most of the vocabulary). Rounded to 100s.
std::vector<int64_t> coverage_cutoffs(const std::vector<int64_t>& counts) {
  const double total = std::accumulate(counts.begin(), counts.end(), 0.0);
  const auto vocab = static_cast<int64_t>(counts.size());
  std::vector<int64_t> cutoffs;
  double seen = 0;
  int64_t id = 0;
  for (double share : {0.80, 0.95}) {
    while (id < vocab && seen < share * total) seen += static_cast<double>(counts[id++]);
    const int64_t cutoff = std::clamp<int64_t>((id + 50) / 100 * 100, 1, vocab - 1);
    if (cutoffs.empty() || cutoff > cutoffs.back()) cutoffs.push_back(cutoff);
  }
  return cutoffs;
}

OutputLayer make_output_layer(const std::string& name, int64_t hidden, const Vocabulary& vocab,
                              int64_t num_sampled) {
  const int64_t v = vocab.size();
  if (name == "full") return output_layer(name, std::make_shared<FullSoftmax>(hidden, v));
  if (name == "hierarchical")
    return output_layer(name, std::make_shared<HierarchicalSoftmax>(hidden, vocab.counts()));
  if (name == "class")
    return output_layer(name, ClassBasedSoftmax::from_counts(hidden, vocab.counts()));
  if (name == "sampled")
    return output_layer(name,
                        std::make_shared<SampledSoftmax>(hidden, v, std::min(num_sampled, v)));
  if (name == "nce")
    return output_layer(name, std::make_shared<Nce>(hidden, v, std::min(num_sampled, v)));
  if (name == "adaptive") {
    std::vector<int64_t> cutoffs = coverage_cutoffs(vocab.counts());
    spdlog::info("adaptive softmax cutoffs: {}", fmt::join(cutoffs, ", "));
    return output_layer(name, std::make_shared<AdaptiveLogSoftmaxWithLoss>(hidden, v, cutoffs));
  }
  BRIDLE_FAIL(
      "--output: unknown output layer '{}' (full, hierarchical, class, sampled, nce, "
      "adaptive)",
      name);
}

struct Evaluation {
  double nll = 0;  // mean -log p(target) in nats
  int64_t tokens = 0;
  double perplexity() const { return std::exp(nll); }
};

// The exact perplexity: every layer's log_prob is normalized over the whole
// vocabulary, so the target's log-probability is read from it.
// The encoder and an output layer as one module, so DistributedDataParallel
// (--distributed) sees every parameter of the step.
struct WordModel : Module {
  WordModel(std::shared_ptr<Module> encoder, std::shared_ptr<Module> output) : Module("WordModel") {
    register_module("encoder", std::move(encoder));
    register_module("output", std::move(output));
  }
};

Evaluation evaluate(ContextEncoder& encoder, OutputLayer& output, DataLoader& loader,
                    int64_t max_tokens, Device device) {
  NoGradGuard no_grad;
  encoder.train(false);
  output.module->train(false);
  Evaluation e;
  double sum = 0;
  for (Batch& batch : loader.epoch(0)) {
    // [B, V], read on the host
    Tensor log_probs = output.log_prob(encoder.forward(batch.inputs.to(device))).cpu();
    const float* lp = log_probs.data<float>();
    const int64_t* y = batch.targets.data<int64_t>();
    const int64_t vocab = log_probs.size(1);
    for (int64_t i = 0; i < batch.size(); ++i) sum -= lp[i * vocab + y[i]];
    e.tokens += batch.size();
    if (max_tokens > 0 && e.tokens >= max_tokens) break;
  }
  e.nll = sum / static_cast<double>(std::max<int64_t>(1, e.tokens));
  return e;
}

struct MethodResult {
  std::string name;
  double tokens_per_second = 0;
  double train_seconds = 0;
  Evaluation valid, test;
  int64_t parameters = 0;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train a word-level language model on the Brown corpus with each output layer"};
  examples::CommonFlags flags;
  flags.data_dir = "data/brown";
  flags.epochs = 2;
  flags.batch_size = 256;
  flags.lr = 0.002f;
  examples::OptimizerFlags optimizer_flags;
  optimizer_flags.optimizer = "adam";
  std::string outputs = "full,hierarchical,class,sampled,nce,adaptive";
  int64_t context = 4, embed = 128, hidden = 256, min_count = 2, num_sampled = 1024;
  int64_t max_train_tokens = 0, eval_tokens = 0;
  examples::add_common_flags(app, flags);
  examples::add_distributed_flags(app, flags);  // --distributed: under mpirun
  examples::add_optimizer_flags(app, optimizer_flags);
  app.add_option("--output", outputs, "Output layers to train, comma-separated")
      ->capture_default_str();
  app.add_option("--context", context, "Previous words the model sees")->capture_default_str();
  app.add_option("--embed", embed, "Word embedding size")->capture_default_str();
  app.add_option("--hidden", hidden, "Hidden layer size")->capture_default_str();
  app.add_option("--min-count", min_count, "Rarer training words become <unk>")
      ->capture_default_str();
  app.add_option("--num-sampled", num_sampled, "Samples per batch (sampled, nce)")
      ->capture_default_str();
  app.add_option("--max-train-tokens", max_train_tokens,
                 "Train on only the first N training tokens (0: all)");
  app.add_option("--eval-tokens", eval_tokens,
                 "Judge on only the first N test tokens (0: all; valid uses 20000)");
  CLI11_PARSE(app, argc, argv);

  try {
    flags.takes_device = true;  // the model and batches go to --device
    examples::apply_common_flags(flags);
    if (!has_brown(flags.data_dir))
      BRIDLE_FAIL("no Brown corpus in '{}': run datasets/fetch.sh brown (or pass --data DIR)",
                  flags.data_dir);
    BrownSplit split = split_brown(load_brown(flags.data_dir));
    Vocabulary vocab(split.train, min_count);
    Tensor train_ids = encode(split.train, vocab), valid_ids = encode(split.valid, vocab),
           test_ids = encode(split.test, vocab);
    if (max_train_tokens > 0 && max_train_tokens < train_ids.numel())
      train_ids = slice(train_ids, 0, max_train_tokens);
    spdlog::info(
        "Brown corpus: {} / {} / {} train / valid / test tokens, vocabulary {} words "
        "(min count {}, <unk> id {})",
        train_ids.numel(), valid_ids.numel(), test_ids.numel(), vocab.size(), min_count,
        vocab.unk_id());

    auto train_set = std::make_shared<NextWordDataset>(train_ids, context);
    DataLoaderOptions train_options{
        .batch_size = flags.batch_size, .shuffle = true, .drop_last = true, .seed = flags.seed};
    examples::shard_by_rank(train_options);  // --distributed: each rank its share of an epoch
    DataLoader train_loader(train_set, train_options);
    const int ranks = examples::process_group() ? examples::process_group()->size() : 1;
    DataLoader valid_loader(std::make_shared<NextWordDataset>(valid_ids, context),
                            {.batch_size = 1024});
    DataLoader test_loader(std::make_shared<NextWordDataset>(test_ids, context),
                           {.batch_size = 1024});
    const int64_t epochs = flags.smoke ? 1 : flags.epochs;
    const int64_t smoke_batches = 5;
    const int64_t valid_tokens = flags.smoke ? 2048 : 20000;
    const int64_t test_tokens = flags.smoke ? 2048 : eval_tokens;

    std::vector<MethodResult> results;
    std::stringstream names(outputs);
    for (std::string name; std::getline(names, name, ',');) {
      // Every method starts from the same weights below the output layer.
      manual_seed(flags.seed);
      auto encoder_ptr = std::make_shared<ContextEncoder>(vocab.size(), context, embed, hidden);
      ContextEncoder& encoder = *encoder_ptr;
      OutputLayer output = make_output_layer(name, hidden, vocab, num_sampled);
      WordModel model(encoder_ptr, output.module);
      const Device device = examples::training_device(flags);  // --device cuda: on the GPU
      model.to(device);
      // --distributed: rank 0's weights everywhere, gradients averaged after each backward.
      std::unique_ptr<DistributedDataParallel> data_parallel =
          examples::wrap_data_parallel(flags, model);
      std::vector<Tensor> params = encoder.parameters();
      for (const Tensor& p : output.module->parameters()) params.push_back(p);
      std::unique_ptr<Optimizer> optimizer =
          examples::make_optimizer(optimizer_flags, flags.lr, params);
      const int64_t steps_per_epoch = flags.smoke ? smoke_batches : train_loader.num_batches();
      std::unique_ptr<LRScheduler> schedule = examples::make_schedule(
          optimizer_flags, *optimizer, epochs * steps_per_epoch, steps_per_epoch);

      MethodResult result;
      result.name = name;
      result.parameters = output.module->num_parameters();
      int64_t tokens = 0;
      examples::StepProfiler step_profiler(flags, name + " training");  // --profile
      for (int64_t epoch = 1; epoch <= epochs; ++epoch) {
        encoder.train(true);
        output.module->train(true);
        const auto start = std::chrono::steady_clock::now();
        double loss_sum = 0;
        int64_t steps = 0;
        for (Batch& batch : train_loader.epoch(epoch)) {
          auto profiled = step_profiler.step();
          optimizer->zero_grad();
          Tensor loss =
              output.loss(encoder.forward(batch.inputs.to(device)), batch.targets.to(device));
          loss.backward();
          {
            ProfileRegion region("optimizer step");
            optimizer->step();
            if (schedule) schedule->step();
          }
          loss_sum += loss.item();
          tokens += batch.size() * ranks;  // the whole job's
          if (++steps >= smoke_batches && flags.smoke) break;
        }
        result.train_seconds +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::vector<double> totals = {loss_sum, static_cast<double>(steps)};
        examples::sum_over_ranks(totals);  // --distributed: the mean over every rank's steps
        loss_sum = totals[0];
        steps = static_cast<int64_t>(totals[1]);
        result.valid = evaluate(encoder, output, valid_loader, valid_tokens, device);
        spdlog::info(
            "{} epoch {}/{}: training loss {:.3f}, valid perplexity {:.1f} ({} tokens), "
            "{:.0f} tokens/s",
            name, epoch, epochs, loss_sum / std::max<int64_t>(1, steps), result.valid.perplexity(),
            result.valid.tokens, tokens / result.train_seconds);
      }
      result.tokens_per_second = tokens / result.train_seconds;
      result.test = evaluate(encoder, output, test_loader, test_tokens, device);
      spdlog::info("{}: test perplexity {:.1f} over {} tokens", name, result.test.perplexity(),
                   result.test.tokens);
      results.push_back(result);
    }

    if (!examples::is_main_rank()) return 0;  // rank 0 reports for the job
    const double full_speed = results.front().tokens_per_second;
    fmt::print("\n{} epochs, vocabulary {}, context {}, hidden {}, {} threads\n", epochs,
               vocab.size(), context, hidden, get_num_threads());
    fmt::print("| output layer | parameters | train tokens/s | vs {} | test perplexity |\n",
               results.front().name);
    fmt::print("|---|---|---|---|---|\n");
    nlohmann::json methods = nlohmann::json::object();
    for (const MethodResult& r : results) {
      fmt::print("| {} | {} | {:.0f} | {:.2f}x | {:.1f} |\n", r.name, r.parameters,
                 r.tokens_per_second, r.tokens_per_second / full_speed, r.test.perplexity());
      methods[r.name] = {{"tokens_per_second", r.tokens_per_second},
                         {"train_seconds", r.train_seconds},
                         {"valid_perplexity", r.valid.perplexity()},
                         {"test_perplexity", r.test.perplexity()},
                         {"test_tokens", r.test.tokens},
                         {"output_parameters", r.parameters}};
    }
    examples::report_metrics(flags, {{"example", "word_lm"},
                                     {"vocabulary", vocab.size()},
                                     {"epochs", epochs},
                                     {"context", context},
                                     {"hidden", hidden},
                                     {"threads", get_num_threads()},
                                     {"smoke", flags.smoke},
                                     {"methods", methods}});
    return 0;
  } catch (const Error& e) {
    return examples::exit_with_error(e);  // --distributed: ends every rank
  }
}
