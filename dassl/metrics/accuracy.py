"""Top-k accuracy of a batch, as CoOp and CoCoOp log it during training."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def compute_accuracy(
    output: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor, topk: Sequence[int] = (1,)
) -> list[torch.Tensor]:
    """Return the top-k accuracies in percent, one tensor of shape ``(1,)`` per k (Dassl's return type).

    Args:
        output: logits ``(batch, n_cls)``, or a tuple/list whose first element is the logits.
        target: labels ``(batch,)``.
        topk: the k values.
    """
    if isinstance(output, (tuple, list)):
        output = output[0]
    maxk = max(topk)
    batch_size = target.size(0)

    _, pred = output.topk(maxk, 1, True, True)  # (batch, maxk)
    pred = pred.t()  # (maxk, batch)
    correct = pred.eq(target.view(1, -1).expand_as(pred))

    res = []
    for k in topk:
        correct_k = correct[:k].reshape(-1).float().sum(0, keepdim=True)
        res.append(correct_k.mul_(100.0 / batch_size))
    return res
