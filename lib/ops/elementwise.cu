// Elementwise ops on a GPU: the CUDA kernels (the ops, the CPU kernels and each
// op's derivative are in elementwise.cpp; the formulas here are the same).
//
// One grid-stride kernel per arity, templated on the op's functor, so each op
// is a few lines: its f and its derivative. Broadcasting walks each output
// element's index back to its inputs' elements; in the backward several outputs
// may feed one stretched input element, so those adds are atomic (the sums then
// come in no fixed order: run to run, the last bits may differ).
#include <cmath>

#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"

namespace bridle::cuda {
namespace {

constexpr int kThreads = 256;

// Unary ops: f(x) and dy * f'(x), f' written with x or y = f(x) as is cheaper.
struct Neg {
  __device__ static float f(float x) { return -x; }
  __device__ static float grad(float dy, float, float) { return -dy; }
};
struct Exp {
  __device__ static float f(float x) { return expf(x); }
  __device__ static float grad(float dy, float, float y) { return dy * y; }
};
struct Log {
  __device__ static float f(float x) { return logf(x); }
  __device__ static float grad(float dy, float x, float) { return dy / x; }
};
struct Sqrt {
  __device__ static float f(float x) { return sqrtf(x); }
  __device__ static float grad(float dy, float, float y) { return dy * 0.5f / y; }
};
struct Relu {
  __device__ static float f(float x) { return x > 0.0f ? x : 0.0f; }
  __device__ static float grad(float dy, float x, float) { return x > 0.0f ? dy : 0.0f; }
};
struct Sigmoid {
  // 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below: no overflow either way.
  __device__ static float f(float x) {
    const float e = expf(-fabsf(x));
    return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
  }
  __device__ static float grad(float dy, float, float y) { return dy * y * (1.0f - y); }
};
struct Tanh {
  __device__ static float f(float x) { return tanhf(x); }
  __device__ static float grad(float dy, float, float y) { return dy * (1.0f - y * y); }
};

// Binary ops: f(a, b) and the partial derivatives (y = f(a, b)).
struct Add {
  __device__ static float f(float a, float b) { return a + b; }
  __device__ static float da(float, float, float) { return 1.0f; }
  __device__ static float db(float, float, float) { return 1.0f; }
};
struct Sub {
  __device__ static float f(float a, float b) { return a - b; }
  __device__ static float da(float, float, float) { return 1.0f; }
  __device__ static float db(float, float, float) { return -1.0f; }
};
struct Mul {
  __device__ static float f(float a, float b) { return a * b; }
  __device__ static float da(float, float b, float) { return b; }
  __device__ static float db(float a, float, float) { return a; }
};
struct Div {
  __device__ static float f(float a, float b) { return a / b; }
  __device__ static float da(float, float b, float) { return 1.0f / b; }
  __device__ static float db(float, float b, float y) { return -y / b; }  // -a / b^2
};
struct Pow {
  __device__ static float f(float a, float b) { return powf(a, b); }
  __device__ static float da(float a, float b, float) { return b * powf(a, b - 1.0f); }
  __device__ static float db(float a, float, float y) { return y * logf(a); }  // a^b ln a
};

template <typename Op>
__global__ void unary_forward_kernel(float* out, const float* inp, int64_t n) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) out[i] = Op::f(inp[i]);
}

template <typename Op>
__global__ void unary_backward_kernel(float* dinp, const float* inp, const float* out,
                                      const float* dout, int64_t n, bool accumulate) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) {
    const float g = Op::grad(dout[i], inp[i], out[i]);
    dinp[i] = accumulate ? dinp[i] + g : g;
  }
}

// The input elements of output element o: its index, digit by digit (last dim
// fastest), times each input's strides.
__device__ void input_offsets(const BroadcastIndex& index, int64_t o, int64_t& ia, int64_t& ib) {
  ia = ib = 0;
  for (int d = index.rank - 1; d >= 0; --d) {
    const int64_t i = o % index.size[d];
    o /= index.size[d];
    ia += i * index.stride_a[d];
    ib += i * index.stride_b[d];
  }
}

template <typename Op>
__global__ void binary_forward_kernel(float* out, const float* a, const float* b,
                                      BroadcastIndex index, int64_t n) {
  BRIDLE_GRID_STRIDE_LOOP(o, n) {
    int64_t ia = o, ib = o;
    if (!index.same_shape) input_offsets(index, o, ia, ib);
    out[o] = Op::f(a[ia], b[ib]);
  }
}

template <typename Op>
__global__ void binary_backward_kernel(float* da, float* db, const float* a, const float* b,
                                       const float* out, const float* dout, BroadcastIndex index,
                                       int64_t n) {
  BRIDLE_GRID_STRIDE_LOOP(o, n) {
    int64_t ia = o, ib = o;
    if (!index.same_shape) input_offsets(index, o, ia, ib);
    const float g = dout[o];
    if (index.same_shape) {  // one output per input element: plain adds
      if (da) da[ia] += g * Op::da(a[ia], b[ib], out[o]);
      if (db) db[ib] += g * Op::db(a[ia], b[ib], out[o]);
    } else {
      if (da) atomicAdd(da + ia, g * Op::da(a[ia], b[ib], out[o]));
      if (db) atomicAdd(db + ib, g * Op::db(a[ia], b[ib], out[o]));
    }
  }
}

