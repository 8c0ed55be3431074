"""A trained model's relative equivariance error on a data split, per symmetry.

The number is :func:`equiscale.testing.relative_equivariance_error` (Kim et al. 2023),
``mean ||f(g x) - g f(x)|| / (||f(g x)|| + ||g f(x)||)`` over the split's samples and ``trials``
random group elements per batch, for each symmetry. The model is evaluated on a float64 copy of
itself (in eval mode, without gradients), so an exactly equivariant model reads ~1e-16 rather
than float32 round-off, and what remains is the learned function's own error.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from equiscale.testing import SYMMETRIES, relative_equivariance_error
from equiscale.train.task import Batch, SymmetrySpec

__all__ = ["equivariance_on_split"]


def equivariance_on_split(
    model: torch.nn.Module,
    dataset: Dataset,
    collate: Callable[[list], Batch],
    spec: SymmetrySpec,
    *,
    symmetries: Sequence[str] = SYMMETRIES,
    trials: int = 8,
    batch_size: int = 500,
    seed: int = 0,
    max_samples: int | None = None,
) -> dict[str, float]:
    """``{symmetry: relative equivariance error}`` of ``model`` on ``dataset`` (sample mean).

    Batch ``k`` uses the group elements of seed ``seed + k``, so models compared on one split see
    the same elements. ``max_samples`` keeps the first that many samples (``None``: all).
    """
    if not isinstance(spec, SymmetrySpec):
        raise TypeError(f"spec must be a SymmetrySpec, got {type(spec).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be an int >= 1, got {trials!r}")
    if max_samples is not None:
        if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
            raise ValueError(f"max_samples must be an int >= 1 or None, got {max_samples!r}")
        if max_samples < len(dataset):  # type: ignore[arg-type]
            dataset = Subset(dataset, range(max_samples))
    ref = copy.deepcopy(model).to("cpu", torch.float64).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    sums = dict.fromkeys(symmetries, 0.0)
    count = 0
    with torch.no_grad():
        for k, batch in enumerate(loader):
            inputs = {key: val.cpu() for key, val in batch.items()}
            n = next(iter(inputs.values())).shape[0]
            errs = relative_equivariance_error(
                ref,
                inputs,
                spec.inputs,
                [spec.output],
                symmetries=symmetries,
                node_dims=spec.node_dim,
                out_node_dims=[spec.node_dim],
                batch_dim=0,
                trials=trials,
                seed=seed + k,
                dtype=torch.float64,
            )
            for name, value in errs.items():
                sums[name] += value * n
            count += n
    if count == 0:
        raise ValueError("dataset is empty")
    return {name: total / count for name, total in sums.items()}
