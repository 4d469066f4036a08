"""Evaluators (Dassl.pytorch's ``dassl.evaluation``): importing the package registers ``Classification``."""

from .build import EVALUATOR_REGISTRY, build_evaluator
from .evaluator import Classification, EvaluatorBase

__all__ = ["EVALUATOR_REGISTRY", "Classification", "EvaluatorBase", "build_evaluator"]
