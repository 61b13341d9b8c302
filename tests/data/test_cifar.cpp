// CIFAR-10 and CIFAR-100 loading: synthetic batch files written by the test,
// read from their folder, its parent, a .tar and a .tar.gz (tar headers made
// here, in the POSIX and the GNU flavour); pixels, labels and the order of the
// batches; every way the files can be wrong (truncated, bad label, missing file,
// corrupt or cut-off gzip, bad tar header), each checked for an error naming the
// file and the offset. Ends with the real CIFAR-10 archive when there is one
// (../shared/datasets/ beside the repository, or data/cifar10 from
// datasets/fetch.sh), skipped otherwise.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <numeric>

#include "data/cifar.h"
#include "data_test_util.h"

namespace bridle {
namespace {

namespace fs = std::filesystem;
using testing::error_message;
using testing::read_bytes;
using testing::ScratchDir;
using testing::write_bytes;
using testing::write_gzip_bytes;

constexpr int64_t kPixels = 3072;

// Pixel p (0..3071: channel, row, column) of example `global` (its index in
// the split): a hash of the two, so that pixels differ between examples and
// positions and the data does not compress away (a cut gzip stream is then cut
// in the middle of the data).
uint8_t pixel(int64_t global, int64_t p) {
  auto h = static_cast<uint32_t>(global * kPixels + p) * 2654435761u;
  h ^= h >> 15;
  h *= 2246822519u;
  h ^= h >> 13;
  return static_cast<uint8_t>(h >> 24);
}

// The label of example `global`: CIFAR-10 uses fine % 10.
uint8_t fine_label(int64_t global) { return static_cast<uint8_t>((global * 7 + 3) % 100); }
uint8_t coarse_label(int64_t global) { return static_cast<uint8_t>(fine_label(global) / 5); }

// Records [first, first + n) of a split: labels (1 or 2 bytes), then pixels.
std::vector<uint8_t> records(int64_t first, int64_t n, bool cifar100 = false) {
  std::vector<uint8_t> out;
  for (int64_t g = first; g < first + n; ++g) {
    if (cifar100) {
      out.push_back(coarse_label(g));
      out.push_back(fine_label(g));
    } else {
      out.push_back(static_cast<uint8_t>(fine_label(g) % 10));
    }
    for (int64_t p = 0; p < kPixels; ++p) out.push_back(pixel(g, p));
  }
  return out;
}

const std::vector<std::string> kClassNames = {"airplane", "automobile", "bird",  "cat",  "deer",
                                              "dog",      "frog",       "horse", "ship", "truck"};

// The files of a small CIFAR-10: batches of 3, 2, 2, 2, 1 records (10 in all)
// and a test batch of 4, with batches.meta.txt as the official one has it
// (a trailing empty line).
std::vector<std::pair<std::string, std::vector<uint8_t>>> cifar10_files() {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> files;
  const int64_t sizes[] = {3, 2, 2, 2, 1};
  int64_t first = 0;
  for (int k = 0; k < 5; ++k) {
    files.push_back({"data_batch_" + std::to_string(k + 1) + ".bin", records(first, sizes[k])});
    first += sizes[k];
  }
  files.push_back({"test_batch.bin", records(100, 4)});
  std::string meta;
  for (const std::string& name : kClassNames) meta += name + "\n";
  meta += "\n";
  files.push_back({"batches.meta.txt", std::vector<uint8_t>(meta.begin(), meta.end())});
  return files;
}

// A folder dir/cifar-10-batches-bin holding the files; returns its path.
std::string write_cifar10_folder(const ScratchDir& dir) {
  const std::string folder = dir.file("cifar-10-batches-bin");
  fs::create_directories(folder);
  for (const auto& [name, bytes] : cifar10_files()) write_bytes(folder + "/" + name, bytes);
  return folder;
}

// ---------------------------------------------------------------------------
// A tar writer, as small as the format allows: one 512-byte header per file
// (name, mode, size and mtime in octal, checksum, type, magic), the data padded
// to 512 bytes, two zero blocks at the end.

struct TarEntry {
  std::string name;
  std::vector<uint8_t> data;
  char type = '0';
  std::string prefix = "";  // POSIX ustar's name prefix (bytes 345..499)
};

enum class TarFlavour { kPosix, kGnu };

std::array<uint8_t, 512> tar_header(const TarEntry& e, TarFlavour flavour) {
  std::array<uint8_t, 512> h{};
  auto put = [&](size_t at, const std::string& s) {
    std::memcpy(h.data() + at, s.data(), s.size());
  };
  put(0, e.name.substr(0, 100));
  put(100, "0000644");
  put(108, "0000000");
  put(116, "0000000");
  char size[16];
  std::snprintf(size, sizeof size, "%011llo", static_cast<unsigned long long>(e.data.size()));
  put(124, size);
  put(136, "14712345670");
  h[156] = static_cast<uint8_t>(e.type);
  if (flavour == TarFlavour::kPosix) {
    put(257, std::string("ustar\0"
                         "00",
                         8));
    put(345, e.prefix);
  } else {
    put(257, std::string("ustar  \0", 8));
  }
  unsigned sum = 0;
  for (size_t i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? ' ' : h[i];
  char chk[8];
  std::snprintf(chk, sizeof chk, "%06o", sum);
  put(148, std::string(chk, 7));  // six digits, NUL, then the space already summed
  h[155] = ' ';
  return h;
}

std::vector<uint8_t> make_tar(const std::vector<TarEntry>& entries,
                              TarFlavour flavour = TarFlavour::kPosix) {
  std::vector<uint8_t> out;
  for (const TarEntry& e : entries) {
    auto h = tar_header(e, flavour);
    out.insert(out.end(), h.begin(), h.end());
    out.insert(out.end(), e.data.begin(), e.data.end());
    out.resize((out.size() + 511) / 512 * 512, 0);
  }
  out.resize(out.size() + 1024, 0);
  return out;
}

// The CIFAR-10 files as an archive in the official layout, in a shuffled
// member order as in the real one (data_batch_4 comes first there).
std::vector<TarEntry> cifar10_entries() {
  std::vector<TarEntry> entries = {{"cifar-10-batches-bin/", {}, '5'}};
  auto files = cifar10_files();
  for (int i : {3, 6, 1, 0, 5, 4, 2})
    entries.push_back({"cifar-10-batches-bin/" + files[i].first, files[i].second});
  return entries;
}

// Checks images/labels against examples [first, first + n) of a CIFAR-10 split.
void expect_cifar10_examples(const CifarData& data, int64_t first, int64_t n) {
  ASSERT_EQ(data.images.shape(), (Shape{n, 3, 32, 32}));
  ASSERT_EQ(data.labels.shape(), (Shape{n}));
  const float* x = data.images.data<float>();
  const int64_t* y = data.labels.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(y[i], fine_label(first + i) % 10) << "example " << i;
    for (int64_t p = 0; p < kPixels; ++p)
      ASSERT_EQ(x[i * kPixels + p], static_cast<float>(pixel(first + i, p)) / 255.0f)
          << "example " << i << " pixel " << p;
  }
}

TEST(Cifar10, LoadsFolderParentAndArchives) {
  ScratchDir dir;
  const std::string folder = write_cifar10_folder(dir);
  const std::vector<uint8_t> tar = make_tar(cifar10_entries());
  write_bytes(dir.file("cifar-10-binary.tar"), tar);
  write_gzip_bytes(dir.file("cifar-10-binary.tar.gz"), tar);
  write_bytes(dir.file("gnu.tar"), make_tar(cifar10_entries(), TarFlavour::kGnu));

  for (const std::string& path : {folder, dir.str(), dir.file("cifar-10-binary.tar"),
                                  dir.file("cifar-10-binary.tar.gz"), dir.file("gnu.tar")}) {
    SCOPED_TRACE(path);
    CifarData train = load_cifar10(path, "train");
    expect_cifar10_examples(train, 0, 10);  // data_batch_1 .. 5, in that order
    CifarData test = load_cifar10(path, "test");
    expect_cifar10_examples(test, 100, 4);
    EXPECT_EQ(cifar10_class_names(path), kClassNames);
    EXPECT_TRUE(has_cifar10(path));
  }
  // The real pixel layout: byte 1 + c*1024 + y*32 + x is channel c, row y, column x.
  CifarData train = load_cifar10(folder, "train");
  EXPECT_FLOAT_EQ(static_cast<float>(train.images.at({1, 2, 5, 7})),
                  static_cast<float>(pixel(1, 2 * 1024 + 5 * 32 + 7)) / 255.0f);
}

TEST(Cifar10, MaxExamplesKeepsTheFirst) {
  ScratchDir dir;
  write_cifar10_folder(dir);
  expect_cifar10_examples(load_cifar10(dir.str(), "train", 4), 0, 4);  // crosses into batch 2
  expect_cifar10_examples(load_cifar10(dir.str(), "train", 0), 0, 0);
  expect_cifar10_examples(load_cifar10(dir.str(), "test", 99), 100, 4);
}

TEST(Cifar10, MemberNameVariants) {
  // "./folder/name", the POSIX prefix field, a GNU long name and a pax path all
  // name the same member; files at the top of the archive are accepted too.
  auto files = cifar10_files();
  std::vector<TarEntry> entries;
  entries.push_back({"./cifar-10-batches-bin/" + files[0].first, files[0].second});
  entries.push_back({files[1].first, files[1].second, '0', "cifar-10-batches-bin"});
  const std::string long_name = "cifar-10-batches-bin/" + files[2].first;
  entries.push_back(
      {"././@LongLink", std::vector<uint8_t>(long_name.begin(), long_name.end()), 'L'});
  entries.push_back({"truncated-name", files[2].second});
  std::string pax = "cifar-10-batches-bin/" + files[3].first;
  std::string record = " path=" + pax + "\n";
  record = std::to_string(record.size() + 2) + record;  // the length counts itself (2 digits)
  entries.push_back({"PaxHeaders/x", std::vector<uint8_t>(record.begin(), record.end()), 'x'});
  entries.push_back({"other-name", files[3].second});
  entries.push_back({files[4].first, files[4].second});
  entries.push_back({"cifar-10-batches-bin/" + files[5].first, files[5].second});
  ScratchDir dir;
  write_bytes(dir.file("a.tar"), make_tar(entries));
  expect_cifar10_examples(load_cifar10(dir.file("a.tar"), "train"), 0, 10);
  expect_cifar10_examples(load_cifar10(dir.file("a.tar"), "test"), 100, 4);
}

TEST(Cifar10, TruncatedFileNamesRecordAndOffset) {
  ScratchDir dir;
  const std::string folder = write_cifar10_folder(dir);
  std::vector<uint8_t> bytes = records(3, 2);
  bytes.resize(5000);
  write_bytes(folder + "/data_batch_2.bin", bytes);
  std::string msg = error_message([&] { load_cifar10(dir.str(), "train"); });
  EXPECT_CONTAINS(msg, "cifar10: " + folder + "/data_batch_2.bin is truncated");
  EXPECT_CONTAINS(msg, "5000 bytes are not a whole number of 3073-byte records");
  EXPECT_CONTAINS(msg,
                  "record 1 starts at byte 3073 and should end at byte 6146, but the file "
                  "ends at byte 5000");

  // The same file inside an archive is named by archive and member.
  auto entries = cifar10_entries();
  entries[3].data.resize(3073 * 2 + 10);  // data_batch_2
  write_bytes(dir.file("t.tar"), make_tar(entries));
  msg = error_message([&] { load_cifar10(dir.file("t.tar"), "train"); });
  EXPECT_CONTAINS(msg, dir.file("t.tar") + ":cifar-10-batches-bin/data_batch_2.bin is truncated");
  EXPECT_CONTAINS(msg, "record 2 starts at byte 6146");

  write_bytes(folder + "/data_batch_2.bin", {});
  EXPECT_CONTAINS(error_message([&] { load_cifar10(dir.str(), "train"); }),
                  folder + "/data_batch_2.bin is empty");
}

TEST(Cifar10, LabelOutOfRange) {
  ScratchDir dir;
  const std::string folder = write_cifar10_folder(dir);
  std::vector<uint8_t> bytes = records(100, 4);
  bytes[2 * 3073] = 10;
  write_bytes(folder + "/test_batch.bin", bytes);
  std::string msg = error_message([&] { load_cifar10(folder, "test"); });
  EXPECT_CONTAINS(msg, folder + "/test_batch.bin: record 2 (byte 6146) has label 10, outside 0..9");
}

TEST(Cifar10, MissingFilesSayHowToFetch) {
  ScratchDir dir;
  const std::string folder = write_cifar10_folder(dir);
  fs::remove(folder + "/data_batch_3.bin");
  fs::remove(folder + "/data_batch_5.bin");
  std::string msg = error_message([&] { load_cifar10(dir.str(), "train"); });
  EXPECT_CONTAINS(msg, folder + " has no data_batch_3.bin, data_batch_5.bin");
  EXPECT_CONTAINS(msg, "datasets/fetch.sh cifar10");
  EXPECT_FALSE(has_cifar10(dir.str()));
  load_cifar10(dir.str(), "test");  // the test split is complete

  ScratchDir empty;
  msg = error_message([&] { load_cifar10(empty.str(), "test"); });
  EXPECT_CONTAINS(msg, empty.str() + " has no test_batch.bin (nor a cifar-10-batches-bin/ folder)");

  msg = error_message([&] { load_cifar10(empty.file("nope"), "train"); });
  EXPECT_CONTAINS(msg, empty.file("nope") + " does not exist");
  EXPECT_FALSE(has_cifar10(empty.file("nope")));

  // An archive without the test batch names what it does hold.
  auto entries = cifar10_entries();
  entries.erase(entries.begin() + 5);  // test_batch.bin
  write_bytes(empty.file("a.tar"), make_tar(entries));
  load_cifar10(empty.file("a.tar"), "train");
  msg = error_message([&] { load_cifar10(empty.file("a.tar"), "test"); });
  EXPECT_CONTAINS(msg, "the archive " + empty.file("a.tar") +
                           " has no cifar-10-batches-bin/test_batch.bin; it holds: "
                           "cifar-10-batches-bin/, cifar-10-batches-bin/data_batch_4.bin, ");

  EXPECT_CONTAINS(error_message([&] { load_cifar10(dir.str(), "valid"); }),
                  "split must be \"train\" or \"test\", got \"valid\"");
}

TEST(Cifar10, CorruptGzip) {
  ScratchDir dir;
  write_gzip_bytes(dir.file("a.tar.gz"), make_tar(cifar10_entries()));
  std::vector<uint8_t> gz = read_bytes(dir.file("a.tar.gz"));
  ASSERT_GT(gz.size(), 2000u);

  // Damaged compressed data.
  std::vector<uint8_t> bad = gz;
  for (size_t i = bad.size() / 2; i < bad.size() / 2 + 64; ++i) bad[i] ^= 0x5A;
  write_bytes(dir.file("bad.tar.gz"), bad);
  std::string msg = error_message([&] { load_cifar10(dir.file("bad.tar.gz"), "train"); });
  EXPECT_CONTAINS(msg, "cifar10: " + dir.file("bad.tar.gz") + " is a corrupt gzip file");

  // A wrong CRC: the data is intact, only the trailer is wrong. The whole
  // archive is read, so this shows even though the members read fine.
  bad = gz;
  bad[bad.size() - 6] ^= 0xFF;
  write_bytes(dir.file("crc.tar.gz"), bad);
  msg = error_message([&] { load_cifar10(dir.file("crc.tar.gz"), "train"); });
  EXPECT_CONTAINS(msg, dir.file("crc.tar.gz") + " is a corrupt gzip file");

  // Cut off in the middle (an interrupted download).
  bad.assign(gz.begin(), gz.begin() + static_cast<ptrdiff_t>(gz.size() / 2));
  write_bytes(dir.file("cut.tar.gz"), bad);
  msg = error_message([&] { load_cifar10(dir.file("cut.tar.gz"), "train"); });
  EXPECT_CONTAINS(msg, dir.file("cut.tar.gz") + " is a truncated archive: it ends at byte ");
  EXPECT_CONTAINS(msg, "of its decompressed contents (the gzip stream is cut off), inside ");

  // Only the trailer missing: every member is complete, the stream is not.
  bad.assign(gz.begin(), gz.end() - 4);
  write_bytes(dir.file("trailer.tar.gz"), bad);
  msg = error_message([&] { load_cifar10(dir.file("trailer.tar.gz"), "test"); });
  EXPECT_CONTAINS(msg, dir.file("trailer.tar.gz") + " is a truncated archive");
}

TEST(Cifar10, CorruptTar) {
  ScratchDir dir;
  std::vector<uint8_t> tar = make_tar(cifar10_entries());

  // A damaged header: the second one (at byte 512, data_batch_4.bin's).
  std::vector<uint8_t> bad = tar;
  bad[512 + 20] ^= 0x01;
  write_bytes(dir.file("hdr.tar"), bad);
  std::string msg = error_message([&] { load_cifar10(dir.file("hdr.tar"), "train"); });
  EXPECT_CONTAINS(msg, "cifar10: " + dir.file("hdr.tar") +
                           " is a corrupt archive: the tar header "
                           "at byte 512 has checksum");
  write_gzip_bytes(dir.file("hdr.tar.gz"), bad);
  msg = error_message([&] { load_cifar10(dir.file("hdr.tar.gz"), "train"); });
  EXPECT_CONTAINS(msg, "the tar header at byte 512 of its decompressed contents has checksum");

  // Cut inside a member.
  bad.assign(tar.begin(), tar.begin() + 1024 + 5000);
  write_bytes(dir.file("cut.tar"), bad);
  msg = error_message([&] { load_cifar10(dir.file("cut.tar"), "train"); });
  EXPECT_CONTAINS(msg, dir.file("cut.tar") +
                           " is a truncated archive: it ends at byte 6024, "
                           "inside cifar-10-batches-bin/data_batch_4.bin (bytes 1024 to 7170)");

  // Cut inside a header.
  bad.assign(tar.begin(), tar.begin() + 700);
  write_bytes(dir.file("cut2.tar"), bad);
  msg = error_message([&] { load_cifar10(dir.file("cut2.tar"), "train"); });
  EXPECT_CONTAINS(msg, "ends at byte 700, inside the tar header at byte 512");

  // Not a tar at all: a gzipped HTML page, a random file.
  const std::string html = "<html><body>404 Not Found</body></html>";
  write_gzip_bytes(dir.file("page.tar.gz"), std::vector<uint8_t>(html.begin(), html.end()));
  msg = error_message([&] { load_cifar10(dir.file("page.tar.gz"), "train"); });
  EXPECT_CONTAINS(msg, dir.file("page.tar.gz") + " is not a tar archive inside gzip");
  EXPECT_CONTAINS(msg, "HTML");
  write_bytes(dir.file("random.bin"), std::vector<uint8_t>(4096, 0x42));
  msg = error_message([&] { load_cifar10(dir.file("random.bin"), "train"); });
  EXPECT_CONTAINS(msg, dir.file("random.bin") + " is not a tar archive: its first 512 bytes");

  // An implausible size field (a corrupt header whose checksum still adds up).
  std::vector<TarEntry> entries = {{"cifar-10-batches-bin/test_batch.bin", records(0, 1)}};
  bad = make_tar(entries);
  std::memcpy(bad.data() + 124, "7777777777x", 11);  // not octal: checksum redone below
  unsigned sum = 0;
  for (size_t i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? ' ' : bad[i];
  std::snprintf(reinterpret_cast<char*>(bad.data() + 148), 8, "%06o", sum);
  write_bytes(dir.file("size.tar"), bad);
  msg = error_message([&] { load_cifar10(dir.file("size.tar"), "test"); });
  EXPECT_CONTAINS(msg, "the tar header at byte 0 has an implausible size field \"7777777777x\"");
}

TEST(Cifar10, ClassNamesErrors) {
  ScratchDir dir;
  const std::string folder = write_cifar10_folder(dir);
  // Windows line ends and missing trailing newline are fine.
  const std::string crlf = "a\r\nb\r\nc\r\nd\r\ne\r\nf\r\ng\r\nh\r\ni\r\nj";
  write_bytes(folder + "/batches.meta.txt", std::vector<uint8_t>(crlf.begin(), crlf.end()));
  EXPECT_EQ(cifar10_class_names(dir.str()),
            (std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}));
  const std::string nine = "a\nb\nc\nd\ne\nf\ng\nh\ni\n";
  write_bytes(folder + "/batches.meta.txt", std::vector<uint8_t>(nine.begin(), nine.end()));
  EXPECT_CONTAINS(error_message([&] { cifar10_class_names(dir.str()); }),
                  folder + "/batches.meta.txt has 9 class names, expected 10");
}

// CIFAR-100: 2 label bytes, one train.bin and one test.bin.
TEST(Cifar100, FineAndCoarseLabels) {
  ScratchDir dir;
  const std::string folder = dir.file("cifar-100-binary");
  fs::create_directories(folder);
  write_bytes(folder + "/train.bin", records(0, 7, /*cifar100=*/true));
  write_bytes(folder + "/test.bin", records(50, 3, /*cifar100=*/true));
  std::string fine, coarse;
  for (int i = 0; i < 100; ++i) fine += "fine" + std::to_string(i) + "\n";
  for (int i = 0; i < 20; ++i) coarse += "coarse" + std::to_string(i) + "\n";
  write_bytes(folder + "/fine_label_names.txt", std::vector<uint8_t>(fine.begin(), fine.end()));
  write_bytes(folder + "/coarse_label_names.txt",
              std::vector<uint8_t>(coarse.begin(), coarse.end()));
  std::vector<TarEntry> entries;
  for (const char* name :
       {"test.bin", "train.bin", "fine_label_names.txt", "coarse_label_names.txt"})
    entries.push_back({std::string("cifar-100-binary/") + name, read_bytes(folder + "/" + name)});
  write_gzip_bytes(dir.file("cifar-100-binary.tar.gz"), make_tar(entries));

  for (const std::string& path : {folder, dir.str(), dir.file("cifar-100-binary.tar.gz")}) {
    SCOPED_TRACE(path);
    CifarData train = load_cifar100(path, "train");  // fine by default
    ASSERT_EQ(train.images.shape(), (Shape{7, 3, 32, 32}));
    CifarData coarse_train = load_cifar100(path, "train", "coarse");
    CifarData test = load_cifar100(path, "test", "fine", 2);
    ASSERT_EQ(test.labels.shape(), (Shape{2}));
    for (int64_t i = 0; i < 7; ++i) {
      EXPECT_EQ(train.labels.data<int64_t>()[i], fine_label(i));
      EXPECT_EQ(coarse_train.labels.data<int64_t>()[i], coarse_label(i));
      EXPECT_EQ(train.images.at({i, 1, 2, 3}),
                static_cast<float>(pixel(i, 1024 + 2 * 32 + 3)) / 255.0f);
    }
    EXPECT_EQ(test.labels.data<int64_t>()[1], fine_label(51));
    EXPECT_EQ(test.images.at({1, 0, 0, 0}), static_cast<float>(pixel(51, 0)) / 255.0f);
    EXPECT_EQ(cifar100_class_names(path).at(42), "fine42");
    EXPECT_EQ(cifar100_class_names(path, "coarse").size(), 20u);
  }

  // Both labels are checked, whichever is asked for.
  std::vector<uint8_t> bytes = records(0, 7, true);
  bytes[3 * 3074] = 20;  // coarse label of record 3
  write_bytes(folder + "/train.bin", bytes);
  std::string msg = error_message([&] { load_cifar100(folder, "train", "fine"); });
  EXPECT_CONTAINS(msg,
                  folder + "/train.bin: record 3 (byte 9222) has coarse label 20, outside 0..19");
  bytes = records(0, 7, true);
  bytes[3074 + 1] = 100;  // fine label of record 1
  write_bytes(folder + "/train.bin", bytes);
  msg = error_message([&] { load_cifar100(folder, "train", "coarse"); });
  EXPECT_CONTAINS(msg, "record 1 (byte 3075) has fine label 100, outside 0..99");
  bytes.resize(3074 * 2 + 3073);  // a CIFAR-10-sized record at the end
  write_bytes(folder + "/train.bin", bytes);
  msg = error_message([&] { load_cifar100(folder, "train"); });
  EXPECT_CONTAINS(msg, "not a whole number of 3074-byte records (2 label bytes + 3072 pixels)");

  EXPECT_CONTAINS(error_message([&] { load_cifar100(folder, "train", "medium"); }),
                  "label must be \"fine\" or \"coarse\", got \"medium\"");
  EXPECT_CONTAINS(error_message([&] { load_cifar100(dir.file("x"), "train"); }),
                  "cifar100: " + dir.file("x") + " does not exist");
}

// ---------------------------------------------------------------------------
// The real data, when this machine has it.

std::string real_cifar10() {
  const fs::path root = fs::path(BRIDLE_FIXTURES_DIR).parent_path().parent_path();
  for (const fs::path& candidate :
       {root / "data" / "cifar10", root / ".." / "shared" / "datasets" / "cifar-10-binary.tar.gz"})
    if (has_cifar10(candidate.string())) return candidate.lexically_normal().string();
  return "";
}

// Facts true of every copy of CIFAR-10 (the official archive and rebuilt ones
// alike): sizes, a balanced training set, the class order, plausible pixels.
TEST(Cifar10, RealData) {
  const std::string path = real_cifar10();
  if (path.empty())
    GTEST_SKIP() << "no CIFAR-10 here: neither data/cifar10 (datasets/fetch.sh cifar10) nor "
                    "../shared/datasets/cifar-10-binary.tar.gz beside the repository";
  SCOPED_TRACE(path);
  EXPECT_EQ(cifar10_class_names(path), kClassNames);
  CifarData train = load_cifar10(path, "train");
  ASSERT_EQ(train.images.shape(), (Shape{50000, 3, 32, 32}));
  std::array<int64_t, 10> counts{};
  for (int64_t label : train.labels.to_int_vector()) ++counts.at(static_cast<size_t>(label));
  for (int c = 0; c < 10; ++c) EXPECT_EQ(counts[c], 5000) << kClassNames[c];

  // Channel means near the published ones, so the planes are R, G, B in order.
  const float* x = train.images.data<float>();
  for (int64_t c = 0; c < 3; ++c) {
    double sum = 0;
    for (int64_t i = 0; i < 50000; ++i)
      for (int64_t p = 0; p < 1024; ++p) sum += x[i * kPixels + c * 1024 + p];
    EXPECT_NEAR(sum / (50000.0 * 1024), kCifar10Mean[c], 0.005) << "channel " << c;
  }

  CifarData test = load_cifar10(path, "test");
  ASSERT_EQ(test.images.shape(), (Shape{10000, 3, 32, 32}));
  counts.fill(0);
  for (int64_t label : test.labels.to_int_vector()) ++counts.at(static_cast<size_t>(label));
  for (int c = 0; c < 10; ++c) EXPECT_EQ(counts[c], 1000) << kClassNames[c];
}

}  // namespace
}  // namespace bridle
