"""deeprnn: deep recurrent neural networks for sequence data."""

from deeprnn.cells import GRUCell, LSTMCell, RNNCell
from deeprnn.config import RNNConfig
from deeprnn.errors import DeepRNNError, InputError, InputTypeError
from deeprnn.heads import Head
from deeprnn.model import SequenceModel
from deeprnn.parallel import Parallel
from deeprnn.stack import DeepRNN

__version__ = "0.1.0"

__all__ = [
    "DeepRNN",
    "DeepRNNError",
    "GRUCell",
    "Head",
    "InputError",
    "InputTypeError",
    "LSTMCell",
    "Parallel",
    "RNNCell",
    "RNNConfig",
    "SequenceModel",
]
