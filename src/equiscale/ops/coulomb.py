"""Coulomb energy of Gaussian charges in a non-periodic structure: the direct pair sum (O(N^2),
the reference) and a particle-mesh sum (O(N + M log M) for M mesh points), both differentiable
twice (forces, and force losses).

For charges ``q_i`` (e) at ``r_i`` (A), each a Gaussian cloud, the energy of one structure is

    E = k_e sum_{i<j} q_i q_j K_sigma(r_ij),     K_s(r) = erf(r / (sqrt(2) s)) / r,
    k_e = 14.3996 eV A / e^2,                     K_s(0) = sqrt(2 / pi) / s,

finite at r -> 0 and 1/r beyond a few ``sigma``. (``K_s`` is the interaction of two Gaussian
clouds whose variances add to ``s^2``.)

**Mesh sum** (:func:`coulomb_energy_mesh`). Split the kernel at a smoothing width ``s >= sigma``:
``K_sigma = (K_sigma - K_s) + K_s``. The first part decays like ``erfc(r / (sqrt(2) s))`` and is
summed over the pairs closer than ``r_short = 4 sqrt(2) s`` (a neighbour list, O(N)); it is
identically 0 when ``s = sigma``. The smooth part is a convolution on a mesh of spacing ``h``:
each charge is spread as a Gaussian of standard deviation ``a``,

    rho_g = sum_i q_i g_a(x_g - r_i),            g_a(x) = exp(-|x|^2 / (2 a^2)) / ((2 pi)^(3/2) a^3),

and ``E_mesh = 1/2 h^6 sum_{g,g'} rho_g G_b(x_g - x_g') rho_g'`` with ``G_b = K_b`` sampled on the
mesh, ``2 a^2 + b^2 = s^2`` (``a = b = s / sqrt(3)``), so that the continuous version of this
double sum is ``1/2 sum_{i,j} q_i q_j K_s(r_ij)`` exactly. The convolution is a zero-padded FFT
(free space, no periodic images: padded size >= 2 M - 1 per axis); the ``i = j`` terms
``1/2 q_i^2 K_s(0)`` are removed. The mesh sum replaces integrals of Gaussians by sums on the
mesh, whose error falls like ``exp(-c a^2 / h^2)``, and cuts the Gaussians at 5 ``a``; ``s >= 2 h``
is required (tests state the error budget against the direct sum). The mesh is laid on each
structure's bounding box, so the energy is invariant under rotations and translations up to that
error, not exactly.

``counts[b]`` atoms of structure ``b`` follow those of structures ``< b``; both functions return
the energies ``[B]`` in eV.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from equiscale.ops.long_conv import next_fast_size
from equiscale.ops.neighbors import neighbor_list

__all__ = ["COULOMB_EV_A", "coulomb_energy", "coulomb_energy_mesh"]

_TRUNCATION = 5.0  # Gaussians of the spreading cut at this many standard deviations
_SHORT = 4.0  # erfc(4) = 1.5e-8: the short part is summed out to 4 sqrt(2) s
_MIN_RATIO = 2.0  # smallest smoothing / spacing (a / h = 1.15): a resolved mesh


COULOMB_EV_A = 14.399645478425668  # e^2 / (4 pi eps_0) in eV A


def _erf_over_r(r2: Tensor, scale: float) -> Tensor:
    """``erf(scale r) / r`` at ``r^2 = r2``, with its series below ``scale r = 1e-3`` (finite value
    and gradients at r = 0)."""
    small = r2 * scale**2 < 1e-6
    r = torch.where(small, torch.ones_like(r2), r2).sqrt()
    series = (2.0 * scale / math.sqrt(math.pi)) * (1.0 - scale**2 * r2 / 3.0)
    return torch.where(small, series, torch.erf(r * scale) / r)


def _coulomb_rows(qs: Tensor, ps: Tensor, start: int, stop: int, scale: float) -> Tensor:
    """0.5 sum_{i in [start, stop), j != i} q_i q_j erf(r_ij scale) / r_ij (without k_e)."""
    n = ps.shape[0]
    d = ps[start:stop, None, :] - ps[None, :, :]  # [b, n, 3]
    rows, cols = torch.arange(start, stop, device=ps.device), torch.arange(n, device=ps.device)
    self_pair = rows[:, None] == cols  # [b, n]
    r2 = (d * d).sum(-1)  # [b, n]
    # atoms on top of each other have a finite energy and zero force (the series of erf(s r) / r)
    kernel = _erf_over_r(r2, scale)
    kernel = torch.where(self_pair, torch.zeros_like(kernel), kernel)
    return 0.5 * (qs[start:stop, None] * qs[None, :] * kernel).sum()  # each pair met twice


def coulomb_energy(q: Tensor, pos: Tensor, counts: list[int], sigma: float, block: int = 1024) -> Tensor:
    """Per-structure energy ``[B]`` of Gaussian charges ``q [N]`` (e) at ``pos [N, 3]`` (A):
    k_e sum_{i<j} q_i q_j erf(r_ij / (sqrt(2) sigma)) / r_ij over pairs of one structure (atoms of
    structure b are the ``counts[b]`` rows after those of structures < b). Direct sum, O(N^2) time.

    Memory: each block of ``block`` rows runs under activation checkpointing when gradients are
    recorded, so autograd keeps only ``q`` and ``pos``, not the ``[block, n]`` pair tensors of every
    block (which would be O(N^2)); they are recomputed one block at a time in the backward pass:
    O(block N) for the energy and forces. With ``create_graph`` (a force loss), the recomputed
    blocks are part of the graph of the forces and memory is O(N^2) again."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    scale = 1.0 / (2.0**0.5 * sigma)
    record = torch.is_grad_enabled() and (q.requires_grad or pos.requires_grad)
    out = []
    for qs, ps in zip(q.split(counts), pos.split(counts)):
        n = ps.shape[0]
        e = qs.new_zeros(())
        for start in range(0, n, block):
            stop = min(start + block, n)
            if record:
                e = e + checkpoint(_coulomb_rows, qs, ps, start, stop, scale, use_reentrant=False)
            else:
                e = e + _coulomb_rows(qs, ps, start, stop, scale)
        out.append(COULOMB_EV_A * e)
    return torch.stack(out) if out else q.new_zeros(0)


