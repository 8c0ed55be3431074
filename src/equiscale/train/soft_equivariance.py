"""Soft equivariance: a penalty on a model's equivariance error, per symmetry, added to the loss.

After Kim et al., "Regularizing Towards Soft Equivariance Under Mixed Symmetries" (ICML 2023): one
regulariser per symmetry type, each with its own strength, tuned during training, so a backbone
with no built-in symmetry is pushed towards the symmetries the data has and may keep what it
needs where a symmetry is only approximate. Their regulariser projects the weights of EMLP
layers onto the equivariant subspace; that needs a linear-layer architecture, so for any backbone
we use the sample-based form of the same quantity. For symmetry ``s`` and a batch ``x_1..x_B``,

    P_s = mean_b mean_entries ( f(g_b x_b) - g_b f(x_b) )^2,      g_b ~ G_s, one per sample,

(units of the task's MSE), with ``G_s`` Haar-random rotations (det +1), improper rotations
(det -1), translations ``t ~ N(0, translation_scale^2 I)`` or uniform node permutations; the
loss is ``L_task + sum_s lambda_s(t) P_s``. ``f(x_b)`` is the prediction the task loss already
used; each symmetry costs one more forward and backward pass.

Strength schedules (``schedule``), with ``s_s`` the configured strength and ``r(t) =
min(1, step / warmup_steps)`` a linear warm-up:

- ``"constant"``: ``lambda_s = s_s``.
- ``"warmup"``: ``lambda_s = s_s r(t)``.
- ``"auto"`` (default; our rule, not the paper's, whose exact update we do not reproduce):
  ``lambda_s = s_s r(t) min(Lbar / Pbar_s, max_ratio)`` with ``Lbar``, ``Pbar_s`` exponential
  moving averages (decay ``ema``) of the task loss and of ``P_s``. The penalty then weighs
  ``s_s`` times the task loss whatever the units of each symmetry's error (a translation error
  on raw coordinates can be 100x a rotation error), so one strength fits all symmetries and
  tasks; the cap ``max_ratio`` bounds the strength once the model is nearly equivariant.

Example (from a config: ``soft_equivariance: {rotation: 0.1, permutation: 0.1}``)::

    >>> from equiscale.train.task import SymmetrySpec
    >>> spec = SymmetrySpec({"loc": "position", "vel": "vector"}, "position", node_dim=1)
    >>> loss = SoftEquivarianceLoss(spec, {"rotation": 0.1, "permutation": 0.1})
    >>> sorted(loss.strengths)
    ['permutation', 'rotation']
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from equiscale.testing import SYMMETRIES
from equiscale.train.task import Batch, SymmetrySpec

__all__ = ["SoftEquivarianceLoss", "random_rotations", "act"]

SCHEDULES = ("constant", "warmup", "auto")
_SUPPORTED_TYPES = ("scalar", "pseudoscalar", "vector", "pseudovector", "position")
OPTION_KEYS = ("schedule", "warmup_steps", "ema", "max_ratio", "translation_scale")


def random_rotations(
    n: int,
    reflection: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``n`` Haar-random rotations ``[n, 3, 3]`` (det +1), or improper ones (det -1), built in
    float64 from the QR decomposition of Gaussian matrices."""
    a = torch.randn(n, 3, 3, dtype=torch.float64, generator=generator)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    flip = torch.linalg.det(q) < 0
    q[flip, :, 0] = -q[flip, :, 0]
    if reflection:
        q = -q
    return q.to(dtype=dtype, device=device)


