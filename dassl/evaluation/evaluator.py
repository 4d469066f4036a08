"""Evaluators: accumulate predictions batch by batch, then report (and print) the metrics.

``Classification`` prints Dassl.pytorch's ``=> result`` block verbatim, because existing log parsers
(``parse_test_res.py`` and ours) grep its ``* accuracy: X%`` line from ``log.txt``.
"""

from __future__ import annotations

import os
import os.path as osp
from collections import OrderedDict, defaultdict
from typing import Any

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, f1_score

from .build import EVALUATOR_REGISTRY

__all__ = ["Classification", "EvaluatorBase"]


class EvaluatorBase:
    """Interface every evaluator implements; the trainer calls ``reset``, ``process`` per batch, ``evaluate``."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def reset(self) -> None:
        raise NotImplementedError

    def process(self, mo: torch.Tensor, gt: torch.Tensor) -> None:
        raise NotImplementedError

    def evaluate(self) -> OrderedDict:
        raise NotImplementedError


@EVALUATOR_REGISTRY.register()
class Classification(EvaluatorBase):
    """Accuracy, error rate and macro-F1 of argmax predictions; optionally per-class accuracy and a confusion matrix.

    ``cfg.TEST.PER_CLASS_RESULT`` adds per-class lines (needs ``lab2cname``); ``cfg.TEST.COMPUTE_CMAT`` saves the
    row-normalised confusion matrix to ``<cfg.OUTPUT_DIR>/cmat.pt``.
    """

    def __init__(self, cfg: Any, lab2cname: dict[int, str] | None = None, **kwargs: Any) -> None:
        super().__init__(cfg)
        self._lab2cname = lab2cname
        self._correct = 0
        self._total = 0
        self._per_class_res: defaultdict[int, list[int]] | None = None
        self._y_true: list[int] = []
        self._y_pred: list[int] = []
        if cfg.TEST.PER_CLASS_RESULT:
            if lab2cname is None:
                raise ValueError(
                    "TEST.PER_CLASS_RESULT needs class names: pass lab2cname= to build_evaluator"
                )
            self._per_class_res = defaultdict(list)

    def reset(self) -> None:
        self._correct = 0
        self._total = 0
        self._y_true = []
        self._y_pred = []
        if self._per_class_res is not None:
            self._per_class_res = defaultdict(list)

    def process(self, mo: torch.Tensor, gt: torch.Tensor) -> None:
        """Accumulate one batch: ``mo`` logits ``(batch, n_cls)``, ``gt`` labels ``(batch,)``."""
        pred = mo.max(1)[1]
        matches = pred.eq(gt).float()
        self._correct += int(matches.sum().item())
        self._total += gt.shape[0]

        self._y_true.extend(gt.detach().cpu().numpy().tolist())
        self._y_pred.extend(pred.detach().cpu().numpy().tolist())

        if self._per_class_res is not None:
            for label, match in zip(gt.tolist(), matches.tolist()):
                self._per_class_res[label].append(int(match))

    def evaluate(self) -> OrderedDict:
        """Return ``accuracy``, ``error_rate``, ``macro_f1`` (all in %; accuracy first, the trainer returns it)."""
        results: OrderedDict[str, float] = OrderedDict()
        acc = 100.0 * self._correct / self._total
        err = 100.0 - acc
        # F1 averaged over the classes present in the ground truth, as Dassl does
        macro_f1 = 100.0 * f1_score(
            self._y_true, self._y_pred, average="macro", labels=np.unique(self._y_true)
        )

        results["accuracy"] = acc
        results["error_rate"] = err
        results["macro_f1"] = macro_f1

        print(
            "=> result\n"
            f"* total: {self._total:,}\n"
            f"* correct: {self._correct:,}\n"
            f"* accuracy: {acc:.1f}%\n"
            f"* error: {err:.1f}%\n"
            f"* macro_f1: {macro_f1:.1f}%"
        )

        if self._per_class_res is not None:
            assert self._lab2cname is not None
            print("=> per-class result")
            accs = []
            for label in sorted(self._per_class_res):
                classname = self._lab2cname[label]
                res = self._per_class_res[label]
                correct = sum(res)
                total = len(res)
                class_acc = 100.0 * correct / total
                accs.append(class_acc)
                print(
                    f"* class: {label} ({classname})\t"
                    f"total: {total:,}\t"
                    f"correct: {correct:,}\t"
                    f"acc: {class_acc:.1f}%"
                )
            mean_acc = float(np.mean(accs))
            print(f"* average: {mean_acc:.1f}%")
            results["perclass_accuracy"] = mean_acc

        if self.cfg.TEST.COMPUTE_CMAT:
            cmat = confusion_matrix(self._y_true, self._y_pred, normalize="true")
            os.makedirs(self.cfg.OUTPUT_DIR, exist_ok=True)
            save_path = osp.join(self.cfg.OUTPUT_DIR, "cmat.pt")
            # a tensor rather than Dassl's numpy array, so torch.load's default weights_only=True can read it
            torch.save(torch.from_numpy(cmat), save_path)
            print(f"Confusion matrix is saved to {save_path}")

        return results
