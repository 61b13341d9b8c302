// IDX reading and writing; see idx.h for the format.
//
// The file is streamed once: the header first, then exactly the number of data
// bytes it announces, then a probe for anything after them. Plain and gzip files
// go through the same ByteReader (byte_reader.h), so every length check reports
// offsets in the (decompressed) IDX contents, which is what the header's sizes
// refer to.
#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "data/byte_reader.h"

namespace bridle {
namespace {

// More than this is not an image dataset but a corrupt header; refusing it
// early beats trying to allocate terabytes.
constexpr int64_t kMaxIdxBytes = int64_t{1} << 40;
constexpr size_t kChunkBytes = size_t{16} << 20;

std::string dims_str(const std::vector<int64_t>& dims) {
  std::string s;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) s += 'x';
    s += std::to_string(dims[i]);
  }
  return s;
}

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

void write_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

const char* idx_type_name(uint32_t type_code) {
  switch (type_code) {
    case 0x08:
      return "unsigned bytes";
    case 0x09:
      return "signed bytes";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return nullptr;
  }
}

// "unsigned bytes, 3 dims", or why the number is not an IDX magic number at all.
std::string describe_magic(uint32_t magic, const uint8_t* bytes) {
  const char* type = idx_type_name((magic >> 8) & 0xFF);
  if ((magic >> 16) == 0 && type != nullptr)
    return fmt::format("{}, {} dim{}", type, magic & 0xFF, (magic & 0xFF) == 1 ? "" : "s");
  if (bytes[0] == 0x1F && bytes[1] == 0x8B) return "a gzip file inside the gzip file";
  if (std::all_of(bytes, bytes + 4, [](uint8_t c) { return c >= 0x20 && c < 0x7F; })) {
    std::string text(reinterpret_cast<const char*>(bytes), 4);
    return fmt::format(
        "not an IDX file: it starts with the text \"{}\"{}", text,
        bytes[0] == '<' ? ", perhaps an HTML error page from a failed download" : "");
  }
  return "not an IDX file";
}

}  // namespace

IdxArray read_idx(const std::string& path, uint32_t expected_magic, std::string_view context) {
  ByteReader in(path, context);

  uint8_t magic_bytes[4] = {0, 0, 0, 0};
  size_t got = in.read(magic_bytes, 4);
  BRIDLE_CHECK(got == 4, "{}: {} is truncated: it ends at byte {}{}, inside the 4-byte IDX magic",
               context, path, got, in.contents());
  uint32_t magic = read_be32(magic_bytes);
  BRIDLE_CHECK(magic == expected_magic,
               "{}: {} has magic number 0x{:08x} ({}), expected 0x{:08x} ({})", context, path,
               magic, describe_magic(magic, magic_bytes), expected_magic,
               describe_magic(expected_magic, magic_bytes));
  BRIDLE_CHECK(((magic >> 8) & 0xFF) == 0x08,
               "{}: {} holds {}; only unsigned-byte IDX files are supported", context, path,
               describe_magic(magic, magic_bytes));

  const size_t ndims = magic & 0xFF;
  const size_t header_bytes = 4 + 4 * ndims;
  std::vector<uint8_t> size_bytes(4 * ndims);
  got = in.read(size_bytes.data(), size_bytes.size());
  BRIDLE_CHECK(got == size_bytes.size(),
               "{}: {} is truncated: its header is {} bytes ({} dims), file ends at byte {}{}",
               context, path, header_bytes, ndims, 4 + got, in.contents());

  IdxArray array;
  int64_t numel = 1;
  for (size_t d = 0; d < ndims; ++d) {
    int64_t size = read_be32(&size_bytes[4 * d]);
    array.dims.push_back(size);
    // Each size is < 2^32, so the product only overflows after passing the cap.
    numel = std::min(numel * size, kMaxIdxBytes + 1);
  }
  BRIDLE_CHECK(numel <= kMaxIdxBytes, "{}: {} has implausible sizes {} in its header", context,
               path, dims_str(array.dims));

  const int64_t expected_bytes = static_cast<int64_t>(header_bytes) + numel;
  array.data.reserve(static_cast<size_t>(std::min<int64_t>(numel, int64_t{256} << 20)));
  size_t filled = 0;
  while (filled < static_cast<size_t>(numel)) {
    size_t want = std::min(static_cast<size_t>(numel) - filled, kChunkBytes);
    array.data.resize(filled + want);
    got = in.read(array.data.data() + filled, want);
    filled += got;
    BRIDLE_CHECK(got == want,
                 "{}: {} is truncated: expected {} bytes ({}-byte header + {} data), file ends "
                 "at byte {}{}",
                 context, path, expected_bytes, header_bytes, dims_str(array.dims),
                 header_bytes + filled, in.contents());
  }

  // Anything after the announced data means the header and the data disagree.
  std::vector<uint8_t> probe(1 << 16);
  uint64_t extra = 0;
  while ((got = in.read(probe.data(), probe.size())) > 0) extra += got;
  BRIDLE_CHECK(extra == 0,
               "{}: {} has {} bytes of trailing garbage: its header ({}) describes {} bytes, file "
               "ends at byte {}{}",
               context, path, extra, dims_str(array.dims), expected_bytes, expected_bytes + extra,
               in.contents());
  BRIDLE_CHECK(!in.cut_off(),
               "{}: {} is truncated: the gzip stream is cut off after all {} bytes of data "
               "(its CRC trailer is missing)",
               context, path, expected_bytes);
  return array;
}

