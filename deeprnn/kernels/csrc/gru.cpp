// The GRU recurrence of deeprnn/kernels/gru.py, one step a loop iteration, in C++.
//
// Read gru.py's docstring for the math. As in csrc/lstm.cpp, each step calls ATen for one
// matrix product, v = W_hh (m * h_{t-1}) (B, 3H), and does the rest (LN_hh when on, + beta,
// the gates, zoneout / the length update) in one fused pass over each of the B rows; the
// TorchScript loop of gru.py spends ~20 small ATen ops a step there.
//
// Kept for BPTT (`keep`; under no_grad only one step's values, reused):
//   gates  r, z, n after their nonlinearities (T, B, 3H);
//   ah     without layer norm a_h[n] = (W_hh m h_{t-1} + b_hh)[n] (T, B, H), which r
//          multiplies; with layer norm v = W_hh m h_{t-1} itself (T, B, 3H), from which BPTT
//          recomputes LN_hh's normalised x_hat and a_h[n] (element-wise work) where the
//          TorchScript backward recomputes v with one matrix product a block;
//   stats  LN_hh's mean and rstd of every step (T, 2, B); (0, 2, B) without layer norm.
// The backward is the explicit BPTT of gru.py's `_backward`, with its blocks of steps: per
// step one matrix product for dL/dh_{t-1}, per block one for the block's share of dW_hh.
// Layer-norm moments and the parameter gradients' totals accumulate in double.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "common.h"

namespace {

using namespace deeprnn;  // common.h: Strided, the buffer cache (big_empty), sigmoid, moments

enum GruStat { MEAN = 0, RSTD, N_GRU_STATS };

// The optional inputs of one call as raw pointers (nullptr where absent).
template <typename S>
struct GruOptions {
  Tensor beta_t, gamma_t, drop_t;  // contiguous copies, alive while the loops read them
  const S *beta = nullptr, *gamma = nullptr, *drop = nullptr;
  Strided<S> u_h;
  GruOptions(const OptTensor& beta_, const OptTensor& gamma_, const OptTensor& drop_,
             const OptTensor& u_h_, int64_t T, int64_t B, int64_t H)
      : beta_t(contig(beta_)),
        gamma_t(contig(gamma_)),
        drop_t(contig(drop_)),
        beta(beta_t.defined() ? beta_t.data_ptr<S>() : nullptr),
        gamma(gamma_t.defined() ? gamma_t.data_ptr<S>() : nullptr),
        drop(drop_t.defined() ? drop_t.data_ptr<S>() : nullptr),
        u_h(strided<S>(u_h_, T, B, H)) {}
  bool ln() const { return gamma != nullptr; }
};

template <typename S>
void gru_forward_impl(const Tensor& a_x, const Tensor& h0, const Tensor& weight_t,
                      const GruOptions<S>& op, double eps, bool keep, Tensor& gates,
                      Tensor& ah, Tensor& h, Tensor& stats) {
  const int64_t T = a_x.size(0), B = a_x.size(1), G = a_x.size(2), H = G / 3;
  const bool ln = op.ln();
  const S* drop = op.drop;
  const S* beta = op.beta;
  const S* gamma = op.gamma;
  const Strided<S>& u_h = op.u_h;
  auto opt = a_x.options();

  Tensor h_drop = drop ? at::empty({B, H}, opt) : Tensor();
  Tensor v_step = at::empty({B, G}, opt);  // stays in cache (see lstm.cpp's forward)
  std::vector<S> a_row(G), g_row(keep ? 0 : G), u_buf(H);
  const S* axp = a_x.data_ptr<S>();
  const S* vsp = v_step.data_ptr<S>();
  S* gp = keep ? gates.data_ptr<S>() : nullptr;
  S* ahp = keep ? ah.data_ptr<S>() : nullptr;
  S* hp = h.data_ptr<S>();
  S* sp = ln ? stats.data_ptr<S>() : nullptr;

  Tensor h_prev = h0;
  for (int64_t t = 0; t < T; ++t) {
    Tensor h_in = h_prev;
    if (drop) {
      const S* hpv = h_prev.data_ptr<S>();
      S* hd = h_drop.data_ptr<S>();
      for (int64_t k = 0; k < B * H; ++k) hd[k] = hpv[k] * drop[k];
      h_in = h_drop;
    }
    at::mm_out(v_step, h_in, weight_t);
    const S* hpv = h_prev.data_ptr<S>();
    S* ht = hp + t * B * H;
    S* st = ln ? sp + (keep ? t : 0) * N_GRU_STATS * B : nullptr;
    for (int64_t b = 0; b < B; ++b) {
      const S* __restrict vr = vsp + b * G;
      const S* __restrict axr = axp + t * B * G + b * G;
      S* __restrict a = a_row.data();  // a_h = [LN_hh](v) + beta
      if (ln) {
        if (keep) std::copy(vr, vr + G, ahp + t * B * G + b * G);
        double mean, rstd;
        moments(vr, G, eps, mean, rstd);
        st[MEAN * B + b] = S(mean);
        st[RSTD * B + b] = S(rstd);
        const S m = S(mean), r = S(rstd);
        if (beta) {
#pragma omp simd
          for (int64_t q = 0; q < G; ++q) a[q] = gamma[q] * ((vr[q] - m) * r) + beta[q];
        } else {
#pragma omp simd
          for (int64_t q = 0; q < G; ++q) a[q] = gamma[q] * ((vr[q] - m) * r);
        }
      } else if (beta) {
#pragma omp simd
        for (int64_t q = 0; q < G; ++q) a[q] = vr[q] + beta[q];
      } else {
        std::copy(vr, vr + G, a);
      }
      if (keep && !ln) std::copy(a + 2 * H, a + G, ahp + t * B * H + b * H);
      S* __restrict gr = keep ? gp + t * B * G + b * G : g_row.data();
#pragma omp simd
      for (int64_t q = 0; q < 2 * H; ++q) gr[q] = sigmoid(axr[q] + a[q]);
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) gr[2 * H + j] = std::tanh(axr[2 * H + j] + gr[j] * a[2 * H + j]);
      const S* __restrict z = gr + H;
      const S* __restrict n = gr + 2 * H;
      const S* __restrict hpr = hpv + b * H;
      S* __restrict hr = ht + b * H;
      if (u_h) {  // h_t = h_{t-1} + u (h~ - h_{t-1}), h~ = n + z (h_{t-1} - n)
        const S* __restrict u = u_h.dense(t, b, H, u_buf);
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const S hn = n[j] + z[j] * (hpr[j] - n[j]);
          hr[j] = hpr[j] + u[j] * (hn - hpr[j]);
        }
      } else {
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) hr[j] = n[j] + z[j] * (hpr[j] - n[j]);
      }
    }
    h_prev = h[t];
  }
}

