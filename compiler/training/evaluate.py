"""Accuracy of a model on a dataset split: loss, top-1, top-5, confusion matrix.

``evaluate`` runs the model in eval mode without gradients over ``x`` in
batches, on one process or sharded across the ranks of a process group (each
rank takes every world-size-th image; the sums are all-reduced, so every rank
gets the totals of the whole split). ``recalibrate_bn`` re-estimates batch-norm
running statistics: the statistics are reset, then one pass over training
images in train mode, without gradients, with ``momentum=None`` (a cumulative
average over the pass rather than an exponential one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Result:
    loss: float
    top1: float
    top5: float
    count: int
    confusion: torch.Tensor  # classes x classes, rows: true label, columns: prediction
    top_k: int  # 5, or the number of classes when fewer


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    classes: int,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    rank: int = 0,
    world: int = 1,
) -> Result:
    was_training = model.training
    model.eval()
    top_k = min(5, classes)
    sums = torch.zeros(4, dtype=torch.float64)  # loss, top-1, top-k, count
    confusion = torch.zeros(classes, classes, dtype=torch.long)
    index = torch.arange(rank, len(y), world)
    with torch.no_grad():
        for start in range(0, len(index), batch_size):
            part = index[start : start + batch_size]
            target = y[part].to(device)
            logits = model(prepare(x[part]).to(device)).float()
            best = logits.topk(top_k, 1).indices
            sums += torch.tensor(
                [
                    F.cross_entropy(logits, target, reduction="sum").item(),
                    (best[:, 0] == target).sum().item(),
                    (best == target[:, None]).any(1).sum().item(),
                    len(part),
                ],
                dtype=torch.float64,
            )
            confusion += torch.bincount(
                (target * classes + best[:, 0]).cpu(), minlength=classes * classes
            ).view(classes, classes)
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(sums)
        dist.all_reduce(confusion)
    model.train(was_training)
    loss, top1, topk, count = sums.tolist()
    count = max(count, 1)
    return Result(loss / count, top1 / count, topk / count, int(count), confusion, top_k)


def recalibrate_bn(
    model: nn.Module,
    x: torch.Tensor,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> int:
    """Reset every batch norm's running statistics and re-estimate them from ``x``;
    returns how many batch norms there were (0: nothing done)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    was_training = model.training
    model.train()
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            model(prepare(x[start : start + batch_size]).to(device))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.train(was_training)
    return len(norms)