def act(
    x: Tensor,
    kind: str,
    R: Tensor | None = None,
    t: Tensor | None = None,
    perm: Tensor | None = None,
    node_dim: int = 1,
) -> Tensor:
    """Per-sample group action on a batched tensor ``x [B, ...]`` of type ``kind``.

    ``R [B, 3, 3]`` acts as ``x_b R_b^T`` on vectors and positions (times ``det R_b`` on pseudo
    types), ``t [B, 3]`` moves positions, ``perm [B, N]`` (``perm[b, k]``: old index of new node
    ``k``) reorders axis ``node_dim``.
    """
    if kind not in _SUPPORTED_TYPES:
        raise ValueError(f"type {kind!r} is not supported here; use one of {_SUPPORTED_TYPES}")
    if perm is not None:
        shape = [1] * x.dim()
        shape[0], shape[node_dim] = perm.shape
        idx = perm.reshape(shape).expand(
            *[x.shape[d] if d != node_dim else perm.shape[1] for d in range(x.dim())]
        )
        x = torch.gather(x, node_dim, idx)
    if R is not None and kind != "scalar":
        R = R.to(x.dtype)
        det = torch.linalg.det(R).sign().reshape(-1, *([1] * (x.dim() - 1)))  # [B, 1, ...]
        if kind == "pseudoscalar":
            x = det * x
        else:
            flat = x.reshape(x.shape[0], -1, 3)  # [B, M, 3]
            x = torch.einsum("bmj,bij->bmi", flat, R).reshape(x.shape)  # x R^T
            if kind == "pseudovector":
                x = det * x
    if t is not None and kind == "position":
        x = x + t.to(x.dtype).reshape(x.shape[0], *([1] * (x.dim() - 2)), 3)
    return x


def _check_strengths(strengths: dict[str, Any]) -> dict[str, float]:
    if not isinstance(strengths, dict):
        raise TypeError(
            f"soft_equivariance must be a mapping symmetry -> strength, got {type(strengths).__name__}"
        )
    out: dict[str, float] = {}
    for name, value in strengths.items():
        if name not in SYMMETRIES:
            raise ValueError(
                f"soft_equivariance: unknown symmetry {name!r}; choose from "
                f"{SYMMETRIES} (options: {OPTION_KEYS})"
            )
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < 0
        ):
            raise ValueError(f"soft_equivariance.{name} must be a finite number >= 0, got {value!r}")
        out[name] = float(value)
    if not out:
        raise ValueError(f"soft_equivariance names no symmetry; give some of {SYMMETRIES}")
    return out


