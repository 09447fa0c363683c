// Shared by the step loops of csrc/*.cpp (one extension library, see extension.py): strided
// reads of the update weights, the large-buffer cache, sigmoid and layer-norm moments.
//
// Everything here lives in namespace deeprnn with external (inline) linkage, so that every
// source of the library shares ONE buffer cache (deeprnn::cache()); empty_cache (registered
// in lstm.cpp) releases the buffers of all the loops.

#pragma once

#include <ATen/ATen.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

// oneDNN's fp32 / bf16 matmul, result = beta * result + alpha * mat1 @ mat2 (ATen's
// aten/src/ATen/native/mkldnn/Matmul.cpp). libtorch_cpu exports it but does not ship its
// header; declared weak, so a torch built without it loads the library and `gemm` keeps to
// ATen's BLAS (the address is then null).
namespace at::native {
void mkldnn_matmul(const Tensor& mat1, const Tensor& mat2, const Tensor& result, float beta,
                   float alpha) __attribute__((weak));
}  // namespace at::native

namespace deeprnn {

using at::Tensor;
using OptTensor = std::optional<Tensor>;

// A (T, B, H)-shaped read of a tensor that may be broadcast (strides 0): the update
// weights u are (T, B, H) masks, (T, B, 1) length masks or an expanded scalar.
template <typename S>
struct Strided {
  const S* p = nullptr;
  int64_t st = 0, sb = 0, sj = 0;
  explicit operator bool() const { return p != nullptr; }
  const S* row(int64_t t, int64_t b) const { return p + t * st + b * sb; }
  // Row (t, b) as H contiguous values: the row itself, or `buf` filled (1 when absent), so
  // that the loops reading it vectorise.
  const S* dense(int64_t t, int64_t b, int64_t H, std::vector<S>& buf) const {
    if (p && sj == 1) return row(t, b);
    if (!p) return buf.data();  // `buf` holds ones
    const S* r = row(t, b);
    for (int64_t j = 0; j < H; ++j) buf[j] = r[j * sj];
    return buf.data();
  }
};

template <typename S>
Strided<S> strided(const OptTensor& u, int64_t T, int64_t B, int64_t H) {
  Strided<S> s;
  if (!u.has_value() || !u->defined()) return s;
  Tensor e = u->expand({T, B, H});
  s.p = e.data_ptr<S>();
  s.st = e.stride(0);
  s.sb = e.stride(1);
  s.sj = e.stride(2);
  return s;
}

inline Tensor contig(const OptTensor& t) {
  return (t.has_value() && t->defined()) ? t->contiguous() : Tensor();
}

inline bool has(const OptTensor& t) { return t.has_value() && t->defined(); }

// Large buffers (>= 1 MiB: the kept gates / v, c, h, dL/d input) come from a small cache
// of freed ones. The default CPU allocator returns such blocks to the kernel at once, so
// every training step would page-fault ~100 MB in again (measured here: ~3.7 us a 4 KiB
// page, ~120 ms a step for a 2-layer LN-LSTM at T = 1000, B = 16, H = 128). A freed
// buffer goes back to the cache while it holds under `kCacheLimit`, else to the system;
// `empty_cache` releases all of them (deeprnn.kernels.extension.empty_cache).
constexpr size_t kPooledMin = size_t(1) << 20;
constexpr size_t kCacheLimit = size_t(1) << 30;

struct BufferCache {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> free;
  size_t held = 0;

  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      auto it = free.find(bytes);
      if (it != free.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        held -= bytes;
        return p;
      }
    }
    void* p = std::aligned_alloc(64, bytes);
    TORCH_CHECK(p != nullptr, "deeprnn: out of memory allocating ", bytes, " bytes");
    return p;
  }
  void give(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex);
    if (held + bytes > kCacheLimit) {
      std::free(p);
      return;
    }
    free[bytes].push_back(p);
    held += bytes;
  }
  int64_t clear() {
    std::lock_guard<std::mutex> lock(mutex);
    for (auto& [bytes, ptrs] : free)
      for (void* p : ptrs) std::free(p);
    free.clear();
    const int64_t released = int64_t(held);
    held = 0;
    return released;
  }
};

inline BufferCache& cache() {
  static BufferCache* c = new BufferCache();  // never destroyed: tensors may outlive exit
  return *c;
}

inline Tensor big_empty(at::IntArrayRef sizes, const at::TensorOptions& opt) {
  int64_t n = 1;
  for (int64_t s : sizes) n *= s;
  const size_t bytes = size_t(n) * opt.dtype().itemsize();
  if (bytes < kPooledMin) return at::empty(sizes, opt);
  const size_t rounded = (bytes + 63) / 64 * 64;  // aligned_alloc wants a multiple
  void* p = cache().take(rounded);
  return at::from_blob(p, sizes, [rounded](void* q) { cache().give(q, rounded); }, opt);
}