void write_idx(const std::string& path, const IdxArray& array, bool gzip) {
  BRIDLE_CHECK(!array.dims.empty() && array.dims.size() <= 255,
               "write_idx: {}: an IDX file has 1 to 255 dims, got {}", path, array.dims.size());
  std::vector<uint8_t> header(4 + 4 * array.dims.size());
  write_be32(header.data(), 0x0800u | static_cast<uint32_t>(array.dims.size()));
  int64_t numel = 1;
  for (size_t d = 0; d < array.dims.size(); ++d) {
    int64_t size = array.dims[d];
    BRIDLE_CHECK(size >= 0 && size <= std::numeric_limits<uint32_t>::max(),
                 "write_idx: {}: size {} of dim {} does not fit an IDX header", path, size, d);
    write_be32(&header[4 + 4 * d], static_cast<uint32_t>(size));
    numel *= size;
  }
  BRIDLE_CHECK(numel == static_cast<int64_t>(array.data.size()),
               "write_idx: {}: dims {} need {} bytes, data has {}", path, dims_str(array.dims),
               numel, array.data.size());

  if (gzip) {
    gzFile gz = gzopen(path.c_str(), "wb9");
    BRIDLE_CHECK(gz != nullptr, "write_idx: cannot create {}: {}", path, std::strerror(errno));
    bool ok = gzwrite(gz, header.data(), static_cast<unsigned>(header.size())) ==
              static_cast<int>(header.size());
    for (size_t done = 0; ok && done < array.data.size(); done += kChunkBytes) {
      auto n = static_cast<unsigned>(std::min(kChunkBytes, array.data.size() - done));
      ok = gzwrite(gz, array.data.data() + done, n) == static_cast<int>(n);
    }
    ok = gzclose(gz) == Z_OK && ok;
    BRIDLE_CHECK(ok, "write_idx: error writing {}", path);
  } else {
    FILE* file = std::fopen(path.c_str(), "wb");
    BRIDLE_CHECK(file != nullptr, "write_idx: cannot create {}: {}", path, std::strerror(errno));
    bool ok = std::fwrite(header.data(), 1, header.size(), file) == header.size() &&
              std::fwrite(array.data.data(), 1, array.data.size(), file) == array.data.size();
    ok = std::fclose(file) == 0 && ok;
    BRIDLE_CHECK(ok, "write_idx: error writing {}: {}", path, std::strerror(errno));
  }
}

}  // namespace bridle
