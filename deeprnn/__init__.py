"""deeprnn: deep recurrent neural networks for sequence data."""

from deeprnn.cells import GRUCell, LSTMCell, RNNCell
from deeprnn.config import RNNConfig, TrainConfig
from deeprnn.errors import DeepRNNError, InputError, InputTypeError
from deeprnn.frontend import ConvFrontend
from deeprnn.heads import Head
from deeprnn.model import SequenceModel
from deeprnn.parallel import Parallel
from deeprnn.stack import DeepRNN
from deeprnn.train import CheckpointError, History, TensorBatches, evaluate, fit, predict
from deeprnn.tune import tune  # noqa: E402  (last: the function, not the package, is deeprnn.tune)

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConvFrontend",
    "DeepRNN",
    "DeepRNNError",
    "GRUCell",
    "Head",
    "History",
    "InputError",
    "InputTypeError",
    "LSTMCell",
    "Parallel",
    "RNNCell",
    "RNNConfig",
    "SequenceModel",
    "TensorBatches",
    "TrainConfig",
    "evaluate",
    "fit",
    "predict",
    "tune",
]
