// How the CUDA row kernels (softmax, log_softmax, cross-entropy) split a long
// row across several blocks when there are too few rows to fill the GPU.
//
// A block per row suits [4096 x 50000]: 4096 blocks keep every multiprocessor
// busy. [64 x 50000] would put 64 blocks on an H200's 132 multiprocessors, half
// of them idle, and each row's block would stream 200 KB alone. Split, each row
// is read by `chunks` blocks: a first kernel reduces each chunk to a partial
// result (max and sum, or a dot product), a second combines a row's partials, in
// a fixed order so every block of the row sees the same value, and writes its
// chunk. The price is the second launch and a few hundred bytes of partials.
//
// Plain C++ (no CUDA headers), so the CPU tests check the rule.
#pragma once

#include <algorithm>
#include <cstdint>

namespace bridle::cuda {

// The split kernels' block size, and how many such blocks a multiprocessor
// holds at once (4 x 512 = 2048 threads, the most an SM of Hopper or Ampere runs).
constexpr int kSplitRowThreads = 512;
constexpr int64_t kSplitBlocksPerMultiprocessor = 4;
// A chunk has at least this many elements, two float4 per thread: below that the
// partials' combining costs more than the parallelism gains.
constexpr int64_t kMinChunkElements = 2 * 4 * kSplitRowThreads;
constexpr int64_t kMaxChunks = 256;

struct RowSplit {
  int64_t chunks = 1;     // blocks per row; 1: no split (the one-block kernels)
  int64_t chunk_len = 0;  // elements of each chunk, a multiple of 4 (float4 starts)
                          // except when chunks is 1; the last chunk may be shorter
};

// The split for `rows` rows of n elements on a GPU with `multiprocessors` SMs:
// enough chunks per row to fill the GPU once, none shorter than kMinChunkElements.
inline RowSplit split_long_rows(int64_t rows, int64_t n, int multiprocessors) {
  const int64_t blocks_to_fill = kSplitBlocksPerMultiprocessor * std::max(multiprocessors, 1);
  const int64_t chunks =
      std::min({blocks_to_fill / std::max<int64_t>(rows, 1), n / kMinChunkElements, kMaxChunks});
  if (chunks < 2) return {1, n};
  const int64_t len = ((n + chunks - 1) / chunks + 3) / 4 * 4;
  return {(n + len - 1) / len, len};  // rounding len up may leave fewer chunks
}

}  // namespace bridle::cuda
