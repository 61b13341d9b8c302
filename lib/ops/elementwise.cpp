// Elementwise ops: forward, backward and CPU kernels; declarations in elementwise.h.
//
// Each op is a small struct with its forward f and its derivative, written side
// by side, and one generic kernel per arity loops over memory with them:
//   unary:  y = f(x),     dx += dy * f'(x)            (f' may use y, e.g. exp)
//   binary: y = f(a, b),  da += dy * df/da,  db += dy * df/db
// Broadcast inputs are walked with stride 0 along their stretched dims, so the
// backward's "+=" into the same element *is* the sum over those dims.
//
// On a GPU (elementwise.cu): an op whose struct names its `cuda_kind` has a
// CUDA kernel (all of them here), and pow with a scalar exponent has its own.
//
// Opaque layouts (core/layout.h): an op whose f maps zeros to zero (relu, the
// residual add) runs over a blocked tensor's raw memory, padding included, and
// keeps the layout, so conv - batch norm - relu chains never reorder. Any other
// op, or mixed layouts, takes the plain path (data<float>() converts).
#include "ops/elementwise.h"

#include <cmath>
#include <cstring>

#include "autograd/node.h"
#include "core/cuda/cuda.h"
#include "core/factory.h"
#include "ops/cuda_kernels.h"
#include "ops/fast_math.h"
#include "ops/op_utils.h"

