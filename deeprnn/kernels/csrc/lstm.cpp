// The LSTM recurrence of deeprnn/kernels/lstm.py, one step a loop iteration, in C++.
//
// Read lstm.py's docstring for the math. Each step still calls ATen for its matrix product,
// but the ~20 element-wise and layer-norm ops around it become two or three fused loops over
// the (B, H) rows: on CPU at B = 16-64 those ops' dispatch and memory passes, not the
// arithmetic, were what made the TorchScript loop ~2x slower than torch's fused LSTM.
//
// Two modes, one code path:
//   plain (`lstm_forward` / `lstm_backward`: recurrent dropout, zoneout, lengths): the same
//     inputs, outputs and storage as the TorchScript `_forward` / `_backward` of lstm.py;
//     keeps the gates z (T, B, 4H).
//   layer norm (`ln_lstm_*`): takes u = W_ih x itself and applies LN_ih per step, keeps
//     v = W_hh m h_{t-1} (T, B, 4H) and every step's LN statistics instead of z. Its BPTT
//     recomputes the gates from u and v (element-wise work) rather than v from h (one more
//     matrix product of the forward's size): the memory of the plain mode, one product less.
// Built on first use by torch.utils.cpp_extension (deeprnn/kernels/extension.py) with
// -O3 -ffast-math, so that gcc vectorises exp / tanh through glibc's vector math library;
// layer-norm moments and the parameter gradients' totals accumulate in double. The GRU's
// loops are csrc/gru.cpp, in the same library; what both use is in csrc/common.h.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <type_traits>
#include <vector>

#include "common.h"
#include "panels.h"