// gates, ah, h, stats (see the top of the file).
using GruSaved = std::tuple<Tensor, Tensor, Tensor, Tensor>;

GruSaved gru_forward(const Tensor& a_x_, const Tensor& h0_, const Tensor& weight_t,
                     const OptTensor& beta, const OptTensor& gamma_hh, const OptTensor& drop,
                     const OptTensor& u_h, double eps, bool keep) {
  TORCH_CHECK(a_x_.dim() == 3 && a_x_.size(2) % 3 == 0, "the input part must be (T, B, 3H)");
  Tensor a_x = a_x_.contiguous(), h0 = h0_.contiguous();
  const int64_t T = a_x.size(0), B = a_x.size(1), G = a_x.size(2), H = G / 3;
  const bool ln = has(gamma_hh);
  auto opt = a_x.options();
  const int64_t Tk = keep ? T : 0;
  Tensor gates = big_empty({Tk, B, G}, opt);
  Tensor ah = big_empty({Tk, B, ln ? G : H}, opt);
  Tensor h = big_empty({T, B, H}, opt);
  Tensor stats = at::empty({ln ? (keep ? T : 1) : 0, N_GRU_STATS, B}, opt);
  AT_DISPATCH_FLOATING_TYPES(a_x.scalar_type(), "deeprnn_gru_forward", [&] {
    GruOptions<scalar_t> op(beta, gamma_hh, drop, u_h, T, B, H);
    gru_forward_impl<scalar_t>(a_x, h0, weight_t, op, eps, keep, gates, ah, h, stats);
  });
  if (!keep) stats = stats.narrow(0, 0, 0);
  return {gates, ah, h, stats};
}

