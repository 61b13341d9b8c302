// Store: how a kernel writes an output it fills fresh.
#pragma once

namespace bridle {

// How a row write kernel (fast_math.h) stores a row it fills fresh (one it adds
// to is read anyway, and always cached):
//   kCached     plain stores: each line is first read into the cache (for
//               ownership), and stays there for whoever reads the output next;
//   kStreaming  non-temporal stores on the AVX-512 path for a row's whole cache
//               lines: straight to memory, with no read and no line evicted to
//               make room (a line the cache already holds is evicted first,
//               which costs). For outputs larger than the last-level cache,
//               which nobody reads soon; the other paths take it as kCached. A
//               thread that streamed calls store_fence() before another thread
//               may read what it wrote (streaming stores are weakly ordered: a
//               barrier alone does not publish them).
enum class Store { kCached, kStreaming };

}  // namespace bridle
