// The rule by which the CUDA row kernels (softmax, log_softmax, cross-entropy)
// split a long row across blocks (ops/row_split.h). Plain arithmetic, checked
// here on the CPU; the kernels that follow it are checked against the CPU ops in
// tests/cuda/test_cuda_ops.cpp.
#include <gtest/gtest.h>

#include "ops/row_split.h"

namespace bridle::cuda {
namespace {

constexpr int kH200Multiprocessors = 132;

TEST(RowSplit, ManyRowsKeepABlockEach) {
  // 4096 blocks already fill the GPU many times over.
  EXPECT_EQ(split_long_rows(4096, 50000, kH200Multiprocessors).chunks, 1);
  EXPECT_EQ(split_long_rows(528, 50000, kH200Multiprocessors).chunks, 1);
}

TEST(RowSplit, FewLongRowsFillTheGpuOnce) {
  // [64 x 50000]: 528 / 64 = 8 chunks of 6250, rounded up to a float4 multiple.
  const RowSplit split = split_long_rows(64, 50000, kH200Multiprocessors);
  EXPECT_EQ(split.chunks, 8);
  EXPECT_EQ(split.chunk_len, 6252);
  // One row of a million: capped at kMaxChunks.
  const RowSplit one = split_long_rows(1, 1 << 20, kH200Multiprocessors);
  EXPECT_EQ(one.chunks, kMaxChunks);
  EXPECT_EQ(one.chunk_len, 4096);
}

TEST(RowSplit, ShortRowsAreNeverSplit) {
  // Below two chunks' worth a row stays in one block, however few the rows.
  for (int64_t n : {1, 31, 1024, 4096, 8191})
    EXPECT_EQ(split_long_rows(1, n, kH200Multiprocessors).chunks, 1) << n;
  EXPECT_EQ(split_long_rows(1, 8192, kH200Multiprocessors).chunks, 2);
}

TEST(RowSplit, TheGpuTestsShapesSplitOnAnyGpu) {
  // tests/cuda/test_cuda_ops.cpp relies on these taking the split kernels.
  for (int sms : {2, 16, 46, 80, 108, 132, 170}) {
    EXPECT_GT(split_long_rows(2, 20000, sms).chunks, 1) << sms;
    EXPECT_GT(split_long_rows(3, 20000, sms).chunks, 1) << sms;
    EXPECT_GT(split_long_rows(2, 30000, sms).chunks, 1) << sms;
    EXPECT_GT(split_long_rows(3, 40000, sms).chunks, 1) << sms;
    EXPECT_GT(split_long_rows(2, 70001, sms).chunks, 1) << sms;
    EXPECT_GT(split_long_rows(3, 70001, sms).chunks, 1) << sms;
    EXPECT_GT(split_long_rows(1, 16384, sms).chunks, 1) << sms;
  }
}

TEST(RowSplit, ChunksCoverTheRowExactlyOnce) {
  for (int sms : {1, 8, 132})
    for (int64_t rows : {1, 2, 3, 7, 64, 200, 600})
      for (int64_t n : {1, 4097, 8192, 8193, 20000, 70001, 123457, 1 << 20, 3 << 20}) {
        const RowSplit s = split_long_rows(rows, n, sms);
        SCOPED_TRACE(testing::Message() << rows << " x " << n << " on " << sms << " SMs");
        ASSERT_GE(s.chunks, 1);
        ASSERT_LE(s.chunks, kMaxChunks);
        if (s.chunks == 1) continue;
        EXPECT_EQ(s.chunk_len % 4, 0);  // float4 loads start aligned in every chunk
        EXPECT_GE(s.chunk_len, kMinChunkElements);
        EXPECT_GE(s.chunks * s.chunk_len, n);        // the chunks reach the row's end
        EXPECT_LT((s.chunks - 1) * s.chunk_len, n);  // and none is empty
        EXPECT_LE(rows * s.chunks, kSplitBlocksPerMultiprocessor * sms);
      }
}

}  // namespace
}  // namespace bridle::cuda
