// softmax, log_softmax, logsumexp: ops, backward and CPU kernels (see softmax.h).
//
// Backward, with y = softmax(x / T) along the row and g = dL/dy:
//   softmax:     dx_j += y_j (g_j - sum_k g_k y_k) / T
//   log_softmax: dx_j += (g_j - softmax_j sum_k g_k) / T,  softmax_j = exp(y_j)
//   logsumexp:   dx_j += g exp(x_j - lse)               (= g softmax(x)_j)
// Both softmax backward forms use the saved output only, never the input.
//
// On a GPU (softmax.cu): softmax, log_softmax, safe_softmax (and through it
// masked_softmax) and logsumexp, with the same checks and errors.
#include "ops/softmax.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "autograd/node.h"
#include "core/cuda/cuda.h"
#include "core/factory.h"
#include "ops/cuda_kernels.h"
#include "ops/elementwise.h"
#include "ops/fast_math.h"
#include "ops/op_utils.h"

namespace bridle {
namespace cpu {

// --- Naive reference: one row at a time, three plain passes, doubles. -----------

int64_t softmax_forward_naive(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner,
                              float inv_temp, bool log) {
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const float* x = inp + o * n * inner + i;
      float* y = out + o * n * inner + i;
      float max = -std::numeric_limits<float>::infinity();
      bool has_nan = false;
      for (int64_t j = 0; j < n; ++j) {
        max = std::max(max, x[j * inner]);
        has_nan |= std::isnan(x[j * inner]);
      }
      if (!std::isfinite(max) || has_nan) return o * inner + i;
      double sum = 0.0;
      for (int64_t j = 0; j < n; ++j)
        sum += std::exp(static_cast<double>(x[j * inner] - max) * inv_temp);
      for (int64_t j = 0; j < n; ++j) {
        double z = static_cast<double>(x[j * inner] - max) * inv_temp;
        y[j * inner] = static_cast<float>(log ? z - std::log(sum) : std::exp(z) / sum);
      }
    }
  }
  return -1;
}

void softmax_backward_naive(float* dinp, const float* out, const float* dout, int64_t outer,
                            int64_t n, int64_t inner, float inv_temp, bool log) {
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      int64_t base = o * n * inner + i;
      double acc = 0.0;  // sum_k g_k y_k (softmax) or sum_k g_k (log_softmax)
      for (int64_t j = 0; j < n; ++j)
        acc += static_cast<double>(dout[base + j * inner]) * (log ? 1.0f : out[base + j * inner]);
      for (int64_t j = 0; j < n; ++j) {
        double g = dout[base + j * inner], y = out[base + j * inner];
        double dx = log ? g - std::exp(y) * acc : y * (g - acc);
        dinp[base + j * inner] += static_cast<float>(dx * inv_temp);
      }
    }
  }
}

// --- Fast path: contiguous rows, simd loops, OpenMP over rows. -------------------
//
// A row is read from memory once. Its first pass goes block by block: the
// block's exps against a shift (the row's first element, until a block's sum
// shows an exp near overflow and that block is redone against its own max); each
// block remembers the shift it used, and the second pass (over a row still in
// cache) rescales it by exp(block shift - final shift) / sum. This is the online
// softmax of Milakov & Gimelshein (2018), blocked so the loops vectorize, with
// the shift allowed to trail the max so that no block needs a max at all, in a
// pass of its own or in its exp loop.
//
// The first pass is bound by the exps or by the memory it reads, the second by
// the memory it writes; so on rows of several blocks each thread may run them a
// row apart, block by block (row r's first pass, then row r-1's second pass over
// the same block: RowOrder::kRowApart), and the writes of one row drain to
// memory while the next row's exps are computed. Otherwise a row's two passes
// run before the next row's (kInTurn). softmax_forward_order chooses, as
// measured against the other choice:
//   - log_softmax: a row apart on rows longer than kPipelinedRow. Zen 5:
//     [64 x 50000] 15% faster a row apart, [4096 x 1000] (one block a row) 10%
//     faster in turn;
//   - softmax, whose first pass already writes the exps: in turn on AMD's cores
//     (Zen 5: 8-30% faster in turn on both shapes), a row apart elsewhere (a Xeon
//     with 29 GB/s of copy per core, where both passes wait on memory: [64 x
//     50000] 17-20% faster a row apart on 1 and 2 threads, [400 x 10000] up to
//     14%, [2048 x 2000] 3%).
// The backward (a sum over the row, then the write of dx) is two passes per row
// as well: on Zen 5 10-20% faster in turn than a row apart.

