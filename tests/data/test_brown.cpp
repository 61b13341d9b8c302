// The Brown corpus for language models: a tiny corpus in the real format
// (ca01, ca02, ca03, cb04 and the package's README, CONTENTS and cats.txt),
// written by the test into a scratch folder. Checks tokenization (the last '/'
// splits word and tag, lower-casing, "</s>" after each line), the package/
// subfolder, the split rule, vocabulary order, ties and "<unk>", encoding, the
// next-word windows (alone and through a shuffled DataLoader), and the errors.
// Self-contained: a fetched data/brown is not used.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "../test_util.h"
#include "data/brown.h"
#include "data/dataloader.h"
#include "data_test_util.h"

namespace bridle {
namespace {

namespace fs = std::filesystem;
using testing::expect_error;
using testing::ScratchDir;
using Words = std::vector<std::string>;

void write_text(const std::string& path, const std::string& text) {
  testing::write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
}

// Four corpus files as the package has them: two blank lines, then sentences
// one per line, each indented by a tab, paragraphs set apart by blank lines.
// Split: ca01 test, ca02 valid, ca03 and cb04 train.
const std::map<std::string, std::string> kFiles = {
    {"ca01",
     "\n\n\tThe/at Fulton/np-tl County/nn-tl said/vbd ./.\n\n\n"
     "\tThe/at jury/nn took/vbd 1-1/2/cd and/or/cc Atlanta's/np$ ./.\n"},
    {"ca02",
     "\n\n\tJURY/nn-hl REPORT/nn-hl\n\n\n"
     "\t``/`` It/pps is/bez over/rp ''/'' ,/, the/at jury/nn said/vbd ./.\n"},
    {"ca03", "\n\n\tThe/at jury/nn said/vbd ./.\n\tThe/at end/nn ./.\n"},
    {"cb04", "\n\n\tThe/at JURY/nn-tl  said/vbd no/at ./.\n"},
};

void write_corpus(const std::string& folder) {
  fs::create_directories(folder);
  for (const auto& [name, text] : kFiles) write_text(folder + "/" + name, text);
  write_text(folder + "/README", "BROWN CORPUS/nn\n");  // not corpus files: ignored
  write_text(folder + "/CONTENTS", "no tags here\n");
  write_text(folder + "/cats.txt", "ca01 news\n");
}

const Words kCa01 = {"the",  "fulton", "county", "said",   ".",         "</s>", "the",
                     "jury", "took",   "1-1/2",  "and/or", "atlanta's", ".",    "</s>"};
const Words kCa02 = {"jury", "report", "</s>", "``",   "it",   "is", "over",
                     "''",   ",",      "the",  "jury", "said", ".",  "</s>"};
const Words kCa03 = {"the", "jury", "said", ".", "</s>", "the", "end", ".", "</s>"};
const Words kCb04 = {"the", "jury", "said", "no", ".", "</s>"};

Words without_sentence_ends(const Words& words) {
  Words out;
  for (const std::string& w : words)
    if (w != "</s>") out.push_back(w);
  return out;
}

std::vector<std::string> names(const std::vector<TextDocument>& docs) {
  std::vector<std::string> out;
  for (const TextDocument& doc : docs) out.push_back(doc.name);
  return out;
}

TEST(BrownCorpus, ReadsWordsLowerCasedWithSentenceEnds) {
  ScratchDir dir;
  write_corpus(dir.str());
  EXPECT_TRUE(has_brown(dir.str()));
  const std::vector<TextDocument> docs = load_brown(dir.str());
  ASSERT_EQ(names(docs), Words({"ca01", "ca02", "ca03", "cb04"}));
  EXPECT_EQ(docs[0].tokens, kCa01);  // "1-1/2/cd" and "and/or/cc" split at the last '/'
  EXPECT_EQ(docs[1].tokens, kCa02);  // a headline is a sentence too
  EXPECT_EQ(docs[2].tokens, kCa03);
  EXPECT_EQ(docs[3].tokens, kCb04);
}

TEST(BrownCorpus, WithoutSentenceEnds) {
  ScratchDir dir;
  write_corpus(dir.str());
  const std::vector<TextDocument> docs = load_brown(dir.str(), /*sentence_ends=*/false);
  ASSERT_EQ(docs.size(), 4u);
  EXPECT_EQ(docs[0].tokens, without_sentence_ends(kCa01));
  EXPECT_EQ(docs[1].tokens, without_sentence_ends(kCa02));
}

TEST(BrownCorpus, ReadsAnUnpackedNpmPackage) {
  ScratchDir dir;
  write_corpus(dir.file("package"));
  EXPECT_TRUE(has_brown(dir.str()));
  const std::vector<TextDocument> docs = load_brown(dir.str());
  ASSERT_EQ(names(docs), Words({"ca01", "ca02", "ca03", "cb04"}));
  EXPECT_EQ(docs[3].tokens, kCb04);
}

TEST(BrownCorpus, Errors) {
  ScratchDir dir;
  const std::string missing = dir.file("nowhere");
  EXPECT_FALSE(has_brown(missing));
  expect_error([&] { load_brown(missing); },
               {"brown", missing, "does not exist", "datasets/fetch.sh brown"});

  write_text(dir.file("README"), "BROWN CORPUS\n");
  EXPECT_FALSE(has_brown(dir.str()));
  expect_error([&] { load_brown(dir.str()); },
               {"brown", dir.str(), "no corpus files", "c[a-r][0-9][0-9]", "package"});

  const std::vector<std::pair<std::string, std::vector<std::string>>> malformed = {
      {"\n\n\tThe/at jury said/vbd ./.\n", {"line 3", "'jury'", "no '/'"}},
      {"\tThe/at\n\tjury/nn /nn ./.\n", {"line 2", "'/nn'", "empty word"}},
      {"\tThe/at jury/ ./.\n", {"line 1", "'jury/'", "empty tag"}},
  };
  for (const auto& [text, fragments] : malformed) {
    write_text(dir.file("ca01"), "\tThe/at end/nn ./.\n");
    write_text(dir.file("cb02"), text);
    std::vector<std::string> expected = fragments;
    expected.push_back("brown");
    expected.push_back(dir.file("cb02"));
    expect_error([&] { load_brown(dir.str()); }, expected);
  }
}

TEST(BrownSplit, ByTheFileNumberWithinItsGenre) {
  std::vector<TextDocument> docs;
  for (const char* name : {"ca01", "ca02", "ca03", "ca10", "ca11", "ca12", "ca21", "cb01", "cb02",
                           "cb09", "cm06", "cr09"})
    docs.push_back({name, {name}});
  const BrownSplit split = split_brown(docs);
  EXPECT_EQ(names(split.test), Words({"ca01", "ca11", "ca21", "cb01"}));
  EXPECT_EQ(names(split.valid), Words({"ca02", "ca12", "cb02"}));
  EXPECT_EQ(names(split.train), Words({"ca03", "ca10", "cb09", "cm06", "cr09"}));
  EXPECT_EQ(split.train[1].tokens, Words({"ca10"}));  // documents are copied whole

  expect_error([&] { split_brown({{"README", {}}}); }, {"split_brown", "'README'", "ca01"});
  expect_error([&] { split_brown({{"ca", {}}}); }, {"split_brown", "'ca'"});
}

TEST(BrownVocabulary, OrdersByCountThenByWord) {
  const Vocabulary vocab({{"d1", {"b", "a", "c", "a"}}, {"d2", {"b", "a", "</s>", "z", "y"}}});
  // a: 3, b: 2, then the words seen once in byte order ('<' < 'c'), "<unk>" (0) last.
  EXPECT_EQ(vocab.words(), Words({"a", "b", "</s>", "c", "y", "z", "<unk>"}));
  EXPECT_EQ(vocab.counts(), std::vector<int64_t>({3, 2, 1, 1, 1, 1, 0}));
  EXPECT_EQ(vocab.size(), 7);
  EXPECT_EQ(vocab.unk_id(), 6);
  EXPECT_EQ(vocab.min_count(), 1);
  EXPECT_EQ(vocab.id("a"), 0);
  EXPECT_EQ(vocab.id("</s>"), 2);
  EXPECT_EQ(vocab.id("z"), 5);
  EXPECT_EQ(vocab.id("never seen"), 6);
  EXPECT_EQ(vocab.id("A"), 6);  // ids are case-sensitive; the loader lower-cases
  EXPECT_TRUE(vocab.contains("y"));
  EXPECT_FALSE(vocab.contains("x"));
  EXPECT_EQ(vocab.word(3), "c");
  EXPECT_EQ(vocab.word(6), "<unk>");
  expect_error([&] { vocab.word(7); }, {"Vocabulary::word", "7", "[0, 7)"});
  expect_error([&] { vocab.word(-1); }, {"Vocabulary::word", "-1"});
}

TEST(BrownVocabulary, MinCountMapsRareWordsToUnk) {
  const std::vector<TextDocument> docs = {{"d", {"a", "a", "a", "b", "b", "c", "d", "e", "<unk>"}}};
  // c, d, e and the literal "<unk>" make "<unk>" 4: the most frequent, id 0.
  const Vocabulary two(docs, 2);
  EXPECT_EQ(two.words(), Words({"<unk>", "a", "b"}));
  EXPECT_EQ(two.counts(), std::vector<int64_t>({4, 3, 2}));
  EXPECT_EQ(two.unk_id(), 0);
  EXPECT_EQ(two.id("c"), 0);
  EXPECT_FALSE(two.contains("c"));

  // "<unk>" (c, d, e: 3) ties with a (3): '<' sorts before 'a'.
  const Vocabulary tie({{"d", {"a", "a", "a", "b", "b", "c", "d", "e"}}}, 2);
  EXPECT_EQ(tie.words(), Words({"<unk>", "a", "b"}));
  EXPECT_EQ(tie.counts(), std::vector<int64_t>({3, 3, 2}));

  const Vocabulary three(docs, 3);
  EXPECT_EQ(three.words(), Words({"<unk>", "a"}));
  EXPECT_EQ(three.counts(), std::vector<int64_t>({6, 3}));

  const Vocabulary empty(std::vector<TextDocument>{});
  EXPECT_EQ(empty.words(), Words({"<unk>"}));
  EXPECT_EQ(empty.counts(), std::vector<int64_t>({0}));

  expect_error([&] { Vocabulary(docs, 0); }, {"Vocabulary", "min_count", "0"});
}

TEST(BrownVocabulary, FromTheTrainingSplitAndEncode) {
  ScratchDir dir;
  write_corpus(dir.str());
  const BrownSplit split = split_brown(load_brown(dir.str()));
  ASSERT_EQ(names(split.train), Words({"ca03", "cb04"}));
  ASSERT_EQ(names(split.valid), Words({"ca02"}));
  ASSERT_EQ(names(split.test), Words({"ca01"}));

  // Training counts: . 3, </s> 3, the 3, jury 2, said 2, end 1, no 1.
  const Vocabulary vocab(split.train);
  EXPECT_EQ(vocab.words(), Words({".", "</s>", "the", "jury", "said", "end", "no", "<unk>"}));
  EXPECT_EQ(vocab.counts(), std::vector<int64_t>({3, 3, 3, 2, 2, 1, 1, 0}));

  // The training documents one after another: ca03, then cb04.
  Tensor train = encode(split.train, vocab);
  EXPECT_EQ(train.dtype(), kInt64);
  EXPECT_EQ(train.shape(), Shape({15}));
  EXPECT_EQ(train.to_int_vector(),
            std::vector<int64_t>({2, 3, 4, 0, 1, 2, 5, 0, 1, 2, 3, 4, 6, 0, 1}));
  // Validation words never seen in training are "<unk>" (7).
  EXPECT_EQ(encode(split.valid, vocab).to_int_vector(),
            std::vector<int64_t>({3, 7, 1, 7, 7, 7, 7, 7, 7, 2, 3, 4, 0, 1}));

  // With min_count 2, end and no become "<unk>" (2), which sorts before jury.
  const Vocabulary two(split.train, 2);
  EXPECT_EQ(two.words(), Words({".", "</s>", "the", "<unk>", "jury", "said"}));
  EXPECT_EQ(encode(split.train, two).to_int_vector(),
            std::vector<int64_t>({2, 4, 5, 0, 1, 2, 3, 0, 1, 2, 4, 5, 3, 0, 1}));
  EXPECT_EQ(encode({}, two).numel(), 0);
}

TEST(LanguageModelDataset, ContextWindowsAndNextWord) {
  // ids 100, 101, ..., 109; context 3: example i is ids[i, i+3) -> ids[i+3].
  std::vector<int64_t> values;
  for (int64_t i = 0; i < 10; ++i) values.push_back(100 + i);
  const NextWordDataset data(from_vector(values), 3);
  EXPECT_EQ(data.size(), 7);
  EXPECT_EQ(data.context(), 3);
  const Batch batch = data.get_batch({0, 6, 2});
  EXPECT_EQ(batch.inputs.dtype(), kInt64);
  EXPECT_EQ(batch.targets.dtype(), kInt64);
  EXPECT_EQ(batch.inputs.shape(), Shape({3, 3}));
  EXPECT_EQ(batch.targets.shape(), Shape({3}));
  EXPECT_EQ(batch.inputs.to_int_vector(),
            std::vector<int64_t>({100, 101, 102, 106, 107, 108, 102, 103, 104}));
  EXPECT_EQ(batch.targets.to_int_vector(), std::vector<int64_t>({103, 109, 105}));
  EXPECT_EQ(batch.size(), 3);
  EXPECT_EQ(data.get_batch({}).inputs.shape(), Shape({0, 3}));

  // Context 2 on the encoded tiny corpus: a window across the document boundary.
  ScratchDir dir;
  write_corpus(dir.str());
  const BrownSplit split = split_brown(load_brown(dir.str()));
  const Vocabulary vocab(split.train);
  const NextWordDataset train(encode(split.train, vocab), 2);
  EXPECT_EQ(train.size(), 13);
  const Batch crossing = train.get_batch({7});  // ". </s>" of ca03 -> "the" of cb04
  EXPECT_EQ(crossing.inputs.to_int_vector(), std::vector<int64_t>({0, 1}));
  EXPECT_EQ(crossing.targets.to_int_vector(), std::vector<int64_t>({2}));
}

TEST(LanguageModelDataset, ShuffledBatchesFromADataLoader) {
  // ids 0..N-1 so that each example identifies itself: target = last input + 1.
  constexpr int64_t kIds = 103, kContext = 4;
  auto data = std::make_shared<NextWordDataset>(arange(kIds, kInt64), kContext);
  DataLoader loader(data, {.batch_size = 16, .shuffle = true, .seed = 7});
  EXPECT_EQ(loader.num_batches(), 7);  // 99 examples
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    std::set<int64_t> seen;
    bool in_order = true;
    for (Batch& batch : loader.epoch(epoch)) {
      const std::vector<int64_t> inputs = batch.inputs.to_int_vector();
      const std::vector<int64_t> targets = batch.targets.to_int_vector();
      ASSERT_EQ(batch.inputs.shape(), Shape({batch.size(), kContext}));
      for (int64_t b = 0; b < batch.size(); ++b) {
        const int64_t first = inputs[static_cast<size_t>(b * kContext)];
        for (int64_t k = 0; k < kContext; ++k)
          EXPECT_EQ(inputs[static_cast<size_t>(b * kContext + k)], first + k);
        EXPECT_EQ(targets[static_cast<size_t>(b)], first + kContext);
        if (!seen.empty() && first != *seen.rbegin() + 1) in_order = false;
        EXPECT_TRUE(seen.insert(first).second) << "example " << first << " twice";
      }
    }
    EXPECT_EQ(seen.size(), 99u);
    EXPECT_FALSE(in_order);
  }
}

TEST(LanguageModelDataset, Errors) {
  const Tensor ids = from_vector(std::vector<int64_t>{1, 2, 3});
  expect_error([&] { NextWordDataset(ids, 0); }, {"NextWordDataset", "context", "0"});
  expect_error([&] { NextWordDataset(ids, 3); }, {"NextWordDataset", "3 ids", "context 3"});
  expect_error(
      [&] {
        NextWordDataset(from_vector({1.f, 2.f, 3.f}), 1);
      },
      {"NextWordDataset", "int64", "float32"});
  expect_error(
      [&] {
        NextWordDataset(from_vector(std::vector<int64_t>{1, 2, 3, 4}, {2, 2}), 1);
      },
      {"NextWordDataset", "1-D", "[2, 2]"});
  expect_error([&] { NextWordDataset(Tensor(), 1); }, {"NextWordDataset", "undefined"});
  const NextWordDataset data(ids, 1);
  expect_error(
      [&] {
        data.get_batch({0, 2});
      },
      {"NextWordDataset::get_batch", "index 2", "position 1", "2 examples"});
  expect_error([&] { data.get_batch({-1}); }, {"NextWordDataset::get_batch", "index -1"});
}

}  // namespace
}  // namespace bridle