namespace {

using namespace deeprnn;  // common.h: Strided, the buffer cache (big_empty), sigmoid, moments

// The optional parameters of one call, as raw pointers (nullptr where absent). The layer
// norm ones: gamma_ih, beta (LN_ih's and LN_hh's biases and b_ih + b_hh, folded), gamma_hh,
// gamma_c, beta_c; their presence (gamma_hh) selects the layer-norm mode.
template <typename S>
struct Options {
  using Scalar = S;
  Tensor drop_t;  // keeps a contiguous copy of the mask alive
  const S *gamma_ih = nullptr, *beta = nullptr, *gamma_hh = nullptr, *gamma_c = nullptr,
          *beta_c = nullptr, *drop = nullptr;
  Strided<S> u_h, u_c;
  double eps_ih = 0.0, eps = 0.0;
  Options(const OptTensor& drop_, const OptTensor& u_h_, const OptTensor& u_c_, int64_t T,
          int64_t B, int64_t H)
      : drop_t(contig(drop_)),
        drop(drop_t.defined() ? drop_t.data_ptr<S>() : nullptr),
        u_h(strided<S>(u_h_, T, B, H)),
        u_c(strided<S>(u_c_, T, B, H)) {}
  bool ln() const { return gamma_hh != nullptr; }
};

// The layer-norm mode's parameters, kept contiguous while the loops read them.
struct LNParams {
  Tensor gamma_ih, beta, gamma_hh, gamma_c, beta_c;  // beta_c may be undefined
  double eps_ih, eps;
  template <typename S>
  void fill(Options<S>& op) const {
    op.gamma_ih = gamma_ih.data_ptr<S>();
    op.beta = beta.data_ptr<S>();
    op.gamma_hh = gamma_hh.data_ptr<S>();
    op.gamma_c = gamma_c.data_ptr<S>();
    op.beta_c = beta_c.defined() ? beta_c.data_ptr<S>() : nullptr;
    op.eps_ih = eps_ih;
    op.eps = eps;
  }
};

// Rows up to which the W_hh products (forward, both modes, and BPTT's dL/dh_{t-1}) run on
// packed panels (panels.h) rather than an ATen GEMM call a step. Measured, 1 thread, train
// step: at B = 16, H = 128 the panels 4-7 % faster (the forward's product ~66 -> ~25 us a
// step); at B = 32, H = 64 ATen's GEMM 5-15 % faster.
constexpr int64_t kPanelRows = 16;

// Layer-norm statistics: (T, 6, B) = mean and rstd of u (LN_ih), v (LN_hh), c~ (LN_c).
enum Stat { MEAN_IH = 0, RSTD_IH, MEAN_HH, RSTD_HH, MEAN_C, RSTD_C, N_STATS };

template <typename S>
void forward_impl(const Tensor& x_in, const Tensor& h0, const Tensor& c0, const Tensor& weight_t,
                  const Options<S>& op, bool keep, Tensor& zv, Tensor& c_new, Tensor& c,
                  Tensor& tanh_c, Tensor& h, Tensor& stats) {
  // x_in: a_x (plain) or u (layer norm); zv: z (plain) or v (layer norm), (T, B, 4H) when
  // `keep` (for BPTT), else one step's (plain) or nothing (layer norm), like c_new, tanh_c
  // and stats: inference touches no (T, B, 4H) memory besides the input part.
  const int64_t T = x_in.size(0), B = x_in.size(1), G = x_in.size(2), H = G / 4;
  const S* drop = op.drop;
  const Strided<S>&u_h = op.u_h, &u_c = op.u_c;
  const bool ln = op.ln();
  const bool keep_cn = c_new.size(0) == T;  // c~ of every step kept (zoneout with LN_c)
  const bool keep_tc = tanh_c.size(0) == T;

  std::vector<S> u_buf(H), z_row(ln ? G : 0);
  Tensor h_drop = drop ? at::empty({B, H}, x_in.options()) : Tensor();
  // the step's W_hh m h_{t-1}, in a buffer that stays in cache (layer norm): the product
  // writing the kept v directly measured ~25 us a step slower at B = 16, H = 128
  // Up to kPanelRows rows that product is one pass over W_hh packed into panels (panels.h).
  const PanelProduct panel(std::is_same_v<S, float> && B <= kPanelRows, weight_t.t(), G);
  const int64_t ldv = panel.ld;
  // plain mode on panels: the product goes to v_step, the gates add the input part to it
  Tensor v_step = ln || panel.on ? at::empty({B, ldv}, x_in.options()) : Tensor();
  const S* xp = x_in.data_ptr<S>();
  S* zvp = zv.data_ptr<S>();
  S* cp = c.data_ptr<S>();
  S* hp = h.data_ptr<S>();
  S* cnp = c_new.data_ptr<S>();
  S* tcp = tanh_c.data_ptr<S>();
  S* sp = ln ? stats.data_ptr<S>() : nullptr;

  Tensor h_prev = h0;  // a tensor: the matrix product reads it
  for (int64_t t = 0; t < T; ++t) {
    const int64_t tk = keep ? t : 0;  // where step t's kept values go
    Tensor h_in = h_prev;
    if (drop) {
      const S* hpv = h_prev.data_ptr<S>();
      S* hd = h_drop.data_ptr<S>();
      for (int64_t k = 0; k < B * H; ++k) hd[k] = hpv[k] * drop[k];
      h_in = h_drop;
    }
    S* zt = nullptr;  // plain: the step's gates i, f, g, o after their sigmoids (B, 4H)
    if (panel.on) {  // v_step = W_hh m h_{t-1}, both modes
      panel.run(reinterpret_cast<const float*>(h_in.data_ptr<S>()), B,
                reinterpret_cast<float*>(v_step.data_ptr<S>()));
    }
    if (!ln) {
      zt = zvp + tk * B * G;
      if (panel.on) {
        const S* xt = xp + t * B * G;
        const S* vs = v_step.data_ptr<S>();
        for (int64_t b = 0; b < B; ++b)
          for (int64_t k = 0; k < G; ++k) zt[b * G + k] = sigmoid(xt[b * G + k] + vs[b * ldv + k]);
      } else {
        Tensor z_t = zv[tk];
        at::addmm_out(z_t, x_in[t], h_in, weight_t);
        for (int64_t k = 0; k < B * G; ++k) zt[k] = sigmoid(zt[k]);
      }
    } else if (!panel.on) {
      at::mm_out(v_step, h_in, weight_t);
    }
    S* st = ln ? sp + tk * N_STATS * B : nullptr;
    const S* hpv = h_prev.data_ptr<S>();
    const S* cpv = t > 0 ? cp + (t - 1) * B * H : c0.data_ptr<S>();
    S* ct = cp + t * B * H;
    S* ht = hp + t * B * H;
    S* cnt = u_c ? cnp + (keep_cn ? t * B * H : 0) : ct;  // without zoneout c~ is c
    S* tct = tcp + (keep_tc ? t * B * H : 0);
    for (int64_t b = 0; b < B; ++b) {
      S* zr;
      if (!ln) {
        zr = zt + b * G;
      } else {  // gates = sigmoid(LN_ih(u) + LN_hh(v) + beta), row by row
        const S* ur = xp + t * B * G + b * G;
        const S* vr = v_step.data_ptr<S>() + b * ldv;
        if (keep) std::copy(vr, vr + G, zvp + t * B * G + b * G);
        double m1, r1, m2, r2;
        moments(ur, G, op.eps_ih, m1, r1);
        moments(vr, G, op.eps, m2, r2);
        st[MEAN_IH * B + b] = S(m1);
        st[RSTD_IH * B + b] = S(r1);
        st[MEAN_HH * B + b] = S(m2);
        st[RSTD_HH * B + b] = S(r2);
        const S mu = S(m1), ru = S(r1), mv = S(m2), rv = S(r2);
        zr = z_row.data();
        for (int64_t k = 0; k < G; ++k)
          zr[k] = sigmoid(op.gamma_ih[k] * ((ur[k] - mu) * ru) + op.beta[k] +
                          op.gamma_hh[k] * ((vr[k] - mv) * rv));
      }
      S* i = zr;
      S* f = zr + H;
      S* g = zr + 2 * H;
      const S* cpr = cpv + b * H;
      S* cnr = cnt + b * H;
      for (int64_t j = 0; j < H; ++j) {
        g[j] = S(2) * g[j] - S(1);  // tanh(x) = 2 sigmoid(2x) - 1: g rows come doubled
        cnr[j] = f[j] * cpr[j] + i[j] * g[j];
      }
      S* tcr = tct + b * H;
      if (ln) {
        double mean, rstd;
        moments(cnr, H, op.eps, mean, rstd);
        st[MEAN_C * B + b] = S(mean);
        st[RSTD_C * B + b] = S(rstd);
        const S m = S(mean), r = S(rstd);
        for (int64_t j = 0; j < H; ++j) {
          S y = (cnr[j] - m) * r * op.gamma_c[j];
          if (op.beta_c) y += op.beta_c[j];
          tcr[j] = std::tanh(y);
        }
      } else {
        for (int64_t j = 0; j < H; ++j) tcr[j] = std::tanh(cnr[j]);
      }
      const S* o = zr + 3 * H;
      const S* hpr = hpv + b * H;
      S* hr = ht + b * H;
      if (u_h) {
        const S* u = u_h.dense(t, b, H, u_buf);
        for (int64_t j = 0; j < H; ++j) hr[j] = hpr[j] + u[j] * (o[j] * tcr[j] - hpr[j]);
      } else {
        for (int64_t j = 0; j < H; ++j) hr[j] = o[j] * tcr[j];
      }
      if (u_c) {
        const S* u = u_c.dense(t, b, H, u_buf);
        S* cr = ct + b * H;
        for (int64_t j = 0; j < H; ++j) cr[j] = cpr[j] + u[j] * (cnr[j] - cpr[j]);
      }
    }
    h_prev = h[t];
  }
}

// What both modes' forwards return: zv, c_new, c, tanh_c, h, stats.
using Saved = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

template <typename Fill>
Saved run_forward(const Tensor& x_in_, const Tensor& h0_, const Tensor& c0_,
                  const Tensor& weight_t, bool ln, const OptTensor& drop, const OptTensor& u_h,
                  const OptTensor& u_c, bool keep, Fill fill) {
  TORCH_CHECK(x_in_.dim() == 3 && x_in_.size(2) % 4 == 0, "the input part must be (T, B, 4H)");
  Tensor x_in = x_in_.contiguous(), h0 = h0_.contiguous(), c0 = c0_.contiguous();
  const int64_t T = x_in.size(0), B = x_in.size(1), G = x_in.size(2), H = G / 4;
  const int64_t Tk = keep ? T : 1;
  auto opt = x_in.options();
  Tensor zv = big_empty({ln && !keep ? 0 : Tk, B, G}, opt);
  Tensor c = big_empty({T, B, H}, opt);
  Tensor c_new = has(u_c) ? big_empty({ln ? Tk : 1, B, H}, opt) : c;
  Tensor tanh_c = big_empty({ln ? 1 : Tk, B, H}, opt);
  Tensor h = big_empty({T, B, H}, opt);
  Tensor stats = at::empty({ln ? Tk : 0, N_STATS, B}, opt);
  AT_DISPATCH_FLOATING_TYPES(x_in.scalar_type(), "deeprnn_lstm_forward", [&] {
    Options<scalar_t> op(drop, u_h, u_c, T, B, H);
    fill(op);
    forward_impl<scalar_t>(x_in, h0, c0, weight_t, op, keep, zv, c_new, c, tanh_c, h, stats);
  });
  return {zv, c_new, c, tanh_c, h, stats};
}

Saved lstm_forward(const Tensor& a_x, const Tensor& h0, const Tensor& c0, const Tensor& weight_t,
                   const OptTensor& drop, const OptTensor& u_h, const OptTensor& u_c,
                   bool keep) {
  return run_forward(a_x, h0, c0, weight_t, false, drop, u_h, u_c, keep, [](auto&) {});
}

Saved ln_lstm_forward(const Tensor& u, const Tensor& h0, const Tensor& c0, const Tensor& weight_t,
                      const Tensor& gamma_ih, const Tensor& beta, const Tensor& gamma_hh,
                      const Tensor& gamma_c, const OptTensor& beta_c, const OptTensor& drop,
                      const OptTensor& u_h, const OptTensor& u_c, double eps_ih, double eps,
                      bool keep) {
  const LNParams ln{gamma_ih.contiguous(), beta.contiguous(), gamma_hh.contiguous(),
                    gamma_c.contiguous(), contig(beta_c), eps_ih, eps};
  return run_forward(u, h0, c0, weight_t, true, drop, u_h, u_c, keep,
                     [&](auto& op) { ln.fill(op); });
}

// Parameter gradients of the layer-norm mode, accumulated in double step by step.
struct LNGrads {
  std::vector<double> gamma_ih, beta, gamma_hh, gamma_c, beta_c;
  LNGrads(bool on, int64_t G, int64_t H)
      : gamma_ih(on ? G : 0), beta(on ? G : 0), gamma_hh(on ? G : 0), gamma_c(on ? H : 0),
        beta_c(on ? H : 0) {}
};

template <typename S>
void backward_impl(const Tensor& d_h, const Tensor& h0, const Tensor& c0, const Tensor& x_in,
                   const Tensor& zv, const Tensor& c_new, const Tensor& c, const Tensor& tanh_c,
                   const Tensor& h, const Tensor& weight, const Options<S>& op,
                   const Tensor& stats, int64_t block, Tensor& d_in, Tensor& dh, Tensor& dc,
                   Tensor& d_weight, LNGrads& lg) {
  // d_in: dL/da_x (plain) or dL/du (layer norm), (T, B, 4H); dh, dc start as dL/dh_T, dL/dc_T.
  const int64_t T = h.size(0), B = h.size(1), H = h.size(2), G = 4 * H;
  const S* drop = op.drop;
  const Strided<S>&u_h = op.u_h, &u_c = op.u_c;
  const bool ln = op.ln();
  auto opt = h.options();

  const S* xp = x_in.data_ptr<S>();
  const S* zvp = zv.data_ptr<S>();
  const S* cp = c.data_ptr<S>();
  const S* c0p = c0.data_ptr<S>();
  const S* cnp = c_new.data_ptr<S>();
  const S* tcp = tanh_c.data_ptr<S>();
  const S* dhp = d_h.data_ptr<S>();
  const S* sp = ln ? stats.data_ptr<S>() : nullptr;
  S* dinp = d_in.data_ptr<S>();
  S* dhv = dh.data_ptr<S>();
  S* dcv = dc.data_ptr<S>();

  std::vector<S> tc_row(H), x_row(H), dco_row(H), z_row(ln ? G : 0), xu(ln ? G : 0),
      xv(ln ? G : 0);
  std::vector<S> uh_buf(H, S(1)), uc_buf(H, S(1));
  // a block's share of the layer-norm parameter gradients, summed in S (vectorised), then
  // added to the double totals in `lg`
  std::vector<S> acc_ih(ln ? G : 0), acc_b(ln ? G : 0), acc_hh(ln ? G : 0), acc_gc(ln ? H : 0),
      acc_bc(ln ? H : 0);
  auto flush = [](std::vector<S>& acc, std::vector<double>& total) {
    for (size_t q = 0; q < acc.size(); ++q) total[q] += acc[q];
    std::fill(acc.begin(), acc.end(), S(0));
  };
  block = std::max<int64_t>(1, std::min(block, T));
  Tensor h_in = at::empty({block, B, H}, opt);
  Tensor d_v = ln ? at::empty({block, B, G}, opt) : Tensor();
  // dL/dh_{t-1}'s product with W_hh on packed panels too, up to kPanelRows float32 rows
  const PanelProduct panel(std::is_same_v<S, float> && B <= kPanelRows, weight.t(), H);
  const int64_t ldm = panel.ld;
  Tensor mm = at::empty({B, ldm}, opt);
  Tensor add = at::empty({B, H}, opt);  // what joins dL/dh_{t-1} besides the projection
  S* addp = add.data_ptr<S>();
  const S* mmp = mm.data_ptr<S>();

  for (int64_t k = (T - 1) / block; k >= 0; --k) {
    const int64_t start = k * block, stop = std::min(start + block, T), n = stop - start;
    Tensor hin = h_in.narrow(0, 0, n);
    block_inputs(hin, h, h0, op.drop_t, start, n);
    for (int64_t j = n - 1; j >= 0; --j) {
      const int64_t t = start + j;
      const S* st = ln ? sp + t * N_STATS * B : nullptr;
      for (int64_t b = 0; b < B; ++b) {
        const S* zr = zvp + t * B * G + b * G;  // the gates, kept (plain) or recomputed
        if (ln) {
          const S* ur = xp + t * B * G + b * G;
          const S* vr = zvp + t * B * G + b * G;
          const S mu = st[MEAN_IH * B + b], ru = st[RSTD_IH * B + b];
          const S mv = st[MEAN_HH * B + b], rv = st[RSTD_HH * B + b];
          S* __restrict xu_ = xu.data();
          S* __restrict xv_ = xv.data();
          S* __restrict z_ = z_row.data();
          const S* __restrict gi = op.gamma_ih;
          const S* __restrict gh = op.gamma_hh;
          const S* __restrict be = op.beta;
#pragma omp simd
          for (int64_t q = 0; q < G; ++q) {
            xu_[q] = (ur[q] - mu) * ru;
            xv_[q] = (vr[q] - mv) * rv;
            z_[q] = sigmoid(gi[q] * xu_[q] + be[q] + gh[q] * xv_[q]);
          }
          for (int64_t jj = 2 * H; jj < 3 * H; ++jj) z_[jj] = S(2) * z_[jj] - S(1);
          zr = z_row.data();
        }
        const S* i = zr;
        const S* f = i + H;
        const S* g = i + 2 * H;
        const S* o = i + 3 * H;
        const S* cpr = t > 0 ? cp + (t - 1) * B * H + b * H : c0p + b * H;
        S* dhr = dhv + b * H;
        S* dcr = dcv + b * H;
        S* dzr = dinp + t * B * G + b * G;
        const S* uh = u_h.dense(t, b, H, uh_buf);
        const S* uc = u_c.dense(t, b, H, uc_buf);
        S rstd_c = 0;
        const S* tcr = tcp + t * B * H + b * H;  // tanh([LN_c] c~): kept, or recomputed
        if (ln) {
          const S mean_c = st[MEAN_C * B + b];
          rstd_c = st[RSTD_C * B + b];
          const S* cnr = cnp + t * B * H + b * H;
          for (int64_t jj = 0; jj < H; ++jj) {
            x_row[jj] = (cnr[jj] - mean_c) * rstd_c;
            S y = x_row[jj] * op.gamma_c[jj];
            if (op.beta_c) y += op.beta_c[jj];
            tc_row[jj] = std::tanh(y);
          }
          tcr = tc_row.data();
        }
        // dL/d o and dL/d [LN_c](c~); u^h folds into both
        for (int64_t jj = 0; jj < H; ++jj) {
          const S w = uh[jj];
          const S tc = tcr[jj];
          dzr[3 * H + jj] = dhr[jj] * (S(1) - o[jj]) * o[jj] * tc * w;
          dco_row[jj] = dhr[jj] * (S(1) - tc * tc) * o[jj] * w;
        }
        if (ln) {  // dL/dc~ through LN_c: rstd (g - mean(g) - x mean(g x)), g = d gamma
          S sg = 0, sgx = 0;
          const S* __restrict dco = dco_row.data();
          const S* __restrict xc = x_row.data();
          const S* __restrict gc = op.gamma_c;
          S* __restrict a_gc = acc_gc.data();
          S* __restrict a_bc = acc_bc.data();
#pragma omp simd reduction(+ : sg, sgx)
          for (int64_t jj = 0; jj < H; ++jj) {
            sg += dco[jj] * gc[jj];
            sgx += dco[jj] * gc[jj] * xc[jj];
            a_gc[jj] += dco[jj] * xc[jj];
            a_bc[jj] += dco[jj];
          }
          const S mg = sg / S(H), mgx = sgx / S(H);
          for (int64_t jj = 0; jj < H; ++jj)
            dco_row[jj] = rstd_c * (dco_row[jj] * op.gamma_c[jj] - mg - x_row[jj] * mgx);
        }
#pragma omp simd
        for (int64_t jj = 0; jj < H; ++jj) {
          const S wc = uc[jj];
          const S d_cn = dcr[jj] * wc + dco_row[jj];
          dzr[jj] = d_cn * (S(1) - i[jj]) * i[jj] * g[jj];
          dzr[H + jj] = d_cn * (S(1) - f[jj]) * f[jj] * cpr[jj];
          dzr[2 * H + jj] = d_cn * (S(1) - g[jj] * g[jj]) * i[jj] * S(0.5);
          dcr[jj] = d_cn * f[jj] + dcr[jj] * (S(1) - wc);
        }
        S* addr = addp + b * H;
        if (t > 0) {  // dL/dh_{t-1} besides the projection: the output's own, h's kept share
          const S* dh_out = dhp + (t - 1) * B * H + b * H;
          for (int64_t jj = 0; jj < H; ++jj) addr[jj] = dh_out[jj] + dhr[jj] * (S(1) - uh[jj]);
        } else {
          for (int64_t jj = 0; jj < H; ++jj) addr[jj] = dhr[jj] * (S(1) - uh[jj]);
        }
        if (ln) {  // dL/dz_pre -> dL/dv through LN_hh (into d_v), dL/du through LN_ih (in place)
          const S rv = st[RSTD_HH * B + b], ru = st[RSTD_IH * B + b];
          S* __restrict dz_ = dzr;
          const S* __restrict xu_ = xu.data();
          const S* __restrict xv_ = xv.data();
          const S* __restrict gi = op.gamma_ih;
          const S* __restrict gh = op.gamma_hh;
          S* __restrict a_hh = acc_hh.data();
          S* __restrict a_ih = acc_ih.data();
          S* __restrict a_b = acc_b.data();
          S sh = 0, shx = 0, si = 0, six = 0;
#pragma omp simd reduction(+ : sh, shx, si, six)
          for (int64_t q = 0; q < G; ++q) {
            const S dz = dz_[q];
            sh += dz * gh[q];
            shx += dz * gh[q] * xv_[q];
            si += dz * gi[q];
            six += dz * gi[q] * xu_[q];
            a_hh[q] += dz * xv_[q];
            a_ih[q] += dz * xu_[q];
            a_b[q] += dz;
          }
          const S mh = sh / S(G), mhx = shx / S(G), mi = si / S(G), mix = six / S(G);
          S* __restrict dvr = d_v.data_ptr<S>() + j * B * G + b * G;
          for (int64_t q = 0; q < G; ++q) {
            const S dz = dz_[q];
            dvr[q] = rv * (dz * gh[q] - mh - xv_[q] * mhx);
            dz_[q] = ru * (dz * gi[q] - mi - xu_[q] * mix);
          }
        }
      }
      if (panel.on) {
        const S* src = ln ? d_v.data_ptr<S>() + j * B * G : dinp + t * B * G;
        panel.run(reinterpret_cast<const float*>(src), B,
                  reinterpret_cast<float*>(mm.data_ptr<S>()));
      } else {
        at::mm_out(mm, ln ? d_v[j] : d_in[t], weight);
      }
      for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < H; ++j) {
          const int64_t q = b * H + j;
          const S m = mmp[b * ldm + j];
          dhv[q] = (drop ? m * drop[q] : m) + addp[q];
        }
    }
    Tensor d_pre = ln ? d_v.narrow(0, 0, n) : d_in.narrow(0, start, n);
    gemm(d_pre.reshape({n * B, G}).t(), hin.view({n * B, H}), d_weight, 1.0f);
    if (ln) {
      flush(acc_ih, lg.gamma_ih);
      flush(acc_b, lg.beta);
      flush(acc_hh, lg.gamma_hh);
      flush(acc_gc, lg.gamma_c);
      flush(acc_bc, lg.beta_c);
    }
  }
}