namespace {

constexpr int64_t kParallelWork = 1 << 15;  // rows * n below this: one thread
constexpr int64_t kMaxBlocks = 256;

// How long a block is. Each costs a call, a masked head and tail, a horizontal
// sum and a branch on it (and, in the second pass, a scalar exp and a division),
// so blocks are as long as the two things that want them short allow:
//   - the pipeline (rows longer than kPipelinedRow a row apart) interleaves
//     one row's writes with the next row's exps, finely: 512 elements (2 KB);
//     4 and 16 KB measured slower, 1 KB the same;
//   - elsewhere the only cost of a long block is the redo of a block whose sum
//     overflowed the bound below (its max pass and its exps again): 16384
//     elements (64 KB) keeps that to a small part of a long row. Measured on Zen
//     5 against 512, [64 x 50000]: softmax forward 14% faster on 1 thread and 17%
//     on 2, logsumexp (the cross-entropy forward) 12%; a whole row as one block
//     gains 1-4% more.
// At most kMaxBlocks of them (OnlineRow keeps a shift per block).
constexpr int64_t kPipelinedRow = 1024;
constexpr int64_t kPipelinedBlock = 512;
constexpr int64_t kBlock = 16384;
int64_t block_size(int64_t n, bool pipelined) {
  const int64_t least = pipelined ? kPipelinedBlock : kBlock;
  if (n <= least) return std::max<int64_t>(n, 1);
  return std::max<int64_t>(least, (n + kMaxBlocks - 1) / kMaxBlocks);
}

// When softmax's backward writes dx with streaming stores (fast_math.h's Store):
// when the op moves more than the last-level cache holds, so the first rows of
// dx are out of the cache before the last are written and caching the stores
// buys the next reader nothing; and when a row is longer than L1 holds its y and
// g (8192 floats), so its second pass reads them from L2, where each dx line read
// for ownership would push them out. Measured, in turns in one process, on 1
// thread and 2:
//   - Zen 5 (32 MiB of L3 per core complex): [64 x 50000] 18-40% faster
//     streamed, [320 x 10000] 22-36%; rows of 1000 and 2000 gain nothing (-9% to
//     +5%), hence the row length;
//   - a Xeon with 480 MiB of L3, where the same 38 MB stay in the cache: [64 x
//     50000] 30-40% slower streamed into a buffer the cache held (the caching
//     allocator hands out such warm buffers), up to twice as slow in the bench,
//     hence the cache size, the CPU's own figure (last_level_cache_bytes).
// log_softmax's backward stays cached: it is bound by its exps, and streamed it
// measured 2-15% slower on 2 threads on Zen 5.
constexpr int64_t kStreamingRow = 8192;

// How far (in units of the exponent) a block's elements may rise above the shift
// its exps were taken against before the block is redone: e^60 is far from
// float's overflow at e^88, even summed over a million elements.
constexpr float kMaxShiftGap = 60.0f;
constexpr float kMaxBlockSum = 1.14200739e26f;  // e^kMaxShiftGap
constexpr int64_t kShortRow = 64;

// One row's online sum, block by block (see online_block).
struct OnlineRow {
  float shift = -std::numeric_limits<float>::infinity();  // what the sum is relative to
  float sum = 0.0f;                                       // sum of e^((x - shift) / T)
  float block_shift[kMaxBlocks];  // the shift each block's exps were taken against
  bool ok = true;                 // false: NaN, +inf or (at the end) no finite element

