"""Canonicalisation: put a point set in one canonical frame, run any backbone, map back.

After "Revisiting Transformation Invariant Geometric Deep Learning: Are Initial Representations
All You Need?" (TinvNN, 2021): invariant, distance-preserving initial coordinates are enough to make
any network invariant. Where frame averaging (:mod:`equiscale.models.frame_averaging`) averages a
backbone over the 8 sign frames of PCA, canonicalisation picks *one* frame per input, so one
backbone call; the price is fragility where that choice is not unique.

The canonical frame of a point set ``X [N, 3]`` with centroid ``t`` is an orthogonal ``F [3, 3]``
(columns = axes) such that ``(X R^T + b - (t R^T + b)) F' = (X - t) F`` for every orthogonal ``R``
and translation ``b``, i.e. ``F' = R F``. Two constructions (``method``):

- ``"pca"``: ``F`` = eigenvectors of the covariance ``C = (X - t)^T (X - t)``, largest eigenvalue
  first.
- ``"distance"`` (TinvNN's modified MDS): classical multidimensional scaling of the squared
  distance matrix, ``G = -1/2 J D^2 J`` (``J`` centres), ``Y = V_3 Lambda_3^(1/2)`` from its top
  three eigenpairs; ``Y`` sees only distances, so it is invariant up to the signs of its columns.
  The frame is the orthogonal Procrustes fit ``F = argmin ||(X - t) F - Y||`` (SVD of
  ``(X - t)^T Y``). On generic inputs both methods give the same frame (``G`` and ``C`` share their
  nonzero eigenvalues, ``Y = (X - t) U``); they differ in what they compute from (coordinates or
  distances) and in round-off.

Each axis' sign is fixed by the third moment: ``sum_n <x_n - t, f_k>^3 > 0``. With
``group="se3"`` only the first two axes are fixed so, the third is ``f_1 x f_2`` (det F = +1):
the result is invariant to rotations but not to reflections; ``"e3"`` fixes all three (det F = +-1)
and is invariant to both.

The wrapper, for a batch with positions ``X``, vectors ``V`` and scalars ``q``:

    Phi(X, V, q) = f((X - t) F, V F, q) F^T + t        (``output="position"``)

(``output="vector"``: ``f(...) F^T``; ``"invariant"``: ``f(...)`` unchanged), exactly E(3)-
(or SE(3)-) equivariant on generic inputs, and permutation-equivariant when ``f`` is (the frame
is a function of the point set, not of the order).

Degenerate inputs (what holds there; tested in ``tests/test_canonicalize.py``):

- Always: the output is finite (also for coincident points, where ``C = 0``), the frame is
  orthogonal, computed in float64 and *detached* (``eigh``'s gradient has ``1/(lambda_i -
  lambda_j)`` terms that are infinite at repeated eigenvalues; parameter gradients stay exact),
  and :func:`canonical_frames` flags the sample ``degenerate`` when two eigenvalues are within
  ``gap_tol`` (relative) of each other or an axis' third moment is too small to fix its sign.
- Collinear and planar inputs: the axes that the data does not determine carry zero coordinates,
  so the canonical *positions* ``(X - t) F`` are still invariant (to round-off, ~1e-15), and a
  backbone that reads positions only stays invariant. Velocities, and outputs mapped back with
  ``F^T``, are not: their components along the undetermined axes depend on an arbitrary choice.
- Repeated nonzero eigenvalues (a regular tetrahedron, an isotropic set) or a vanishing third
  moment (a centrosymmetric set): the frame is an arbitrary (but deterministic) pick among the
  valid ones, and invariance is lost. Frame averaging has the same limits with 8 calls.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

Batch = dict[str, Tensor]

__all__ = ["Canonicalize", "canonical_frames"]

POSITION_KEYS = ("pos", "loc")
VECTOR_KEYS = ("vel", "vec")
OUTPUTS = ("position", "vector", "invariant")


def _fix_signs(coords: Tensor, axes: Tensor, sign_tol: float) -> tuple[Tensor, Tensor]:
    """Flip each column of ``axes [B, 3, 3]`` so the third moment of ``coords @ axes`` is >= 0.

    Returns the axes and ``ambiguous [B, 3]``: ``|third moment| <= sign_tol (sum |x_n - t|^2)^(3/2)``
    (relative to the whole set's spread, so an axis with no extent, as a planar set's normal, is
    ambiguous).
    """
    proj = coords @ axes  # [B, N, 3]
    m3 = proj.pow(3).sum(1)  # [B, 3]
    scale = proj.pow(2).sum((1, 2)).pow(1.5)[:, None]  # [B, 1]
    sign = torch.where(m3 < 0, -1.0, 1.0).to(axes.dtype)
    ambiguous = m3.abs() <= sign_tol * scale.clamp_min(1e-300)
    return axes * sign[:, None, :], ambiguous


def canonical_frames(
    pos: Tensor, method: str = "pca", group: str = "e3", gap_tol: float = 1e-6, sign_tol: float = 1e-6
) -> tuple[Tensor, Tensor, Tensor]:
    """Canonical frames of point sets ``pos [B, N, 3]`` (see the module docstring).

    Returns:
        ``F [B, 3, 3]`` (orthogonal; columns are the axes, largest spread first), centroids
        ``t [B, 1, 3]`` and ``degenerate [B]`` (bool). Float64, detached.
    """
    if method not in ("pca", "distance"):
        raise ValueError(f"method must be 'pca' or 'distance', got {method!r}")
    if group not in ("e3", "se3"):
        raise ValueError(f"group must be 'e3' or 'se3', got {group!r}")
    if not isinstance(pos, Tensor) or pos.dim() != 3 or pos.shape[-1] != 3 or pos.shape[1] < 1:
        shape = tuple(pos.shape) if isinstance(pos, Tensor) else type(pos).__name__
        raise ValueError(f"pos must be a tensor [B, N, 3] with N >= 1, got {shape}")
    x = pos.detach().to(torch.float64)
    t = x.mean(1, keepdim=True)
    xc = x - t  # [B, N, 3]
    evals = torch.linalg.eigvalsh(xc.transpose(1, 2) @ xc).flip(-1)  # [B, 3], descending
    if method == "pca":
        _, u = torch.linalg.eigh(xc.transpose(1, 2) @ xc)
        axes = u.flip(-1)  # largest first
    else:
        d2 = (xc[:, :, None] - xc[:, None, :]).pow(2).sum(-1)  # [B, N, N]; distances only
        n = x.shape[1]
        j = torch.eye(n, dtype=x.dtype, device=x.device) - 1.0 / n
        gram = -0.5 * j @ d2 @ j  # [B, N, N], = xc xc^T
        lam, v = torch.linalg.eigh(gram)
        k = min(3, n)
        lam, v = lam.flip(-1)[:, :k], v.flip(-1)[:, :, :k]
        y = v * lam.clamp_min(0).sqrt()[:, None, :]  # [B, N, k]
        if k < 3:
            y = torch.cat([y, y.new_zeros(y.shape[0], n, 3 - k)], dim=-1)
        y = y * torch.where(y.pow(3).sum(1) < 0, -1.0, 1.0)[:, None, :]  # signs by third moment
        a, _, bt = torch.linalg.svd(xc.transpose(1, 2) @ y)  # Procrustes: xc F ~ y
        axes = a @ bt
    axes, ambiguous = _fix_signs(xc, axes, sign_tol)
    if group == "se3":
        axes = torch.cat([axes[..., :2], torch.linalg.cross(axes[..., 0], axes[..., 1])[..., None]], dim=-1)
        ambiguous = ambiguous[:, :2]
    scale = evals[:, 0].abs().clamp_min(1e-300)
    gaps = (evals[:, :-1] - evals[:, 1:]).amin(-1)
    degenerate = (gaps <= gap_tol * scale) | ambiguous.any(-1)
    return axes, t, degenerate


class Canonicalize(nn.Module):
    """Run ``backbone`` on inputs in their canonical frame and map its output back.

    Args:
        backbone: a name in :data:`equiscale.registry.MODELS` (built with ``backbone_args``) or a
            module; called with the batch in canonical coordinates.
        backbone_args: constructor arguments when ``backbone`` is a name.
        method: ``"pca"`` or ``"distance"`` (MDS of the distance matrix).
        group: ``"e3"`` (rotations and reflections) or ``"se3"`` (rotations only).
        output: ``"position"`` (map back with ``F^T`` and ``+ t``), ``"vector"`` (``F^T``) or
            ``"invariant"`` (unchanged).
        gap_tol, sign_tol: thresholds of the ``degenerate`` flag (:func:`canonical_frames`).

    ``forward(batch)``: positions under ``pos`` or ``loc``, vectors under ``vel`` / ``vec`` ([B, N, 3]
    or [B, N, ..., 3]); other entries pass unchanged.
    """

    def __init__(
        self,
        backbone: str | nn.Module = "gnn",
        backbone_args: dict[str, Any] | None = None,
        *,
        method: str = "pca",
        group: str = "e3",
        output: str = "position",
        gap_tol: float = 1e-6,
        sign_tol: float = 1e-6,
    ) -> None:
        super().__init__()
        if method not in ("pca", "distance"):
            raise ValueError(f"method must be 'pca' or 'distance', got {method!r}")
        if group not in ("e3", "se3"):
            raise ValueError(f"group must be 'e3' or 'se3', got {group!r}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        if isinstance(backbone, nn.Module):
            if backbone_args:
                raise ValueError("backbone_args must be empty when backbone is a module")
            self.backbone = backbone
        elif isinstance(backbone, str):
            from equiscale import registry

            if backbone == "canonicalize":
                raise ValueError("backbone must not be canonicalize itself")
            self.backbone = registry.load(registry.MODELS, backbone, "model")(**(backbone_args or {}))
        else:
            raise TypeError(f"backbone must be a model name or an nn.Module, got {type(backbone).__name__}")
        self.method, self.group, self.output = method, group, output
        self.gap_tol, self.sign_tol = gap_tol, sign_tol

    def frames(self, pos: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(F [B, 3, 3], t [B, 1, 3], degenerate [B])`` in ``pos``'s dtype."""
        f, t, degenerate = canonical_frames(pos, self.method, self.group, self.gap_tol, self.sign_tol)
        return f.to(pos.dtype), t.to(pos.dtype), degenerate

    def forward(self, batch: Batch) -> Tensor:
        if not isinstance(batch, dict):
            raise TypeError(f"batch must be a dict of tensors, got {type(batch).__name__}")
        pos_key = next((k for k in POSITION_KEYS if k in batch), None)
        if pos_key is None:
            raise ValueError(f"batch must hold one of {POSITION_KEYS}, got keys {sorted(batch)}")
        pos = batch[pos_key]
        f, t, _ = self.frames(pos)
        new: Batch = {}
        for key, val in batch.items():
            if key == pos_key:
                new[key] = torch.einsum("bni,bij->bnj", val - t, f)  # (x - t) F
            elif key in VECTOR_KEYS:
                new[key] = torch.einsum("bn...i,bij->bn...j", val, f)
            else:
                new[key] = val
        out = self.backbone(new)
        if self.output == "invariant":
            return out
        back = torch.einsum("bn...j,bij->bn...i", out, f)  # o F^T
        if self.output == "vector":
            return back
        return back + t.reshape(t.shape[0], *([1] * (out.dim() - 2)), 3)
