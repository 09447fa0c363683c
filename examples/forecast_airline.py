"""Multi-step forecasting with a plot: the last 24 months of airline passengers.

A Forecaster (a 3-layer skip-wired LSTM: every layer also reads x_t) learns from 1949-1958
and forecasts 1959-1960 in one go (direct multi-step: the head outputs all 24 months), next
to the seasonal-naive baseline (repeat the last year); `deeprnn.plots.forecast` draws both.
Usage: python examples/forecast_airline.py [--quick] [--out runs/examples/forecast.png]
"""

import argparse

import numpy as np

from deeprnn import plots
from deeprnn.data import load_dataset
from deeprnn.estimators import Forecaster

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a few epochs, for tests")
parser.add_argument("--out", default="runs/examples/forecast.png", help="the PNG to write")
args = parser.parse_args()

series = load_dataset("airline_passengers").series  # (144,) monthly, thousands
horizon = 24
train, test = series[:-horizon], series[-horizon:]

model = Forecaster(
    lookback=24,
    horizon=horizon,
    cell="lstm",
    num_layers=3,
    wiring="skip",
    hidden_size=32,
    epochs=3 if args.quick else 150,
)
model.fit(train)
forecast = model.predict()  # (24,) the months after the training data
seasonal_naive = np.tile(train[-12:], 2)  # repeat the last year

picture = plots.forecast(train, test, forecast, args.out, baseline=seasonal_naive,
                         title="Airline passengers: the last 24 months")  # fmt: skip
mae = float(np.mean(np.abs(forecast - test)))
naive = float(np.mean(np.abs(seasonal_naive - test)))
print(f"plot written to {picture}")
print(f"test MAE {mae:.1f} thousand passengers (seasonal naive: {naive:.1f})")