  void start() {  // a new row (block_shift is written before it is read)
    shift = -std::numeric_limits<float>::infinity();
    sum = 0.0f;
    ok = true;
  }
};

// Block b = [begin, begin + len) of a row: its exps against the row's shift into
// e (when not null), added to row.sum. The shift is the row's first element and
// stays put while each block's sum is finite and at most e^kMaxShiftGap: a NaN,
// a +inf or an exp argument of kMaxShiftGap + 1 or more would have made the sum
// otherwise (row_exp_sum promises so), so such a sum means every exp was taken
// well short of overflow, and the common block is one pass with no max in it.
// A block past the bound is looked at again: a NaN or +inf ends the row, and an
// element far above the shift (its exps may have overflowed) makes the block's
// max the new shift, the sum so far rescaled and the block redone. Nothing else
// is rescaled: the sum may stay relative to an element below the max, and the
// second pass and logsumexp use the shift as they find it (which keeps the scalar
// exp of a rescale out of the chain every row ends with).
void online_block(OnlineRow& row, const float* x, int64_t begin, int64_t len, int64_t b,
                  float inv_temp, float* e) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  float* block_e = e ? e + begin : nullptr;
  // A first shift; a short row's separate max pass costs less than a redo.
  if (row.shift == -kInf && len > kShortRow && std::isfinite(x[begin])) row.shift = x[begin];
  bool has_nan = false;
  if (row.shift == -kInf) {  // no finite shift yet (leading -inf): the block's max first
    const float m = row_max(x + begin, len, has_nan);
    if (has_nan || m == kInf) {
      row.ok = false;
      return;
    }
    row.shift = m;
    row.block_shift[b] = m;  // all -inf so far: the second pass scales by exp(-inf) = 0
    if (m == -kInf) {
      if (e) std::fill(block_e, block_e + len, 0.0f);
      return;
    }
    row.sum += row_exp_sum(x + begin, len, m, inv_temp, block_e);
    return;
  }
  const float block_sum = row_exp_sum(x + begin, len, row.shift, inv_temp, block_e);
  row.block_shift[b] = row.shift;
  if (std::isfinite(block_sum) && block_sum <= kMaxBlockSum) {
    row.sum += block_sum;
    return;
  }
  const float m = row_max(x + begin, len, has_nan);
  if (has_nan || m == kInf) {
    row.ok = false;
    return;
  }
  if ((m - row.shift) * inv_temp <= kMaxShiftGap) {  // large, but no exp overflowed
    row.sum += block_sum;
    return;
  }
  row.sum *= fast_exp((row.shift - m) * inv_temp);
  row.shift = m;
  row.block_shift[b] = m;
  row.sum += row_exp_sum(x + begin, len, m, inv_temp, block_e);
}

// After a row's last block: `sum` is relative to `shift`, an element of the row.
void finish_row(OnlineRow& row) {
  // The shift's own term is e^0 = 1, so the sum is at least 1; and rounding must
  // not take log_softmax above 0 or softmax above 1 (see write_block).
  row.sum = std::max(row.sum, 1.0f);
  row.ok = row.ok && std::isfinite(row.shift);  // all -inf: no softmax
}

// The whole first pass over a row (online_block over its blocks).
bool online_shift_sum(const float* x, int64_t n, float inv_temp, float& shift, float& sum) {
  OnlineRow row;
  const int64_t block = block_size(n, /*pipelined=*/false);
  for (int64_t begin = 0, b = 0; begin < n && row.ok; begin += block, ++b)
    online_block(row, x, begin, std::min(block, n - begin), b, inv_temp, nullptr);
  finish_row(row);
  shift = row.shift;
  sum = row.sum;
  return row.ok;
}

// A row between its two passes: where it is and what the first pass found.
struct PendingRow {
  const float* x = nullptr;
  float* y = nullptr;  // null: nothing pending
  OnlineRow online;
  float log_sum = 0.0f;
};