class SoftEquivarianceLoss(nn.Module):
    """The soft-equivariance penalty ``sum_s lambda_s(t) P_s`` (see the module docstring).

    Args:
        spec: how the task's inputs and prediction transform (:class:`SymmetrySpec`; types among
            scalar, pseudoscalar, vector, pseudovector, position).
        strengths: symmetry -> strength ``s_s`` (``"rotation"``, ``"reflection"``,
            ``"translation"``, ``"permutation"``).
        schedule: ``"auto"``, ``"warmup"`` or ``"constant"``.
        warmup_steps: optimiser steps of the linear warm-up (``"auto"``, ``"warmup"``).
        ema: decay of the moving averages of the task loss and the penalties (``"auto"``).
        max_ratio: cap on ``Lbar / Pbar_s`` (``"auto"``).
        translation_scale: standard deviation of the sampled translations.

    ``forward(model, batch, pred, task_loss, step)`` returns ``(penalty, logs)``: the weighted
    sum to add to the loss and ``{"equiv_<s>": P_s, "lambda_<s>": lambda_s}`` (detached).
    """

    def __init__(
        self,
        spec: SymmetrySpec,
        strengths: dict[str, Any],
        *,
        schedule: str = "auto",
        warmup_steps: int = 300,
        ema: float = 0.98,
        max_ratio: float = 10.0,
        translation_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if not isinstance(spec, SymmetrySpec):
            raise TypeError(f"spec must be a SymmetrySpec, got {type(spec).__name__}")
        for key, kind in [*spec.inputs.items(), ("output", spec.output)]:
            if kind not in _SUPPORTED_TYPES:
                raise ValueError(
                    f"spec type {kind!r} of {key!r} is not supported by the soft "
                    f"penalty; use one of {_SUPPORTED_TYPES}"
                )
        if schedule not in SCHEDULES:
            raise ValueError(f"soft_equivariance.schedule must be one of {SCHEDULES}, got {schedule!r}")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"soft_equivariance.warmup_steps must be an int >= 0, got {warmup_steps!r}")
        for name, value, ok in (
            ("ema", ema, lambda v: 0.0 <= v < 1.0),
            ("max_ratio", max_ratio, lambda v: v > 0),
            ("translation_scale", translation_scale, lambda v: v > 0),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
                raise ValueError(f"soft_equivariance.{name} out of range: {value!r}")
        self.spec = spec
        self.strengths = _check_strengths(strengths)
        self.schedule, self.warmup_steps = schedule, warmup_steps
        self.ema, self.max_ratio, self.translation_scale = ema, max_ratio, translation_scale
        self.averages: dict[str, float] = {}  # "task" and each symmetry: moving averages

    @classmethod
    def from_config(cls, spec: SymmetrySpec, options: dict[str, Any]) -> SoftEquivarianceLoss:
        """Build from a config mapping: symmetry strengths plus the options in ``OPTION_KEYS``."""
        if not isinstance(options, dict):
            raise TypeError(f"soft_equivariance must be a mapping, got {type(options).__name__}")
        kwargs = {k: options[k] for k in OPTION_KEYS if k in options}
        strengths = {k: v for k, v in options.items() if k not in OPTION_KEYS}
        return cls(spec, strengths, **kwargs)

    def sample(self, name: str, batch: Batch) -> dict[str, Tensor | None]:
        """One random element of symmetry ``name`` per sample of ``batch``."""
        key = next(iter(self.spec.inputs))
        x = batch[key]
        b = x.shape[0]
        g: dict[str, Tensor | None] = {"R": None, "t": None, "perm": None}
        if name in ("rotation", "reflection"):
            g["R"] = random_rotations(b, name == "reflection", x.dtype, x.device)
        elif name == "translation":
            g["t"] = self.translation_scale * torch.randn(b, 3, dtype=x.dtype, device=x.device)
        else:
            n = x.shape[self.spec.node_dim]
            g["perm"] = torch.rand(b, n, device=x.device).argsort(-1)
        return g

    def transform_batch(self, batch: Batch, g: dict[str, Tensor | None]) -> Batch:
        """The batch with every typed input moved by ``g`` (other entries unchanged)."""
        return {
            k: act(v, self.spec.inputs[k], **g, node_dim=self.spec.node_dim) if k in self.spec.inputs else v
            for k, v in batch.items()
        }

    def strength(self, name: str, step: int) -> float:
        """``lambda_s`` at optimiser step ``step`` (after this step's averages are updated)."""
        lam = self.strengths[name]
        if self.schedule == "constant":
            return lam
        ramp = 1.0 if self.warmup_steps == 0 else min(1.0, step / self.warmup_steps)
        if self.schedule == "warmup":
            return lam * ramp
        task, pen = self.averages.get("task", 0.0), self.averages.get(name, 0.0)
        ratio = self.max_ratio if pen <= task / self.max_ratio else task / pen
        return lam * ramp * ratio

    def _update(self, name: str, value: float) -> None:
        old = self.averages.get(name)
        self.averages[name] = value if old is None else self.ema * old + (1 - self.ema) * value

    def forward(
        self, model: Callable[[Batch], Tensor], batch: Batch, pred: Tensor, task_loss: Tensor, step: int
    ) -> tuple[Tensor, dict[str, float]]:
        total = pred.new_zeros(())
        logs: dict[str, float] = {}
        self._update("task", float(task_loss.detach()))
        for name in self.strengths:
            g = self.sample(name, batch)
            moved_pred = model(self.transform_batch(batch, g))
            expected = act(pred, self.spec.output, **g, node_dim=self.spec.node_dim)
            penalty = torch.mean((moved_pred - expected) ** 2)
            self._update(name, float(penalty.detach()))
            lam = self.strength(name, step)
            total = total + lam * penalty
            logs[f"equiv_{name}"], logs[f"lambda_{name}"] = float(penalty.detach()), lam
        return total, logs