template <typename S>
void gru_backward_impl(const Tensor& d_h, const Tensor& h0, const Tensor& gates,
                       const Tensor& ah, const Tensor& h, const Tensor& weight,
                       const GruOptions<S>& op, const Tensor& stats, int64_t block,
                       Tensor& d_ax, Tensor& dh, Tensor& d_weight, std::vector<double>& d_gamma,
                       std::vector<double>& d_beta) {
  // dh starts as dL/dh_{T-1} (the output's and the final state's) and ends as dL/dh0.
  const int64_t T = h.size(0), B = h.size(1), H = h.size(2), G = 3 * H;
  const bool ln = op.ln();
  const S* drop = op.drop;
  const S* beta = op.beta;
  const S* gamma = op.gamma;
  auto opt = h.options();

  const S* gp = gates.data_ptr<S>();
  const S* ahp = ah.data_ptr<S>();
  const S* hp = h.data_ptr<S>();
  const S* h0p = h0.data_ptr<S>();
  const S* dhp = d_h.data_ptr<S>();
  const S* sp = ln ? stats.data_ptr<S>() : nullptr;
  S* daxp = d_ax.data_ptr<S>();
  S* dhv = dh.data_ptr<S>();

  block = std::max<int64_t>(1, std::min(block, T));
  Tensor h_in = at::empty({block, B, H}, opt);
  Tensor d_v = at::empty({block, B, G}, opt);  // dL/dv of the block's steps
  Tensor mm = at::empty({B, H}, opt);
  Tensor add = at::empty({B, H}, opt);  // what joins dL/dh_{t-1} besides the projection
  S* addp = add.data_ptr<S>();
  const S* mmp = mm.data_ptr<S>();
  S* dvp = d_v.data_ptr<S>();
  std::vector<S> uh_buf(H, S(1)), x_row(ln ? G : 0), ahn_row(ln ? H : 0);
  // a block's share of d gamma, d beta, summed in S (vectorised), then added in double
  std::vector<S> acc_g(ln ? G : 0), acc_b(G);
  auto flush = [](std::vector<S>& acc, std::vector<double>& total) {
    for (size_t q = 0; q < acc.size(); ++q) total[q] += acc[q];
    std::fill(acc.begin(), acc.end(), S(0));
  };

  for (int64_t k = (T - 1) / block; k >= 0; --k) {
    const int64_t start = k * block, stop = std::min(start + block, T), n = stop - start;
    Tensor hin = h_in.narrow(0, 0, n);  // m * h_{t-1} of the block's steps, for dW_hh
    block_inputs(hin, h, h0, op.drop_t, start, n);
    for (int64_t j = n - 1; j >= 0; --j) {
      const int64_t t = start + j;
      const S* st = ln ? sp + t * N_GRU_STATS * B : nullptr;
      for (int64_t b = 0; b < B; ++b) {
        const S* __restrict r = gp + t * B * G + b * G;
        const S* __restrict z = r + H;
        const S* __restrict nn = r + 2 * H;
        const S* __restrict hpr = t > 0 ? hp + (t - 1) * B * H + b * H : h0p + b * H;
        const S* __restrict dhr = dhv + b * H;
        const S* __restrict u = op.u_h.dense(t, b, H, uh_buf);
        const S* __restrict ahn;  // a_h[n]: kept, or recomputed from v with layer norm
        S rstd = 0;
        if (ln) {
          const S* __restrict vr = ahp + t * B * G + b * G;
          const S mean = st[MEAN * B + b];
          rstd = st[RSTD * B + b];
          S* __restrict x = x_row.data();
#pragma omp simd
          for (int64_t q = 0; q < G; ++q) x[q] = (vr[q] - mean) * rstd;
          S* __restrict an = ahn_row.data();
          if (beta) {
#pragma omp simd
            for (int64_t jj = 0; jj < H; ++jj)
              an[jj] = gamma[2 * H + jj] * x[2 * H + jj] + beta[2 * H + jj];
          } else {
#pragma omp simd
            for (int64_t jj = 0; jj < H; ++jj) an[jj] = gamma[2 * H + jj] * x[2 * H + jj];
          }
          ahn = an;
        } else {
          ahn = ahp + t * B * H + b * H;
        }
        S* __restrict daxr = daxp + t * B * G + b * G;
        S* __restrict dvr = dvp + j * B * G + b * G;  // dL/da_h, then (LN) dL/dv in place
        S* __restrict addr = addp + b * H;
        const S* __restrict dh_out = t > 0 ? dhp + (t - 1) * B * H + b * H : nullptr;
#pragma omp simd
        for (int64_t jj = 0; jj < H; ++jj) {
          const S w = u[jj], zz = z[jj], nv = nn[jj], rr = r[jj], d = dhr[jj];
          const S d_an = d * w * (S(1) - zz) * (S(1) - nv * nv);
          const S d_az = d * w * (hpr[jj] - nv) * zz * (S(1) - zz);
          const S d_ar = d_an * ahn[jj] * rr * (S(1) - rr);
          daxr[jj] = d_ar;
          daxr[H + jj] = d_az;
          daxr[2 * H + jj] = d_an;
          dvr[jj] = d_ar;
          dvr[H + jj] = d_az;
          dvr[2 * H + jj] = d_an * rr;
          addr[jj] = d * (S(1) - w * (S(1) - zz));  // the direct path h_{t-1} -> h_t
        }
        if (dh_out) {
#pragma omp simd
          for (int64_t jj = 0; jj < H; ++jj) addr[jj] += dh_out[jj];
        }
        S* __restrict a_b = acc_b.data();
#pragma omp simd
        for (int64_t q = 0; q < G; ++q) a_b[q] += dvr[q];
        if (ln) {  // through LN_hh: rstd (g - mean(g) - x mean(g x)), g = dL/da_h * gamma
          const S* __restrict x = x_row.data();
          S* __restrict a_g = acc_g.data();
          S sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
          for (int64_t q = 0; q < G; ++q) {
            const S g = dvr[q] * gamma[q];
            sg += g;
            sgx += g * x[q];
            a_g[q] += dvr[q] * x[q];
          }
          const S mg = sg / S(G), mgx = sgx / S(G);
#pragma omp simd
          for (int64_t q = 0; q < G; ++q) dvr[q] = rstd * (dvr[q] * gamma[q] - mg - x[q] * mgx);
        }
      }
      at::mm_out(mm, d_v[j], weight);
      if (drop) {
        for (int64_t q = 0; q < B * H; ++q) dhv[q] = mmp[q] * drop[q] + addp[q];
      } else {
        for (int64_t q = 0; q < B * H; ++q) dhv[q] = mmp[q] + addp[q];
      }
    }
    gemm(d_v.narrow(0, 0, n).reshape({n * B, G}).t(), hin.view({n * B, H}), d_weight, 1.0f);
    flush(acc_b, d_beta);
    if (ln) flush(acc_g, d_gamma);
  }
}