// The second pass over block b = [begin, end) of a pending row: log_softmax
// from x (still in cache), softmax by rescaling the block's exps.
void write_block(const PendingRow& row, int64_t begin, int64_t end, int64_t b, float inv_temp,
                 bool log) {
  if (log) {  // log_softmax <= 0, as finish_row keeps it
    row_affine_min(row.y + begin, row.x + begin, end - begin, row.online.shift, inv_temp,
                   row.log_sum, 0.0f);
    return;
  }
  // The block's exps are relative to the row's final shift unless a later block
  // moved it; then a scalar exp, which is otherwise kept off the chain of
  // latencies that ends every row (its sum, this scale, the second pass).
  const float gap = row.online.block_shift[b] - row.online.shift;
  const float scale = (gap == 0.0f ? 1.0f : fast_exp(gap * inv_temp)) / row.online.sum;
  // p <= 1, as finish_row keeps it
  row_affine_min(row.y + begin, row.y + begin, end - begin, 0.0f, scale, 0.0f, 1.0f);
}

}  // namespace

float row_logsumexp(const float* x, int64_t n) {
  // A row of one block whose sum stays in bounds, the common case, in one call:
  // what online_shift_sum does for it, without its bookkeeping.
  if (n > kShortRow && n <= kBlock && std::isfinite(x[0])) {
    const float sum = row_exp_sum(x, n, x[0], 1.0f, nullptr);
    if (std::isfinite(sum) && sum <= kMaxBlockSum) return x[0] + std::log(std::max(sum, 1.0f));
  }
  float shift = 0.0f, sum = 0.0f;
  if (!online_shift_sum(x, n, 1.0f, shift, sum)) return std::numeric_limits<float>::quiet_NaN();
  return shift + std::log(sum);
}

RowOrder softmax_forward_order(int64_t n, bool log) {
  // See the comment at the top of the fast path.
  const bool row_apart = n > kPipelinedRow && (log || cpu_vendor() != CpuVendor::kAmd);
  return row_apart ? RowOrder::kRowApart : RowOrder::kInTurn;
}

int64_t softmax_forward(float* out, const float* inp, int64_t rows, int64_t n, float inv_temp,
                        bool log) {
  return softmax_forward(out, inp, rows, n, inv_temp, log, softmax_forward_order(n, log));
}

int64_t softmax_forward(float* out, const float* inp, int64_t rows, int64_t n, float inv_temp,
                        bool log, RowOrder order) {
  const bool pipelined = order == RowOrder::kRowApart;
  const int64_t block = block_size(n, pipelined);
  int64_t first_bad = std::numeric_limits<int64_t>::max();
#pragma omp parallel reduction(min : first_bad) if (rows * n > kParallelWork)
  {
    // This thread's rows, in order: the pipeline runs along them.
    const int64_t threads = omp_get_num_threads(), thread = omp_get_thread_num();
    const int64_t row_begin = rows * thread / threads, row_end = rows * (thread + 1) / threads;
    PendingRow slots[2];
    PendingRow* current = &slots[0];  // pointers, swapped: a PendingRow is 1 KB
    PendingRow* previous = &slots[1];
    for (int64_t r = row_begin; r <= row_end; ++r) {
      const bool has_row = r < row_end;  // the last round only writes the previous row
      if (has_row) {
        current->x = inp + r * n;
        current->y = out + r * n;
        current->online.start();
      }
      for (int64_t begin = 0, b = 0; begin < n; begin += block, ++b) {
        const int64_t end = std::min(n, begin + block);
        if (has_row && current->online.ok)
          online_block(current->online, current->x, begin, end - begin, b, inv_temp,
                       log ? nullptr : current->y);
        if (previous->y) write_block(*previous, begin, end, b, inv_temp, log);
      }
      previous->y = nullptr;
      if (!has_row) break;
      finish_row(current->online);
      if (!current->online.ok) {
        first_bad = std::min(first_bad, r);
        continue;  // nothing to write
      }
      if (log) current->log_sum = std::log(current->online.sum);
      if (pipelined) {  // written in the next round, beside the next row's first pass
        std::swap(current, previous);
      } else {  // written now
        for (int64_t begin = 0, b = 0; begin < n; begin += block, ++b)
          write_block(*current, begin, std::min(n, begin + block), b, inv_temp, log);
      }
    }
  }
  return first_bad == std::numeric_limits<int64_t>::max() ? -1 : first_bad;
}

