// CIFAR loading: finding the files (a folder, its parent or a tar archive),
// streaming tar archives, checking records and converting them to tensors; see
// cifar.h for the layouts and the shapes.
//
// One reader serves CIFAR-10 and CIFAR-100: they differ only in their file
// names and in the number of label bytes in front of the 3072 pixel bytes
// (CifarFormat below).
//
// Archives are read with zlib and a small tar parser rather than libarchive:
// zlib is already a dependency (gzipped IDX files), the archives hold a handful
// of plain files, and parsing the 512-byte tar headers ourselves lets every
// error name the byte offset where the archive goes wrong. The parser reads
// POSIX ustar and GNU tar headers (the official archives are GNU tar), GNU long
// names ('L') and pax 'path' records, and skips everything but regular files.
#include "data/cifar.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <system_error>
#include <utility>

#include "core/error.h"
#include "data/byte_reader.h"

namespace bridle {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kImagePixels = 3 * 32 * 32;
constexpr size_t kTarBlock = 512;
// No CIFAR file comes near this; a larger size in a tar header is corruption
// (refused before it turns into a huge allocation).
constexpr uint64_t kMaxMemberBytes = uint64_t{1} << 32;
// A "member not found" error lists this many of the archive's members.
constexpr size_t kListedMembers = 12;

struct LabelByte {
  const char* name;  // "label", "coarse label", "fine label"
  int64_t num_classes;
};

// What differs between CIFAR-10 and CIFAR-100.
struct CifarFormat {
  const char* context;  // starts every error message
  const char* folder;   // the folder inside the archive
  const char* fetch_hint;
  std::vector<std::string> train_files;
  std::vector<std::string> test_files;
  std::vector<LabelByte> labels;  // the label bytes in front of the pixels, in order

  int64_t record_bytes() const { return static_cast<int64_t>(labels.size()) + kImagePixels; }
};

const CifarFormat& cifar10_format() {
  static const CifarFormat format{"cifar10",
                                  "cifar-10-batches-bin",
                                  "fetch it with `datasets/fetch.sh cifar10 DIR`",
                                  {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                   "data_batch_4.bin", "data_batch_5.bin"},
                                  {"test_batch.bin"},
                                  {{"label", 10}}};
  return format;
}

const CifarFormat& cifar100_format() {
  static const CifarFormat format{
      "cifar100",
      "cifar-100-binary",
      "unpack the official cifar-100-binary.tar.gz there, or pass the archive itself",
      {"train.bin"},
      {"test.bin"},
      {{"coarse label", 20}, {"fine label", 100}}};
  return format;
}

// A file of the dataset, read whole.
struct Member {
  std::string where;  // for messages: "dir/data_batch_1.bin" or "x.tar.gz:folder/data_batch_1.bin"
  std::vector<uint8_t> bytes;
};

// ---------------------------------------------------------------------------
// Folders

// The folder that holds the files: path itself, or path/folder when that exists.
std::string data_folder(const std::string& path, const CifarFormat& format) {
  std::error_code ec;
  fs::path inner = fs::path(path) / format.folder;
  return fs::is_directory(inner, ec) ? inner.string() : path;
}

std::vector<uint8_t> read_whole_file(const std::string& path, const CifarFormat& format) {
  ByteReader in(path, format.context);
  std::vector<uint8_t> bytes;
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (!ec && !in.gzip()) bytes.reserve(static_cast<size_t>(size));
  std::array<uint8_t, 1 << 16> chunk;
  size_t got;
  while ((got = in.read(chunk.data(), chunk.size())) > 0)
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + static_cast<ptrdiff_t>(got));
  BRIDLE_CHECK(!in.cut_off(), "{}: {} is truncated: its gzip stream is cut off after {} bytes",
               format.context, path, in.offset());
  return bytes;
}

