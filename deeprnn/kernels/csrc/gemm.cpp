// The large products of deeprnn/kernels/gemm.py (the input projection of all steps and its
// backward) on common.h's `gemm`: oneDNN where it is faster, into the buffer cache.

#include <ATen/ATen.h>
#include <torch/library.h>

#include <string>

#include "common.h"

namespace {

using namespace deeprnn;

std::string gemm_backend() { return gemm_onednn() ? "onednn" : "blas"; }

std::string gemm_setting_name() {
  switch (gemm_setting().load()) {
    case kGemmBlas:
      return "blas";
    case kGemmOneDnn:
      return "onednn";
    default:
      return "auto";
  }
}

// min_macs < 0 restores the default threshold (kOneDnnMinMacs).
void set_gemm_backend(const std::string& name, int64_t min_macs) {
  gemm_min_macs() = min_macs < 0 ? kOneDnnMinMacs : min_macs;
  if (name == "auto") {
    gemm_setting() = kGemmAuto;
  } else if (name == "blas") {
    gemm_setting() = kGemmBlas;
  } else if (name == "onednn") {
    TORCH_CHECK(onednn_linked(), "deeprnn: this torch has no oneDNN matmul; use 'blas' or 'auto'");
    gemm_setting() = kGemmOneDnn;
  } else {
    TORCH_CHECK(false, "deeprnn: unknown GEMM backend '", name,
                "'; expected 'auto', 'blas' or 'onednn'");
  }
}

Tensor mm(const Tensor& a, const Tensor& b) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0),
              "deeprnn::mm: (M, K) @ (K, N) matrices expected, got ", a.sizes(), " and ",
              b.sizes());
  return mm_into_cache(a, b);
}

Tensor linear_op(const Tensor& x, const Tensor& weight, const OptTensor& bias) {
  TORCH_CHECK(x.dim() == 2 && weight.dim() == 2 && x.size(1) == weight.size(1),
              "deeprnn::linear: x (M, K) and weight (N, K) expected, got ", x.sizes(), " and ",
              weight.sizes());
  return linear_into_cache(x, weight, bias);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(deeprnn, m) {  // the library itself is defined in lstm.cpp
  m.def("gemm_backend() -> str", &gemm_backend);
  m.def("gemm_setting() -> str", &gemm_setting_name);
  m.def("set_gemm_backend(str name, int min_macs=-1) -> ()", &set_gemm_backend);
  m.def("mm(Tensor a, Tensor b) -> Tensor", &mm);
  m.def("linear(Tensor x, Tensor weight, Tensor? bias) -> Tensor", &linear_op);
}