Store softmax_backward_store(int64_t rows, int64_t n, bool log) {
  const auto moved = static_cast<size_t>(3 * rows * n) * sizeof(float);  // y and g in, dx out
  const bool stream = !log && n >= kStreamingRow && moved > last_level_cache_bytes();
  return stream ? Store::kStreaming : Store::kCached;
}

void softmax_backward(float* dinp, const float* out, const float* dout, int64_t rows, int64_t n,
                      float inv_temp, bool log, bool accumulate, Store store) {
  if (log || accumulate) store = Store::kCached;  // only a fresh softmax dx streams
#pragma omp parallel if (rows * n > kParallelWork)
  {
#pragma omp for nowait  // the region's closing barrier follows the fence
    for (int64_t r = 0; r < rows; ++r) {
      const float* y = out + r * n;
      const float* g = dout + r * n;
      float* dx = dinp + r * n;
      const float sum = row_dot(g, log ? nullptr : y, n);  // sum_k g_k y_k, or sum_k g_k
      if (log)                                             // dx = (g - softmax * sum g) / T
        row_exp_axpy(dx, y, n, 0.0f, -sum * inv_temp, g, inv_temp, accumulate);
      else  // dx = y (g - sum g y) / T
        row_mul_diff(dx, y, g, n, sum, inv_temp, accumulate, store);
    }
    if (store == Store::kStreaming) store_fence();  // before the region's closing barrier
  }
}

// --- logsumexp ------------------------------------------------------------------

void logsumexp_forward(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner) {
#pragma omp parallel for if (outer * n * inner > (1 << 15))
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const float* x = inp + o * n * inner + i;
      float max = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < n; ++j) max = std::max(max, x[j * inner]);
      if (std::isinf(max)) {  // all -inf: lse = -inf; any +inf: lse = +inf
        out[o * inner + i] = max;
        continue;
      }
      float sum = 0.0f;
      for (int64_t j = 0; j < n; ++j) sum += fast_exp(x[j * inner] - max);
      out[o * inner + i] = max + std::log(sum);  // NaN inputs give NaN, as PyTorch
    }
  }
}

void logsumexp_backward(float* dinp, const float* inp, const float* out, const float* dout,
                        int64_t outer, int64_t n, int64_t inner) {
#pragma omp parallel for if (outer * n * inner > (1 << 15))
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      float lse = out[o * inner + i], g = dout[o * inner + i];
      if (std::isinf(lse)) continue;  // no gradient through an all -inf (or +inf) row
      for (int64_t j = 0; j < n; ++j) {
        int64_t k = o * n * inner + j * inner + i;
        dinp[k] += g * fast_exp(inp[k] - lse);
      }
    }
  }
}

}  // namespace cpu

