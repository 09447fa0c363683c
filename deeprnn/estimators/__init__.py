"""Task estimators with the scikit-learn interface: fit / predict / score, get_params,
clone, cross_val_score and GridSearchCV; save(path) / load(path) without pickle."""

from deeprnn.estimators.base import RNNEstimator
from deeprnn.estimators.classifiers import SequenceClassifier, TextClassifier
from deeprnn.estimators.ensemble import EnsembleClassifier, EnsembleRegressor
from deeprnn.estimators.forecaster import Forecaster
from deeprnn.estimators.language import CharLanguageModel
from deeprnn.estimators.regressors import SequenceRegressor
from deeprnn.estimators.tagger import SequenceTagger
from deeprnn.estimators.translator import Seq2SeqTranslator

__all__ = [
    "CharLanguageModel",
    "EnsembleClassifier",
    "EnsembleRegressor",
    "Forecaster",
    "RNNEstimator",
    "SequenceClassifier",
    "SequenceRegressor",
    "Seq2SeqTranslator",
    "SequenceTagger",
    "TextClassifier",
]