def _mesh_kernel_fft(shape: tuple[int, ...], spacing: float, b: float, like: Tensor) -> Tensor:
    """rfftn of ``K_b`` on the circular padded mesh ``shape`` (distances wrapped)."""
    axes = []
    for n in shape:
        k = torch.arange(n, dtype=like.dtype, device=like.device)
        axes.append(torch.minimum(k, n - k) * spacing)
    r2 = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
    return torch.fft.rfftn(_erf_over_r(r2, 1.0 / (math.sqrt(2.0) * b)))


def _mesh_energy(qs: Tensor, ps: Tensor, spacing: float, a: float, b: float, max_points: int) -> Tensor:
    """``1/2 h^6 sum_{g,g'} rho_g K_b(x_g - x_g') rho_g'`` for one structure (without k_e)."""
    h = spacing
    p = math.ceil(_TRUNCATION * a / h)  # stencil half-width
    lo = ps.detach().min(0).values - (p + 1) * h  # mesh origin [3]
    span = ps.detach().max(0).values - lo
    size = [int(math.ceil(float(x) / h)) + p + 2 for x in span]  # mesh points per axis, M_d
    shape = tuple(next_fast_size(2 * m - 1) for m in size)
    if math.prod(shape) > max_points:
        raise ValueError(
            f"the padded mesh of a structure {[round(float(x), 1) for x in span]} A wide at spacing "
            f"{h} A has {math.prod(shape):,} points > max_points = {max_points:,}: raise spacing "
            "(and smoothing) or max_points, or split the structure"
        )
    base = torch.round((ps.detach() - lo) / h).long()  # nearest mesh point [n, 3]
    offs = torch.arange(-p, p + 1, device=ps.device)  # [S]
    idx = base[:, :, None] + offs  # [n, 3, S]
    x = lo[None, :, None] + idx.to(ps.dtype) * h  # mesh coordinates [n, 3, S]
    w = torch.exp(-((x - ps[:, :, None]) ** 2) / (2.0 * a * a)) / (math.sqrt(2.0 * math.pi) * a)
    weights = w[:, 0, :, None, None] * w[:, 1, None, :, None] * w[:, 2, None, None, :]  # [n, S, S, S]
    m0, m1, m2 = size
    flat = (idx[:, 0, :, None, None] * m1 + idx[:, 1, None, :, None]) * m2 + idx[:, 2, None, None, :]
    rho = qs.new_zeros(m0 * m1 * m2).index_add(
        0, flat.reshape(-1), (qs[:, None, None, None] * weights).reshape(-1)
    )
    kernel = _mesh_kernel_fft(shape, h, b, ps.detach())
    rho = rho.reshape(m0, m1, m2)
    pot = torch.fft.irfftn(torch.fft.rfftn(rho, s=shape) * kernel, s=shape)[:m0, :m1, :m2]
    return 0.5 * h**6 * (rho * pot).sum()


