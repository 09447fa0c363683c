"""Data for deeprnn: text to ids, padded batches, forecasting windows, file loaders and
small bundled datasets."""

from deeprnn.data.batching import batches, pad_batch, validate_sequences
from deeprnn.data.datasets import Dataset, list_datasets, load_dataset
from deeprnn.data.loaders import load_csv, load_numpy, load_text_file, load_text_folder
from deeprnn.data.long_csv import LongSequences, load_long_csv
from deeprnn.data.series import SeriesScaler, make_windows, time_split
from deeprnn.data.text import Tokenizer, Vocabulary, pad_sequences

__all__ = [
    "Dataset",
    "LongSequences",
    "SeriesScaler",
    "Tokenizer",
    "Vocabulary",
    "batches",
    "list_datasets",
    "load_csv",
    "load_dataset",
    "load_long_csv",
    "load_numpy",
    "load_text_file",
    "load_text_folder",
    "make_windows",
    "pad_batch",
    "pad_sequences",
    "time_split",
    "validate_sequences",
]
