// IDX files: the format MNIST, Fashion-MNIST and EMNIST ship in.
//
// An IDX file is a 4-byte big-endian magic number 0x0000TTDD (TT the element
// type, DD the number of dimensions), DD big-endian uint32 sizes, then the
// elements row-major. Images are 0x00000803 ([N, rows, cols] unsigned bytes),
// labels 0x00000801 ([N]). Files may be gzipped; a file is read as gzip when it
// starts with the gzip magic bytes 1f 8b, whatever its name. Only unsigned-byte
// elements (TT = 0x08) are supported. mnist.h builds tensors on top of this.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bridle {

inline constexpr uint32_t kIdxImagesMagic = 0x00000803;  // ubyte, 3 dims
inline constexpr uint32_t kIdxLabelsMagic = 0x00000801;  // ubyte, 1 dim

// The contents of an IDX file: its sizes and product(dims) bytes, row-major.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

// Reads an IDX file (plain or gzip) and checks it: the magic number equals
// expected_magic, and the data is exactly product(dims) bytes, no fewer (a
// truncated file) and no more (trailing garbage). Errors are bridle::Error
// messages that start with `context` (e.g. "mnist") and name the file and, for a
// wrong length, the byte offset where the data ends.
IdxArray read_idx(const std::string& path, uint32_t expected_magic,
                  std::string_view context = "idx");

// Writes an unsigned-byte IDX file; gzip-compressed when `gzip` is set. For
// tests and for making small datasets; the magic is 0x0800 | dims.size().
void write_idx(const std::string& path, const IdxArray& array, bool gzip);

}  // namespace bridle