__global__ void affine_kernel(float* out, const float* inp, float alpha, float beta, int64_t n) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) out[i] = alpha * inp[i] + beta;
}

__global__ void axpy_kernel(float* dst, const float* src, float alpha, int64_t n) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) dst[i] += alpha * src[i];
}

__global__ void pow_scalar_forward_kernel(float* out, const float* inp, float p, int64_t n) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) out[i] = p == 2.0f ? inp[i] * inp[i] : powf(inp[i], p);
}

// dx = dy p x^(p - 1)
__global__ void pow_scalar_backward_kernel(float* dinp, const float* inp, const float* dout,
                                           float p, int64_t n, bool accumulate) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) {
    const float g = dout[i] * p * powf(inp[i], p - 1.0f);
    dinp[i] = accumulate ? dinp[i] + g : g;
  }
}

// Calls fn(Op{}) with the functor of `kind`.
template <typename Fn>
void with_unary(UnaryKind kind, Fn fn) {
  switch (kind) {
    case UnaryKind::kNeg:
      return fn(Neg{});
    case UnaryKind::kExp:
      return fn(Exp{});
    case UnaryKind::kLog:
      return fn(Log{});
    case UnaryKind::kSqrt:
      return fn(Sqrt{});
    case UnaryKind::kRelu:
      return fn(Relu{});
    case UnaryKind::kSigmoid:
      return fn(Sigmoid{});
    case UnaryKind::kTanh:
      return fn(Tanh{});
  }
}

template <typename Fn>
void with_binary(BinaryKind kind, Fn fn) {
  switch (kind) {
    case BinaryKind::kAdd:
      return fn(Add{});
    case BinaryKind::kSub:
      return fn(Sub{});
    case BinaryKind::kMul:
      return fn(Mul{});
    case BinaryKind::kDiv:
      return fn(Div{});
    case BinaryKind::kPow:
      return fn(Pow{});
  }
}

}  // namespace

void unary_forward(UnaryKind kind, float* out, const float* inp, int64_t n) {
  if (n == 0) return;
  with_unary(kind, [&](auto op) {
    unary_forward_kernel<decltype(op)>
        <<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(out, inp, n);
  });
  BRIDLE_CUDA_CHECK_LAUNCH("unary_forward_kernel");
}

void unary_backward(UnaryKind kind, float* dinp, const float* inp, const float* out,
                    const float* dout, int64_t n, bool accumulate) {
  if (n == 0) return;
  with_unary(kind, [&](auto op) {
    unary_backward_kernel<decltype(op)>
        <<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(dinp, inp, out, dout, n, accumulate);
  });
  BRIDLE_CUDA_CHECK_LAUNCH("unary_backward_kernel");
}

void binary_forward(BinaryKind kind, float* out, const float* a, const float* b,
                    const BroadcastIndex& index, int64_t n) {
  if (n == 0) return;
  with_binary(kind, [&](auto op) {
    binary_forward_kernel<decltype(op)>
        <<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(out, a, b, index, n);
  });
  BRIDLE_CUDA_CHECK_LAUNCH("binary_forward_kernel");
}

void binary_backward(BinaryKind kind, float* da, float* db, const float* a, const float* b,
                     const float* out, const float* dout, const BroadcastIndex& index, int64_t n) {
  if (n == 0 || (!da && !db)) return;
  with_binary(kind, [&](auto op) {
    binary_backward_kernel<decltype(op)>
        <<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(da, db, a, b, out, dout, index, n);
  });
  BRIDLE_CUDA_CHECK_LAUNCH("binary_backward_kernel");
}

void affine(float* out, const float* inp, float alpha, float beta, int64_t n) {
  if (n == 0) return;
  affine_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(out, inp, alpha, beta, n);
  BRIDLE_CUDA_CHECK_LAUNCH("affine_kernel");
}

void axpy(float* dst, const float* src, float alpha, int64_t n) {
  if (n == 0) return;
  axpy_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(dst, src, alpha, n);
  BRIDLE_CUDA_CHECK_LAUNCH("axpy_kernel");
}

void pow_scalar_forward(float* out, const float* inp, float p, int64_t n) {
  if (n == 0) return;
  pow_scalar_forward_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(out, inp, p, n);
  BRIDLE_CUDA_CHECK_LAUNCH("pow_scalar_forward_kernel");
}

void pow_scalar_backward(float* dinp, const float* inp, const float* dout, float p, int64_t n,
                         bool accumulate) {
  if (n == 0) return;
  pow_scalar_backward_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(dinp, inp, dout, p,
                                                                                 n, accumulate);
  BRIDLE_CUDA_CHECK_LAUNCH("pow_scalar_backward_kernel");
}

}  // namespace bridle::cuda
