// conv2d on a GPU through cuDNN (the op and the CPU kernels are in conv.cpp).
//
// cuDNN's legacy convolution API: one descriptor each for x, w, y and the
// convolution (padding, stride, dilation, groups), and three calls: Forward
// (y), BackwardData (dx) and BackwardFilter (dw), plus AddTensor and
// BackwardBias for the bias. Each picks an algorithm; the choice is cuDNN's
// heuristic (..._v7, no trial runs), made once per shape and device and cached.
// Math is plain FP32 FMA (no TF32), as cuBLAS here, so results match the CPU's
// to float rounding. alpha / beta give backward its "+=": beta = 1 adds.
#include <map>
#include <mutex>
#include <vector>

#include "core/cuda/cudnn_check.h"
#include "ops/cuda_kernels.h"

namespace bridle::cuda {
namespace {

int to_int(int64_t v) { return static_cast<int>(v); }

// Every descriptor of one convolution, destroyed with its scope.
struct ConvDescriptors {
  TensorDescriptor x, y;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;

  explicit ConvDescriptors(const ConvSizes& s) : x(s.N, s.C, s.H, s.W), y(s.N, s.O, s.OH, s.OW) {
    BRIDLE_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    BRIDLE_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
                                                  to_int(s.O), to_int(s.C / s.G), to_int(s.KH),
                                                  to_int(s.KW)));
    BRIDLE_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    // Cross-correlation, as conv.h defines it (CUDNN_CONVOLUTION would flip the kernel).
    BRIDLE_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        conv, to_int(s.PH), to_int(s.PW), to_int(s.SH), to_int(s.SW), to_int(s.DH), to_int(s.DW),
        CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    BRIDLE_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv, to_int(s.G)));
    BRIDLE_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH));
  }
  ~ConvDescriptors() {
    cudnnDestroyConvolutionDescriptor(conv);
    cudnnDestroyFilterDescriptor(w);
  }
  ConvDescriptors(const ConvDescriptors&) = delete;
  ConvDescriptors& operator=(const ConvDescriptors&) = delete;
};

// The algorithm cache: per direction, keyed by the device and every size.
std::vector<int64_t> algorithm_key(const ConvSizes& s) {
  int device = 0;
  BRIDLE_CUDA_CHECK(cudaGetDevice(&device));
  return {device, s.N,  s.C,  s.H,  s.W,  s.O,  s.KH, s.KW, s.OH,
          s.OW,   s.SH, s.SW, s.PH, s.PW, s.DH, s.DW, s.G};
}

// The fastest algorithm cuDNN's heuristic offers that it also supports for
// these descriptors (its list is sorted by expected time; unsupported ones come
// with a failed status), deterministic ones first: some backward algorithms add
// with atomics, and a run resumed from a checkpoint should repeat the
// uninterrupted one. Any supported algorithm if none is deterministic.
template <typename Algo, typename Perf, typename GetAlgorithms>
Algo choose_algorithm(std::map<std::vector<int64_t>, Algo>& cache, const ConvSizes& s,
                      GetAlgorithms get_algorithms, const char* direction) {
  static std::mutex mutex;
  const std::vector<int64_t> key = algorithm_key(s);
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  Perf perf[16];
  int returned = 0;
  get_algorithms(16, &returned, perf);
  for (bool deterministic_only : {true, false}) {
    for (int i = 0; i < returned; ++i) {
      if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
      if (deterministic_only && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
      std::lock_guard<std::mutex> lock(mutex);
      cache[key] = perf[i].algo;
      return perf[i].algo;
    }
  }
  // No algorithm at all: report it as cuDNN's own "not supported".
  throw_cudnn_error(direction, __FILE__, __LINE__, CUDNN_STATUS_NOT_SUPPORTED);
}

}  // namespace

