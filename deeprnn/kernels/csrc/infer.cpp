// Inference of torch's fused recurrences (LSTM, GRU, tanh / relu RNN) for a few rows at a time.
//
// At B = 1-8 a step's W_hh h is a matrix-vector product, bound by reading W_hh (4H x H
// floats: 256 KB at H = 128) from cache, and torch's own kernels pay a large fixed cost a
// call and a step on top of it (measured: a 2-layer bidirectional LSTM of 128, T = 50, B = 1
// takes ~1.5 ms in torch, ~1.0 ms here). This loop does what `_VF.lstm` / `_VF.gru` /
// `_VF.rnn_*` do with the same arguments (batch-first x, no dropout, no grad): one GEMM per
// layer and direction for every step's input part, then per step one pass over
// W_hh packed into panels of kPanel outputs (k-major, contiguous), so that the inner loop is
// kRows x kPanel fused multiply-adds on registers, and the gates' element-wise math.
// float32 only; deeprnn/kernels/infer.py decides when it runs.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"
#include "panels.h"

namespace {

using namespace deeprnn;  // common.h: sigmoid; panels.h: pack_panels, matvec_rows

enum Kind : int64_t { LSTM = 0, GRU = 1, RNN_TANH = 2, RNN_RELU = 3 };

int64_t gate_count(int64_t kind) { return kind == LSTM ? 4 : kind == GRU ? 3 : 1; }

// One direction of one layer over all T steps. xw (B, T, G H) holds W_ih x_t + b_ih; out
// (B, T, ldo) gets h_t at column `ooff`; h, c (B, H) start as the initial state and end as
// the final one.
void direction(int64_t kind, const float* xw, const Tensor& packed, const float* b_hh,
               float* out, int64_t ldo, int64_t ooff, float* h, float* c, int64_t B, int64_t T,
               int64_t H, bool reverse) {
  const int64_t G = gate_count(kind), N = G * H, panels = (N + kPanel - 1) / kPanel;
  TORCH_CHECK(packed.dim() == 3 && packed.size(0) == panels && packed.size(1) == H &&
                  packed.size(2) == kPanel && packed.is_contiguous(),
              "rnn_infer: packed W_hh must be pack_panels(W_hh)");
  const float* wp = packed.data_ptr<float>();
  const int64_t lda = panels * kPanel;
  std::vector<float> acc(B * lda), init(lda, 0.0f);
  if (b_hh != nullptr) std::copy(b_hh, b_hh + N, init.begin());
  for (int64_t s = 0; s < T; ++s) {
    const int64_t t = reverse ? T - 1 - s : s;
    matvec_rows(wp, panels, H, h, H, init.data(), acc.data(), lda, B);
    for (int64_t b = 0; b < B; ++b) {
      const float* x = xw + (b * T + t) * N;
      const float* g = acc.data() + b * lda;
      float* hb = h + b * H;
      float* o = out + (b * T + t) * ldo + ooff;
      if (kind == LSTM) {
        float* cb = c + b * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const float i_ = sigmoid(x[j] + g[j]), f = sigmoid(x[H + j] + g[H + j]);
          const float n = std::tanh(x[2 * H + j] + g[2 * H + j]);
          const float og = sigmoid(x[3 * H + j] + g[3 * H + j]);
          const float cn = f * cb[j] + i_ * n;
          cb[j] = cn;
          hb[j] = og * std::tanh(cn);
        }
      } else if (kind == GRU) {  // torch's GRU: r gates (W_hn h + b_hn)
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const float r = sigmoid(x[j] + g[j]), z = sigmoid(x[H + j] + g[H + j]);
          const float n = std::tanh(x[2 * H + j] + r * g[2 * H + j]);
          hb[j] = (1.0f - z) * n + z * hb[j];
        }
      } else if (kind == RNN_TANH) {
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) hb[j] = std::tanh(x[j] + g[j]);
      } else {
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) hb[j] = std::max(x[j] + g[j], 0.0f);
      }
      std::copy(hb, hb + H, o);
    }
  }
}

// The arguments and results of _VF.lstm (hx = [h0, c0]) / _VF.gru / _VF.rnn_* (hx = [h0])
// with batch_first, no dropout, not training: [output (B, T, D H), h_n (L D, B, H), c_n].
// `packed` holds pack_panels(W_hh) of every layer and direction, in the order of `weights`
// (the caller keeps them between calls: packing costs ~40 us for 512 x 128).
std::vector<Tensor> rnn_infer(const Tensor& x_, at::TensorList hx, at::TensorList weights,
                              at::TensorList packed, bool has_bias, int64_t layers,
                              bool bidirectional, int64_t kind) {
  TORCH_CHECK(x_.scalar_type() == at::kFloat && x_.device().is_cpu(), "rnn_infer: CPU float32");
  TORCH_CHECK(x_.dim() == 3, "rnn_infer: x must be (B, T, I)");
  const int64_t D = bidirectional ? 2 : 1, per = has_bias ? 4 : 2;
  TORCH_CHECK(static_cast<int64_t>(weights.size()) == layers * D * per, "rnn_infer: weights");
  const bool lstm = kind == LSTM;
  TORCH_CHECK(static_cast<int64_t>(hx.size()) == (lstm ? 2 : 1), "rnn_infer: hx");
  TORCH_CHECK(static_cast<int64_t>(packed.size()) == layers * D, "rnn_infer: packed");
  const int64_t B = x_.size(0), T = x_.size(1), H = hx[0].size(2);
  Tensor h_n = hx[0].contiguous().clone(), c_n;
  if (lstm) c_n = hx[1].contiguous().clone();
  Tensor input = x_.contiguous();
  for (int64_t l = 0; l < layers; ++l) {
    const Tensor flat = input.reshape({B * T, input.size(2)});
    // every step's input part, one GEMM per direction: D x (B T, G H)
    std::vector<Tensor> xw(D), b_hh(D);
    for (int64_t d = 0; d < D; ++d) {
      const int64_t at = (l * D + d) * per;
      const OptTensor bias = has_bias ? OptTensor(weights[at + 2]) : OptTensor();
      xw[d] = linear_into_cache(flat, weights[at], bias);
      if (has_bias) b_hh[d] = weights[at + 3].contiguous();
    }
    Tensor out = at::empty({B, T, D * H}, x_.options());
    // The two directions are independent: with two or more threads each runs on its own
    // core (and its own cache holds its W_hh).
    at::parallel_for(0, D, 1, [&](int64_t begin, int64_t end) {
      for (int64_t d = begin; d < end; ++d) {
        float* hp = h_n.data_ptr<float>() + (l * D + d) * B * H;
        float* cp = lstm ? c_n.data_ptr<float>() + (l * D + d) * B * H : nullptr;
        direction(kind, xw[d].data_ptr<float>(), packed[l * D + d],
                  has_bias ? b_hh[d].data_ptr<float>() : nullptr, out.data_ptr<float>(), D * H,
                  d * H, hp, cp, B, T, H, d == 1);
      }
    });
    input = out;
  }
  if (lstm) return {input, h_n, c_n};
  return {input, h_n};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(deeprnn, m) {
  m.def(
      "rnn_infer(Tensor x, Tensor[] hx, Tensor[] weights, Tensor[] packed, bool has_bias, "
      "int layers, bool bidirectional, int kind) -> Tensor[]",
      &rnn_infer);
  m.def("pack_panels(Tensor w) -> Tensor", &deeprnn::pack_panels);
}
