// W_hh x h for a few rows as one pass over W packed into panels (csrc/infer.cpp's loop, and
// the LSTM loops' per-step products of csrc/lstm.cpp, forward and BPTT, at small batches).
//
// W (N, K) is stored as (ceil(N / kPanel), K, kPanel): for each panel of kPanel outputs the
// K columns one after another, so one pass reads W contiguously and the inner loop is
// R rows x kPanel multiply-adds held in registers (R = 4, 2, 1). float32 only.

#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace deeprnn {

constexpr int64_t kPanel = 64;  // outputs per panel: 4 AVX-512 registers a row

// w (N, K) row-major as (ceil(N / kPanel), K, kPanel), zero past N.
inline Tensor pack_panels(const Tensor& w_) {
  TORCH_CHECK(w_.scalar_type() == at::kFloat && w_.dim() == 2, "pack_panels: a 2-D float32 W");
  const Tensor w = w_.contiguous();
  const int64_t N = w.size(0), K = w.size(1), panels = (N + kPanel - 1) / kPanel;
  Tensor out = at::zeros({panels, K, kPanel}, w.options());
  const float* src = w.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  for (int64_t n = 0; n < N; ++n) {
    float* col = dst + (n / kPanel) * K * kPanel + (n % kPanel);
    const float* row = src + n * K;
    for (int64_t k = 0; k < K; ++k) col[k * kPanel] = row[k];
  }
  return out;
}

// acc[r][0, panels * kPanel) = init + W h_r for R rows h (each K values, stride ldh); init
// holds panels * kPanel values (zero past N).
#if defined(__AVX512F__)
// Written with intrinsics: gcc's vectorisation of the portable loop below kept the
// accumulators in memory (a store and a load per multiply-add, measured ~2x slower).
template <int R>
inline void matvec(const float* packed, int64_t panels, int64_t K, const float* h,
                   int64_t ldh, const float* init, float* acc, int64_t lda) {
  static_assert(kPanel == 64, "four 16-float registers a row");
  for (int64_t p = 0; p < panels; ++p) {
    __m512 a[R][4];
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < 4; ++q) a[r][q] = _mm512_loadu_ps(init + p * kPanel + 16 * q);
    const float* w = packed + p * K * kPanel;
    for (int64_t k = 0; k < K; ++k, w += kPanel) {
      const __m512 w0 = _mm512_loadu_ps(w), w1 = _mm512_loadu_ps(w + 16);
      const __m512 w2 = _mm512_loadu_ps(w + 32), w3 = _mm512_loadu_ps(w + 48);
      for (int r = 0; r < R; ++r) {
        const __m512 v = _mm512_set1_ps(h[r * ldh + k]);
        a[r][0] = _mm512_fmadd_ps(v, w0, a[r][0]);
        a[r][1] = _mm512_fmadd_ps(v, w1, a[r][1]);
        a[r][2] = _mm512_fmadd_ps(v, w2, a[r][2]);
        a[r][3] = _mm512_fmadd_ps(v, w3, a[r][3]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < 4; ++q) _mm512_storeu_ps(acc + r * lda + p * kPanel + 16 * q, a[r][q]);
  }
}
#else
template <int R>
inline void matvec(const float* packed, int64_t panels, int64_t K, const float* h,
                   int64_t ldh, const float* init, float* acc, int64_t lda) {
  for (int64_t p = 0; p < panels; ++p) {
    float a[R][kPanel];
    for (int r = 0; r < R; ++r) std::copy(init + p * kPanel, init + (p + 1) * kPanel, a[r]);
    const float* w = packed + p * K * kPanel;
    for (int64_t k = 0; k < K; ++k, w += kPanel)
      for (int r = 0; r < R; ++r) {
        const float v = h[r * ldh + k];
#pragma omp simd
        for (int64_t i = 0; i < kPanel; ++i) a[r][i] += v * w[i];
      }
    for (int r = 0; r < R; ++r) std::copy(a[r], a[r] + kPanel, acc + r * lda + p * kPanel);
  }
}
#endif

inline void matvec_rows(const float* packed, int64_t panels, int64_t K, const float* h,
                        int64_t ldh, const float* init, float* acc, int64_t lda, int64_t rows) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4)
    matvec<4>(packed, panels, K, h + r * ldh, ldh, init, acc + r * lda, lda);
  for (; r + 2 <= rows; r += 2)
    matvec<2>(packed, panels, K, h + r * ldh, ldh, init, acc + r * lda, lda);
  for (; r < rows; ++r) matvec<1>(packed, panels, K, h + r * ldh, ldh, init, acc + r * lda, lda);
}

// A step's product rows (R, K) x W^T (K, N) on panels when `on`: `ld` is the row stride
// of its output (N padded to whole panels; N itself when off, for ATen's product).
struct PanelProduct {
  bool on;
  Tensor packed;
  std::vector<float> zero;
  int64_t ld;
  // w (N, K), as pack_panels takes it
  PanelProduct(bool on_, const Tensor& w, int64_t N) : on(on_), ld(N) {
    if (!on) return;
    packed = pack_panels(w);
    ld = packed.size(0) * kPanel;
    zero.assign(ld, 0.0f);
  }
  // out (rows, ld) = in (rows, K) x W^T
  void run(const float* in, int64_t rows, float* out) const {
    matvec_rows(packed.data_ptr<float>(), packed.size(0), packed.size(1), in, packed.size(1),
                zero.data(), out, ld, rows);
  }
};

}  // namespace deeprnn
