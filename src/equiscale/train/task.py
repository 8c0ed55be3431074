"""What a training task hands the trainer: data splits, collation, loss and metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset

Batch = dict[str, torch.Tensor]

__all__ = ["TaskData", "Batch"]


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
