"""What a training task hands the trainer: data splits, collation, loss and metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset

Batch = dict[str, torch.Tensor]

__all__ = ["TaskData", "Batch", "SymmetrySpec"]


@dataclass(frozen=True)
class SymmetrySpec:
    """How a task's model inputs and prediction transform, in :mod:`equiscale.testing` types.

    Attributes:
        inputs: batch key -> type (``"position"``, ``"vector"``, ``"scalar"``, ...); keys not
            listed (targets, indices) are passed to the model unchanged.
        output: the type of the model's prediction.
        node_dim: the axis of batch tensors and of the prediction that indexes nodes (permuted
            under ``permutation``); the batch axis is 0.
    """

    inputs: dict[str, Any]
    output: Any
    node_dim: int = 1


@dataclass
class TaskData:
    """A supervised task.

    Attributes:
        train, val, test: datasets yielding ``dict[str, Tensor]`` samples.
        collate: list of samples -> batch dict.
        loss: ``loss(pred, batch) -> scalar`` minimised in training.
        metrics: ``metrics(pred, batch) -> {name: scalar}``, batch means; logged as ``val/NAME`` and
            ``test/NAME`` (averaged over batches weighted by batch size).
        monitor: the metric whose validation value picks the best checkpoint (lower is better).
        published: reference numbers printed beside the test result (name -> value).
        batch_size_of: number of samples in a batch (for weighting metric means).
        describe: one line naming the task and its splits, for logs.
        plot: optional ``plot(model, task, out_dir) -> list[path]`` for task-specific figures.
        baselines: optional ``baselines() -> {name: test metric}`` of untrained reference methods,
            printed beside the trained model.
        symmetry: optional :class:`SymmetrySpec`; with it the trainer reports the model's relative
            equivariance error on the test split and can train with ``soft_equivariance``.
    """

    train: Dataset
    val: Dataset
    test: Dataset
    collate: Callable[[list[Any]], Batch]
    loss: Callable[[Any, Batch], torch.Tensor]
    metrics: Callable[[Any, Batch], dict[str, torch.Tensor]]
    monitor: str = "mse"
    published: dict[str, float] = field(default_factory=dict)
    batch_size_of: Callable[[Batch], int] | None = None
    describe: str = ""
    plot: Callable[..., list[str]] | None = None
    baselines: Callable[[], dict[str, float]] | None = None
    symmetry: SymmetrySpec | None = None