std::vector<Member> read_from_folder(const std::string& path, const CifarFormat& format,
                                     const std::vector<std::string>& names) {
  const std::string folder = data_folder(path, format);
  std::vector<std::string> missing;
  for (const std::string& name : names) {
    std::error_code ec;
    if (!fs::is_regular_file(fs::path(folder) / name, ec)) missing.push_back(name);
  }
  BRIDLE_CHECK(
      missing.empty(), "{}: {} has no {}{}; {}", format.context, folder, fmt::join(missing, ", "),
      folder == path ? fmt::format(" (nor a {}/ folder)", format.folder) : "", format.fetch_hint);
  std::vector<Member> members;
  for (const std::string& name : names) {
    const std::string file = (fs::path(folder) / name).string();
    members.push_back({file, read_whole_file(file, format)});
  }
  return members;
}

// ---------------------------------------------------------------------------
// Tar archives
//
// A tar file is a sequence of 512-byte headers, each followed by its member's
// data padded to a multiple of 512 bytes, and ends with two blocks of zeros. A
// header holds (among others) the name at byte 0 (100 bytes), the size in octal
// at 124 (12 bytes), the checksum at 148 (8 bytes: the sum of the header's bytes
// with these 8 counted as spaces), the type at 156, the magic "ustar" at 257 and,
// in POSIX ustar, a name prefix at 345 (155 bytes).

// A NUL-terminated (or full-width) text field.
std::string tar_field(const uint8_t* header, size_t at, size_t width) {
  const auto* begin = reinterpret_cast<const char*>(header + at);
  return std::string(begin, strnlen(begin, width));
}

// An octal number field, or GNU's base-256 form (top bit set) for large values.
std::optional<uint64_t> tar_number(const uint8_t* header, size_t at, size_t width) {
  const uint8_t* p = header + at;
  if (p[0] & 0x80) {
    uint64_t value = p[0] & 0x7F;
    for (size_t i = 1; i < width; ++i) {
      if (value >> 55) return std::nullopt;
      value = (value << 8) | p[i];
    }
    return value;
  }
  size_t i = 0;
  while (i < width && p[i] == ' ') ++i;
  uint64_t value = 0;
  bool any = false;
  for (; i < width && p[i] >= '0' && p[i] <= '7'; ++i) {
    if (value >> 60) return std::nullopt;
    value = value * 8 + (p[i] - '0');
    any = true;
  }
  for (; i < width; ++i)  // what follows the digits must be padding
    if (p[i] != ' ' && p[i] != '\0') return std::nullopt;
  if (!any) return std::nullopt;
  return value;
}

// The checksum a header should carry: the sum of its bytes, the checksum field
// counted as 8 spaces. (Some old tars summed signed chars; that sum is accepted too.)
std::pair<uint64_t, int64_t> tar_checksums(const uint8_t* header) {
  uint64_t unsigned_sum = 0;
  int64_t signed_sum = 0;
  for (size_t i = 0; i < kTarBlock; ++i) {
    const bool in_field = i >= 148 && i < 156;
    unsigned_sum += in_field ? uint8_t{' '} : header[i];
    signed_sum += in_field ? int8_t{' '} : static_cast<int8_t>(header[i]);
  }
  return {unsigned_sum, signed_sum};
}

// The 'path' record of a pax extended header ("<length> path=<name>\n" records).
std::string pax_path(const std::vector<uint8_t>& data) {
  std::string text(data.begin(), data.end());
  std::string path;
  size_t at = 0;
  while (at < text.size()) {
    const size_t space = text.find(' ', at);
    if (space == std::string::npos) break;
    size_t length = 0;
    for (size_t i = at; i < space; ++i) {
      if (text[i] < '0' || text[i] > '9') return path;
      length = length * 10 + static_cast<size_t>(text[i] - '0');
    }
    if (length <= space - at + 1 || at + length > text.size()) break;
    const std::string record = text.substr(space + 1, length - (space - at) - 2);  // no '\n'
    if (record.rfind("path=", 0) == 0) path = record.substr(5);
    at += length;
  }
  return path;
}

// "./cifar-10-batches-bin/x.bin" -> "cifar-10-batches-bin/x.bin".
std::string clean_member_name(std::string name) {
  while (name.rfind("./", 0) == 0) name.erase(0, 2);
  return name;
}

