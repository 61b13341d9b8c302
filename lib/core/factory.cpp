// Factories and the seeded generator; see factory.h.
#include "core/factory.h"

#include <cmath>
#include <cstring>
#include <locale>
#include <sstream>

namespace bridle {

float Generator::uniform(float low, float high) {
  // 24 random bits -> a float in [0, 1) with every value exactly representable.
  float unit = static_cast<float>(engine_() >> 40) * (1.0f / 16777216.0f);
  return low + (high - low) * unit;
}

float Generator::normal(float mean, float stddev) {
  // Box-Muller on doubles; written out so the sequence is the same with any
  // standard library.
  double u1 = (static_cast<double>(engine_() >> 11) + 1.0) * (1.0 / 9007199254740993.0);
  double u2 = static_cast<double>(engine_() >> 11) * (1.0 / 9007199254740992.0);
  double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  return mean + stddev * static_cast<float>(z);
}

std::string Generator::state() const {
  std::ostringstream out;
  out.imbue(std::locale::classic());  // plain digits, whatever the global locale
  out << engine_;
  return out.str();
}

void Generator::set_state(const std::string& state) {
  std::istringstream in(state);
  in.imbue(std::locale::classic());
  std::mt19937_64 engine;
  in >> engine;
  if (!in.fail() && !in.eof()) in >> std::ws;  // trailing blanks are fine, anything else is not
  BRIDLE_CHECK(!in.fail() && in.eof(),
               "Generator::set_state: not an mt19937_64 state ({} characters starting '{}')",
               state.size(), state.substr(0, 40));
  engine_ = engine;
}

Generator& default_generator() {
  static Generator generator(0);
  return generator;
}

void manual_seed(uint64_t seed) { default_generator().seed(seed); }

Tensor full(const Shape& shape, double value, TensorOptions options) {
  bool requires_grad = options.requires_grad;
  Tensor t = Tensor::empty(shape, options.with_requires_grad(false));
  t.fill_(value);
  if (requires_grad) t.set_requires_grad();
  return t;
}

Tensor zeros(const Shape& shape, TensorOptions options) { return full(shape, 0.0, options); }
Tensor ones(const Shape& shape, TensorOptions options) { return full(shape, 1.0, options); }
Tensor zeros_like(const Tensor& t) {
  return zeros(t.shape(), TensorOptions(t.dtype()).with_device(t.device()));
}
Tensor ones_like(const Tensor& t) {
  return ones(t.shape(), TensorOptions(t.dtype()).with_device(t.device()));
}

Tensor arange(int64_t end, TensorOptions options) {
  return arange(0, static_cast<double>(end), 1, options);
}

namespace {

// A tensor filled on the host, moved to `device` (one copy), then made a leaf
// that requires grad if asked: what every factory that fills element by
// element does, so that none writes device memory from the host.
Tensor on_device(Tensor t, Device device, bool requires_grad) {
  if (!device.is_cpu()) t = t.to(device);
  if (requires_grad) t.set_requires_grad();
  return t;
}

}  // namespace

Tensor arange(double start, double end, double step, TensorOptions options) {
  BRIDLE_CHECK(step != 0, "arange: step must be non-zero");
  BRIDLE_CHECK((end - start) / step >= 0, "arange: start {} cannot reach end {} with step {}",
               start, end, step);
  auto n = static_cast<int64_t>(std::ceil((end - start) / step));
  const Device device = options.device;
  const bool requires_grad = options.requires_grad;
  Tensor t = Tensor::empty({n}, options.with_device(Device::cpu()).with_requires_grad(false));
  for (int64_t i = 0; i < n; ++i) t.set({i}, start + static_cast<double>(i) * step);
  return on_device(t, device, requires_grad);
}

namespace {

template <typename Draw>
Tensor random_tensor(const Shape& shape, TensorOptions options, const char* name, Draw draw) {
  BRIDLE_CHECK(options.dtype == DType::kFloat32, "{}: only float32 is supported, got {}", name,
               dtype_name(options.dtype));
  const Device device = options.device;
  const bool requires_grad = options.requires_grad;
  Tensor t = Tensor::empty(shape, options.with_device(Device::cpu()).with_requires_grad(false));
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = draw();
  return on_device(t, device, requires_grad);
}

}  // namespace

Tensor uniform(const Shape& shape, float low, float high, Generator& gen, TensorOptions options) {
  BRIDLE_CHECK(low <= high, "uniform: low {} is above high {}", low, high);
  return random_tensor(shape, options, "uniform", [&] { return gen.uniform(low, high); });
}
Tensor uniform(const Shape& shape, float low, float high, TensorOptions options) {
  return uniform(shape, low, high, default_generator(), options);
}
Tensor rand(const Shape& shape, Generator& gen, TensorOptions options) {
  return uniform(shape, 0.0f, 1.0f, gen, options);
}
Tensor rand(const Shape& shape, TensorOptions options) {
  return rand(shape, default_generator(), options);
}
Tensor randn(const Shape& shape, Generator& gen, TensorOptions options) {
  return random_tensor(shape, options, "randn", [&] { return gen.normal(0.0f, 1.0f); });
}
Tensor randn(const Shape& shape, TensorOptions options) {
  return randn(shape, default_generator(), options);
}

template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions options) {
  Shape s = shape.empty() ? Shape{static_cast<int64_t>(values.size())} : shape;
  BRIDLE_CHECK(shape_numel(s) == static_cast<int64_t>(values.size()),
               "from_vector: {} values do not fill shape {}", values.size(), shape_str(s));
  BRIDLE_CHECK(options.dtype == DTypeOf<T>::value, "from_vector: {} values for a {} tensor",
               dtype_name(DTypeOf<T>::value), dtype_name(options.dtype));
  const Device device = options.device;
  const bool requires_grad = options.requires_grad;
  Tensor t = Tensor::empty(s, options.with_device(Device::cpu()).with_requires_grad(false));
  if (!values.empty())  // an empty vector's data() may be null, which memcpy forbids
    std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return on_device(t, device, requires_grad);
}

template Tensor from_vector(const std::vector<float>&, const Shape&, TensorOptions);
template Tensor from_vector(const std::vector<int32_t>&, const Shape&, TensorOptions);
template Tensor from_vector(const std::vector<int64_t>&, const Shape&, TensorOptions);

Tensor from_vector(std::initializer_list<float> values, const Shape& shape, TensorOptions options) {
  return from_vector(std::vector<float>(values), shape, options);
}

Tensor scalar(float value, TensorOptions options) {
  bool requires_grad = options.requires_grad;
  Tensor t = Tensor::empty({}, options.with_requires_grad(false));
  t.fill_(value);
  if (requires_grad) t.set_requires_grad();
  return t;
}

}  // namespace bridle
