"""Metrics used inside training steps (Dassl.pytorch's ``dassl.metrics``)."""

from .accuracy import compute_accuracy

__all__ = ["compute_accuracy"]