// Reads the files `names` from a tar archive (plain or gzip), accepting each
// as "<format.folder>/<name>" or as "<name>" at the top. With read_to_end the
// whole archive is read even after the last wanted file, so that a corrupt or
// cut-off archive is noticed (the gzip CRC sits at its very end).
std::vector<Member> read_from_archive(const std::string& archive, const CifarFormat& format,
                                      const std::vector<std::string>& names, bool read_to_end) {
  const char* context = format.context;
  ByteReader in(archive, context);
  std::vector<std::optional<std::vector<uint8_t>>> found(names.size());
  std::vector<std::string> seen;  // member names, for the "not found" message
  std::string next_name;          // from a GNU long-name or pax header, for the next member
  std::array<uint8_t, kTarBlock> header{};

  auto truncated = [&](uint64_t at, const std::string& inside) {
    BRIDLE_FAIL("{}: {} is a truncated archive: it ends at byte {}{}, inside {}", context, archive,
                at, in.contents(), inside);
  };
  auto wanted = [&](const std::string& name) -> int {
    for (size_t i = 0; i < names.size(); ++i)
      if (name == names[i] || name == std::string(format.folder) + "/" + names[i])
        return static_cast<int>(i);
    return -1;
  };
  auto all_found = [&] {
    return std::all_of(found.begin(), found.end(), [](const auto& f) { return f.has_value(); });
  };

  bool ended = false;  // reached the end-of-archive marker
  while (true) {
    if (!read_to_end && all_found()) break;
    const uint64_t header_at = in.offset();
    header.fill(0);
    const size_t got = in.read(header.data(), kTarBlock);
    if (got == 0 && header_at > 0) break;  // no end-of-archive marker: tolerated, as by tar
    if (got == kTarBlock &&
        std::all_of(header.begin(), header.end(), [](uint8_t b) { return b == 0; })) {
      ended = true;  // the end-of-archive marker
      break;
    }
    const auto stored = tar_number(header.data(), 148, 8);
    const auto [unsigned_sum, signed_sum] = tar_checksums(header.data());
    const bool valid =
        stored && (*stored == unsigned_sum || static_cast<int64_t>(*stored) == signed_sum);
    if (header_at == 0 && (got < kTarBlock || !valid)) {
      // Not an archive at all: say what it is instead of where it breaks.
      const std::string_view what = in.gzip() ? " inside gzip" : "";
      const std::string start = got < kTarBlock
                                    ? fmt::format("it holds only {} bytes{}", got, in.contents())
                                    : fmt::format("its first 512 bytes{} are no tar header",
                                                  in.gzip() ? " (decompressed)" : "");
      BRIDLE_FAIL("{}: {} is not a tar archive{}: {}{}", context, archive, what, start,
                  got > 0 && header[0] == '<'
                      ? " (it starts with '<': an HTML error page from a failed download?)"
                      : "");
    }
    if (got < kTarBlock)
      truncated(header_at + got, fmt::format("the tar header at byte {}", header_at));
    if (!valid) {
      BRIDLE_FAIL(
          "{}: {} is a corrupt archive: the tar header at byte {}{} has checksum {}, but its "
          "bytes sum to {}",
          context, archive, header_at, in.contents(),
          stored ? fmt::format("{}", *stored) : std::string("(not a number)"), unsigned_sum);
    }

    const auto size = tar_number(header.data(), 124, 12);
    BRIDLE_CHECK(size && *size <= kMaxMemberBytes,
                 "{}: {} is a corrupt archive: the tar header at byte {}{} has an implausible size "
                 "field \"{}\"",
                 context, archive, header_at, in.contents(), tar_field(header.data(), 124, 12));
    const char type = static_cast<char>(header[156]);
    std::string name = tar_field(header.data(), 0, 100);
    if (tar_field(header.data(), 257, 6) == "ustar") {  // POSIX: a prefix may precede the name
      std::string prefix = tar_field(header.data(), 345, 155);
      if (!prefix.empty()) name = prefix + "/" + name;
    }
    if (!next_name.empty()) name = std::exchange(next_name, "");
    name = clean_member_name(name);

    const uint64_t data_at = in.offset();
    const uint64_t padded = (*size + kTarBlock - 1) / kTarBlock * kTarBlock;
    const int index = type == '0' || type == '\0' || type == '7' ? wanted(name) : -1;
    if (type == 'L' || type == 'x' || index >= 0) {
      std::vector<uint8_t> data(static_cast<size_t>(*size));
      const size_t read = in.read(data.data(), data.size());
      if (read < data.size())
        truncated(data_at + read,
                  fmt::format("{} (bytes {} to {})", name, data_at, data_at + *size));
      if (type == 'L') {
        next_name = tar_field(data.data(), 0, data.size());
      } else if (type == 'x') {
        next_name = pax_path(data);
      } else {
        found[static_cast<size_t>(index)] = std::move(data);
      }
      if (in.skip(padded - *size) < padded - *size)
        truncated(in.offset(), fmt::format("the padding after {}", name));
    } else {
      if (in.skip(padded) < padded)
        truncated(in.offset(), fmt::format("{} (bytes {} to {})", name, data_at, data_at + *size));
    }
    if (type != 'L' && type != 'x' && type != 'g' && seen.size() <= kListedMembers)
      seen.push_back(name);
  }
  if (read_to_end && ended) in.skip(UINT64_MAX);  // the zero padding, and the gzip CRC after it
  BRIDLE_CHECK(!in.cut_off(),
               "{}: {} is a truncated archive: its gzip stream is cut off at byte {}", context,
               archive, in.offset());

  std::vector<std::string> missing;
  for (size_t i = 0; i < names.size(); ++i)
    if (!found[i]) missing.push_back(std::string(format.folder) + "/" + names[i]);
  if (!missing.empty()) {
    if (seen.size() > kListedMembers) seen.back() = "...";
    BRIDLE_FAIL("{}: the archive {} has no {}; it holds: {}", context, archive,
                fmt::join(missing, ", "),
                seen.empty() ? "nothing" : fmt::format("{}", fmt::join(seen, ", ")));
  }
  std::vector<Member> members;
  for (size_t i = 0; i < names.size(); ++i)
    members.push_back(
        {archive + ":" + std::string(format.folder) + "/" + names[i], std::move(*found[i])});
  return members;
}