namespace bridle {

// Below this many elements a loop is not worth waking the thread pool for.
constexpr int64_t kParallelGrain = 1 << 16;

namespace ops {

struct Neg {
  static constexpr const char* name = "neg";
  static constexpr cuda::UnaryKind cuda_kind = cuda::UnaryKind::kNeg;
  static float f(float x) { return -x; }
  static float df(float, float) { return -1.0f; }
};
struct Exp {
  static constexpr const char* name = "exp";
  static constexpr cuda::UnaryKind cuda_kind = cuda::UnaryKind::kExp;
  static float f(float x) { return std::exp(x); }
  static float df(float, float y) { return y; }  // (e^x)' = e^x
};
struct Log {
  static constexpr const char* name = "log";
  static constexpr cuda::UnaryKind cuda_kind = cuda::UnaryKind::kLog;
  static float f(float x) { return std::log(x); }
  static float df(float x, float) { return 1.0f / x; }
};
struct Sqrt {
  static constexpr const char* name = "sqrt";
  static constexpr cuda::UnaryKind cuda_kind = cuda::UnaryKind::kSqrt;
  static float f(float x) { return std::sqrt(x); }
  static float df(float, float y) { return 0.5f / y; }  // 1 / (2 sqrt x)
};
struct Relu {
  static constexpr const char* name = "relu";
  static constexpr cuda::UnaryKind cuda_kind = cuda::UnaryKind::kRelu;
  static float f(float x) { return x > 0.0f ? x : 0.0f; }
  static float df(float x, float) { return x > 0.0f ? 1.0f : 0.0f; }  // 0 at the kink, as PyTorch
  // dy * f'(x) as a select: GCC vectorizes this, not a product with a select.
  static float grad(float dy, float x, float) { return x > 0.0f ? dy : 0.0f; }
};
struct Sigmoid {
  static constexpr const char* name = "sigmoid";
  static constexpr cuda::UnaryKind cuda_kind = cuda::UnaryKind::kSigmoid;
  static float f(float x) { return stable_sigmoid(x); }
  static float df(float, float y) { return y * (1.0f - y); }
};
struct Tanh {
  static constexpr const char* name = "tanh";
  static constexpr cuda::UnaryKind cuda_kind = cuda::UnaryKind::kTanh;
  static float f(float x) { return fast_tanh(x); }
  static float df(float, float y) { return 1.0f - y * y; }
};

struct Add {
  static constexpr const char* name = "add";
  static constexpr cuda::BinaryKind cuda_kind = cuda::BinaryKind::kAdd;
  static float f(float a, float b) { return a + b; }
  static float da(float, float, float) { return 1.0f; }
  static float db(float, float, float) { return 1.0f; }
};
struct Sub {
  static constexpr const char* name = "sub";
  static constexpr cuda::BinaryKind cuda_kind = cuda::BinaryKind::kSub;
  static float f(float a, float b) { return a - b; }
  static float da(float, float, float) { return 1.0f; }
  static float db(float, float, float) { return -1.0f; }
};
struct Mul {
  static constexpr const char* name = "mul";
  static constexpr cuda::BinaryKind cuda_kind = cuda::BinaryKind::kMul;
  static float f(float a, float b) { return a * b; }
  static float da(float, float b, float) { return b; }
  static float db(float a, float, float) { return a; }
};
struct Div {
  static constexpr const char* name = "div";
  static constexpr cuda::BinaryKind cuda_kind = cuda::BinaryKind::kDiv;
  static float f(float a, float b) { return a / b; }
  static float da(float, float b, float) { return 1.0f / b; }
  static float db(float, float b, float y) { return -y / b; }  // -a / b^2
};
struct Pow {
  static constexpr const char* name = "pow";
  static constexpr cuda::BinaryKind cuda_kind = cuda::BinaryKind::kPow;
  static float f(float a, float b) { return std::pow(a, b); }
  static float da(float a, float b, float) { return b * std::pow(a, b - 1.0f); }
  static float db(float a, float, float y) { return y * std::log(a); }  // d(a^b)/db = a^b ln a
};

}  // namespace ops

// How two inputs map onto the broadcast output: per output dim, the element
// stride of each input (0 along a stretched dim).
struct BroadcastPlan {
  Shape out;
  std::vector<int64_t> stride_a, stride_b;
  bool same_shape = false;  // no broadcasting: plain flat loops
};

namespace cpu {

// dy * f'(x), through Op::grad where an op defines it (for speed), else df.
template <typename Op>
inline float chain(float dy, float x, float y) {
  if constexpr (requires { Op::grad(dy, x, y); })
    return Op::grad(dy, x, y);
  else
    return dy * Op::df(x, y);
}

// body(i) for i in [0, n), vectorized, and across the thread pool above the grain.
// Two loops rather than `parallel for simd if (...)`: with the clause false, GCC
// still runs the outlined parallel body, and vectorizes that loop worse (tanh
// over 65,536 floats took 3x as long).
template <typename Body>
inline void simd_for(int64_t n, Body body) {
  if (n > kParallelGrain) {
#pragma omp parallel for simd
    for (int64_t i = 0; i < n; ++i) body(i);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) body(i);
  }
}

template <typename Op>
void unary_forward(float* __restrict out, const float* __restrict inp, int64_t n) {
  simd_for(n, [&](int64_t i) { out[i] = Op::f(inp[i]); });
}

template <typename Op>
void unary_backward(float* __restrict dinp, const float* __restrict inp,
                    const float* __restrict out, const float* __restrict dout, int64_t n) {
  simd_for(n, [&](int64_t i) { dinp[i] += chain<Op>(dout[i], inp[i], out[i]); });
}

// The same into fresh memory: dinp = dout * f'(x).
template <typename Op>
void unary_backward_fresh(float* __restrict dinp, const float* __restrict inp,
                          const float* __restrict out, const float* __restrict dout, int64_t n) {
  simd_for(n, [&](int64_t i) { dinp[i] = chain<Op>(dout[i], inp[i], out[i]); });
}

// out = alpha * inp + beta; dinp += alpha * dout.
void affine_forward(float* out, const float* inp, float alpha, float beta, int64_t n) {
  simd_for(n, [&](int64_t i) { out[i] = alpha * inp[i] + beta; });
}

// out = inp^p; dinp += dout * p * inp^(p-1).
void pow_scalar_forward(float* out, const float* inp, float p, int64_t n) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) out[i] = p == 2.0f ? inp[i] * inp[i] : std::pow(inp[i], p);
}
void pow_scalar_backward(float* dinp, const float* inp, const float* dout, float p, int64_t n) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) dinp[i] += dout[i] * p * std::pow(inp[i], p - 1.0f);
}

// dst += alpha * src.
void axpy(float* dst, const float* src, float alpha, int64_t n) {
  simd_for(n, [&](int64_t i) { dst[i] += alpha * src[i]; });
}