namespace {

// Rows (o, i) of the [outer, size, inner] layout whose every element is -inf.
std::vector<int64_t> all_minus_inf_rows(const float* x, const DimSplit& s) {
  std::vector<int64_t> rows;
  const float minus_inf = -std::numeric_limits<float>::infinity();
  for (int64_t o = 0; o < s.outer; ++o)
    for (int64_t i = 0; i < s.inner; ++i) {
      bool all = s.size > 0;
      for (int64_t j = 0; j < s.size && all; ++j)
        all = x[(o * s.size + j) * s.inner + i] == minus_inf;
      if (all) rows.push_back(o * s.inner + i);
    }
  return rows;
}

// Sets row r = o * inner + i of the [outer, size, inner] layout to value.
void fill_row(float* x, const DimSplit& s, int64_t r, float value) {
  const int64_t o = r / s.inner, i = r % s.inner;
  for (int64_t j = 0; j < s.size; ++j) x[(o * s.size + j) * s.inner + i] = value;
}

void check_rows_have_max(const char* name, int64_t bad, int64_t dim, const Tensor& x) {
  BRIDLE_CHECK(bad < 0,
               "{}: row {} (along dim {} of input {}) has no finite maximum: it is all -inf or "
               "contains +inf or NaN, so its {} is undefined",
               name, bad, dim, shape_str(x.shape()), name);
}

// The backward of softmax_op_cuda. A function of its own, not a lambda inside
// the discarded branch below: GCC still emits such a lambda's body at -O0, and a
// CPU-only Debug build would then miss cuda::softmax_backward at link time.
void softmax_backward_cuda(const Tensor& x, const Tensor& out, const Tensor& dout,
                           const DimSplit& s, float inv_temp, bool log) {
#ifdef BRIDLE_WITH_CUDA
  cuda::DeviceGuard guard(x.device());
  write_grad(x, [&](float* dx, bool accumulate) {
    cuda::softmax_backward(dx, out.data<float>(), dout.data<float>(), s.outer, s.size, s.inner,
                           inv_temp, log, accumulate);
  });
#else
  (void)x, (void)out, (void)dout, (void)s, (void)inv_temp, (void)log;
  BRIDLE_FAIL("softmax backward: this build has no CUDA backend");
#endif
}

// softmax and log_softmax on a GPU: the kernels of softmax.cu, the same checks
// and backward. Reading back the first bad row waits for the kernel (one
// synchronization per call, the price of the CPU op's error).
Tensor softmax_op_cuda(const Tensor& x, int64_t dim, const DimSplit& s, float inv_temp, bool log,
                       const char* name) {
  if constexpr (!kCudaBuild) {
    BRIDLE_FAIL("{}: this build has no CUDA backend", name);
  } else {
    cuda::DeviceGuard guard(x.device());
    Tensor out = Tensor::empty(x.shape(), x.device());
    const int64_t rows = s.outer * s.inner;
    Tensor first_bad =
        full({}, static_cast<double>(rows), TensorOptions(kInt64).with_device(x.device()));
    cuda::softmax_forward(out.data<float>(), x.data<float>(), s.outer, s.size, s.inner, inv_temp,
                          log, reinterpret_cast<unsigned long long*>(first_bad.data<int64_t>()));
    const auto bad = static_cast<int64_t>(first_bad.at({}));
    check_rows_have_max(name, bad == rows ? -1 : bad, dim, x);
    return record(out, name, {x}, [x, s, inv_temp, log](const Tensor& dout, const Tensor& out) {
      softmax_backward_cuda(x, out, dout, s, inv_temp, log);
    });
  }
}

// safe: rows that are all -inf give 0 (their backward is then 0 by itself:
// dx = y (g - sum g y) with y = 0).
Tensor softmax_op(const Tensor& x, int64_t dim, float temperature, bool log, bool safe = false) {
  const char* name = safe ? "safe_softmax" : log ? "log_softmax" : "softmax";
  check_float(name, x);
  // safe_softmax finds its masked rows on the host here; on a GPU it never gets
  // here (safe_softmax_cuda).
  check_device(name, {x}, safe ? Kernels::kCpuOnly : Kernels::kCpuAndCuda);
  BRIDLE_CHECK(temperature > 0.0f && std::isfinite(temperature),
               "{}: temperature must be a positive finite number, got {}", name, temperature);
  int64_t rank = std::max<int64_t>(x.dim(), 1);
  dim = normalize_dim(name, dim, rank);
  DimSplit s = split_at(x.dim() == 0 ? Shape{1} : x.shape(), dim);
  float inv_temp = 1.0f / temperature;
  if (x.device().is_cuda()) return softmax_op_cuda(x, dim, s, inv_temp, log, name);
  Tensor out = Tensor::empty(x.shape());
  Tensor input = x;
  std::vector<int64_t> masked_rows;
  if (safe) {
    masked_rows = all_minus_inf_rows(x.data<float>(), s);
    if (!masked_rows.empty()) {
      input = x.clone();  // finite stand-ins for the masked rows, zeroed below
      for (int64_t r : masked_rows) fill_row(input.data<float>(), s, r, 0.0f);
    }
  }
  int64_t bad = s.inner == 1 ? cpu::softmax_forward(out.data<float>(), input.data<float>(), s.outer,
                                                    s.size, inv_temp, log)
                             : cpu::softmax_forward_naive(out.data<float>(), input.data<float>(),
                                                          s.outer, s.size, s.inner, inv_temp, log);
  for (int64_t r : masked_rows) fill_row(out.data<float>(), s, r, 0.0f);
  check_rows_have_max(name, bad, dim, x);
  return record(out, name, {x}, [x, s, inv_temp, log](const Tensor& dout, const Tensor& out) {
    if (s.inner == 1) {
      write_grad(x, [&](float* dx, bool accumulate) {
        cpu::softmax_backward(dx, out.data<float>(), dout.data<float>(), s.outer, s.size, inv_temp,
                              log, accumulate, cpu::softmax_backward_store(s.outer, s.size, log));
      });
    } else {
      cpu::softmax_backward_naive(grad_buffer(x).data<float>(), out.data<float>(),
                                  dout.data<float>(), s.outer, s.size, s.inner, inv_temp, log);
    }
  });
}

// The GPU paths of safe_softmax, masked_softmax and logsumexp. Under #ifdef,
// not `if constexpr`: GCC at -O0 still emits lambdas inside discarded branches.
#ifdef BRIDLE_WITH_CUDA
// As softmax_op_cuda, with the kernel that gives an all -inf row zeros; the
// backward is softmax's (zero rows get zero gradients).
Tensor safe_softmax_cuda(const Tensor& x, int64_t dim) {
  const char* name = "safe_softmax";
  const int64_t rank = std::max<int64_t>(x.dim(), 1);
  dim = normalize_dim(name, dim, rank);
  const DimSplit s = split_at(x.dim() == 0 ? Shape{1} : x.shape(), dim);
  cuda::DeviceGuard guard(x.device());
  Tensor out = Tensor::empty(x.shape(), x.device());
  const int64_t rows = s.outer * s.inner;
  Tensor first_bad =
      full({}, static_cast<double>(rows), TensorOptions(kInt64).with_device(x.device()));
  cuda::safe_softmax_forward(out.data<float>(), x.data<float>(), s.outer, s.size, s.inner,
                             reinterpret_cast<unsigned long long*>(first_bad.data<int64_t>()));
  const auto bad = static_cast<int64_t>(first_bad.at({}));
  check_rows_have_max(name, bad == rows ? -1 : bad, dim, x);
  return record(out, name, {x}, [x, s](const Tensor& dout, const Tensor& out) {
    softmax_backward_cuda(x, out, dout, s, 1.0f, false);
  });
}

// An int32 / int64 keep-mask as an additive one: 0 where nonzero, -inf elsewhere.
Tensor additive_mask_cuda(const Tensor& mask) {
  cuda::DeviceGuard guard(mask.device());
  Tensor additive = Tensor::empty(mask.shape(), mask.device());
  if (mask.dtype() == DType::kInt32)
    cuda::keep_mask_to_additive(additive.data<float>(), mask.data<int32_t>(), mask.numel());
  else
    cuda::keep_mask_to_additive(additive.data<float>(), mask.data<int64_t>(), mask.numel());
  return additive;
}

Tensor logsumexp_cuda(const Tensor& x, const DimSplit& s, const Shape& out_shape) {
  cuda::DeviceGuard guard(x.device());
  Tensor out = Tensor::empty(out_shape, x.device());
  cuda::logsumexp_forward(out.data<float>(), x.data<float>(), s.outer, s.size, s.inner);
  return record(out, "logsumexp", {x}, [x, s](const Tensor& dout, const Tensor& out) {
    cuda::DeviceGuard guard(x.device());
    write_grad(x, [&](float* dx, bool accumulate) {
      cuda::logsumexp_backward(dx, x.data<float>(), out.data<float>(), dout.data<float>(), s.outer,
                               s.size, s.inner, accumulate);
    });
  });
}
#else
Tensor safe_softmax_cuda(const Tensor&, int64_t) {
  BRIDLE_FAIL("safe_softmax: this build has no CUDA backend");
}
Tensor additive_mask_cuda(const Tensor&) {
  BRIDLE_FAIL("masked_softmax: this build has no CUDA backend");
}
Tensor logsumexp_cuda(const Tensor&, const DimSplit&, const Shape&) {
  BRIDLE_FAIL("logsumexp: this build has no CUDA backend");
}
#endif

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim, float temperature) {
  return softmax_op(x, dim, temperature, false);
}

