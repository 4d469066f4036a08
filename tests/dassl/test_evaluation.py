"""Classification evaluator (numbers vs scikit-learn, the printed block parsers grep) and compute_accuracy."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, f1_score
from yacs.config import CfgNode as CN

from dassl.evaluation import EVALUATOR_REGISTRY, Classification, EvaluatorBase, build_evaluator
from dassl.metrics import compute_accuracy

LAB2CNAME = {0: "cat", 1: "dog", 2: "owl", 3: "eel", 4: "ant"}

# ground truth uses classes 0..3; predictions never say 3 and once say 4 (a class absent from the ground truth)
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 3, 3, 3]
Y_PRED = [0, 0, 1, 1, 1, 2, 4, 0, 2, 0]


def eval_cfg(
    tmp_path=None, per_class: bool = False, cmat: bool = False, evaluator: str = "Classification"
) -> CN:
    cfg = CN()
    cfg.OUTPUT_DIR = str(tmp_path) if tmp_path is not None else "./output"
    cfg.VERBOSE = True
    cfg.TEST = CN()
    cfg.TEST.EVALUATOR = evaluator
    cfg.TEST.PER_CLASS_RESULT = per_class
    cfg.TEST.COMPUTE_CMAT = cmat
    return cfg


def one_hot_logits(pred: list[int], n_cls: int = 5) -> torch.Tensor:
    logits = torch.randn(len(pred), n_cls) * 0.1
    logits[torch.arange(len(pred)), torch.tensor(pred)] = 5.0
    return logits  # (batch, n_cls)


def feed(evaluator: Classification) -> None:
    """The hand-made example in two batches, so accumulation across batches is exercised."""
    torch.manual_seed(0)
    logits = one_hot_logits(Y_PRED)
    labels = torch.tensor(Y_TRUE)
    evaluator.process(logits[:6], labels[:6])
    evaluator.process(logits[6:], labels[6:])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
def test_numbers_match_sklearn_and_hand_computation(capsys):
    evaluator = Classification(eval_cfg(), lab2cname=LAB2CNAME)
    feed(evaluator)
    results = evaluator.evaluate()

    assert isinstance(results, OrderedDict)
    assert list(results) == ["accuracy", "error_rate", "macro_f1"]
    assert results["accuracy"] == pytest.approx(50.0)
    assert results["error_rate"] == pytest.approx(50.0)
    # per-class F1 over the ground-truth classes only: 4/7, 4/5, 1/2 and 0 (class 3 is never predicted);
    # class 4, predicted once but absent from the ground truth, does not count
    expected_f1 = 100.0 * (4 / 7 + 4 / 5 + 1 / 2 + 0) / 4
    assert results["macro_f1"] == pytest.approx(expected_f1, rel=1e-12)
    sklearn_f1 = 100.0 * f1_score(Y_TRUE, Y_PRED, average="macro", labels=np.unique(Y_TRUE))
    assert results["macro_f1"] == pytest.approx(sklearn_f1, rel=1e-12)

    out = capsys.readouterr().out
    assert (
        "=> result\n* total: 10\n* correct: 5\n* accuracy: 50.0%\n* error: 50.0%\n* macro_f1: 46.8%\n" in out
    )


def test_printed_block_uses_thousands_separators(capsys):
    evaluator = Classification(eval_cfg())
    labels = torch.arange(1000) % 7
    pred = labels.clone()
    pred[812:] = (pred[812:] + 1) % 7  # 812 correct
    evaluator.process(one_hot_logits(pred.tolist(), n_cls=7), labels)
    results = evaluator.evaluate()
    assert results["accuracy"] == pytest.approx(81.2)
    out = capsys.readouterr().out
    assert "* total: 1,000\n* correct: 812\n* accuracy: 81.2%\n* error: 18.8%\n" in out


def test_reset_forgets_previous_batches():
    evaluator = Classification(eval_cfg())
    evaluator.process(one_hot_logits([1, 1]), torch.tensor([0, 0]))
    evaluator.reset()
    evaluator.process(one_hot_logits([2, 3]), torch.tensor([2, 3]))
    assert evaluator.evaluate()["accuracy"] == 100.0


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
def test_per_class_results(capsys):
    evaluator = Classification(eval_cfg(per_class=True), lab2cname=LAB2CNAME)
    feed(evaluator)
    results = evaluator.evaluate()
    assert list(results) == ["accuracy", "error_rate", "macro_f1", "perclass_accuracy"]
    # class accuracies 2/3, 2/2, 1/2, 0/3
    assert results["perclass_accuracy"] == pytest.approx(100.0 * (2 / 3 + 1 + 1 / 2 + 0) / 4)
    out = capsys.readouterr().out
    assert "=> per-class result\n" in out
    assert "* class: 0 (cat)\ttotal: 3\tcorrect: 2\tacc: 66.7%\n" in out
    assert "* class: 1 (dog)\ttotal: 2\tcorrect: 2\tacc: 100.0%\n" in out
    assert "* class: 3 (eel)\ttotal: 3\tcorrect: 0\tacc: 0.0%\n" in out
    assert "(ant)" not in out
    assert "* average: 54.2%\n" in out


def test_per_class_results_need_class_names():
    with pytest.raises(ValueError, match="lab2cname"):
        Classification(eval_cfg(per_class=True))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
def test_confusion_matrix_is_saved_under_output_dir(tmp_path, capsys):
    evaluator = Classification(eval_cfg(tmp_path, cmat=True))
    feed(evaluator)
    evaluator.evaluate()
    path = tmp_path / "cmat.pt"
    assert path.is_file()
    assert f"Confusion matrix is saved to {path}" in capsys.readouterr().out
    cmat = torch.load(path, weights_only=True)
    expected = confusion_matrix(Y_TRUE, Y_PRED, normalize="true")
    np.testing.assert_allclose(cmat.numpy(), expected)
    assert cmat.shape == (5, 5)
    np.testing.assert_allclose(cmat[0].numpy(), [2 / 3, 1 / 3, 0, 0, 0])


def test_registry_lookup_by_name(capsys):
    assert "Classification" in EVALUATOR_REGISTRY
    assert EVALUATOR_REGISTRY.get("Classification") is Classification
    evaluator = build_evaluator(eval_cfg(per_class=True), lab2cname=LAB2CNAME)
    assert type(evaluator) is Classification
    assert evaluator._lab2cname is LAB2CNAME
    assert "Loading evaluator: Classification" in capsys.readouterr().out
    with pytest.raises(ValueError, match="Classification"):
        build_evaluator(eval_cfg(evaluator="Clasification"))


def test_base_class_is_abstract():
    base = EvaluatorBase(eval_cfg())
    for call in (base.reset, lambda: base.process(torch.zeros(1, 2), torch.zeros(1)), base.evaluate):
        with pytest.raises(NotImplementedError):
            call()


def test_compute_accuracy_top1_top5():
    # each row ranks the classes 0..5 by the given scores; target ranks: 1st, 2nd, 5th, 6th
    logits = torch.tensor(
        [
            [9.0, 1.0, 2.0, 3.0, 4.0, 5.0],  # target 0 ranked 1st
            [1.0, 9.0, 8.0, 3.0, 4.0, 5.0],  # target 2 ranked 2nd
            [6.0, 5.0, 4.0, 3.0, 2.0, 1.0],  # target 4 ranked 5th
            [6.0, 5.0, 4.0, 3.0, 2.0, 1.0],  # target 5 ranked 6th
        ]
    )
    target = torch.tensor([0, 2, 4, 5])
    top1, top2, top5 = compute_accuracy(logits, target, topk=(1, 2, 5))
    assert top1.shape == (1,)  # Dassl returns shape-(1,) tensors; .item() works as CoOp uses it
    assert top1.item() == pytest.approx(25.0)
    assert top2.item() == pytest.approx(50.0)
    assert top5.item() == pytest.approx(75.0)
    # a tuple output (logits, features) counts by its first element
    (acc,) = compute_accuracy((logits, torch.zeros(4, 3)), target)
    assert acc.item() == pytest.approx(25.0)
