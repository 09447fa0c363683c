"""The Forecaster's global model: one network trained on windows of every series of a panel,
with a likelihood head for probabilistic forecasts (mixed into `Forecaster`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from deeprnn.data.series import _positive_int
from deeprnn.errors import InputError
from deeprnn.estimators.defaults import MAX_EPOCHS, MIN_EPOCHS, UPDATES, auto_epochs
from deeprnn.forecast.autoregressive import sample_paths
from deeprnn.forecast.covariates import direct_extra, future_known, read_covariates
from deeprnn.forecast.likelihoods import Likelihood
from deeprnn.forecast.network import GlobalNet
from deeprnn.forecast.panel import Panel, Windows, make_inputs, to_panel
from deeprnn.forecast.scaling import window_scale

_CHUNK = 4096  # windows per forward pass at prediction
DECODERS = ("direct", "autoregressive")


class PanelForecasting:
    """fit / predict of many series with one model; see `Forecaster`."""

    def _likelihood(self) -> Likelihood:
        return Likelihood(self.likelihood, self.quantiles or (0.1, 0.5, 0.9))

    def _scaling(self) -> str | None:
        kind = self.scaling
        if kind == "auto":
            counts = self.likelihood == "negative_binomial"
            kind = "mean" if counts or not self._arg("relative") else "last"
        if self.likelihood == "negative_binomial" and kind == "last":
            raise InputError(
                "likelihood='negative_binomial' models counts: use scaling='mean' or None"
            )
        window_scale(np.zeros((1, 1)), kind)  # checks the name
        return kind

    def _read_panel(self, y: Any) -> tuple[Panel, str]:
        if isinstance(y, np.ndarray) and y.ndim == 2:
            cols = [y[:, j] for j in range(y.shape[1])]
            return to_panel(cols), "columns"
        if (
            isinstance(y, pd.DataFrame)
            and self.id_col not in y.columns
            and y.shape[1] >= 1
            and (all(k not in y.columns for k in (self.time_col, self.value_col)))
        ):
            return to_panel({c: y[c] for c in y.columns}), "panel"
        panel = to_panel(y, self.id_col, self.time_col, self.value_col)
        single = not isinstance(y, (dict, list, tuple, pd.DataFrame))
        return panel, "single" if single else "panel"

    def _choose_epochs(self, n_windows: int) -> None:
        """epochs=None: record in defaults_ the passes over n_windows training windows an
        epoch that make about UPDATES updates (the rule of `estimators.defaults`)."""
        if self.epochs is None:
            self.defaults_.choose(
                "epochs", auto_epochs(n_windows, self.batch_size),
                f"~{UPDATES} updates of {self.batch_size} over {n_windows} windows an epoch, "
                f"within [{MIN_EPOCHS}, {MAX_EPOCHS}] (the most)",
            )  # fmt: skip

    def _fit_panel(self, y: Any, X: Any = None, X_known: Any = None,
                   static: Any = None) -> PanelForecasting:  # fmt: skip
        lookback = _positive_int("lookback", self._arg("lookback"))
        horizon = _positive_int("horizon", self.horizon)
        panel, self.panel_kind_ = self._read_panel(y)
        likelihood, scaling = self._likelihood(), self._scaling()
        if likelihood.name == "negative_binomial" and (panel.values < 0).any():
            i = int(np.searchsorted(panel.starts, np.flatnonzero(panel.values < 0)[0], "right") - 1)
            raise InputError(
                f"likelihood='negative_binomial' needs counts >= 0; series {panel.ids[i]!r} "
                "holds negative values"
            )
        lengths = panel.lengths
        short = np.flatnonzero(lengths < lookback + horizon)
        if len(short) == len(panel):
            i = int(short[0])
            raise InputError(
                f"series {panel.ids[i]!r} has {lengths[i]} steps, fewer than lookback + horizon = "
                f"{lookback} + {horizon} (so has every series); use a shorter lookback or horizon"
            )
        f = self._validation_fraction()
        n_val = (
            np.maximum(np.round(lengths * f).astype(np.int64), horizon) if f > 0 else 0 * lengths
        )
        n_val = np.where(lengths - n_val >= lookback + horizon, n_val, 0)
        ids = bool(self.id_embedding)
        ar = self._autoregressive()
        self.freq_ = _frequency(panel.times)
        cov = read_covariates(panel, X, X_known, static, self.calendar, self.freq_,
                              lengths - n_val, self.id_col, self.time_col)  # fmt: skip
        if ar and cov.past is not None:
            raise InputError(
                "past covariates X are observed only up to the forecast origin, so an "
                "autoregressive decoder cannot feed them forward: use decoder='direct', or pass "
                "covariates known for the future as X_known"
            )
        self.covariates_ = cov.state() if cov else None
        common = dict(lookback=lookback, horizon=horizon, scaling=scaling, ids=ids,
                      batch_size=self.batch_size, seed=self.seed, autoregressive=ar,
                      covariates=cov if cov else None)  # fmt: skip
        train = Windows(
            panel, lengths - n_val, shuffle=True, per_epoch=self.windows_per_epoch, **common
        )
        self._choose_epochs(min(train.total, self.windows_per_epoch))
        val = None
        if n_val.any():
            val = Windows(panel, np.where(n_val > 0, lengths, 0), shuffle=False,
                          first_target=lengths - n_val, **common)  # fmt: skip
        self.ids_ = list(panel.ids)
        self.series_lengths_ = lengths.copy()
        # The last lookback steps of each series (NaN-padded in front for short ones).
        self.last_windows_ = _tails(panel.values[:, None], panel, lookback)[..., 0]
        self.last_times_ = None if panel.times is None else [t[-1] for t in panel.times]
        self.last_past_ = None if cov.past is None else _tails(cov.past, panel, lookback)
        self.last_known_ = None if cov.known is None else _tails(cov.known, panel, lookback)
        self.static_ = cov.static
        kp, kk, ks = cov.widths
        extra = kk + ks if ar else (1 + kk if kk else 0) + kp + ks  # covariate channels
        # Autoregressive: the likelihood of the next step at every step; direct: all
        # horizon steps from the pooled window.
        spec = {"n_inputs": 2 + extra + (self.id_embedding or 0),
                "n_outputs": likelihood.n_params * (1 if ar else horizon),
                "pooling": "every" if ar else self._pooling(),
                "activation": None, "panel_ids": len(panel)}  # fmt: skip
        self._train(spec, "regression", train, val)
        return self

    def _build_model(self, *args, panel_ids: int | None = None, **kwargs):
        net = super()._build_model(*args, **kwargs)
        if panel_ids is None:
            return net
        return GlobalNet(net, self._likelihood(), panel_ids, self.id_embedding or 0)

    def _windows_for(self, y: Any, ids: Any) -> tuple[np.ndarray, np.ndarray, list, Any]:
        """(past (N, lookback), series numbers (N,), ids, the Panel read from y or None) of
        the series to forecast."""
        panel = None
        if y is None:
            rows = np.arange(len(self.ids_)) if ids is None else _positions(self.ids_, ids)
            past, numbers = self.last_windows_[rows], rows
            names = [self.ids_[i] for i in rows]
        else:
            panel, _ = self._read_panel(y)
            keep = np.arange(len(panel)) if ids is None else panel.select(ids)
            names = [panel.ids[i] for i in keep]
            lb = self._arg("lookback")
            past = np.stack([panel.series(i)[-lb:] if panel.lengths[i] >= lb
                             else np.full(lb, np.nan) for i in keep])  # fmt: skip
            known = {k: i for i, k in enumerate(self.ids_)}
            if self.id_embedding:
                unknown = [k for k in names if k not in known]
                if unknown:
                    raise InputError(
                        f"series {unknown[:5]!r} were not in the training panel: an id "
                        "embedding knows only the trained series (fit with id_embedding=0 to "
                        "forecast new ones)"
                    )
            numbers = np.array([known.get(k, 0) for k in names], dtype=np.int64)
        short = np.flatnonzero(np.isnan(past).any(axis=1))
        if len(short):
            i = int(short[0])
            raise InputError(
                f"series {names[i]!r} has fewer than lookback = {self._arg('lookback')} steps of "
                "history; "
                "a forecast needs the last lookback steps of every series"
            )
        return past, numbers, names, panel

    def _context(self, panel: Panel | None, names: list, steps: int, needed: int,
                 cov_args: dict) -> tuple:  # fmt: skip
        """(past covariates (N, L, Kp), known covariates (N, L + needed, Kk), static (N, S))
        of the forecast series `names`, each None where the fit had none; panel: the
        histories y predict was given (None: the training data's). cov_args: the predict
        call's X, X_known, static, X_future."""
        state = getattr(self, "covariates_", None)
        given = [k for k, v in cov_args.items() if v is not None]
        if not state:
            if given:
                raise InputError(
                    f"the forecaster was fitted without covariates; {', '.join(given)} must be None"
                )
            return None, None, None
        kp, kk, ks = state["widths"]
        lookback = self._arg("lookback")
        if kp and steps > self.horizon and not self._autoregressive():
            raise InputError(
                f"past covariates X are known only up to the forecast origin: forecast at most "
                f"the trained horizon = {self.horizon} steps, not {steps}"
            )
        trained = {k: i for i, k in enumerate(self.ids_)}
        if panel is None:
            extra = [k for k in ("X", "X_known", "static") if cov_args[k] is not None]
            if extra:
                raise InputError(
                    f"{', '.join(extra)} describe the histories y: pass y with them (X_future "
                    "holds the known covariates of the forecast steps)"
                )
            rows = np.array([trained[k] for k in names], dtype=np.int64)
            past = None if not kp else self.last_past_[rows]
            hist = None if not kk else self.last_known_[rows]
            static = None if not ks else self.static_[rows]
            last_times = None if self.last_times_ is None else [self.last_times_[r] for r in rows]
        else:
            keep = panel.select(names)
            cov = read_covariates(panel, cov_args["X"], cov_args["X_known"], cov_args["static"],
                                  True, self.freq_, panel.lengths, self.id_col, self.time_col,
                                  state)  # fmt: skip
            for width, part, name in ((kp, cov.past, "X"), (kk - 2 * len(state["cycles"]),
                                      cov_args["X_known"], "X_known")):  # fmt: skip
                if width and part is None:
                    raise InputError(f"the forecaster was fitted with {name}: pass it with y")
            past = None if not kp else _tails(cov.past, panel, lookback)[keep]
            hist = None if not kk else _tails(cov.known, panel, lookback)[keep]
            static = None
            if ks and cov.static is not None:
                static = cov.static[keep]
            elif ks:
                unknown = [k for k in names if k not in trained]
                if unknown:
                    raise InputError(
                        f"series {unknown[:5]!r} were not in the training panel: pass static"
                    )
                static = self.static_[[trained[k] for k in names]]
            last_times = None if panel.times is None else [panel.times[i][-1] for i in keep]
        known = None
        if kk:
            fut = future_known(state, cov_args["X_future"], names, last_times, self.freq_,
                               steps, needed)  # fmt: skip
            known = np.concatenate([hist, fut], axis=1)
        elif cov_args["X_future"] is not None:
            raise InputError("the forecaster was fitted without X_known; X_future must be None")
        for name, part in (("X", past), ("X_known", hist)):
            if part is not None and np.isnan(part).any():
                raise InputError(f"{name} covers fewer than lookback = {lookback} steps")
        return past, known, static

    @torch.no_grad()
    def _raw(self, past: np.ndarray, numbers: np.ndarray,
             extra: np.ndarray | None = None) -> list[np.ndarray]:  # fmt: skip
        """Likelihood parameters in the series' units, each (N, horizon); extra: covariate
        channels (N, T_in, E) (`covariates.direct_extra`)."""
        lik, scaling = self._likelihood(), self._scaling()
        device = next(self.model_.parameters()).device
        params = []
        for i in range(0, len(past), _CHUNK):
            p = past[i : i + _CHUNK]
            e = None if extra is None else extra[i : i + _CHUNK]
            x, _ = make_inputs(p, numbers[i : i + _CHUNK] if self.id_embedding else None, scaling,
                               extra=e)  # fmt: skip
            out = self.model_(x.to(device))[0].double().cpu().numpy()
            loc, scale = window_scale(p, scaling)
            params.append(
                lik.unit_params(out.reshape(len(p), self.horizon, lik.n_params), loc, scale)
            )
        return [np.concatenate([c[k] for c in params]) for k in range(len(params[0]))]

    def _autoregressive(self) -> bool:
        if self.decoder not in DECODERS:
            raise InputError(f"decoder must be one of {list(DECODERS)}, got {self.decoder!r}")
        ar = self.decoder == "autoregressive"
        if ar and self._arg("bidirectional"):
            raise InputError(
                "decoder='autoregressive' reads the series forwards one step at a time: "
                "use bidirectional=False"
            )
        return ar

    def sample_paths(self, horizon: int | None = None, y: Any = None, ids: Any = None,
                     n_samples: int | None = None, X: Any = None, X_known: Any = None,
                     static: Any = None, X_future: Any = None) -> np.ndarray:  # fmt: skip
        """Sample paths of a decoder='autoregressive' forecaster: (n_series, n_samples,
        horizon), or (n_samples, horizon) for one series; each path draws every step from
        the likelihood given the draws before it (DeepAR). Covariates as in `predict`."""
        cov_args = {"X": X, "X_known": X_known, "static": static, "X_future": X_future}
        check_is_fitted(self, "model_")
        if not self._autoregressive():
            raise InputError(
                "sample paths need decoder='autoregressive' (a direct head forecasts each "
                "step's marginal distribution, not joint paths)"
            )
        steps = self.horizon if horizon is None else _positive_int("horizon", horizon)
        n = _positive_int("n_samples", self.n_samples if n_samples is None else n_samples)
        past, numbers, names, panel = self._windows_for(y, ids)
        context = self._context(panel, names, steps, steps, cov_args)
        paths = self._paths(past, numbers, steps, n, context)  # (N, S, steps)
        return paths[0] if self.panel_kind_ == "single" else paths

    def _paths(self, past: np.ndarray, numbers: np.ndarray, steps: int, n: int,
               context: tuple) -> np.ndarray:  # fmt: skip
        device = next(self.model_.parameters()).device
        return sample_paths(self.model_, self._likelihood(), past,
                            numbers if self.id_embedding else None, self._scaling(), steps, n,
                            self.seed, device, context[1], context[2])  # fmt: skip

    def _predict_panel(self, steps: int, y: Any, ids: Any, quantiles: Any,
                       cov_args: dict) -> np.ndarray:  # fmt: skip
        check_is_fitted(self, "model_")
        past, numbers, names, panel = self._windows_for(y, ids)
        lik = self._likelihood()
        ar = self._autoregressive()
        needed = steps if ar else -(-steps // self.horizon) * self.horizon
        context = self._context(panel, names, steps, needed, cov_args)
        if ar:
            n = _positive_int("n_samples", self.n_samples)
            paths = self._paths(past, numbers, steps, n, context)
            if quantiles is None:
                return self._shape(paths.mean(axis=1))
            qs = np.quantile(paths, lik.check_levels(quantiles), axis=1)
            return self._shape(np.moveaxis(qs, 0, -1))  # (N, steps, Q)
        if quantiles is not None and steps > self.horizon:
            raise InputError(
                f"quantiles are forecast for up to the trained horizon = {self.horizon} steps, "
                f"not {steps}; fit with horizon={steps}"
            )
        blocks, done = [], 0
        lookback = self._arg("lookback")
        past_cov, known, static = context
        while done < steps:
            k = None if known is None else known[:, done : done + lookback + self.horizon]
            extra = direct_extra(past_cov, k, static, lookback, self.horizon)
            params = self._raw(past, numbers, extra)
            if quantiles is not None:
                out = lik.quantiles(params, quantiles)[:, :steps]  # (N, steps, Q)
                return self._shape(out)
            block = lik.mean(params)  # (N, horizon)
            blocks.append(block)
            done += self.horizon
            past = np.concatenate([past, block], axis=1)[:, -lookback:]
        return self._shape(np.concatenate(blocks, axis=1)[:, :steps])

    def _shape(self, out: np.ndarray) -> np.ndarray:
        """(N, steps[, Q]) -> (steps[, Q]) for one series, (steps, N[, Q]) for columns."""
        if self.panel_kind_ == "single":
            return out[0]
        if self.panel_kind_ == "columns":
            return np.swapaxes(out, 0, 1)
        return out

    def predict_interval(self, coverage: float = 0.8, horizon: int | None = None, y: Any = None,
                         ids: Any = None,
                         **covariates: Any) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """(lower, upper): the central `coverage` interval of the forecast, each shaped like
        `predict`'s point forecast; `covariates`: predict's X, X_known, static, X_future."""
        if not 0 < coverage < 1:
            raise InputError(f"coverage must lie in (0, 1), got {coverage!r}")
        levels = [(1 - coverage) / 2, (1 + coverage) / 2]
        q = self.predict(horizon, y=y, ids=ids, quantiles=levels, **covariates)
        return q[..., 0], q[..., 1]

    def predict_frame(self, horizon: int | None = None, y: Any = None, ids: Any = None,
                      quantiles: Any = None, **covariates: Any) -> pd.DataFrame:  # fmt: skip
        """A long DataFrame: id, step (1..horizon), time (when the fit data had time stamps
        of a regular frequency), forecast, and one column per quantile; `covariates`:
        predict's X, X_known, static, X_future."""
        steps = self.horizon if horizon is None else horizon
        _, _, names, _ = self._windows_for(y, ids)
        kind, self.panel_kind_ = self.panel_kind_, "panel"
        try:
            mean = self.predict(steps, y=y, ids=ids, **covariates)
            qs = (
                None
                if quantiles is None
                else self.predict(steps, y=y, ids=ids, quantiles=quantiles, **covariates)
            )
        finally:
            self.panel_kind_ = kind
        frame = pd.DataFrame({"id": np.repeat(np.array(names, dtype=object), steps),
                              "step": np.tile(np.arange(1, steps + 1), len(names)),
                              "forecast": mean.ravel()})  # fmt: skip
        if y is None and self.freq_ is not None:
            last = dict(zip(self.ids_, self.last_times_))
            frame["time"] = np.concatenate(
                [pd.date_range(last[k], periods=steps + 1, freq=self.freq_)[1:] for k in names]
            )
        for j, q in enumerate([] if quantiles is None else quantiles):
            frame[f"q{q:g}"] = qs[:, :, j].ravel()
        return frame


def _tails(a: np.ndarray, panel: Panel, steps: int) -> np.ndarray:
    """(n_series, steps, K): the rows of the last `steps` steps of every series of a
    panel-aligned array a (sum T, K), NaN-padded in front for shorter series."""
    out = np.full((len(panel), steps, a.shape[1]), np.nan)
    for i in range(len(panel)):
        tail = a[panel.starts[i] : panel.starts[i + 1]][-steps:]
        out[i, steps - len(tail) :] = tail
    return out


def _positions(ids: list, wanted: Any) -> np.ndarray:
    return Panel(ids, np.zeros(0), np.zeros(len(ids) + 1, dtype=np.int64)).select(wanted)


def _frequency(times: list | None) -> str | None:
    """The common pandas frequency of DatetimeIndex time stamps, or None."""
    if not times or not all(
        isinstance(t, pd.DatetimeIndex)
        or (hasattr(t, "dtype") and str(t.dtype).startswith("datetime64"))
        for t in times
    ):
        return None
    try:
        freq = pd.infer_freq(pd.DatetimeIndex(max(times, key=len)))
    except (TypeError, ValueError):
        return None
    return freq
