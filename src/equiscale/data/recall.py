"""Geometric associative recall: find the value paired with a query key, under random rotations.

One sample of length ``N`` (DESIGN.md's definition):

- a private codebook of ``V`` key points ``K_a`` and ``V`` value points ``W_a`` (``a = 0..V-1``),
  i.i.d. standard normal in R^3;
- ``P = (N - 1) // 2`` pairs ``(K_a, W_a)`` with ``a`` drawn uniformly (with replacement), written
  key, value, key, value, ...; then a query token equal to a key that occurs in the sequence;
  when ``N - 1`` is odd one padding token leads (a copy of the first key's point, type all zero);
- target: the value paired with the query key, ``W_a``;
- the whole sample (tokens, target, codebooks) is rotated by a Haar-random ``R`` (``rotate``) and
  shifted by ``b ~ N(0, translate_scale^2 I)`` (``translate``).

Tokens are points ``pos [N, 3]`` with a one-hot ``token_type [N, 3]`` (key, value, query). Metrics:
accuracy (the codebook value nearest to the prediction is the right one) and MSE.

Samples are generated from ``(seed, index)`` alone, so a data set of any size costs no memory and
is the same on every run and in every worker.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["RecallDataset", "make_recall_sample", "recall_accuracy", "recall_mse", "collate_recall"]

KEY, VALUE, QUERY = 0, 1, 2


def _rotation(gen: torch.Generator, dtype: torch.dtype) -> Tensor:
    a = torch.randn(3, 3, dtype=torch.float64, generator=gen)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))[None]
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q.to(dtype)


def make_recall_sample(
    length: int,
    vocab: int,
    *,
    rotate: bool = True,
    translate: bool = False,
    translate_scale: float = 10.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Tensor]:
    """One sample: ``pos [N, 3]``, ``token_type [N, 3]``, ``target [3]``, ``keys, values [V, 3]``,
    ``answer`` (index of the target in ``values``)."""
    if not isinstance(length, int) or isinstance(length, bool) or length < 3:
        raise ValueError(f"length must be an int >= 3 (one pair and a query), got {length!r}")
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype, got {dtype!r}")
    if vocab < 1:
        raise ValueError(f"vocab must be >= 1, got {vocab}")
    gen = generator
    keys = torch.randn(vocab, 3, dtype=torch.float64, generator=gen)
    values = torch.randn(vocab, 3, dtype=torch.float64, generator=gen)
    pairs = (length - 1) // 2
    idx = torch.randint(vocab, (pairs,), generator=gen)
    query = idx[torch.randint(pairs, (1,), generator=gen)].item()
    pos = torch.stack([keys[idx], values[idx]], dim=1).reshape(2 * pairs, 3)  # k, v, k, v, ...
    ttype = torch.zeros(2 * pairs, 3, dtype=torch.float64)
    ttype[0::2, KEY] = 1.0
    ttype[1::2, VALUE] = 1.0
    pos = torch.cat([pos, keys[query][None]])
    q_type = torch.zeros(1, 3, dtype=torch.float64)
    q_type[0, QUERY] = 1.0
    ttype = torch.cat([ttype, q_type])
    if pos.shape[0] < length:  # one leading padding token
        pos = torch.cat([pos[:1], pos])
        ttype = torch.cat([torch.zeros(1, 3, dtype=torch.float64), ttype])
    target = values[query].clone()
    if rotate:
        R = _rotation(gen if gen is not None else torch.default_generator, torch.float64)
        pos, target, keys, values = pos @ R.T, target @ R.T, keys @ R.T, values @ R.T
    if translate:
        b = translate_scale * torch.randn(3, dtype=torch.float64, generator=gen)
        pos, target, keys, values = pos + b, target + b, keys + b, values + b
    return {
        "pos": pos.to(dtype),
        "token_type": ttype.to(dtype),
        "target": target.to(dtype),
        "keys": keys.to(dtype),
        "values": values.to(dtype),
        "answer": torch.tensor(query, dtype=torch.long),
    }


class RecallDataset(Dataset):
    """``size`` samples of :func:`make_recall_sample`; sample ``i`` is generated from ``(seed, i)``."""

    def __init__(
        self,
        size: int,
        length: int,
        vocab: int,
        *,
        rotate: bool = True,
        translate: bool = False,
        translate_scale: float = 10.0,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        if length < 3 or vocab < 1:
            raise ValueError(f"need length >= 3 and vocab >= 1, got length={length}, vocab={vocab}")
        self.size, self.length, self.vocab = size, length, vocab
        self.rotate, self.translate, self.translate_scale = rotate, translate, translate_scale
        self.seed, self.dtype = seed, dtype

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        if not 0 <= i < self.size:
            raise IndexError(f"index {i} out of range for {self.size} samples")
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        return make_recall_sample(
            self.length,
            self.vocab,
            rotate=self.rotate,
            translate=self.translate,
            translate_scale=self.translate_scale,
            generator=gen,
            dtype=self.dtype,
        )


def collate_recall(samples: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Stack samples of equal length into a batch."""
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


def recall_accuracy(pred: Tensor, batch: dict[str, Tensor]) -> Tensor:
    """Fraction of samples whose nearest codebook value (``values [B, V, 3]``) is the answer."""
    dist = (pred[:, None, :] - batch["values"]).pow(2).sum(-1)  # [B, V]
    return (dist.argmin(-1) == batch["answer"]).to(pred.dtype).mean()


def recall_mse(pred: Tensor, batch: dict[str, Tensor]) -> Tensor:
    """Mean squared error per coordinate."""
    return torch.mean((pred - batch["target"]) ** 2)
