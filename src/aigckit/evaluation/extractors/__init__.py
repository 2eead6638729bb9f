"""Feature extractors for the sample-quality metrics."""

from .evaluator import Evaluator, EvaluatorNet, load_or_train_evaluator
from .inception import INCEPTION_HELP, FIDInceptionV3, load_inception

__all__ = ["Evaluator", "EvaluatorNet", "FIDInceptionV3", "INCEPTION_HELP", "load_inception",
           "load_or_train_evaluator"]