// Calls fn(o, ia, ib) for every output element o with the matching input
// elements, innermost dim fastest. Serial: the backward's accumulation into
// stretched inputs would race if split across threads.
template <typename Fn>
void for_each_broadcast(const BroadcastPlan& plan, Fn fn) {
  const int64_t rank = static_cast<int64_t>(plan.out.size());
  if (rank == 0) {
    fn(0, 0, 0);
    return;
  }
  const int64_t inner = plan.out[rank - 1];
  const int64_t sa = plan.stride_a[rank - 1], sb = plan.stride_b[rank - 1];
  const int64_t outer = inner == 0 ? 0 : shape_numel(plan.out) / inner;
  std::vector<int64_t> index(rank, 0);
  int64_t ia = 0, ib = 0;
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j = 0; j < inner; ++j) fn(o * inner + j, ia + j * sa, ib + j * sb);
    for (int64_t d = rank - 2; d >= 0; --d) {  // odometer over the outer dims
      ia += plan.stride_a[d];
      ib += plan.stride_b[d];
      if (++index[d] < plan.out[d]) break;
      ia -= plan.out[d] * plan.stride_a[d];
      ib -= plan.out[d] * plan.stride_b[d];
      index[d] = 0;
    }
  }
}

template <typename Op>
void same_shape_forward(float* out, const float* a, const float* b, int64_t n) {
  simd_for(n, [&](int64_t i) { out[i] = Op::f(a[i], b[i]); });
}

// a and b may alias (x * x); the gradients never alias the inputs.
template <typename Op>
void same_shape_backward(float* da, float* db, const float* a, const float* b, const float* out,
                         const float* dout, int64_t n) {
  if (da) simd_for(n, [&](int64_t i) { da[i] += dout[i] * Op::da(a[i], b[i], out[i]); });
  if (db) simd_for(n, [&](int64_t i) { db[i] += dout[i] * Op::db(a[i], b[i], out[i]); });
}

template <typename Op>
void binary_forward(float* out, const float* a, const float* b, const BroadcastPlan& plan) {
  if (plan.same_shape) {
    same_shape_forward<Op>(out, a, b, shape_numel(plan.out));
    return;
  }
  for_each_broadcast(plan,
                     [&](int64_t o, int64_t ia, int64_t ib) { out[o] = Op::f(a[ia], b[ib]); });
}

