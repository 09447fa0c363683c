"""Forecaster: direct multi-step forecasts of one or more time series from a lookback window."""

from __future__ import annotations

import math
import sys
from dataclasses import KW_ONLY, dataclass
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from deeprnn.data import SeriesScaler, make_windows
from deeprnn.data.series import _as_series, _positive_int
from deeprnn.errors import InputError
from deeprnn.estimators.base import RNNEstimator
from deeprnn.estimators.inputs import Loader
from deeprnn.forecast.global_model import PanelForecasting
from deeprnn.forecast.panel import is_panel, to_panel
from deeprnn.forecast.transforms import difference, integrate
from deeprnn.train import predict
from deeprnn.train.metrics import regression_metrics


def _columns(x: Any, name: str) -> np.ndarray:
    """A finite (T, C) float64 array from (T,) or (T, C) values (array, list, pandas)."""
    a = _as_series(x, name)
    return a.reshape(len(a), -1)


@dataclass(eq=False, repr=False)
class Forecaster(PanelForecasting, RNNEstimator):
    """Forecast the next `horizon` steps of a series from its last `lookback` steps.

    Direct multi-step: the head outputs all `horizon` steps (of every series) at once.
    `fit(y, X=None)`: y a 1-D array or pandas Series (T,), or (T, n_series) for several
    series forecast together; X optional covariates (T, K) aligned with y (calendar,
    weather...), used as inputs only. The last `validation_fraction` of the steps is held
    out for early stopping; the scalers (per series and covariate: mean and std) are fitted
    on the training part only.
    `predict(horizon=None, y=None, X=None, X_future=None)` forecasts the steps after the
    training data, or after `y` when given (at least `lookback` steps, with X its
    covariates). A horizon longer than the trained one is reached iteratively: each block
    of forecasts is fed back as history for the next, so errors compound; with covariates,
    `X_future` must then hold the covariates of the forecast steps. Returns (horizon,) for a
    1-D series, (horizon, n_series) otherwise.
    `score(y, X=None)`: minus the mean absolute error of forecasting the len(y) steps that
    follow the training data (y is the continuation of the series, X its covariates), so
    greater is better and `GridSearchCV(..., cv=TimeSeriesSplit())` works on a series.
    Args (besides RNNEstimator's): lookback, horizon, pooling, and the transforms: log
    (model log y and forecast exp of it: positive series whose seasonal swings grow with the
    level), relative (the network sees each window minus its last value and forecasts
    changes from it, which carries trends and level shifts beyond the training range),
    difference (model y_t - y_(t - d): 1 removes a trend, the season a cycle; forecasts are
    summed back from the last d values).
    Chosen from the data (`defaults_` records each choice and why; `selection_` holds the
    backtest table, best first): transforms left as None are picked by a rolling-origin
    backtest on the end of the training data (`deeprnn.forecast.selection`: the last
    `selection_origins` horizons, each candidate fitted before the first of them), among
    none / relative / log / log_relative / difference / seasonal_difference where they
    apply; with select="auto" the lookback too (the given one, one season or horizon
    longer, twice it, with the best transform). select="off" (or covariates, or data too
    short to backtest) leaves relative=True, log=False, difference=0. season: None reads it
    from a DatetimeIndex (12 for monthly data...). epochs=None: about 1,500 updates.
    Learned: model_, defaults_, selection_, scaler_, covariate_scaler_, n_series_,
    n_covariates_, last_window_, last_covariates_, history_.

    Many series, one model (`deeprnn.forecast`): `fit(y)` with y a list of 1-D arrays of any
    lengths, a dict {id: series}, or a long DataFrame (id_col, time_col, value_col), trains
    ONE network on windows drawn lazily from every series (`windows_per_epoch` an epoch),
    each window scaled by its own lookback (`scaling`: "mean" |y|, or "last" value and std),
    optionally with a series-id embedding (`id_embedding` wide). So does any y when
    `likelihood` is set ("gaussian", "student_t", "negative_binomial", or "quantile" with
    `quantiles` levels): `predict(quantiles=[0.1, 0.9])`, `predict_interval(0.8)` and
    `predict_frame()` then give probabilistic forecasts. A panel's `predict` returns
    (n_series, horizon) (rows in fit order, or those of `ids`); y=... forecasts after other
    histories of the same series. The last max(horizon, validation_fraction * T_i) steps of
    every long enough series validate. decoder="autoregressive" trains DeepAR-style (the
    likelihood of the next step at every step, teacher forcing) and forecasts by
    `n_samples` sample paths, each draw fed back as the next input: `sample_paths()`, and
    quantiles of any horizon. Covariates on this path (`deeprnn.forecast.covariates`):
    `fit(y, X=past, X_known=known, static=static)` and `predict(X_future=known values of the
    forecast steps)`; calendar features are generated from a DatetimeIndex (`calendar`).
    See `deeprnn.forecast.backtest.backtest` for rolling-origin evaluation.
    """

    lookback: int  # steps of history per forecast (select="auto" also tries longer ones)
    horizon: int = 1  # steps forecast at once
    _: KW_ONLY
    # Transforms; None: chosen by a backtest on the training data (see `select`).
    relative: bool | None = None  # model changes from each window's last value (trends)
    log: bool | None = None  # model log(y): multiplicative seasonality / growth (y > 0)
    difference: int | None = None  # model y_t - y_(t-d): 1 removes a trend, season a cycle
    select: str = "auto"  # "auto": transform, then lookback; "transform": only it; "off"
    season: int | None = None  # seasonal period (None: from a DatetimeIndex, else 1)
    selection_origins: int = 2  # backtest origins (of `horizon` steps) the selection scores
    pooling: str = "last"  # "last" | "mean" | "attention"
    epochs: int | None = None  # None: ~1,500 updates (within 15-300 passes over the windows)
    # Global model and probabilistic forecasts (deeprnn.forecast).
    likelihood: str | None = None  # "gaussian" | "student_t" | "negative_binomial" | "quantile"
    quantiles: list[float] | None = None  # levels of likelihood="quantile" (None: 0.1, 0.5, 0.9)
    scaling: str | None = "auto"  # per window: "mean" | "last" | None ("auto": from relative)
    id_embedding: int = 0  # width of a learned embedding of the series id (0: none)
    decoder: str = "direct"  # "direct": all horizon steps at once; "autoregressive": DeepAR
    n_samples: int = 200  # sample paths behind an autoregressive forecast's mean / quantiles
    calendar: bool = True  # panel path: calendar features from a DatetimeIndex (known future)
    windows_per_epoch: int = 10_000  # windows drawn per epoch when a panel holds more
    id_col: str = "id"  # columns of a long DataFrame
    time_col: str = "time"
    value_col: str = "value"

    _learned = ("defaults_", "covariates_", "last_past_", "last_known_", "static_", "scaler_",
                "covariate_scaler_", "n_series_", "n_covariates_", "series_ndim_",
                "last_window_", "last_covariates_", "panel_kind_", "ids_", "series_lengths_",
                "last_windows_", "last_times_", "freq_")  # fmt: skip

    def fit(self, y: Any, X: Any = None, X_known: Any = None, static: Any = None) -> Forecaster:
        """Learn from the series y (and covariates X); returns self. Transforms and the
        lookback left to the selection are chosen first (`defaults_`, `selection_`)."""
        self._check_params()
        for name in self._learned:
            setattr(self, name, None)
        from deeprnn.forecast.selection import choose_transform  # it imports estimators

        self.selection_ = None
        covariates = next((c for c in (X, X_known, static) if c is not None), None)
        self.defaults_ = choose_transform(self, y, covariates)
        if self.verbose and self.defaults_:
            print(f"Forecaster: arguments chosen from the data:\n{self.defaults_}",
                  file=sys.stderr, flush=True)  # fmt: skip
        if self.likelihood is not None or is_panel(y) or self.decoder != "direct":
            if self._arg("difference") or self._arg("log"):
                raise InputError(
                    "a panel or a likelihood head is modelled without log and differencing: "
                    "pass log=False, difference=0 (per-window scaling handles the level)"
                )
            return self._fit_panel(y, X, X_known, static)
        if X_known is not None or static is not None:
            raise InputError(
                "X_known and static covariates are read on the panel path: pass y as a list / "
                "dict / DataFrame of series, or set a likelihood (one series: X holds its "
                "covariates)"
            )
        lookback = _positive_int("lookback", self._arg("lookback"))
        horizon = _positive_int("horizon", self.horizon)
        lag = self._lag()
        self.series_ndim_ = np.ndim(y)
        series = _columns(y, "y")
        cov = self._covariates(X, len(series), fitting=True)
        steps = len(series)
        if steps < lookback + horizon + lag:
            more = (" + difference", f" + {lag}") if lag else ("", "")
            raise InputError(
                f"y has {steps} steps, shorter than lookback + horizon{more[0]} = {lookback} + "
                f"{horizon}{more[1]}; use a shorter lookback or horizon"
            )
        n_train = self._split_point(steps)
        model_space = self._to_model(series, "y")
        diffs = difference(model_space, lag)  # row j is step j + lag
        self.scaler_ = SeriesScaler().fit(diffs[: n_train - lag])
        cov = None if cov is None else cov[lag:]
        self.covariate_scaler_ = None if cov is None else SeriesScaler().fit(cov[: n_train - lag])
        self.n_series_, self.n_covariates_ = series.shape[1], 0 if cov is None else cov.shape[1]
        target = self.scaler_.transform(diffs)
        scaled_cov = None if cov is None else self.covariate_scaler_.transform(cov)
        self._choose_epochs(n_train - lag - lookback - horizon + 1)

        def windows(start: int, stop: int, shuffle: bool) -> Loader:
            c = None if cov is None else scaled_cov[start:stop]
            x, y_ = make_windows(target[start:stop], lookback, horizon, covariates=c)
            offset = self._offset(x)
            x[:, :, : self.n_series_] -= offset
            y_ = y_.reshape(len(y_), horizon, -1) - offset
            if not shuffle:
                # The `lag` levels before each window's targets, to integrate them back.
                first = start + lookback + np.arange(len(x))  # model_space row of the base
                base = model_space[first[:, None] + np.arange(lag)]
                return _Validation(self, x, y_.reshape(len(y_), -1), offset, base)
            return Loader(x, y_.reshape(len(y_), -1), self.batch_size, shuffle, self.seed)

        # Validation windows read the lookback steps before the held-out part as history.
        val = None if n_train == steps else windows(n_train - lag - lookback, steps - lag, False)
        self.last_window_ = series[-(lookback + lag) :]
        self.last_covariates_ = None if cov is None else cov[-lookback:]
        spec = {"n_inputs": self.n_series_ + self.n_covariates_,
                "n_outputs": horizon * self.n_series_, "pooling": self._pooling(),
                "activation": None}  # fmt: skip
        self._train(spec, "regression", windows(0, n_train, True), val)
        return self

    def _units(self, out: np.ndarray, offset: np.ndarray, base: np.ndarray) -> np.ndarray:
        """Network outputs or targets (N, horizon * n_series) back in the units of y; base
        (N, lag, n_series): the model-space levels before them (for differencing)."""
        z = out.reshape(len(out), self.horizon, self.n_series_) + offset
        z = self.scaler_.inverse_transform(z.reshape(-1, self.n_series_)).reshape(z.shape)
        z = integrate(base, z, self._lag()).reshape(-1, self.n_series_)
        return np.exp(z) if self._arg("log") else z

    def _lag(self) -> int:
        """The differencing lag fit uses (0: none)."""
        lag = self._arg("difference")
        if isinstance(lag, bool) or not isinstance(lag, int) or lag < 0:
            raise InputError(f"difference must be an int >= 0 (a lag), got {lag!r}")
        return lag

    def _split_point(self, steps: int) -> int:
        """Steps used for training; the rest (at least one horizon) validates."""
        f = self._validation_fraction()
        if f == 0:
            return steps
        n_val = max(self.horizon, round(steps * f))
        need = self._arg("lookback") + self.horizon + self._lag()
        if steps - n_val < need:
            raise InputError(
                f"validation_fraction={f} holds out the last {n_val} of {steps} steps, leaving "
                f"{steps - n_val} for training, fewer than the {need} a window needs; use "
                "validation_fraction=0 or a longer series"
            )
        return steps - n_val

    def _covariates(self, X: Any, steps: int, fitting: bool = False) -> np.ndarray | None:
        k = None if fitting else self.n_covariates_
        if X is None:
            if k:
                raise InputError(
                    f"the forecaster was fitted with {k} covariates; pass X, aligned with y"
                )
            return None
        if k == 0:
            raise InputError("the forecaster was fitted without covariates; X must be None")
        cov = _columns(X, "X")
        if len(cov) != steps:
            raise InputError(f"X has {len(cov)} steps but y has {steps}; align them step by step")
        if k is not None and cov.shape[1] != k:
            raise InputError(
                f"X has {cov.shape[1]} covariates but the forecaster was fitted on {k}"
            )
        return cov

    def _to_model(self, series: np.ndarray, name: str) -> np.ndarray:
        """The series as the network models it: log(series) when `log`, else unchanged."""
        if not self._arg("log"):
            return series
        if (series <= 0).any():
            raise InputError(f"log=True needs {name} > 0, but it holds {series.min():g}")
        return np.log(series)

    def _offset(self, x: np.ndarray) -> np.ndarray:
        """(N, 1, n_series): what is taken off windows x (N, L, F) and their targets: with
        `relative`, each window's last value of every series; zeros otherwise."""
        last = x[:, -1:, : self.n_series_]
        return last.copy() if self._arg("relative") else np.zeros_like(last)

    def _inputs(self, series: np.ndarray, cov: np.ndarray | None) -> np.ndarray:
        """Scaled model inputs (T - lag, n_series + K) of raw history (T, n_series)."""
        parts = [self.scaler_.transform(difference(self._to_model(series, "y"), self._lag()))]
        if cov is not None:
            parts.append(self.covariate_scaler_.transform(cov))
        return np.concatenate(parts, axis=1)

    def _history(self, y: Any, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """The last lookback (+ lag) steps of the history (raw) and the covariates of the
        last lookback."""
        if y is None:
            if X is not None:
                raise InputError(
                    "X holds the covariates of y; pass y with it (or X_future for the "
                    "covariates of the forecast steps)"
                )
            return self.last_window_, self.last_covariates_
        hist = _columns(y, "y")
        if hist.shape[1] != self.n_series_:
            raise InputError(
                f"y has {hist.shape[1]} series (columns) but the forecaster was fitted on "
                f"{self.n_series_}"
            )
        lookback, lag = self._arg("lookback"), self._lag()
        if len(hist) < lookback + lag:
            more = f" + difference {lag}" if lag else ""
            raise InputError(
                f"y has {len(hist)} steps; a forecast needs the last lookback{more} = "
                f"{lookback + lag}"
            )
        cov = self._covariates(X, len(hist))
        return hist[-(lookback + lag) :], None if cov is None else cov[-lookback:]

    def _future(self, X_future: Any, steps: int) -> np.ndarray | None:
        """Scaled covariates of the forecast steps that are fed back as history."""
        needed = (math.ceil(steps / self.horizon) - 1) * self.horizon
        if not self.n_covariates_:
            if X_future is not None:
                raise InputError(
                    "the forecaster was fitted without covariates; X_future must be None"
                )
            return None
        if needed == 0:
            return None
        if X_future is None:
            raise InputError(
                f"forecasting {steps} steps with a model trained for {self.horizon} feeds "
                f"forecasts back as history, which needs the covariates of the first {needed} "
                "forecast steps: pass X_future"
            )
        fut = _columns(X_future, "X_future")
        if fut.shape[1] != self.n_covariates_ or len(fut) < needed:
            raise InputError(
                f"X_future must be ({needed} or more, {self.n_covariates_}), got {fut.shape}"
            )
        return self.covariate_scaler_.transform(fut)

    @torch.no_grad()
    def predict(self, horizon: int | None = None, y: Any = None, X: Any = None,
                X_future: Any = None, ids: Any = None, quantiles: Any = None,
                X_known: Any = None, static: Any = None) -> np.ndarray:  # fmt: skip
        """Forecast `horizon` steps (default: the trained horizon) after the training data,
        or after y; returns (horizon,) or (horizon, n_series) in the units of y; for a panel
        (n_selected, horizon), `ids` choosing the series; `quantiles` adds a last axis."""
        check_is_fitted(self, "model_")
        steps = self.horizon if horizon is None else _positive_int("horizon", horizon)
        if getattr(self, "panel_kind_", None) is not None:
            cov_args = {"X": X, "X_known": X_known, "static": static, "X_future": X_future}
            return self._predict_panel(steps, y, ids, quantiles, cov_args)
        if X_known is not None or static is not None:
            raise InputError("X_known and static are covariates of the panel path; pass X")
        if ids is not None or quantiles is not None:
            raise InputError(
                "ids and quantiles need a panel or a likelihood head: fit a list / dict / "
                "DataFrame of series, or pass likelihood='gaussian' (or another)"
            )
        history, cov = self._history(y, X)
        future = self._future(X_future, steps)
        window = self._inputs(history, cov)  # (lookback, n_series + K)
        lookback, lag = self._arg("lookback"), self._lag()
        device = next(self.model_.parameters()).device
        blocks, done = [], 0
        while done < steps:
            x = window[None].copy()  # (1, lookback, n_series + K)
            offset = self._offset(x)
            x[:, :, : self.n_series_] -= offset
            out = self.model_(torch.as_tensor(x, dtype=torch.float32, device=device))[0]
            out = out.reshape(self.horizon, self.n_series_).double().cpu().numpy() + offset[0]
            blocks.append(out)
            done += self.horizon
            if done < steps:  # feed the block back: forecasts (and their covariates) as history
                fed = out
                if future is not None:
                    fed = np.concatenate([out, future[done - self.horizon : done]], axis=1)
                window = np.concatenate([window, fed])[-lookback:]
        forecast = self.scaler_.inverse_transform(np.concatenate(blocks)[:steps])
        base = self._to_model(history, "y")[len(history) - lag :]
        forecast = integrate(base[None], forecast[None], lag)[0]
        forecast = np.exp(forecast) if self._arg("log") else forecast
        return forecast[:, 0] if self.series_ndim_ == 1 else forecast

    def score(self, y: Any, X: Any = None) -> float:
        """Minus the mean absolute error of the forecast of the len(y) steps after the
        training data (y continues the training series; X holds its covariates)."""
        if getattr(self, "panel_kind_", None) is not None:
            return -float(np.mean(np.abs(_panel_errors(self, y))))
        truth = _columns(y, "y")
        pred = self.predict(horizon=len(truth), X_future=X)
        return -float(np.mean(np.abs(truth - pred.reshape(truth.shape))))


def _panel_errors(est: Forecaster, y: Any) -> np.ndarray:
    """Forecast errors of every step of the continuations y of the fitted series."""
    if est.panel_kind_ == "columns":
        truth = _columns(y, "y")
        return truth - est.predict(horizon=len(truth)).reshape(truth.shape)
    panel = to_panel(y, est.id_col, est.time_col, est.value_col)
    rows = None if est.panel_kind_ == "single" else list(panel.ids)
    pred = est.predict(horizon=int(panel.lengths.max()), ids=rows)
    pred = pred[None] if est.panel_kind_ == "single" else pred
    return np.concatenate(
        [panel.series(i) - pred[i, : panel.lengths[i]] for i in range(len(panel))]
    )


class _Validation(Loader):
    """The validation windows; `metrics` scores them in the units of y (after the offset,
    scaling and log are undone), so the history's val_mae / val_mape read like the test's."""

    def __init__(self, est: Forecaster, x: np.ndarray, y: np.ndarray, offset: np.ndarray,
                 base: np.ndarray):  # fmt: skip
        super().__init__(x, y, est.batch_size, False, est.seed)
        self.est, self.offset, self.base = est, offset, base
        self.truth = est._units(np.asarray(y, dtype=np.float64), offset, base)

    def metrics(self, model) -> dict[str, float]:
        out = predict(model, self, activate=False).astype(np.float64)
        return regression_metrics(self.truth, self.est._units(out, self.offset, self.base))