// What both modes' backwards return: d_in, dh0, dc0, dW_hh, then (layer norm) d gamma_ih,
// d beta, d gamma_hh, d gamma_c, d beta_c (empty in the plain mode).
using Grads = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

template <typename Fill>
Grads run_backward(const Tensor& d_h, const Tensor& d_hT, const Tensor& d_cT, const Tensor& h0,
                   const Tensor& c0, const Tensor& x_in, const Tensor& zv, const Tensor& c_new,
                   const Tensor& c, const Tensor& tanh_c, const Tensor& h, const Tensor& weight,
                   bool ln, const OptTensor& drop, const OptTensor& u_h, const OptTensor& u_c,
                   const Tensor& stats, int64_t block, Fill fill) {
  const int64_t T = h.size(0), B = h.size(1), H = h.size(2), G = 4 * H;
  auto opt = h.options();
  Tensor d_hc = d_h.contiguous();
  Tensor d_in = big_empty({T, B, G}, opt);
  Tensor dh = (d_hc[T - 1] + d_hT).contiguous();
  Tensor dc = d_cT.contiguous().clone();
  Tensor d_weight = at::zeros_like(weight);
  LNGrads lg(ln, G, H);
  bool has_beta_c = false;
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "deeprnn_lstm_backward", [&] {
    Options<scalar_t> op(drop, u_h, u_c, T, B, H);
    fill(op);
    has_beta_c = op.beta_c != nullptr;
    backward_impl<scalar_t>(d_hc, h0.contiguous(), c0.contiguous(), x_in.contiguous(),
                            zv.contiguous(), c_new.contiguous(), c.contiguous(),
                            tanh_c.contiguous(), h.contiguous(), weight, op, stats.contiguous(),
                            block, d_in, dh, dc, d_weight, lg);
  });
  auto tensor = [&](const std::vector<double>& acc) {
    return at::tensor(c10::ArrayRef<double>(acc), opt.dtype(at::kDouble)).to(opt.dtype());
  };
  Tensor empty = at::empty({0}, opt);
  return {d_in, dh, dc, d_weight, ln ? tensor(lg.gamma_ih) : empty,
          ln ? tensor(lg.beta) : empty, ln ? tensor(lg.gamma_hh) : empty,
          ln ? tensor(lg.gamma_c) : empty, ln && has_beta_c ? tensor(lg.beta_c) : empty};
}

