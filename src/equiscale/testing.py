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

Two measures of (non-)equivariance:

- :func:`equivariance_error` / :func:`assert_equivariant`: the *largest* relative error over a few
  group elements, for checking that a model is exactly equivariant (errors near round-off).
- :func:`relative_equivariance_error`: the *mean* relative equivariance error of Kim et al.
  ("Regularizing Towards Soft Equivariance Under Mixed Symmetries", ICML 2023, after the
  ``rel_err`` of Finzi et al.'s EMLP), for comparing models that are only approximately
  equivariant, reported per symmetry (rotation, reflection, translation, permutation):

      E_g [ ||f(g x) - g f(x)|| / (||f(g x)|| + ||g f(x)||) ],

  which lies in [0, 1] (triangle inequality) and is 0 exactly when ``f(g x) = g f(x)``.

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
    "SYMMETRIES",
    "random_rotation",
    "wigner_D",
    "transform",
    "equivariance_error",
    "assert_equivariant",
    "relative_error",
    "group_error",
    "relative_equivariance_error",
]

#: The symmetries :func:`relative_equivariance_error` can sample, in its reporting order.
SYMMETRIES = ("rotation", "reflection", "translation", "permutation")

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
        sign = det**l if parity == 1 else det ** (l + 1)
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
        "scalar",
        "pseudoscalar",
        "vector",
        "pseudovector",
        "position",
        "sh",
        "pseudo_sh",
        "index",
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
    checks = [
        name
        for name, on in (
            ("rotation", rotation),
            ("reflection", reflection),
            ("translation", translation),
            ("permutation", permutation),
        )
        if on
    ]
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
            raise AssertionError(
                f"output {k} of {where} is not finite ({int((~torch.isfinite(y)).sum())} non-finite values)"
            )


def assert_equivariant(*args: Any, tol: float | None = None, **kwargs: Any) -> dict[str, float]:
    """``equivariance_error`` and assert every error is below ``tol`` (1e-9 in float64)."""
    errors = equivariance_error(*args, **kwargs)
    dtype = kwargs.get("dtype", torch.float64) or torch.float64
    tol = _TOL.get(dtype, 1e-4) if tol is None else tol
    bad = {k: v for k, v in errors.items() if not v < tol}
    assert not bad, f"equivariance errors above {tol:g}: {bad}"
    return errors


# ----------------------------------------------------------------------------- relative error