inline int64_t empty_cache() { return cache().clear(); }

// Which library runs the loops' large fp32 products (the input projection of all steps, its
// dX and dW, each BPTT block's dW_hh). On AMD CPUs ATen's BLAS (MKL) runs them at ~100
// GFLOP/s a core and oneDNN in 0.42-0.46 of its time (benchmarks/gemm.py); torch's own
// LSTM already multiplies through oneDNN. "auto" takes oneDNN on AMD only, where that was
// measured; "onednn" / "blas" force one (set_gemm_backend, or DEEPRNN_GEMM at load).
enum GemmBackend : int { kGemmAuto = 0, kGemmBlas = 1, kGemmOneDnn = 2 };

inline std::atomic<int>& gemm_setting() {
  static std::atomic<int> mode{kGemmAuto};
  return mode;
}

inline bool onednn_linked() { return &at::native::mkldnn_matmul != nullptr; }

// Whether oneDNN runs the products now (the setting resolved on this CPU).
inline bool gemm_onednn() {
  const int mode = gemm_setting().load(std::memory_order_relaxed);
  if (!onednn_linked() || mode == kGemmBlas) return false;
  if (mode == kGemmOneDnn) return true;
  static const bool amd = __builtin_cpu_is("amd");
  return amd;
}

// Products below this many multiply-adds stay on ATen: the per-step (B, H) x (H, G H)
// product is as fast there (benchmarks/gemm.py) and skips oneDNN's primitive lookup.
// Settable (set_gemm_backend), so that tests send small products through oneDNN too.
constexpr int64_t kOneDnnMinMacs = int64_t(1) << 22;

inline std::atomic<int64_t>& gemm_min_macs() {
  static std::atomic<int64_t> macs{kOneDnnMinMacs};
  return macs;
}

// out = beta * out + a @ b, beta 0 or 1 (out (M, N), a (M, K), b (K, N); a and b may be
// transposed views). oneDNN only for float32 products of at least gemm_min_macs().
inline void gemm(const Tensor& a, const Tensor& b, const Tensor& out, float beta) {
  const int64_t macs = a.size(0) * a.size(1) * b.size(1);
  const int64_t least = gemm_min_macs().load(std::memory_order_relaxed);
  if (out.scalar_type() == at::kFloat && macs > 0 && macs >= least && gemm_onednn()) {
    at::native::mkldnn_matmul(a, b, out, beta, 1.0f);
    return;
  }
  if (beta == 0.0f) {
    Tensor o = out;
    at::mm_out(o, a, b);
  } else {
    out.addmm_(a, b);
  }
}

// a @ b into a buffer of the cache (`big_empty`: no page faults on the next step's reuse).
inline Tensor mm_into_cache(const Tensor& a, const Tensor& b) {
  Tensor out = big_empty({a.size(0), b.size(1)}, a.options());
  gemm(a, b, out, 0.0f);
  return out;
}

// x (M, K) @ weight (N, K)^T [+ bias (N,)], into the buffer cache.
inline Tensor linear_into_cache(const Tensor& x, const Tensor& weight, const OptTensor& bias) {
  Tensor out = big_empty({x.size(0), weight.size(0)}, x.options());
  if (has(bias)) out.copy_(bias->expand_as(out));
  gemm(x, weight.t(), out, has(bias) ? 1.0f : 0.0f);
  return out;
}

template <typename S>
inline S sigmoid(S x) {
  return S(1) / (S(1) + std::exp(-x));
}

// mean and 1 / sqrt(var + eps) of n values (biased variance, as torch's layer norm).
template <typename S>
inline void moments(const S* x, int64_t n, double eps, double& mean, double& rstd) {
  double sum = 0.0;
  for (int64_t k = 0; k < n; ++k) sum += x[k];
  mean = sum / n;
  double sq = 0.0;
  for (int64_t k = 0; k < n; ++k) {
    double d = x[k] - mean;
    sq += d * d;
  }
  rstd = 1.0 / std::sqrt(sq / n + eps);
}

// The inputs m * h_{t-1} of the W_hh product for steps [start, start + n) of BPTT's block,
// written into `hin` (n, B, H): h0 before step 0, the outputs h after; `drop` the mask
// (undefined: none). dW_hh is then one product over the block.
inline void block_inputs(Tensor& hin, const Tensor& h, const Tensor& h0, const Tensor& drop,
                         int64_t start, int64_t n) {
  if (start > 0) {
    hin.copy_(h.narrow(0, start - 1, n));
  } else {
    hin[0].copy_(h0);
    if (n > 1) hin.narrow(0, 1, n - 1).copy_(h.narrow(0, 0, n - 1));
  }
  if (drop.defined()) hin.mul_(drop);
}

}  // namespace deeprnn
