"""Equivariance testing utilities, for our tests and for users' own modules.

A *type* says how a tensor transforms under a rotation/reflection ``R`` (det +-1), a translation
``t`` and a permutation of nodes:

===================  ========================  ==============================================
type                 shape                     transformation
===================  ========================  ==============================================
``"scalar"``         any                       unchanged
``"pseudoscalar"``   any                       multiplied by det R
``"vector"``         ``[..., 3]``              ``x @ R.T``
``"pseudovector"``   ``[..., 3]``              ``det(R) * x @ R.T``
``"position"``       ``[..., 3]``              ``x @ R.T + t``
``("sh", L)``        ``[..., (L+1)^2, C]``     ``D(R) x``, degree l with parity (-1)^l (like Y_l)
``("pseudo_sh", L)`` ``[..., (L+1)^2, C]``     ``det(R) D(R) x``
``"index"``          integer node indices      remapped under a permutation, else unchanged
===================  ========================  ==============================================

``D(R)`` is the block-diagonal real Wigner matrix of e3nn (``Irrep.D_from_matrix``), so for e3nn's
spherical harmonics ``Y(x @ R.T) = Y(x) @ D(R).T``.

Example::

    >>> import torch, e3nn.o3 as o3
    >>> fn = lambda x: o3.spherical_harmonics([0, 1, 2], x, normalize=True)[..., None]
    >>> errs = equivariance_error(fn, [torch.randn(10, 3)], ["vector"], [("sh", 2)], reflection=True)
    >>> max(errs.values()) < 1e-12
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from e3nn import o3

TypeSpec = Any  # str or (str, int)

__all__ = [
    "random_rotation",
    "wigner_D",
    "transform",
    "equivariance_error",
    "assert_equivariant",
]

_TOL = {torch.float64: 1e-9, torch.float32: 1e-4}


def random_rotation(
    dtype: torch.dtype = torch.float64,
    generator: torch.Generator | None = None,
    reflection: bool = False,
) -> torch.Tensor:
    """A Haar-random rotation matrix ``[3, 3]`` (det +1), or an improper one (det -1).

    Built in float64 from the QR decomposition of a Gaussian matrix, then cast to ``dtype``.
    """
    a = torch.randn(3, 3, dtype=torch.float64, generator=generator)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    if reflection:
        q = -q
    return q.to(dtype)


def wigner_D(lmax: int, R: torch.Tensor, parity: int = 1) -> torch.Tensor:
    """Block-diagonal real Wigner matrix ``[(L+1)^2, (L+1)^2]`` of ``R`` ([3, 3], det +-1).

    Defined by ``Y_l(R x) = D_l(R) Y_l(x)`` for e3nn's real spherical harmonics, and solved from it
    by least squares on random points in float64 (accurate to ~1e-14; e3nn's own
    ``D_from_matrix`` goes through Euler angles and float32 constants and is only ~1e-7 accurate).
    With ``parity=1`` degree ``l`` gets the sign ``det(R)^l`` (transforms like ``Y_l``), with
    ``parity=-1`` the sign ``det(R)^(l+1)`` (pseudo-tensors).
    """
    if lmax < 0:
        raise ValueError(f"lmax must be >= 0, got {lmax}")
    if R.shape != (3, 3):
        raise ValueError(f"R must have shape (3, 3), got {tuple(R.shape)}")
    R64 = R.to(torch.float64)
    det = _det(R64)
    proper = det * R64
    gen = torch.Generator().manual_seed(12345)
    points = torch.randn(4 * (2 * lmax + 1) + 16, 3, dtype=torch.float64, generator=gen)
    blocks = []
    for l in range(lmax + 1):
        y = o3.spherical_harmonics(l, points, normalize=True)  # [P, 2l+1]
        y_rot = o3.spherical_harmonics(l, points @ proper.T, normalize=True)
        d = torch.linalg.lstsq(y, y_rot).solution.T  # y_rot = y @ D.T
        sign = det ** l if parity == 1 else det ** (l + 1)
        blocks.append(sign * d)
    return torch.block_diag(*blocks).to(R.dtype)


def _det(R: torch.Tensor) -> float:
    return 1.0 if torch.det(R.to(torch.float64)) > 0 else -1.0


def transform(
    x: torch.Tensor,
    kind: TypeSpec,
    R: torch.Tensor | None = None,
    t: torch.Tensor | None = None,
    perm: torch.Tensor | None = None,
    node_dim: int | None = None,
) -> torch.Tensor:
    """Apply rotation ``R``, translation ``t`` and node permutation ``perm`` to ``x`` of type ``kind``.

    ``perm[k]`` is the old index of new node ``k``; ``node_dim`` is the axis of ``x`` that indexes
    nodes (``None``: not permuted).
    """
    name, lmax = (kind, None) if isinstance(kind, str) else (kind[0], int(kind[1]))
    if name not in {
        "scalar", "pseudoscalar", "vector", "pseudovector", "position", "sh", "pseudo_sh", "index"
    }:
        raise ValueError(f"unknown type {kind!r}")
    if perm is not None and node_dim is not None:
        x = x.index_select(node_dim, perm.to(x.device))
    if name == "index" and perm is not None:
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(len(perm), device=perm.device)
        x = inverse.to(x.device)[x]
    if R is not None:
        R = R.to(dtype=x.dtype, device=x.device)
        det = _det(R)
        if name == "pseudoscalar":
            x = det * x
        elif name in ("vector", "position", "pseudovector"):
            x = x @ R.T
            if name == "pseudovector":
                x = det * x
        elif name in ("sh", "pseudo_sh"):
            D = wigner_D(lmax, R, parity=1 if name == "sh" else -1)
            x = torch.einsum("ij,...jc->...ic", D, x)
    if t is not None and name == "position":
        x = x + t.to(dtype=x.dtype, device=x.device)
    return x


def _as_tuple(y: Any) -> tuple:
    return tuple(y) if isinstance(y, (tuple, list)) else (y,)


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = b.abs().max().item() if b.numel() else 0.0
    diff = (a - b).abs().max().item() if b.numel() else 0.0
    return diff / max(scale, 1e-30)


def equivariance_error(
    fn: Callable[..., Any],
    inputs: Sequence[torch.Tensor],
    in_types: Sequence[TypeSpec],
    out_types: Sequence[TypeSpec],
    *,
    rotation: bool = True,
    reflection: bool = False,
    translation: bool = False,
    permutation: bool = False,
    node_dims: Sequence[int | None] | None = None,
    out_node_dims: Sequence[int | None] | None = None,
    trials: int = 3,
    seed: int = 0,
    dtype: torch.dtype | None = torch.float64,
) -> dict[str, float]:
    """Largest relative error ``|f(g x) - g f(x)| / |g f(x)|`` over ``trials`` random ``g``.

    Args:
        fn: called as ``fn(*inputs)``; returns a tensor or a tuple of tensors.
        inputs: tensors; floating ones are cast to ``dtype`` (float64 by default, ``None`` keeps them).
        in_types / out_types: one type per input / output (see the module docstring).
        rotation / reflection / translation / permutation: which checks to run; each is reported
            separately under that key.
        node_dims / out_node_dims: per input / output, the axis indexing nodes (``None``: not
            permuted); required for ``permutation``.
    Returns:
        ``{"rotation": err, "reflection": err, ...}`` for the checks that ran.
    """
    if len(in_types) != len(inputs):
        raise ValueError(f"in_types has {len(in_types)} entries for {len(inputs)} inputs")
    if permutation and (node_dims is None or out_node_dims is None):
        raise ValueError("permutation=True needs node_dims and out_node_dims")
    gen = torch.Generator().manual_seed(seed)
    xs = [x.to(dtype) if (dtype is not None and x.is_floating_point()) else x for x in inputs]
    base = _as_tuple(fn(*xs))
    _check_finite(base, "fn(*inputs)")
    if len(base) != len(out_types):
        raise ValueError(f"out_types has {len(out_types)} entries for {len(base)} outputs")
    checks = [name for name, on in (("rotation", rotation), ("reflection", reflection),
                                    ("translation", translation), ("permutation", permutation)) if on]
    errors: dict[str, float] = {}
    for check in checks:
        worst = 0.0
        for _ in range(trials):
            R = t = perm = None
            if check in ("rotation", "reflection"):
                R = random_rotation(torch.float64, gen, reflection=check == "reflection")
            elif check == "translation":
                t = 10.0 * torch.randn(3, dtype=torch.float64, generator=gen)
            if check == "permutation":
                sizes = {x.shape[d] for x, d in zip(xs, node_dims) if d is not None}
                if len(sizes) != 1:
                    raise ValueError(f"inputs disagree on the number of nodes: {sorted(sizes)}")
                perm = torch.randperm(sizes.pop(), generator=gen)
            nd = node_dims if check == "permutation" else [None] * len(xs)
            moved = [transform(x, k, R, t, perm, d) for x, k, d in zip(xs, in_types, nd)]
            out_moved = _as_tuple(fn(*moved))
            _check_finite(out_moved, f"fn after the {check}")
            ond = out_node_dims if check == "permutation" else [None] * len(base)
            for y, y_moved, k, d in zip(base, out_moved, out_types, ond):
                expected = transform(y, k, R, t, perm, d)
                worst = max(worst, _rel_err(y_moved, expected))
        errors[check] = worst
    return errors


def _check_finite(outputs: tuple, where: str) -> None:
    """A NaN or inf output is a failure, never an error of 0 (NaN compares false to any bound)."""
    for k, y in enumerate(outputs):
        if isinstance(y, torch.Tensor) and y.is_floating_point() and not torch.isfinite(y).all():
            raise AssertionError(f"output {k} of {where} is not finite "
                                 f"({int((~torch.isfinite(y)).sum())} non-finite values)")


def assert_equivariant(*args: Any, tol: float | None = None, **kwargs: Any) -> dict[str, float]:
    """``equivariance_error`` and assert every error is below ``tol`` (1e-9 in float64)."""
    errors = equivariance_error(*args, **kwargs)
    dtype = kwargs.get("dtype", torch.float64) or torch.float64
    tol = _TOL.get(dtype, 1e-4) if tol is None else tol
    bad = {k: v for k, v in errors.items() if not v < tol}
    assert not bad, f"equivariance errors above {tol:g}: {bad}"
    return errors