def relative_error(
    a: torch.Tensor | Sequence[torch.Tensor],
    b: torch.Tensor | Sequence[torch.Tensor],
    batch_dim: int | None = None,
) -> torch.Tensor:
    """``||a - b|| / (||a|| + ||b||)`` with Frobenius norms over all entries (of all tensors).

    With ``batch_dim`` the ratio is taken per sample (the norms run over the other axes) and a
    tensor ``[B]`` is returned, else a scalar tensor. In [0, 1]; 0 when ``a == b`` (also when both
    are zero: 0 / 0 is read as 0). Computed in float64.
    """
    a_list = list(a) if isinstance(a, (list, tuple)) else [a]
    b_list = list(b) if isinstance(b, (list, tuple)) else [b]
    if len(a_list) != len(b_list):
        raise ValueError(f"a and b must hold as many tensors, got {len(a_list)} and {len(b_list)}")

    def sq(x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        if batch_dim is None:
            return x.pow(2).sum()
        return x.movedim(batch_dim, 0).reshape(x.shape[batch_dim], -1).pow(2).sum(-1)

    for x, y in zip(a_list, b_list):
        if x.shape != y.shape:
            raise ValueError(f"a and b must have equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    diff = sum(sq(x - y) for x, y in zip(a_list, b_list)).sqrt()
    norm = sum(sq(x) for x in a_list).sqrt() + sum(sq(y) for y in b_list).sqrt()
    # 0 / 0 -> 0; NaN or inf anywhere stays non-finite (never silently 0)
    return torch.where(norm == 0, torch.zeros_like(diff), diff / norm)


def _prepare(inputs: Any, in_types: Any, node_dims: Any):
    """Inputs as (keys, tensors, types, node dims, rebuild): a sequence of tensors or a dict (whose
    untyped entries pass through unchanged)."""
    if isinstance(inputs, dict):
        if not isinstance(in_types, dict):
            raise TypeError("in_types must be a dict (key -> type) when inputs is a dict")
        unknown = sorted(set(in_types) - set(inputs))
        if unknown:
            raise ValueError(f"in_types names keys {unknown} that inputs does not hold")
        keys = list(inputs)
        types = [in_types.get(k, "scalar") for k in keys]
        if isinstance(node_dims, dict):
            nds = [node_dims.get(k) for k in keys]
        else:
            nds = [node_dims if k in in_types else None for k in keys]

        def rebuild(xs: list) -> Any:
            return [dict(zip(keys, xs))]

        return keys, [inputs[k] for k in keys], types, nds, rebuild
    xs = list(inputs)
    if isinstance(in_types, dict) or len(in_types) != len(xs):
        raise ValueError(f"in_types must list one type per input ({len(xs)} inputs)")
    nds = list(node_dims) if node_dims is not None else [None] * len(xs)
    if len(nds) != len(xs):
        raise ValueError(f"node_dims has {len(nds)} entries for {len(xs)} inputs")
    return None, xs, list(in_types), nds, lambda ys: ys


def group_error(
    fn: Callable[..., Any],
    inputs: Sequence[torch.Tensor] | dict[str, torch.Tensor],
    in_types: Sequence[TypeSpec] | dict[str, TypeSpec],
    out_types: Sequence[TypeSpec],
    *,
    R: torch.Tensor | None = None,
    t: torch.Tensor | None = None,
    perm: torch.Tensor | None = None,
    node_dims: Sequence[int | None] | dict[str, int] | int | None = None,
    out_node_dims: Sequence[int | None] | None = None,
    batch_dim: int | None = None,
) -> torch.Tensor:
    """Relative equivariance error of ``fn`` for one given group element ``g = (R, t, perm)``:
    ``||f(g x) - g f(x)|| / (||f(g x)|| + ||g f(x)||)`` (:func:`relative_error`).

    ``inputs`` is a sequence of tensors (``fn(*inputs)``) or a dict (``fn(inputs)``, e.g. our
    models' batches; ``in_types`` then maps keys to types and other keys pass unchanged).
    ``node_dims`` / ``out_node_dims``: the node axis of each input / output (a dict or one int for
    dict inputs), needed when ``perm`` is given. ``batch_dim``: per-sample errors ``[B]``.
    Returns a float64 tensor (scalar, or ``[B]``).
    """
    keys, xs, types, nds, rebuild = _prepare(inputs, in_types, node_dims)
    if perm is not None and all(d is None for d in nds):
        raise ValueError("perm was given but node_dims names no node axis")
    base = _as_tuple(fn(*rebuild(xs)))
    if len(base) != len(out_types):
        raise ValueError(f"out_types has {len(out_types)} entries for {len(base)} outputs")
    ond = list(out_node_dims) if out_node_dims is not None else [None] * len(base)
    if perm is not None and all(d is None for d in ond):
        raise ValueError("perm was given but out_node_dims names no node axis")
    moved = [transform(x, k, R, t, perm, d) for x, k, d in zip(xs, types, nds)]
    out_moved = _as_tuple(fn(*rebuild(moved)))
    expected = [transform(y, k, R, t, perm, d) for y, k, d in zip(base, out_types, ond)]
    err = relative_error(list(out_moved), expected, batch_dim)
    if not torch.isfinite(err).all():
        raise AssertionError("fn returned non-finite values: the relative error is not defined")
    return err


def relative_equivariance_error(
    fn: Callable[..., Any],
    inputs: Sequence[torch.Tensor] | dict[str, torch.Tensor],
    in_types: Sequence[TypeSpec] | dict[str, TypeSpec],
    out_types: Sequence[TypeSpec],
    *,
    symmetries: Sequence[str] = SYMMETRIES,
    node_dims: Sequence[int | None] | dict[str, int] | int | None = None,
    out_node_dims: Sequence[int | None] | None = None,
    batch_dim: int | None = None,
    trials: int = 4,
    translation_scale: float = 1.0,
    seed: int = 0,
    dtype: torch.dtype | None = torch.float64,
) -> dict[str, float]:
    """Relative equivariance error (Kim et al. 2023) of ``fn``, one number per symmetry.

    For each symmetry ``s`` in ``symmetries`` the mean over ``trials`` random group elements ``g``
    (and over samples, with ``batch_dim``) of

        err_s = ||f(g x) - g f(x)|| / (||f(g x)|| + ||g f(x)||)

    with ``g`` a Haar-random rotation (``"rotation"``, det +1), a Haar-random improper rotation
    (``"reflection"``, det -1), a translation ``t ~ N(0, translation_scale^2 I)``
    (``"translation"``; it moves only ``"position"`` types) or a uniformly random permutation of
    the nodes (``"permutation"``). Each error lies in [0, 1] and is 0 for an exactly equivariant
    ``fn`` (round-off: ~1e-16 in float64).

    Args:
        fn, inputs, in_types, out_types, node_dims, out_node_dims, batch_dim: as in
            :func:`group_error` (``inputs`` a sequence of tensors, or a dict batch).
        symmetries: any of ``"rotation"``, ``"reflection"``, ``"translation"``, ``"permutation"``.
        trials: group elements per symmetry.
        seed: seeds the group elements (the same elements for every model given the same seed).
        dtype: floating inputs are cast to it (float64 by default; ``None`` keeps them).
    Returns:
        ``{symmetry: mean relative error}`` in the order given.
    """
    unknown = [s for s in symmetries if s not in SYMMETRIES]
    if unknown or not symmetries:
        raise ValueError(f"symmetries must name some of {SYMMETRIES}, got {list(symmetries)}")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be an int >= 1, got {trials!r}")
    if not translation_scale > 0:
        raise ValueError(f"translation_scale must be > 0, got {translation_scale!r}")
    if isinstance(inputs, dict):
        xs = {
            k: v.to(dtype) if (dtype is not None and v.is_floating_point()) else v for k, v in inputs.items()
        }
    else:
        xs = [x.to(dtype) if (dtype is not None and x.is_floating_point()) else x for x in inputs]
    _, tensors, _, nds, _ = _prepare(xs, in_types, node_dims)
    gen = torch.Generator().manual_seed(seed)
    errors: dict[str, float] = {}
    for sym in symmetries:
        total = 0.0
        for _ in range(trials):
            R = t = perm = None
            if sym in ("rotation", "reflection"):
                R = random_rotation(torch.float64, gen, reflection=sym == "reflection")
            elif sym == "translation":
                t = translation_scale * torch.randn(3, dtype=torch.float64, generator=gen)
            else:
                sizes = {x.shape[d] for x, d in zip(tensors, nds) if d is not None}
                if len(sizes) != 1:
                    raise ValueError(
                        "permutation needs node_dims naming inputs with one number "
                        f"of nodes, got sizes {sorted(sizes)}"
                    )
                perm = torch.randperm(sizes.pop(), generator=gen)
            err = group_error(
                fn,
                xs,
                in_types,
                out_types,
                R=R,
                t=t,
                perm=perm,
                node_dims=node_dims if sym == "permutation" else None,
                out_node_dims=out_node_dims if sym == "permutation" else None,
                batch_dim=batch_dim,
            )
            total += float(err.detach().mean())
        errors[sym] = total / trials
    return errors