// The files `names`, from a folder (path or path/<format.folder>) or an archive.
std::vector<Member> read_files(const std::string& path, const CifarFormat& format,
                               const std::vector<std::string>& names, bool read_to_end) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return read_from_folder(path, format, names);
  if (fs::is_regular_file(path, ec)) return read_from_archive(path, format, names, read_to_end);
  BRIDLE_FAIL("{}: {} does not exist; {}", format.context, path, format.fetch_hint);
}

// ---------------------------------------------------------------------------
// Records

// Checks that a file is a whole number of records with labels in range;
// returns its number of records.
int64_t check_records(const Member& member, const CifarFormat& format) {
  const auto size = static_cast<int64_t>(member.bytes.size());
  const int64_t record = format.record_bytes();
  const auto label_bytes = static_cast<int64_t>(format.labels.size());
  BRIDLE_CHECK(size > 0, "{}: {} is empty", format.context, member.where);
  if (size % record != 0) {
    const int64_t cut = size / record;
    BRIDLE_FAIL(
        "{}: {} is truncated or not a CIFAR file: its {} bytes are not a whole number of {}-byte "
        "records ({} label byte{} + {} pixels); record {} starts at byte {} and should end at "
        "byte {}, but the file ends at byte {}",
        format.context, member.where, size, record, label_bytes, label_bytes == 1 ? "" : "s",
        kImagePixels, cut, cut * record, (cut + 1) * record, size);
  }
  const int64_t n = size / record;
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < label_bytes; ++j) {
      const int64_t at = r * record + j;
      const LabelByte& label = format.labels[static_cast<size_t>(j)];
      BRIDLE_CHECK(member.bytes[static_cast<size_t>(at)] < label.num_classes,
                   "{}: {}: record {} (byte {}) has {} {}, outside 0..{}", format.context,
                   member.where, r, at, label.name, member.bytes[static_cast<size_t>(at)],
                   label.num_classes - 1);
    }
  }
  return n;
}