void conv2d_forward(float* y, const float* x, const float* w, const float* b, const ConvSizes& s) {
  cudnnHandle_t handle = cudnn_handle();
  ConvDescriptors d(s);
  static std::map<std::vector<int64_t>, cudnnConvolutionFwdAlgo_t> cache;
  const auto algo = choose_algorithm<cudnnConvolutionFwdAlgo_t, cudnnConvolutionFwdAlgoPerf_t>(
      cache, s,
      [&](int n, int* returned, cudnnConvolutionFwdAlgoPerf_t* perf) {
        BRIDLE_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, d.x, d.w, d.conv, d.y, n,
                                                                  returned, perf));
      },
      "cudnnGetConvolutionForwardAlgorithm_v7 (no supported algorithm)");
  size_t nbytes = 0;
  BRIDLE_CUDNN_CHECK(
      cudnnGetConvolutionForwardWorkspaceSize(handle, d.x, d.w, d.conv, d.y, algo, &nbytes));
  Workspace workspace(nbytes);
  const float one = 1.0f, zero = 0.0f;
  BRIDLE_CUDNN_CHECK(cudnnConvolutionForward(handle, &one, d.x, x, d.w, w, d.conv, algo,
                                             workspace.data(), workspace.size(), &zero, d.y, y));
  if (b) {  // y += b, broadcast over [N, ., OH, OW]
    TensorDescriptor bias(1, s.O, 1, 1);
    BRIDLE_CUDNN_CHECK(cudnnAddTensor(handle, &one, bias, b, &one, d.y, y));
  }
}

void conv2d_backward_data(float* dx, const float* w, const float* dy, const ConvSizes& s,
                          bool accumulate) {
  cudnnHandle_t handle = cudnn_handle();
  ConvDescriptors d(s);
  static std::map<std::vector<int64_t>, cudnnConvolutionBwdDataAlgo_t> cache;
  const auto algo =
      choose_algorithm<cudnnConvolutionBwdDataAlgo_t, cudnnConvolutionBwdDataAlgoPerf_t>(
          cache, s,
          [&](int n, int* returned, cudnnConvolutionBwdDataAlgoPerf_t* perf) {
            BRIDLE_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, d.w, d.y, d.conv,
                                                                           d.x, n, returned, perf));
          },
          "cudnnGetConvolutionBackwardDataAlgorithm_v7 (no supported algorithm)");
  size_t nbytes = 0;
  BRIDLE_CUDNN_CHECK(
      cudnnGetConvolutionBackwardDataWorkspaceSize(handle, d.w, d.y, d.conv, d.x, algo, &nbytes));
  Workspace workspace(nbytes);
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  BRIDLE_CUDNN_CHECK(cudnnConvolutionBackwardData(handle, &one, d.w, w, d.y, dy, d.conv, algo,
                                                  workspace.data(), workspace.size(), &beta, d.x,
                                                  dx));
}

void conv2d_backward_filter(float* dw, const float* x, const float* dy, const ConvSizes& s,
                            bool accumulate) {
  cudnnHandle_t handle = cudnn_handle();
  ConvDescriptors d(s);
  static std::map<std::vector<int64_t>, cudnnConvolutionBwdFilterAlgo_t> cache;
  const auto algo =
      choose_algorithm<cudnnConvolutionBwdFilterAlgo_t, cudnnConvolutionBwdFilterAlgoPerf_t>(
          cache, s,
          [&](int n, int* returned, cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
            BRIDLE_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                handle, d.x, d.y, d.conv, d.w, n, returned, perf));
          },
          "cudnnGetConvolutionBackwardFilterAlgorithm_v7 (no supported algorithm)");
  size_t nbytes = 0;
  BRIDLE_CUDNN_CHECK(
      cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, d.x, d.y, d.conv, d.w, algo, &nbytes));
  Workspace workspace(nbytes);
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  BRIDLE_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle, &one, d.x, x, d.y, dy, d.conv, algo,
                                                    workspace.data(), workspace.size(), &beta, d.w,
                                                    dw));
}

// db[o] (+)= sum over n, oh, ow of dy[n, o, oh, ow].
void conv2d_backward_bias(float* db, const float* dy, const ConvSizes& s, bool accumulate) {
  cudnnHandle_t handle = cudnn_handle();
  TensorDescriptor dy_desc(s.N, s.O, s.OH, s.OW), db_desc(1, s.O, 1, 1);
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  BRIDLE_CUDNN_CHECK(cudnnConvolutionBackwardBias(handle, &one, dy_desc, dy, &beta, db_desc, db));
}

}  // namespace bridle::cuda