Grads lstm_backward(const Tensor& d_h, const Tensor& d_hT, const Tensor& d_cT, const Tensor& h0,
                    const Tensor& c0, const Tensor& z, const Tensor& c_new, const Tensor& c,
                    const Tensor& tanh_c, const Tensor& h, const Tensor& weight,
                    const OptTensor& drop, const OptTensor& u_h, const OptTensor& u_c,
                    int64_t block) {
  Tensor none = at::empty({0}, h.options());
  return run_backward(d_h, d_hT, d_cT, h0, c0, none, z, c_new, c, tanh_c, h, weight, false, drop,
                      u_h, u_c, none, block, [](auto&) {});
}

Grads ln_lstm_backward(const Tensor& d_h, const Tensor& d_hT, const Tensor& d_cT,
                       const Tensor& h0, const Tensor& c0, const Tensor& u, const Tensor& v,
                       const Tensor& c_new, const Tensor& c, const Tensor& h,
                       const Tensor& weight, const Tensor& gamma_ih, const Tensor& beta,
                       const Tensor& gamma_hh, const Tensor& gamma_c, const OptTensor& beta_c,
                       const OptTensor& drop, const OptTensor& u_h, const OptTensor& u_c,
                       const Tensor& stats, int64_t block) {
  const LNParams ln{gamma_ih.contiguous(), beta.contiguous(), gamma_hh.contiguous(),
                    gamma_c.contiguous(), contig(beta_c), 0.0, 0.0};
  return run_backward(d_h, d_hT, d_cT, h0, c0, u, v, c_new, c, c_new, h, weight, true, drop, u_h,
                      u_c, stats, block, [&](auto& op) { ln.fill(op); });
}

}  // namespace