// da / db may be null (that input needs no gradient).
template <typename Op>
void binary_backward(float* da, float* db, const float* a, const float* b, const float* out,
                     const float* dout, const BroadcastPlan& plan) {
  if (plan.same_shape) {
    same_shape_backward<Op>(da, db, a, b, out, dout, shape_numel(plan.out));
    return;
  }
  for_each_broadcast(plan, [&](int64_t o, int64_t ia, int64_t ib) {
    if (da) da[ia] += dout[o] * Op::da(a[ia], b[ib], out[o]);
    if (db) db[ib] += dout[o] * Op::db(a[ia], b[ib], out[o]);
  });
}

}  // namespace cpu

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    BRIDLE_CHECK(da == db || da == 1 || db == 1,
                 "{}: shapes {} and {} cannot be broadcast (dim {}: {} vs {})", op, shape_str(a),
                 shape_str(b), i, da, db);
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {

BroadcastPlan plan_broadcast(const char* op, const Shape& a, const Shape& b) {
  BroadcastPlan plan;
  plan.out = broadcast_shapes(op, a, b);
  plan.same_shape = a == b;
  size_t rank = plan.out.size();
  auto strides_for = [&](const Shape& s) {
    std::vector<int64_t> strides(rank, 0);
    int64_t stride = 1;
    for (size_t k = 0; k < s.size(); ++k) {
      size_t d = rank - 1 - k;  // walk from the last dim
      int64_t size = s[s.size() - 1 - k];
      strides[d] = size == 1 ? 0 : stride;
      stride *= size;
    }
    return strides;
  };
  plan.stride_a = strides_for(a);
  plan.stride_b = strides_for(b);
  return plan;
}

float* grad_ptr(const Tensor& t) {
  return t.requires_grad() ? grad_buffer(t).data<float>() : nullptr;
}

// Floats spanned by an opaque tensor's memory, padding included.
int64_t opaque_floats(const Tensor& t) {
  return static_cast<int64_t>(t.layout()->nbytes() / sizeof(float));
}
float* opaque_ptr(const Tensor& t) { return static_cast<float*>(t.opaque_data()); }

// Whether all of ts that are defined share one opaque layout.
bool all_same_opaque(std::initializer_list<Tensor> ts) {
  const Tensor* first = nullptr;
  for (const Tensor& t : ts) {
    if (!t.defined()) continue;
    if (t.is_plain()) return false;
    if (!first) first = &t;
    if (!same_layout(*first, t)) return false;
  }
  return first != nullptr;
}

// Whether Op has a CUDA kernel in this build (its struct names a cuda_kind).
template <typename Op>
constexpr bool kHasCudaKernel = kCudaBuild&& requires {
  Op::cuda_kind;
};

template <typename Op>
constexpr Kernels kernels_of() {
  return kHasCudaKernel<Op> ? Kernels::kCpuAndCuda : Kernels::kCpuOnly;
}

// y = f(x) on a GPU; backward dx (+)= dy f'(x).
template <typename Op>
Tensor unary_op_cuda(const Tensor& x) {
  cuda::DeviceGuard guard(x.device());
  Tensor out = Tensor::empty(x.shape(), x.device());
  cuda::unary_forward(Op::cuda_kind, out.data<float>(), x.data<float>(), x.numel());
  return record(out, Op::name, {x}, [x](const Tensor& dout, const Tensor& out) {
    cuda::DeviceGuard guard(x.device());
    write_grad(x, [&](float* dx, bool accumulate) {
      cuda::unary_backward(Op::cuda_kind, dx, x.data<float>(), out.data<float>(),
                           dout.data<float>(), x.numel(), accumulate);
    });
  });
}

// The plan in the form the CUDA kernels take (unused in a CPU-only build).
[[maybe_unused]] cuda::BroadcastIndex cuda_broadcast_index(const char* op,
                                                           const BroadcastPlan& plan) {
  cuda::BroadcastIndex index;
  const auto rank = static_cast<int>(plan.out.size());
  BRIDLE_CHECK(rank <= cuda::kMaxDims, "{}: broadcasting over {} dims on a GPU (at most {})", op,
               rank, cuda::kMaxDims);
  index.rank = rank;
  index.same_shape = plan.same_shape;
  for (int d = 0; d < rank; ++d) {
    index.size[d] = plan.out[d];
    index.stride_a[d] = plan.stride_a[d];
    index.stride_b[d] = plan.stride_b[d];
  }
  return index;
}

// y = f(a, b) with broadcasting on a GPU; backward da += dy df/da, db += dy df/db.
template <typename Op>
Tensor binary_op_cuda(const Tensor& a, const Tensor& b, const BroadcastPlan& plan) {
  cuda::DeviceGuard guard(a.device());
  const cuda::BroadcastIndex index = cuda_broadcast_index(Op::name, plan);
  Tensor out = Tensor::empty(plan.out, a.device());
  cuda::binary_forward(Op::cuda_kind, out.data<float>(), a.data<float>(), b.data<float>(), index,
                       out.numel());
  return record(out, Op::name, {a, b}, [a, b, index](const Tensor& dout, const Tensor& out) {
    cuda::DeviceGuard guard(a.device());
    cuda::binary_backward(Op::cuda_kind, grad_ptr(a), grad_ptr(b), a.data<float>(), b.data<float>(),
                          out.data<float>(), dout.data<float>(), index, out.numel());
  });
}

template <typename Op>
Tensor unary_op(const Tensor& x) {
  check_float(Op::name, x);
  check_device(Op::name, {x}, kernels_of<Op>());
  if constexpr (kHasCudaKernel<Op>) {
    if (x.device().is_cuda()) return unary_op_cuda<Op>(x);
  }
  if (!x.is_plain() && Op::f(0.0f) == 0.0f) {
    Tensor out = Tensor::empty_opaque(x.shape(), x.layout());
    cpu::unary_forward<Op>(opaque_ptr(out), opaque_ptr(x), opaque_floats(x));
    return record(out, Op::name, {x}, [x](const Tensor& dout, const Tensor& out) {
      if (all_same_opaque({x, out, dout})) {  // write a fresh gradient in the same layout
        Tensor fresh = Tensor::empty_opaque(x.shape(), x.layout());
        cpu::unary_backward_fresh<Op>(opaque_ptr(fresh), opaque_ptr(x), opaque_ptr(out),
                                      opaque_ptr(dout), opaque_floats(x));
        accumulate_fresh_grad(x, std::move(fresh));
        return;
      }
      Tensor dx = grad_buffer(x);
      cpu::unary_backward<Op>(dx.data<float>(), x.data<float>(), out.data<float>(),
                              dout.data<float>(), x.numel());
    });
  }
  Tensor out = Tensor::empty(x.shape());
  cpu::unary_forward<Op>(out.data<float>(), x.data<float>(), x.numel());
  return record(out, Op::name, {x}, [x](const Tensor& dout, const Tensor& out) {
    cpu::unary_backward<Op>(grad_buffer(x).data<float>(), x.data<float>(), out.data<float>(),
                            dout.data<float>(), x.numel());
  });
}

template <typename Op>
Tensor binary_op(const Tensor& a, const Tensor& b) {
  check_float(Op::name, a, "a");
  check_float(Op::name, b, "b");
  check_device(Op::name, {a, b}, kernels_of<Op>());
  BroadcastPlan plan = plan_broadcast(Op::name, a.shape(), b.shape());
  if constexpr (kHasCudaKernel<Op>) {
    if (a.device().is_cuda()) return binary_op_cuda<Op>(a, b, plan);
  }
  if (plan.same_shape && all_same_opaque({a, b}) && Op::f(0.0f, 0.0f) == 0.0f) {
    Tensor out = Tensor::empty_opaque(a.shape(), a.layout());
    cpu::same_shape_forward<Op>(opaque_ptr(out), opaque_ptr(a), opaque_ptr(b), opaque_floats(a));
    return record(out, Op::name, {a, b}, [a, b, plan](const Tensor& dout, const Tensor& out) {
      if (all_same_opaque({a, b, out, dout})) {  // fresh gradients in the same layout
        auto fresh = [&](const Tensor& t) {
          if (!t.requires_grad()) return Tensor();
          Tensor g = Tensor::empty_opaque(t.shape(), t.layout());
          std::memset(g.opaque_data(), 0, t.layout()->nbytes());
          return g;
        };
        Tensor da = fresh(a), db = fresh(b);
        cpu::same_shape_backward<Op>(
            da.defined() ? opaque_ptr(da) : nullptr, db.defined() ? opaque_ptr(db) : nullptr,
            opaque_ptr(a), opaque_ptr(b), opaque_ptr(out), opaque_ptr(dout), opaque_floats(a));
        if (da.defined()) accumulate_fresh_grad(a, std::move(da));
        if (db.defined()) accumulate_fresh_grad(b, std::move(db));
        return;
      }
      cpu::binary_backward<Op>(grad_ptr(a), grad_ptr(b), a.data<float>(), b.data<float>(),
                               out.data<float>(), dout.data<float>(), plan);
    });
  }
  Tensor out = Tensor::empty(plan.out);
  cpu::binary_forward<Op>(out.data<float>(), a.data<float>(), b.data<float>(), plan);
  return record(out, Op::name, {a, b}, [a, b, plan](const Tensor& dout, const Tensor& out) {
    cpu::binary_backward<Op>(grad_ptr(a), grad_ptr(b), a.data<float>(), b.data<float>(),
                             out.data<float>(), dout.data<float>(), plan);
  });
}

// y = alpha * x + beta: the scalar forms of add, sub, mul and div.
Tensor affine(const Tensor& x, float alpha, float beta, const char* name) {
  check_float(name, x);
  check_device(name, {x}, Kernels::kCpuAndCuda);
  if constexpr (kCudaBuild) {
    if (x.device().is_cuda()) {
      cuda::DeviceGuard guard(x.device());
      Tensor out = Tensor::empty(x.shape(), x.device());
      cuda::affine(out.data<float>(), x.data<float>(), alpha, beta, x.numel());
      return record(out, name, {x}, [x, alpha](const Tensor& dout, const Tensor&) {
        cuda::DeviceGuard guard(x.device());
        cuda::axpy(grad_buffer(x).data<float>(), dout.data<float>(), alpha, x.numel());
      });
    }
  }
  Tensor out = Tensor::empty(x.shape());
  cpu::affine_forward(out.data<float>(), x.data<float>(), alpha, beta, x.numel());
  return record(out, name, {x}, [x, alpha](const Tensor& dout, const Tensor&) {
    cpu::axpy(grad_buffer(x).data<float>(), dout.data<float>(), alpha, x.numel());
  });
}

// pow with a scalar exponent on a GPU. Under #ifdef, not `if constexpr`: GCC at
// -O0 still emits lambdas inside discarded branches.
#ifdef BRIDLE_WITH_CUDA
Tensor pow_scalar_cuda(const Tensor& x, float exponent) {
  cuda::DeviceGuard guard(x.device());
  Tensor out = Tensor::empty(x.shape(), x.device());
  cuda::pow_scalar_forward(out.data<float>(), x.data<float>(), exponent, x.numel());
  return record(out, "pow_scalar", {x}, [x, exponent](const Tensor& dout, const Tensor&) {
    cuda::DeviceGuard guard(x.device());
    write_grad(x, [&](float* dx, bool accumulate) {
      cuda::pow_scalar_backward(dx, x.data<float>(), dout.data<float>(), exponent, x.numel(),
                                accumulate);
    });
  });
}
#else
Tensor pow_scalar_cuda(const Tensor&, float) { BRIDLE_FAIL("pow: this build has no CUDA backend"); }
#endif

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary_op<ops::Add>(a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary_op<ops::Sub>(a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary_op<ops::Mul>(a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary_op<ops::Div>(a, b); }
Tensor pow(const Tensor& base, const Tensor& exponent) {
  return binary_op<ops::Pow>(base, exponent);
}

Tensor add(const Tensor& a, float b) { return affine(a, 1.0f, b, "add_scalar"); }
Tensor mul(const Tensor& a, float b) { return affine(a, b, 0.0f, "mul_scalar"); }

Tensor pow(const Tensor& x, float exponent) {
  check_float("pow", x);
  check_device("pow", {x}, Kernels::kCpuAndCuda);
  if (x.device().is_cuda()) return pow_scalar_cuda(x, exponent);
  Tensor out = Tensor::empty(x.shape());
  cpu::pow_scalar_forward(out.data<float>(), x.data<float>(), exponent, x.numel());
  return record(out, "pow_scalar", {x}, [x, exponent](const Tensor& dout, const Tensor&) {
    cpu::pow_scalar_backward(grad_buffer(x).data<float>(), x.data<float>(), dout.data<float>(),
                             exponent, x.numel());
  });
}

Tensor neg(const Tensor& x) { return unary_op<ops::Neg>(x); }
Tensor exp(const Tensor& x) { return unary_op<ops::Exp>(x); }
Tensor log(const Tensor& x) { return unary_op<ops::Log>(x); }
Tensor sqrt(const Tensor& x) { return unary_op<ops::Sqrt>(x); }
Tensor relu(const Tensor& x) { return unary_op<ops::Relu>(x); }
Tensor sigmoid(const Tensor& x) { return unary_op<ops::Sigmoid>(x); }
Tensor tanh(const Tensor& x) { return unary_op<ops::Tanh>(x); }

void add_(const Tensor& dst, const Tensor& src, float alpha) {
  check_float("add_", dst, "dst");
  check_float("add_", src, "src");
  check_device("add_", {dst, src}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK(dst.shape() == src.shape(), "add_: cannot add {} into {}", shape_str(src.shape()),
               shape_str(dst.shape()));
  if constexpr (kCudaBuild) {
    if (dst.device().is_cuda()) {
      cuda::DeviceGuard guard(dst.device());
      cuda::axpy(dst.data<float>(), src.data<float>(), alpha, dst.numel());
      return;
    }
  }
  cpu::axpy(dst.data<float>(), src.data<float>(), alpha, dst.numel());
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, float b) { return add(a, b); }
Tensor operator-(const Tensor& a, float b) { return add(a, -b); }
Tensor operator*(const Tensor& a, float b) { return mul(a, b); }
Tensor operator/(const Tensor& a, float b) { return mul(a, 1.0f / b); }
Tensor operator+(float a, const Tensor& b) { return add(b, a); }
Tensor operator-(float a, const Tensor& b) { return affine(b, -1.0f, a, "rsub_scalar"); }
Tensor operator*(float a, const Tensor& b) { return mul(b, a); }
Tensor operator/(float a, const Tensor& b) { return div(scalar(a), b); }
Tensor operator-(const Tensor& a) { return neg(a); }

}  // namespace bridle