CifarData load_cifar(const std::string& path, const std::string& split, const CifarFormat& format,
                     size_t label_byte, int64_t max_examples) {
  BRIDLE_CHECK(split == "train" || split == "test",
               "{}: split must be \"train\" or \"test\", got \"{}\"", format.context, split);
  const std::vector<std::string>& names = split == "train" ? format.train_files : format.test_files;
  const std::vector<Member> members = read_files(path, format, names, /*read_to_end=*/true);

  int64_t total = 0;
  for (const Member& member : members) total += check_records(member, format);
  const int64_t keep = max_examples >= 0 ? std::min(max_examples, total) : total;

  CifarData out;
  out.images = Tensor::empty({keep, 3, 32, 32}, kFloat32);
  out.labels = Tensor::empty({keep}, kInt64);
  // A table gives exactly byte / 255.0f (as torchvision's ToTensor does).
  std::array<float, 256> scale;
  for (int v = 0; v < 256; ++v) scale[v] = static_cast<float>(v) / 255.0f;
  float* pixels = out.images.data<float>();
  int64_t* labels = out.labels.data<int64_t>();
  const int64_t record = format.record_bytes();
  const auto label_bytes = static_cast<int64_t>(format.labels.size());
  int64_t i = 0;
  for (const Member& member : members) {
    const uint8_t* bytes = member.bytes.data();
    const auto n = static_cast<int64_t>(member.bytes.size()) / record;
    for (int64_t r = 0; r < n && i < keep; ++r, ++i) {
      const uint8_t* rec = bytes + r * record;
      labels[i] = rec[label_byte];
      float* dst = pixels + i * kImagePixels;
      for (int64_t p = 0; p < kImagePixels; ++p) dst[p] = scale[rec[label_bytes + p]];
    }
  }
  return out;
}

std::vector<std::string> class_names(const std::string& path, const CifarFormat& format,
                                     const std::string& file, size_t expected) {
  Member member = std::move(read_files(path, format, {file}, /*read_to_end=*/false)[0]);
  std::vector<std::string> names;
  std::string line;
  auto flush = [&] {
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (!line.empty()) names.push_back(std::move(line));
    line.clear();
  };
  for (uint8_t c : member.bytes) {
    if (c == '\n') {
      flush();
    } else {
      line += static_cast<char>(c);
    }
  }
  flush();
  BRIDLE_CHECK(names.size() == expected, "{}: {} has {} class names, expected {}", format.context,
               member.where, names.size(), expected);
  return names;
}

size_t cifar100_label_byte(const std::string& label) {
  BRIDLE_CHECK(label == "fine" || label == "coarse",
               "cifar100: label must be \"fine\" or \"coarse\", got \"{}\"", label);
  return label == "coarse" ? 0 : 1;
}

}  // namespace

CifarData load_cifar10(const std::string& path, const std::string& split, int64_t max_examples) {
  return load_cifar(path, split, cifar10_format(), 0, max_examples);
}

CifarData load_cifar100(const std::string& path, const std::string& split, const std::string& label,
                        int64_t max_examples) {
  return load_cifar(path, split, cifar100_format(), cifar100_label_byte(label), max_examples);
}

std::vector<std::string> cifar10_class_names(const std::string& path) {
  return class_names(path, cifar10_format(), "batches.meta.txt", 10);
}

std::vector<std::string> cifar100_class_names(const std::string& path, const std::string& label) {
  const bool coarse = cifar100_label_byte(label) == 0;
  return class_names(path, cifar100_format(),
                     coarse ? "coarse_label_names.txt" : "fine_label_names.txt", coarse ? 20 : 100);
}

bool has_cifar10(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return true;
  if (!fs::is_directory(path, ec)) return false;
  const CifarFormat& format = cifar10_format();
  const std::string folder = data_folder(path, format);
  for (const auto* files : {&format.train_files, &format.test_files})
    for (const std::string& name : *files)
      if (!fs::is_regular_file(fs::path(folder) / name, ec)) return false;
  return true;
}

}  // namespace bridle
