// The LSTM recurrence of deeprnn/kernels/lstm.py, one step a loop iteration, in C++.
//
// Same inputs, outputs and storage as the TorchScript `_forward` / `_backward` there (read
// its docstring for the math). Each step still calls ATen for its matrix product, but the
// ~20 element-wise and layer-norm ops around it become two or three fused loops over the
// (B, H) rows: on CPU at B = 16-64 those ops' dispatch and memory passes, not the
// arithmetic, were what made the TorchScript loop ~2x slower than torch's fused LSTM.
// Built on first use by torch.utils.cpp_extension (deeprnn/kernels/extension.py) with
// -O3 -ffast-math, so that gcc vectorises exp / tanh through glibc's vector math library;
// reductions accumulate in double.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <cmath>
#include <optional>
#include <tuple>
#include <vector>

namespace {

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

template <typename S>
const S* ptr_or_null(const OptTensor& t) {
  return (t.has_value() && t->defined()) ? t->data_ptr<S>() : nullptr;
}

Tensor contig(const OptTensor& t) {
  return (t.has_value() && t->defined()) ? t->contiguous() : Tensor();
}

inline bool has(const OptTensor& t) { return t.has_value() && t->defined(); }

// The optional parameters of one call, as raw pointers (nullptr where absent).
template <typename S>
struct Options {
  Tensor drop_t;  // keeps a contiguous copy of the mask alive
  const S *gamma_hh, *gamma_c, *beta_c, *drop;
  Strided<S> u_h, u_c;
  Options(const OptTensor& gamma_hh_, const OptTensor& gamma_c_, const OptTensor& beta_c_,
          const OptTensor& drop_, const OptTensor& u_h_, const OptTensor& u_c_, int64_t T,
          int64_t B, int64_t H)
      : drop_t(contig(drop_)),
        gamma_hh(ptr_or_null<S>(gamma_hh_)),
        gamma_c(ptr_or_null<S>(gamma_c_)),
        beta_c(ptr_or_null<S>(beta_c_)),
        drop(drop_t.defined() ? drop_t.data_ptr<S>() : nullptr),
        u_h(strided<S>(u_h_, T, B, H)),
        u_c(strided<S>(u_c_, T, B, H)) {}
};

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

template <typename S>
void forward_impl(const Tensor& a_x, const Tensor& h0, const Tensor& c0, const Tensor& weight_t,
                  const OptTensor& gamma_hh_, const OptTensor& gamma_c_, const OptTensor& beta_c_,
                  const OptTensor& drop_, const OptTensor& u_h_, const OptTensor& u_c_,
                  double eps, Tensor& z, Tensor& c_new, Tensor& c, Tensor& tanh_c, Tensor& h,
                  Tensor& stats_hh, Tensor& stats_c) {
  const int64_t T = a_x.size(0), B = a_x.size(1), G = a_x.size(2), H = G / 4;
  const Options<S> opts(gamma_hh_, gamma_c_, beta_c_, drop_, u_h_, u_c_, T, B, H);
  const S *gamma_hh = opts.gamma_hh, *gamma_c = opts.gamma_c, *beta_c = opts.beta_c;
  const S* drop = opts.drop;
  const Strided<S>&u_h = opts.u_h, &u_c = opts.u_c;
  const bool ln_c = gamma_c != nullptr;
  const bool keep_cn = c_new.size(0) == T;  // c~ of every step kept (zoneout with LN_c)
  const bool keep_tc = tanh_c.size(0) == T;

  std::vector<S> u_buf(H);
  Tensor h_drop = drop ? at::empty({B, H}, a_x.options()) : Tensor();
  Tensor v = gamma_hh ? at::empty({B, G}, a_x.options()) : Tensor();
  const S* ax = a_x.data_ptr<S>();
  S* zp = z.data_ptr<S>();
  S* cp = c.data_ptr<S>();
  S* hp = h.data_ptr<S>();
  S* cnp = c_new.data_ptr<S>();
  S* tcp = tanh_c.data_ptr<S>();
  S* shh = stats_hh.data_ptr<S>();
  S* sc = stats_c.data_ptr<S>();

  Tensor h_prev = h0, c_prev_t = c0;
  for (int64_t t = 0; t < T; ++t) {
    Tensor z_t = z[t];
    Tensor h_in = h_prev;
    if (drop) {
      const S* hpv = h_prev.data_ptr<S>();
      S* hd = h_drop.data_ptr<S>();
      for (int64_t k = 0; k < B * H; ++k) hd[k] = hpv[k] * drop[k];
      h_in = h_drop;
    }
    S* zt = zp + t * B * G;
    const S* axt = ax + t * B * G;
    if (!gamma_hh) {
      at::addmm_out(z_t, a_x[t], h_in, weight_t);
    } else {
      at::mm_out(v, h_in, weight_t);
      const S* vp = v.data_ptr<S>();
      for (int64_t b = 0; b < B; ++b) {
        double mean, rstd;
        const S* vr = vp + b * G;
        moments(vr, G, eps, mean, rstd);
        shh[t * 2 * B + b] = S(mean);
        shh[t * 2 * B + B + b] = S(rstd);
        const S m = S(mean), r = S(rstd);
        S* zr = zt + b * G;
        const S* ar = axt + b * G;
        for (int64_t k = 0; k < G; ++k) zr[k] = ar[k] + (vr[k] - m) * r * gamma_hh[k];
      }
    }
    for (int64_t k = 0; k < B * G; ++k) zt[k] = sigmoid(zt[k]);

    const S* hpv = h_prev.data_ptr<S>();
    const S* cpv = c_prev_t.data_ptr<S>();
    S* ct = cp + t * B * H;
    S* ht = hp + t * B * H;
    S* cnt = u_c ? cnp + (keep_cn ? t * B * H : 0) : ct;  // without zoneout c~ is c
    S* tct = tcp + (keep_tc ? t * B * H : 0);
    for (int64_t b = 0; b < B; ++b) {
      S* zr = zt + b * G;
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
      if (ln_c) {
        double mean, rstd;
        moments(cnr, H, eps, mean, rstd);
        sc[t * 2 * B + b] = S(mean);
        sc[t * 2 * B + B + b] = S(rstd);
        const S m = S(mean), r = S(rstd);
        for (int64_t j = 0; j < H; ++j) {
          S y = (cnr[j] - m) * r * gamma_c[j];
          if (beta_c) y += beta_c[j];
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
    c_prev_t = c[t];
  }
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> lstm_forward(
    const Tensor& a_x_, const Tensor& h0_, const Tensor& c0_, const Tensor& weight_t,
    const OptTensor& gamma_hh, const OptTensor& gamma_c, const OptTensor& beta_c,
    const OptTensor& drop, const OptTensor& u_h, const OptTensor& u_c, double eps) {
  TORCH_CHECK(a_x_.dim() == 3 && a_x_.size(2) % 4 == 0, "a_x must be (T, B, 4H)");
  Tensor a_x = a_x_.contiguous(), h0 = h0_.contiguous(), c0 = c0_.contiguous();
  const int64_t T = a_x.size(0), B = a_x.size(1), G = a_x.size(2), H = G / 4;
  auto opt = a_x.options();
  const bool ln_c = has(gamma_c);
  Tensor z = at::empty({T, B, G}, opt);
  Tensor c = at::empty({T, B, H}, opt);
  Tensor c_new = has(u_c) ? at::empty({ln_c ? T : 1, B, H}, opt) : c;
  Tensor tanh_c = at::empty({ln_c ? 1 : T, B, H}, opt);
  Tensor h = at::empty({T, B, H}, opt);
  Tensor stats_hh = at::empty({T, 2, has(gamma_hh) ? B : 0, 1}, opt);
  Tensor stats_c = at::empty({T, 2, ln_c ? B : 0, 1}, opt);
  AT_DISPATCH_FLOATING_TYPES(a_x.scalar_type(), "deeprnn_lstm_forward", [&] {
    forward_impl<scalar_t>(a_x, h0, c0, weight_t, contig(gamma_hh), contig(gamma_c),
                           contig(beta_c), drop, u_h, u_c, eps, z, c_new, c, tanh_c, h,
                           stats_hh, stats_c);
  });
  return {z, c_new, c, tanh_c, h, stats_hh, stats_c};
}

template <typename S>
void backward_impl(const Tensor& d_h, const Tensor& d_hT, const Tensor& d_cT, const Tensor& h0,
                   const Tensor& c0, const Tensor& z, const Tensor& c_new, const Tensor& c,
                   const Tensor& tanh_c, const Tensor& h, const Tensor& weight,
                   const OptTensor& gamma_hh_, const OptTensor& gamma_c_,
                   const OptTensor& beta_c_, const OptTensor& drop_, const OptTensor& u_h_,
                   const OptTensor& u_c_, const Tensor& stats_hh, const Tensor& stats_c,
                   int64_t block, Tensor& d_z, Tensor& dh, Tensor& dc, Tensor& d_weight,
                   Tensor& d_gamma_hh, Tensor& d_gamma_c, Tensor& d_beta_c) {
  const int64_t T = h.size(0), B = h.size(1), H = h.size(2), G = 4 * H;
  const Options<S> opts(gamma_hh_, gamma_c_, beta_c_, drop_, u_h_, u_c_, T, B, H);
  const S *gamma_hh = opts.gamma_hh, *gamma_c = opts.gamma_c, *beta_c = opts.beta_c;
  const S* drop = opts.drop;
  const Tensor& drop_t = opts.drop_t;
  const Strided<S>&u_h = opts.u_h, &u_c = opts.u_c;
  const bool ln_c = gamma_c != nullptr;
  auto opt = h.options();

  const S* zp = z.data_ptr<S>();
  const S* cp = c.data_ptr<S>();
  const S* c0p = c0.data_ptr<S>();
  const S* cnp = c_new.data_ptr<S>();
  const S* tcp = tanh_c.data_ptr<S>();
  const S* dhp = d_h.data_ptr<S>();
  const S* shh = stats_hh.data_ptr<S>();
  const S* sc = stats_c.data_ptr<S>();
  S* dzp = d_z.data_ptr<S>();
  S* dhv = dh.data_ptr<S>();
  S* dcv = dc.data_ptr<S>();

  // Parameter gradients of layer norm accumulate in double, step by step.
  std::vector<double> dg_hh(gamma_hh ? G : 0, 0.0), dg_c(ln_c ? H : 0, 0.0),
      db_c(ln_c ? H : 0, 0.0);
  std::vector<S> tc_row(H), x_row(H), dco_row(H), x_v(gamma_hh ? G : 0);
  std::vector<S> uh_buf(H, S(1)), uc_buf(H, S(1));
  block = std::max<int64_t>(1, std::min(block, T));
  Tensor h_in = at::empty({block, B, H}, opt);
  Tensor pre = gamma_hh ? at::empty({block, B, G}, opt) : Tensor();
  Tensor d_v = gamma_hh ? at::empty({block, B, G}, opt) : Tensor();
  Tensor mm = at::empty({B, H}, opt);
  Tensor add = at::empty({B, H}, opt);  // what joins dL/dh_{t-1} besides the projection
  S* addp = add.data_ptr<S>();
  const S* mmp = mm.data_ptr<S>();

  for (int64_t k = (T - 1) / block; k >= 0; --k) {
    const int64_t start = k * block, stop = std::min(start + block, T), n = stop - start;
    Tensor hin = h_in.narrow(0, 0, n);
    if (start > 0) {
      hin.copy_(h.narrow(0, start - 1, n));
    } else {
      hin[0].copy_(h0);
      if (n > 1) hin.narrow(0, 1, n - 1).copy_(h.narrow(0, 0, n - 1));
    }
    if (drop) hin.mul_(drop_t);
    Tensor hin2 = hin.view({n * B, H});
    if (gamma_hh) {
      Tensor pre2 = pre.narrow(0, 0, n).view({n * B, G});
      at::mm_out(pre2, hin2, weight.t());
    }
    for (int64_t j = n - 1; j >= 0; --j) {
      const int64_t t = start + j;
      const S* zt = zp + t * B * G;
      S* dzt = dzp + t * B * G;
      for (int64_t b = 0; b < B; ++b) {
        const S* i = zt + b * G;
        const S* f = i + H;
        const S* g = i + 2 * H;
        const S* o = i + 3 * H;
        const S* cpr = t > 0 ? cp + (t - 1) * B * H + b * H : c0p + b * H;
        S* dhr = dhv + b * H;
        S* dcr = dcv + b * H;
        S* dzr = dzt + b * G;
        const S* uh = u_h.dense(t, b, H, uh_buf);
        const S* uc = u_c.dense(t, b, H, uc_buf);
        S mean_c = 0, rstd_c = 0;
        if (ln_c) {
          mean_c = sc[t * 2 * B + b];
          rstd_c = sc[t * 2 * B + B + b];
          const S* cnr = cnp + t * B * H + b * H;
          for (int64_t jj = 0; jj < H; ++jj) {
            x_row[jj] = (cnr[jj] - mean_c) * rstd_c;
            S y = x_row[jj] * gamma_c[jj];
            if (beta_c) y += beta_c[jj];
            tc_row[jj] = std::tanh(y);
          }
        } else {
          const S* tcr = tcp + t * B * H + b * H;
          for (int64_t jj = 0; jj < H; ++jj) tc_row[jj] = tcr[jj];
        }
        // dL/d o and dL/d [LN_c](c~); u^h folds into both
        for (int64_t jj = 0; jj < H; ++jj) {
          const S w = uh[jj];
          const S tc = tc_row[jj];
          dzr[3 * H + jj] = dhr[jj] * (S(1) - o[jj]) * o[jj] * tc * w;
          dco_row[jj] = dhr[jj] * (S(1) - tc * tc) * o[jj] * w;
        }
        if (ln_c) {  // dL/dc~ through LN_c: rstd (g - mean(g) - x mean(g x)), g = d gamma
          double sg = 0.0, sgx = 0.0;
          for (int64_t jj = 0; jj < H; ++jj) {
            const S gj = dco_row[jj] * gamma_c[jj];
            sg += gj;
            sgx += gj * x_row[jj];
            dg_c[jj] += dco_row[jj] * x_row[jj];
            db_c[jj] += dco_row[jj];
          }
          const S mg = S(sg / H), mgx = S(sgx / H);
          for (int64_t jj = 0; jj < H; ++jj)
            dco_row[jj] = rstd_c * (dco_row[jj] * gamma_c[jj] - mg - x_row[jj] * mgx);
        }
        const S* dh_out = t > 0 ? dhp + (t - 1) * B * H + b * H : nullptr;
        S* addr = addp + b * H;
        for (int64_t jj = 0; jj < H; ++jj) {
          const S wc = uc[jj];
          const S d_cn = dcr[jj] * wc + dco_row[jj];
          dzr[jj] = d_cn * (S(1) - i[jj]) * i[jj] * g[jj];
          dzr[H + jj] = d_cn * (S(1) - f[jj]) * f[jj] * cpr[jj];
          dzr[2 * H + jj] = d_cn * (S(1) - g[jj] * g[jj]) * i[jj] * S(0.5);
          dcr[jj] = d_cn * f[jj] + dcr[jj] * (S(1) - wc);
        }
        if (dh_out) {  // dL/dh_{t-1} besides the projection: the output's own, h's kept share
          for (int64_t jj = 0; jj < H; ++jj) addr[jj] = dh_out[jj] + dhr[jj] * (S(1) - uh[jj]);
        } else {
          for (int64_t jj = 0; jj < H; ++jj) addr[jj] = dhr[jj] * (S(1) - uh[jj]);
        }
      }
      Tensor d_out = d_z[t];
      if (gamma_hh) {  // dL/d(W_hh m h_{t-1}) through LN_hh, and d gamma_hh
        const S* pj = pre.data_ptr<S>() + j * B * G;
        S* dvj = d_v.data_ptr<S>() + j * B * G;
        for (int64_t b = 0; b < B; ++b) {
          const S m = shh[t * 2 * B + b], r = shh[t * 2 * B + B + b];
          const S* pr = pj + b * G;
          const S* dzr = dzt + b * G;
          double sg = 0.0, sgx = 0.0;
          for (int64_t q = 0; q < G; ++q) {
            x_v[q] = (pr[q] - m) * r;
            const S gq = dzr[q] * gamma_hh[q];
            sg += gq;
            sgx += gq * x_v[q];
            dg_hh[q] += dzr[q] * x_v[q];
          }
          const S mg = S(sg / G), mgx = S(sgx / G);
          S* dvr = dvj + b * G;
          for (int64_t q = 0; q < G; ++q) dvr[q] = r * (dzr[q] * gamma_hh[q] - mg - x_v[q] * mgx);
        }
        d_out = d_v[j];
      }
      at::mm_out(mm, d_out, weight);
      for (int64_t q = 0; q < B * H; ++q)
        dhv[q] = (drop ? mmp[q] * drop[q] : mmp[q]) + addp[q];
    }
    Tensor d_pre = gamma_hh ? d_v.narrow(0, 0, n) : d_z.narrow(0, start, n);
    d_weight.addmm_(d_pre.reshape({n * B, G}).t(), hin2);
  }
  auto to_tensor = [&](const std::vector<double>& acc, Tensor& out) {
    S* p = out.data_ptr<S>();
    for (size_t q = 0; q < acc.size(); ++q) p[q] = S(acc[q]);
  };
  if (gamma_hh) to_tensor(dg_hh, d_gamma_hh);
  if (ln_c) {
    to_tensor(dg_c, d_gamma_c);
    if (beta_c) to_tensor(db_c, d_beta_c);
  }
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> lstm_backward(
    const Tensor& d_h, const Tensor& d_hT, const Tensor& d_cT, const Tensor& h0,
    const Tensor& c0, const Tensor& z, const Tensor& c_new, const Tensor& c, const Tensor& tanh_c,
    const Tensor& h, const Tensor& weight, const OptTensor& gamma_hh, const OptTensor& gamma_c,
    const OptTensor& beta_c, const OptTensor& drop, const OptTensor& u_h, const OptTensor& u_c,
    const Tensor& stats_hh, const Tensor& stats_c, int64_t block) {
  const int64_t T = h.size(0), B = h.size(1), H = h.size(2);
  auto opt = h.options();
  Tensor d_hc = d_h.contiguous();
  Tensor d_z = at::empty_like(z);
  Tensor dh = (d_hc[T - 1] + d_hT).contiguous();
  Tensor dc = d_cT.contiguous().clone();
  Tensor d_weight = at::zeros_like(weight);
  Tensor d_gamma_hh = at::zeros({has(gamma_hh) ? 4 * H : 0}, opt);
  Tensor d_gamma_c = at::zeros({has(gamma_c) ? H : 0}, opt);
  Tensor d_beta_c = at::zeros({has(gamma_c) && has(beta_c) ? H : 0}, opt);
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "deeprnn_lstm_backward", [&] {
    backward_impl<scalar_t>(d_hc, d_hT, d_cT, h0.contiguous(), c0.contiguous(), z.contiguous(),
                            c_new.contiguous(), c.contiguous(), tanh_c.contiguous(),
                            h.contiguous(), weight, contig(gamma_hh), contig(gamma_c),
                            contig(beta_c), drop, u_h, u_c, stats_hh.contiguous(),
                            stats_c.contiguous(), block, d_z, dh, dc, d_weight, d_gamma_hh,
                            d_gamma_c, d_beta_c);
  });
  (void)B;
  return {d_z, dh, dc, d_weight, d_gamma_hh, d_gamma_c, d_beta_c};
}

}  // namespace

TORCH_LIBRARY(deeprnn, m) {
  m.def(
      "lstm_forward(Tensor a_x, Tensor h0, Tensor c0, Tensor weight_t, Tensor? gamma_hh, "
      "Tensor? gamma_c, Tensor? beta_c, Tensor? drop, Tensor? u_h, Tensor? u_c, float eps) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)",
      &lstm_forward);
  m.def(
      "lstm_backward(Tensor d_h, Tensor d_hT, Tensor d_cT, Tensor h0, Tensor c0, Tensor z, "
      "Tensor c_new, Tensor c, Tensor tanh_c, Tensor h, Tensor weight, Tensor? gamma_hh, "
      "Tensor? gamma_c, Tensor? beta_c, Tensor? drop, Tensor? u_h, Tensor? u_c, "
      "Tensor stats_hh, Tensor stats_c, int block) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)",
      &lstm_backward);
}
