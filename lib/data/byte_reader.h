// ByteReader: a plain or gzip file read as one stream of bytes.
//
// A file is read as gzip when it starts with the gzip magic bytes 1f 8b, whatever
// its name. Corrupt compressed data throws a bridle::Error naming the file; a gzip
// stream that stops mid-way (an interrupted download) reads as a short read, and
// cut_off() says so, so that the caller can report where its contents end. The
// IDX reader (idx.cpp) and the CIFAR reader (cifar.cpp, which streams .tar.gz
// archives through it) share it, so every length error counts offsets in the
// decompressed contents.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace bridle {

class ByteReader {
 public:
  // Opens path; `context` (e.g. "mnist") starts every error message.
  ByteReader(const std::string& path, std::string_view context);
  ~ByteReader();
  ByteReader(const ByteReader&) = delete;
  ByteReader& operator=(const ByteReader&) = delete;

  // Reads up to n bytes into dst; fewer only at the end of the contents.
  size_t read(void* dst, size_t n);
  // Reads and drops up to n bytes; returns how many there were.
  uint64_t skip(uint64_t n);

  bool gzip() const { return gzip_; }
  bool cut_off() const { return cut_off_; }    // the gzip stream stopped before its end
  uint64_t offset() const { return offset_; }  // bytes of (decompressed) contents read so far
  // How the contents of the file are counted, for the length errors: "" for a
  // plain file, " of its decompressed contents" (and whether the gzip stream is
  // cut off) for a gzip one.
  const char* contents() const;

 private:
  size_t read_plain(uint8_t* dst, size_t n);
  size_t read_gzip(uint8_t* dst, size_t n);

  std::string path_;
  std::string_view context_;
  FILE* file_ = nullptr;
  gzFile gz_ = nullptr;
  bool gzip_ = false;
  bool cut_off_ = false;
  uint64_t offset_ = 0;
};

}  // namespace bridle