def coulomb_energy_mesh(
    q: Tensor,
    pos: Tensor,
    counts: list[int],
    sigma: float,
    *,
    spacing: float = 0.5,
    smoothing: float | None = None,
    max_points: int = 2**29,
) -> Tensor:
    """The energy of :func:`coulomb_energy` by the particle-mesh split of the module docstring.

    Args:
        q: charges ``[N]`` (e); pos: ``[N, 3]`` (A); counts: atoms per structure; sigma: charge width.
        spacing: mesh spacing ``h`` (A); memory and time grow like ``(extent / h)^3``.
        smoothing: split width ``s`` (A), ``>= max(sigma, 2 h)``; ``None``: that bound.
        max_points: largest padded mesh (points) of one structure; a larger one raises
            ``ValueError`` instead of allocating it (a structure spread over a wide box).
    Returns:
        ``[B]`` energies (eV), differentiable (twice) in ``q`` and ``pos``.
    """
    if not (isinstance(sigma, (int, float)) and sigma > 0):
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    if not (isinstance(spacing, (int, float)) and not isinstance(spacing, bool) and spacing > 0):
        raise ValueError(f"spacing must be a number > 0, got {spacing!r}")
    low = max(float(sigma), _MIN_RATIO * spacing)
    s = low if smoothing is None else float(smoothing)
    if not s >= low * (1 - 1e-12):
        raise ValueError(
            f"smoothing must be >= max(sigma, {_MIN_RATIO} x spacing) = {low:.4g} A, got {smoothing!r}"
        )
    if sum(counts) != pos.shape[0] or q.shape != pos.shape[:1]:
        raise ValueError(
            f"q [N] and pos [N, 3] must hold sum(counts) = {sum(counts)} atoms, got "
            f"{tuple(q.shape)} and {tuple(pos.shape)}"
        )
    if q.dtype != pos.dtype or q.device != pos.device:
        raise ValueError(
            f"q and pos must share dtype and device, got {q.dtype} on {q.device} and "
            f"{pos.dtype} on {pos.device}"
        )
    if not bool(torch.isfinite(pos).all()):
        raise ValueError("pos holds NaN or inf")
    a = b = s / math.sqrt(3.0)
    short = s > sigma * (1 + 1e-12)
    out = []
    for qs, ps in zip(q.split(counts), pos.split(counts)):
        if ps.shape[0] == 0:
            out.append(qs.new_zeros(()))
            continue
        e = (
            _mesh_energy(qs, ps, float(spacing), a, b, max_points)
            - 0.5 * math.sqrt(2.0 / math.pi) / s * (qs * qs).sum()
        )
        if short:
            nb = neighbor_list(ps.detach(), 4.0 * math.sqrt(2.0) * s)
            j, i = nb.edge_index
            d = ps[i] - ps[j]
            r2 = (d * d).sum(-1)
            kern = _erf_over_r(r2, 1.0 / (math.sqrt(2.0) * sigma)) - _erf_over_r(
                r2, 1.0 / (math.sqrt(2.0) * s)
            )
            e = e + 0.5 * (qs[i] * qs[j] * kern).sum()  # the list holds (i, j) and (j, i)
        out.append(COULOMB_EV_A * e)
    return torch.stack(out) if out else q.new_zeros(0)