// dL/da_x, dL/dh0, dL/dW_hh, dL/d gamma_hh (empty without layer norm), dL/d beta.
using GruGrads = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor>;

GruGrads gru_backward(const Tensor& d_h, const Tensor& d_hT, const Tensor& h0,
                      const Tensor& gates, const Tensor& ah, const Tensor& h,
                      const Tensor& weight, const OptTensor& beta, const OptTensor& gamma_hh,
                      const OptTensor& drop, const OptTensor& u_h, const Tensor& stats,
                      int64_t block) {
  const int64_t T = h.size(0), B = h.size(1), H = h.size(2), G = 3 * H;
  const bool ln = has(gamma_hh);
  auto opt = h.options();
  TORCH_CHECK(gates.size(0) == T, "gru_backward needs the forward's kept gates (keep=True)");
  Tensor d_hc = d_h.contiguous();
  Tensor d_ax = big_empty({T, B, G}, opt);
  Tensor dh = (d_hc[T - 1] + d_hT).contiguous();
  Tensor d_weight = at::zeros_like(weight);
  std::vector<double> d_gamma(ln ? G : 0), d_beta(G);
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "deeprnn_gru_backward", [&] {
    GruOptions<scalar_t> op(beta, gamma_hh, drop, u_h, T, B, H);
    gru_backward_impl<scalar_t>(d_hc, h0.contiguous(), gates.contiguous(), ah.contiguous(),
                                h.contiguous(), weight.contiguous(), op, stats.contiguous(),
                                block, d_ax, dh, d_weight, d_gamma, d_beta);
  });
  auto tensor = [&](const std::vector<double>& acc) {
    return at::tensor(c10::ArrayRef<double>(acc), opt.dtype(at::kDouble)).to(opt.dtype());
  };
  return {d_ax, dh, d_weight, ln ? tensor(d_gamma) : at::empty({0}, opt), tensor(d_beta)};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(deeprnn, m) {  // the library itself is defined in lstm.cpp
  m.def(
      "gru_forward(Tensor a_x, Tensor h0, Tensor weight_t, Tensor? beta, Tensor? gamma_hh, "
      "Tensor? drop, Tensor? u_h, float eps, bool keep) -> (Tensor, Tensor, Tensor, Tensor)",
      &gru_forward);
  m.def(
      "gru_backward(Tensor d_h, Tensor d_hT, Tensor h0, Tensor gates, Tensor ah, Tensor h, "
      "Tensor weight, Tensor? beta, Tensor? gamma_hh, Tensor? drop, Tensor? u_h, "
      "Tensor stats, int block) -> (Tensor, Tensor, Tensor, Tensor, Tensor)",
      &gru_backward);
}
