// The Brown corpus: reading the tagged files, the split, the vocabulary, the
// encoding and the next-word windows; see brown.h for the format and the
// conventions (end-of-sentence word, split rule, "<unk>").
#include "data/brown.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "core/error.h"

namespace bridle {
namespace {

namespace fs = std::filesystem;

// "ca01": 'c', a genre letter a..r, two digits.
bool is_corpus_name(const std::string& name) {
  return name.size() == 4 && name[0] == 'c' && name[1] >= 'a' && name[1] <= 'r' && name[2] >= '0' &&
         name[2] <= '9' && name[3] >= '0' && name[3] <= '9';
}

// The corpus files directly in folder, sorted by name (empty if none or no folder).
std::vector<std::string> corpus_files(const fs::path& folder) {
  std::vector<std::string> names;
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return names;
  for (const fs::directory_entry& entry : fs::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    std::error_code type_ec;
    if (is_corpus_name(name) && entry.is_regular_file(type_ec)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The folder that holds the corpus files: dir itself, or dir/package.
fs::path corpus_folder(const std::string& dir) {
  if (corpus_files(dir).empty() && !corpus_files(fs::path(dir) / "package").empty())
    return fs::path(dir) / "package";
  return dir;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  BRIDLE_CHECK(in.good(), "brown: cannot open {}", path.string());
  std::ostringstream text;
  text << in.rdbuf();
  BRIDLE_CHECK(!in.bad(), "brown: cannot read {}", path.string());
  return text.str();
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// The words of one file: each token `word/tag` split at its last '/', the word
// lower-cased (ASCII), "</s>" after every non-empty line when sentence_ends.
std::vector<std::string> tokenize(const std::string& text, const std::string& path,
                                  bool sentence_ends) {
  std::vector<std::string> words;
  words.reserve(text.size() / 8);
  int64_t line = 1;
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = std::min(text.find('\n', at), text.size());
    bool sentence = false;
    size_t pos = at;
    while (pos < end) {
      while (pos < end && is_space(text[pos])) ++pos;
      if (pos == end) break;
      const size_t token_begin = pos;
      while (pos < end && !is_space(text[pos])) ++pos;
      const std::string_view token(text.data() + token_begin, pos - token_begin);
      const size_t slash = token.rfind('/');
      BRIDLE_CHECK(slash != std::string_view::npos && slash > 0 && slash + 1 < token.size(),
                   "brown: {} line {}: token '{}' is not word/tag ({}); a corpus file holds "
                   "whitespace-separated tokens like 'The/at'",
                   path, line, token,
                   slash == std::string_view::npos ? "no '/'"
                   : slash == 0                    ? "empty word"
                                                   : "empty tag");
      std::string word(token.substr(0, slash));
      for (char& c : word)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      words.push_back(std::move(word));
      sentence = true;
    }
    if (sentence && sentence_ends) words.emplace_back(kEndOfSentence);
    at = end + 1;
    ++line;
  }
  return words;
}

}  // namespace

bool has_brown(const std::string& dir) {
  return !corpus_files(dir).empty() || !corpus_files(fs::path(dir) / "package").empty();
}

std::vector<TextDocument> load_brown(const std::string& dir, bool sentence_ends) {
  std::error_code ec;
  BRIDLE_CHECK(fs::is_directory(dir, ec),
               "brown: directory {} does not exist; fetch the corpus with "
               "`datasets/fetch.sh brown {}`",
               dir, dir);
  const fs::path folder = corpus_folder(dir);
  const std::vector<std::string> names = corpus_files(folder);
  BRIDLE_CHECK(!names.empty(),
               "brown: {} holds no corpus files (named c[a-r][0-9][0-9], e.g. ca01), nor does "
               "{}/package; fetch the corpus with `datasets/fetch.sh brown {}`",
               dir, dir, dir);
  std::vector<TextDocument> docs;
  docs.reserve(names.size());
  for (const std::string& name : names) {
    const std::string path = (folder / name).string();
    docs.push_back({name, tokenize(read_text(path), path, sentence_ends)});
  }
  return docs;
}

BrownSplit split_brown(const std::vector<TextDocument>& docs) {
  BrownSplit split;
  for (const TextDocument& doc : docs) {
    const std::string& name = doc.name;
    const bool named =
        name.size() >= 3 && name[0] >= 'a' && name[0] <= 'z' && name[1] >= 'a' && name[1] <= 'z' &&
        std::all_of(name.begin() + 2, name.end(), [](char c) { return c >= '0' && c <= '9'; });
    BRIDLE_CHECK(named,
                 "split_brown: document '{}' is not named like a corpus file (c, the genre "
                 "letter, a number: 'ca01'); the split goes by that number",
                 name);
    switch (name.back()) {
      case '1':
        split.test.push_back(doc);
        break;
      case '2':
        split.valid.push_back(doc);
        break;
      default:
        split.train.push_back(doc);
    }
  }
  return split;
}

Vocabulary::Vocabulary(const std::vector<TextDocument>& docs, int64_t min_count)
    : min_count_(min_count) {
  BRIDLE_CHECK(min_count >= 1, "Vocabulary: min_count must be at least 1, got {}", min_count);
  std::unordered_map<std::string, int64_t> counts;
  for (const TextDocument& doc : docs)
    for (const std::string& word : doc.tokens) ++counts[word];

  // "<unk>" gathers the rare words (and a literal "<unk>" in the text).
  const std::string unk(kUnknownWord);
  int64_t unk_count = 0;
  std::vector<std::pair<std::string, int64_t>> entries;
  entries.reserve(counts.size() + 1);
  for (auto& [word, count] : counts) {
    if (count < min_count || word == unk)
      unk_count += count;
    else
      entries.emplace_back(word, count);
  }
  entries.emplace_back(unk, unk_count);
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });

  words_.reserve(entries.size());
  counts_.reserve(entries.size());
  ids_.reserve(entries.size());
  for (auto& [word, count] : entries) {
    ids_.emplace(word, static_cast<int64_t>(words_.size()));
    words_.push_back(std::move(word));
    counts_.push_back(count);
  }
  unk_id_ = ids_.at(unk);
}

int64_t Vocabulary::id(const std::string& word) const {
  auto it = ids_.find(word);
  return it == ids_.end() ? unk_id_ : it->second;
}

const std::string& Vocabulary::word(int64_t id) const {
  BRIDLE_CHECK(id >= 0 && id < size(), "Vocabulary::word: id {} is outside [0, {})", id, size());
  return words_[static_cast<size_t>(id)];
}

Tensor encode(const std::vector<TextDocument>& docs, const Vocabulary& vocab) {
  int64_t n = 0;
  for (const TextDocument& doc : docs) n += static_cast<int64_t>(doc.tokens.size());
  Tensor ids = Tensor::empty({n}, kInt64);
  int64_t* out = ids.data<int64_t>();
  for (const TextDocument& doc : docs)
    for (const std::string& word : doc.tokens) *out++ = vocab.id(word);
  return ids;
}

NextWordDataset::NextWordDataset(Tensor ids, int64_t context)
    : ids_(std::move(ids)), context_(context) {
  BRIDLE_CHECK(ids_.defined() && ids_.dim() == 1 && ids_.dtype() == kInt64,
               "NextWordDataset: ids must be a 1-D int64 tensor [N], got {} {}",
               ids_.defined() ? shape_str(ids_.shape()) : "(undefined)",
               ids_.defined() ? dtype_name(ids_.dtype()) : "");
  BRIDLE_CHECK(ids_.device().is_cpu(), "NextWordDataset: ids must be on the cpu, got {}",
               ids_.device().str());
  BRIDLE_CHECK(context_ >= 1, "NextWordDataset: context must be at least 1, got {}", context_);
  BRIDLE_CHECK(ids_.numel() > context_,
               "NextWordDataset: {} ids make no example with context {}: need more than {}",
               ids_.numel(), context_, context_);
}

Batch NextWordDataset::get_batch(const std::vector<int64_t>& indices) const {
  const auto b = static_cast<int64_t>(indices.size());
  Tensor inputs = Tensor::empty({b, context_}, kInt64);
  Tensor targets = Tensor::empty({b}, kInt64);
  const int64_t* ids = ids_.data<int64_t>();
  int64_t* in = inputs.data<int64_t>();
  int64_t* out = targets.data<int64_t>();
  const int64_t n = size();
  for (int64_t k = 0; k < b; ++k) {
    const int64_t i = indices[static_cast<size_t>(k)];
    BRIDLE_CHECK(i >= 0 && i < n,
                 "NextWordDataset::get_batch: index {} (position {} of the batch) is out of "
                 "range for {} examples ({} ids, context {})",
                 i, k, n, ids_.numel(), context_);
    std::memcpy(in + k * context_, ids + i, static_cast<size_t>(context_) * sizeof(int64_t));
    out[k] = ids[i + context_];
  }
  return {inputs, targets};
}

}  // namespace bridle