Tensor log_softmax(const Tensor& x, int64_t dim, float temperature) {
  return softmax_op(x, dim, temperature, true);
}

Tensor safe_softmax(const Tensor& x, int64_t dim) {
  check_float("safe_softmax", x);
  if (x.device().is_cuda()) return safe_softmax_cuda(x, dim);
  return softmax_op(x, dim, 1.0f, false, true);
}

Tensor masked_softmax(const Tensor& x, const Tensor& mask, int64_t dim) {
  check_float("masked_softmax", x);
  BRIDLE_CHECK(mask.defined(), "masked_softmax: no mask given");
  check_device("masked_softmax", {x, mask}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(!mask.requires_grad(), "masked_softmax: the mask is a constant; detach() it");
  Tensor additive = mask;
  if (!mask.is_float() && mask.device().is_cuda()) {
    additive = additive_mask_cuda(mask);
  } else if (!mask.is_float()) {  // keep where nonzero: 0 there, -inf elsewhere
    Tensor as_float = mask.to(DType::kFloat32);
    additive = Tensor::empty(mask.shape());
    const float* m = as_float.data<float>();
    float* a = additive.data<float>();
    for (int64_t k = 0; k < mask.numel(); ++k)
      a[k] = m[k] != 0.0f ? 0.0f : -std::numeric_limits<float>::infinity();
  }
  BRIDLE_CHECK(broadcast_shapes("masked_softmax", x.shape(), additive.shape()) == x.shape(),
               "masked_softmax: mask {} must broadcast to the input {}", shape_str(mask.shape()),
               shape_str(x.shape()));
  return safe_softmax(x + additive, dim);
}

Tensor logsumexp(const Tensor& x, int64_t dim, bool keepdim) {
  check_float("logsumexp", x);
  check_device("logsumexp", {x}, Kernels::kCpuAndCuda);
  dim = normalize_dim("logsumexp", dim, x.dim());
  DimSplit s = split_at(x.shape(), dim);
  BRIDLE_CHECK(s.size > 0, "logsumexp: dim {} of shape {} is empty", dim, shape_str(x.shape()));
  if (x.device().is_cuda()) return logsumexp_cuda(x, s, reduced_shape(x.shape(), dim, keepdim));
  Tensor out = Tensor::empty(reduced_shape(x.shape(), dim, keepdim));
  cpu::logsumexp_forward(out.data<float>(), x.data<float>(), s.outer, s.size, s.inner);
  return record(out, "logsumexp", {x}, [x, s](const Tensor& dout, const Tensor& out) {
    cpu::logsumexp_backward(grad_buffer(x).data<float>(), x.data<float>(), out.data<float>(),
                            dout.data<float>(), s.outer, s.size, s.inner);
  });
}

}  // namespace bridle
