// ByteReader: plain and gzip files as one byte stream; see byte_reader.h.
#include "data/byte_reader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace bridle {
namespace {

constexpr size_t kChunkBytes = size_t{16} << 20;

}  // namespace

ByteReader::ByteReader(const std::string& path, std::string_view context)
    : path_(path), context_(context) {
  file_ = std::fopen(path.c_str(), "rb");
  BRIDLE_CHECK(file_ != nullptr, "{}: cannot open {}: {}", context_, path_, std::strerror(errno));
  uint8_t magic[2] = {0, 0};
  size_t n = std::fread(magic, 1, 2, file_);
  gzip_ = n == 2 && magic[0] == 0x1F && magic[1] == 0x8B;
  if (gzip_) {
    std::fclose(file_);
    file_ = nullptr;
    gz_ = gzopen(path.c_str(), "rb");
    BRIDLE_CHECK(gz_ != nullptr, "{}: cannot open {} as gzip: {}", context_, path_,
                 std::strerror(errno));
    gzbuffer(gz_, 1 << 18);
  } else {
    std::rewind(file_);
  }
}

ByteReader::~ByteReader() {
  if (file_ != nullptr) std::fclose(file_);
  if (gz_ != nullptr) gzclose(gz_);
}

const char* ByteReader::contents() const {
  if (!gzip_) return "";
  return cut_off_ ? " of its decompressed contents (the gzip stream is cut off)"
                  : " of its decompressed contents";
}

size_t ByteReader::read(void* dst, size_t n) {
  size_t total = 0;
  auto* out = static_cast<uint8_t*>(dst);
  while (total < n) {
    size_t want = std::min(n - total, kChunkBytes);
    size_t got = gzip_ ? read_gzip(out + total, want) : read_plain(out + total, want);
    total += got;
    offset_ += got;
    if (got < want) break;
  }
  return total;
}

uint64_t ByteReader::skip(uint64_t n) {
  // Compressed data has to be decompressed anyway (and checked on the way), so
  // skipping is reading into a scratch buffer.
  std::vector<uint8_t> scratch(static_cast<size_t>(std::min<uint64_t>(n, 1 << 20)));
  uint64_t done = 0;
  while (done < n) {
    const auto want = static_cast<size_t>(std::min<uint64_t>(n - done, scratch.size()));
    const size_t got = read(scratch.data(), want);
    done += got;
    if (got < want) break;
  }
  return done;
}

size_t ByteReader::read_plain(uint8_t* dst, size_t n) {
  size_t got = std::fread(dst, 1, n, file_);
  BRIDLE_CHECK(got == n || !std::ferror(file_), "{}: error reading {} at byte {}: {}", context_,
               path_, offset_ + got, std::strerror(errno));
  return got;
}

size_t ByteReader::read_gzip(uint8_t* dst, size_t n) {
  int got = gzread(gz_, dst, static_cast<unsigned>(n));
  int errnum = Z_OK;
  const char* message = gzerror(gz_, &errnum);
  // zlib reports bad compressed data or a wrong CRC as Z_DATA_ERROR, and a
  // stream that stops mid-way (an interrupted download) as Z_BUF_ERROR: that
  // one is a short read, so the caller can say where the contents end.
  uint64_t at = offset_ + static_cast<uint64_t>(std::max(got, 0));
  if (errnum == Z_BUF_ERROR) {
    cut_off_ = true;
    return static_cast<size_t>(std::max(got, 0));
  }
  BRIDLE_CHECK(got >= 0 && errnum == Z_OK,
               "{}: {} is a corrupt gzip file: decompression failed after {} bytes of data "
               "(zlib: {})",
               context_, path_, at, message);
  return static_cast<size_t>(got);
}

}  // namespace bridle