TORCH_LIBRARY(deeprnn, m) {
  m.def("empty_cache() -> int", &deeprnn::empty_cache);  // the cache of every loop
  m.def(
      "lstm_forward(Tensor a_x, Tensor h0, Tensor c0, Tensor weight_t, Tensor? drop, "
      "Tensor? u_h, Tensor? u_c, bool keep) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)",
      &lstm_forward);
  m.def(
      "lstm_backward(Tensor d_h, Tensor d_hT, Tensor d_cT, Tensor h0, Tensor c0, Tensor z, "
      "Tensor c_new, Tensor c, Tensor tanh_c, Tensor h, Tensor weight, Tensor? drop, "
      "Tensor? u_h, Tensor? u_c, int block) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)",
      &lstm_backward);
  m.def(
      "ln_lstm_forward(Tensor u, Tensor h0, Tensor c0, Tensor weight_t, Tensor gamma_ih, "
      "Tensor beta, Tensor gamma_hh, Tensor gamma_c, Tensor? beta_c, Tensor? drop, Tensor? u_h, "
      "Tensor? u_c, float eps_ih, float eps, bool keep) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)",
      &ln_lstm_forward);
  m.def(
      "ln_lstm_backward(Tensor d_h, Tensor d_hT, Tensor d_cT, Tensor h0, Tensor c0, Tensor u, "
      "Tensor v, Tensor c_new, Tensor c, Tensor h, Tensor weight, Tensor gamma_ih, Tensor beta, "
      "Tensor gamma_hh, Tensor gamma_c, Tensor? beta_c, Tensor? drop, Tensor? u_h, Tensor? u_c, "
      "Tensor stats, int block) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)",
      &ln_lstm_backward);
}
