"""Wigner-6j convolution: equivariant graph convolution with the tensor products on the nodes.

The map (per target node i, channel-wise, one multiplicity per degree):

    m_i^e = sum_(a, l, e) w_(a,l,e) sum_(j -> i) alpha_ij [h_j^a (x) Y^l(r_hat_ij)]^e,
    r_ij = r_i - r_j - s_ij                                (s_ij: periodic image shift of j)

with h: [N, (La+1)^2, C] node features, Y^l e3nn real spherical harmonics (``normalization``),
``[x (x) y]^e = sum C^(e M)_(a m1, l m2) x_m1 y_m2`` the unitary Clebsch-Gordan coupling
(``sqrt(2e+1) * e3nn.o3.wigner_3j(a, l, e)``), alpha_ij a per-edge scalar ([E] or [E, C]) and
w an optional weight per path (a, l, e) ([P] or [P, C]; all ones by default).

Two paths compute it:

- :func:`edge_reference`: the textbook convolution; one CG tensor product per edge and path.
- :func:`wigner6j_conv` / :class:`Wigner6jConv`: the E2Former factorisation. Solid harmonics
  R^l = |r|^l Y^l are polynomials, so with positions measured from a centre c (r = r_i - c,
  r' = r_j + s_ij - c),

      [h^a (x) R^l(r - r')]^e = sum_b sum_d W(b, d) [[h^a (x) R^b(r')]^d (x) R^(l-b)(r)]^e

  (W: :func:`equiscale.so3.wigner6j_conv_weights`, Wigner 6j recoupling). Hence

      m_i = sum_(b,d) W(b, d) [ S_i^(a,b) (x) R^(l-b)(r_i - c) ]^e,
      S_i^(a,b) = sum_j (alpha_ij / |r_ij|^l) h_j^a (x) R^b(r_j + s_ij - c):

  the inner product is per source node, the neighbour sum is scalar-weighted and the outer product
  is per target node. S is accumulated uncoupled (h_j^a R^b(r')^T, the same numbers as the coupled
  [.]^d for all d), as one batched matrix product over each node's padded neighbour list, and the
  d-sum is folded into one cached table per l, so no Clebsch-Gordan contraction runs per edge.
  The per-edge work is [E, K] x [E, (La+1)^2 C] with K = sum_l (l+1)^2 rows of solid harmonics.

Centring (``centring``):

- ``"target"`` (default): c = r_i. Only b = l survives (R^(l-b)(0) = 0), the expansion has no
  cancellation and K = sum_l (2l+1): exact and cheapest, the per-edge factor is then Y^l(r_ij)
  itself. float32 error against the float64 edge reference on the same inputs: < 1e-6 relative
  per atom, independent of the box size (tested up to 200 A, L <= 6: budget 1e-5); rounding the
  coordinates themselves to float32 at |r| ~ 200 A moves bonds by ~1e-5 relative.
- ``"structure"``: c = mean position of the target's structure (``batch``), the E2Former scheme.
  The |r|^l-sized terms of the expansion cancel down to |r_ij|^l, so float32 precision degrades
  like (structure radius / bond length)^l: per-atom relative errors of ~1e-5 (12 A box, L = 4),
  ~3e-3 (30 A, L = 4) and ~1 (30 A, L = 6). Use it in float64 or for small molecules only.
- ``"none"``: absolute coordinates, as in the public E2Former code (for comparisons only: far
  from the origin it loses all precision).

float64 agrees with :func:`edge_reference` to ~1e-12 relative with every centring.
Neighbour lists are padded to the largest in-degree:
memory is N * max_degree * (La+1)^2 * C.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import cast

import torch
from e3nn import o3
from torch import Tensor

from equiscale.ops._tables import TableModule
from equiscale.so3.solid_harmonics import solid_harmonics
from equiscale.so3.wigner6j import wigner6j_conv_weights

#: the highest filter degree: e3nn evaluates spherical harmonics up to l = 12
MAX_L_FILTER = 12

__all__ = ["Wigner6jConv", "wigner6j_conv", "edge_reference", "conv_paths"]

_CENTRINGS = ("structure", "target", "none")


def conv_paths(
    lmax_in: int, l_filter: Sequence[int], lmax_out: int, parity: str = "all"
) -> list[tuple[int, int, int]]:
    """Paths (a, l, e): a <= lmax_in, l in l_filter, |a-l| <= e <= min(a+l, lmax_out).

    ``parity="even"`` keeps a + l + e even only (E(3)-equivariant for features of parity (-1)^l);
    ``"all"`` keeps every SO(3) path.

    >>> conv_paths(1, [1], 1)
    [(0, 1, 1), (1, 1, 0), (1, 1, 1)]
    """
    if parity not in ("all", "even"):
        raise ValueError(f"parity must be 'all' or 'even', got {parity!r}")
    if l_filter and max(l_filter) > MAX_L_FILTER:
        raise ValueError(
            f"l_filter must be <= {MAX_L_FILTER} (e3nn's spherical harmonics stop there), got {max(l_filter)}"
        )
    paths = []
    for a in range(lmax_in + 1):
        for l in sorted(set(l_filter)):
            for e in range(abs(a - l), min(a + l, lmax_out) + 1):
                if parity == "even" and (a + l + e) % 2:
                    continue
                paths.append((a, l, e))
    return paths


@functools.cache
def _cg(l1: int, l2: int, l3: int) -> Tensor:
    """Unitary Clebsch-Gordan coupling [2l1+1, 2l2+1, 2l3+1] in e3nn's real basis (float64)."""
    return math.sqrt(2 * l3 + 1) * o3.wigner_3j(l1, l2, l3, dtype=torch.float64)


def _sl(l: int) -> slice:
    return slice(l * l, (l + 1) * (l + 1))


@functools.cache
def _outer_table(
    lmax_in: int,
    l: int,
    lmax_out: int,
    es: tuple[tuple[int, int], ...],
    bs: tuple[int, ...],
    normalization: str,
) -> Tensor:
    """T_l[A, B, G, M] (float64) with m^e = sum T S[A, B] R[G] for the paths (a, l, e) in ``es``.

    A: input (La+1)^2; B: the blocks b in ``bs`` concatenated; G: (l+1)^2 (degree c = l - b);
    M: output (lmax_out+1)^2. T = sum_d W(b, d) CG(a, b, d) CG(d, l - b, e).
    """
    b_offsets = {}
    off = 0
    for b in bs:
        b_offsets[b] = off
        off += 2 * b + 1
    table = torch.zeros((lmax_in + 1) ** 2, off, (l + 1) ** 2, (lmax_out + 1) ** 2, dtype=torch.float64)
    for a, e in es:
        for b, d, w in wigner6j_conv_weights(a, l, e, normalization):
            if b not in b_offsets:
                continue
            c = l - b
            block = w * torch.einsum("xyd,dzm->xyzm", _cg(a, b, d), _cg(d, c, e))
            sb = slice(b_offsets[b], b_offsets[b] + 2 * b + 1)
            table[_sl(a), sb, _sl(c), _sl(e)] += block
    return table


def _check_inputs(
    h: Tensor,
    pos: Tensor,
    edge_index: Tensor,
    alpha: Tensor,
    batch: Tensor | None,
    shifts: Tensor | None,
    lmax_in: int,
) -> tuple[int, int, int]:
    if h.dim() != 3 or h.shape[1] != (lmax_in + 1) ** 2:
        raise ValueError(
            f"h must have shape [N, (lmax_in+1)^2={(lmax_in + 1) ** 2}, C], got {tuple(h.shape)}"
        )
    n, _, c = h.shape
    if pos.shape != (n, 3):
        raise ValueError(f"pos must have shape [N={n}, 3], got {tuple(pos.shape)}")
    for name, t in (("h", h), ("pos", pos), ("alpha", alpha)):
        if not t.dtype.is_floating_point:
            raise TypeError(f"{name} must be a floating-point tensor (float32 or float64), got {t.dtype}")
    if pos.dtype != h.dtype or alpha.dtype != h.dtype:
        raise TypeError(
            f"h, pos and alpha must share one dtype, got h {h.dtype}, pos {pos.dtype}, alpha {alpha.dtype}"
        )
    for name, t in (("pos", pos), ("edge_index", edge_index), ("alpha", alpha)):
        if t.device != h.device:
            raise ValueError(f"{name} must be on the device of h ({h.device}), got {t.device}")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must have shape [2, E], got {tuple(edge_index.shape)}")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"edge_index must be an integer tensor, got {edge_index.dtype}")
    e = edge_index.shape[1]
    if e and not torch.compiler.is_compiling() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= n):
        raise ValueError(
            f"edge_index entries must lie in [0, N={n}), got "
            f"[{int(edge_index.min())}, {int(edge_index.max())}]"
        )
    if alpha.shape not in ((e,), (e, c)):
        raise ValueError(f"alpha must have shape [E={e}] or [E, C={c}], got {tuple(alpha.shape)}")
    if batch is not None and (batch.shape != (n,) or batch.dtype not in (torch.int64, torch.int32)):
        raise ValueError(
            f"batch must be an integer tensor of shape [N={n}], got {tuple(batch.shape)} {batch.dtype}"
        )
    if batch is not None and n and not torch.compiler.is_compiling() and int(batch.min()) < 0:
        raise ValueError(f"batch must hold structure indices >= 0, got a minimum of {int(batch.min())}")
    if shifts is not None and shifts.shape != (e, 3):
        raise ValueError(f"shifts must have shape [E={e}, 3], got {tuple(shifts.shape)}")
    return n, c, e


def _path_weight_tensor(path_weights: Tensor | None, n_paths: int, c: int, like: Tensor) -> Tensor:
    """Path weights as [P + 1, C] (last row zero, for invalid slots)."""
    if path_weights is None:
        w = like.new_ones(n_paths, c)
    elif path_weights.shape == (n_paths,):
        w = path_weights[:, None].expand(n_paths, c)
    elif path_weights.shape == (n_paths, c):
        w = path_weights
    else:
        raise ValueError(
            f"path_weights must have shape [P={n_paths}] or [P, C={c}], got {tuple(path_weights.shape)}"
        )
    return torch.cat([w.to(like.dtype), like.new_zeros(1, c)], dim=0)


def edge_reference(
    h: Tensor,
    pos: Tensor,
    edge_index: Tensor,
    alpha: Tensor,
    *,
    lmax_in: int,
    l_filter: Sequence[int],
    lmax_out: int,
    parity: str = "all",
    path_weights: Tensor | None = None,
    shifts: Tensor | None = None,
    normalization: str = "component",
) -> Tensor:
    """The convolution of the module docstring, one CG tensor product per edge and path.

    h: [N, (lmax_in+1)^2, C]; pos: [N, 3]; edge_index: [2, E] (row 0 source j, row 1 target i);
    alpha: [E] or [E, C]; path_weights: [P] or [P, C] for ``conv_paths(...)``; shifts: [E, 3]
    (source image at pos[j] + shifts). Returns [N, (lmax_out+1)^2, C]. Slow and obviously right.
    """
    n, c, e_count = _check_inputs(h, pos, edge_index, alpha, None, shifts, lmax_in)
    paths = conv_paths(lmax_in, l_filter, lmax_out, parity)
    w = _path_weight_tensor(path_weights, len(paths), c, h)
    src, dst = edge_index[0].long(), edge_index[1].long()
    vec = pos[dst] - pos[src]  # [E, 3]
    if shifts is not None:
        vec = vec - shifts
    lmax_f = max(l_filter)
    y = o3.spherical_harmonics(
        list(range(lmax_f + 1)), vec, normalize=True, normalization=normalization
    )  # [E, (Lf+1)^2]
    a_edge = alpha if alpha.dim() == 2 else alpha[:, None]  # [E, C] or [E, 1]
    h_src = h[src]  # [E, A, C]
    msg = h.new_zeros(e_count, (lmax_out + 1) ** 2, c)
    for p, (a, l, e) in enumerate(paths):
        cg = _cg(a, l, e).to(h.dtype)
        # [E, 2a+1, C] x [E, 2l+1] x [2a+1, 2l+1, 2e+1] -> [E, 2e+1, C]
        tp = torch.einsum("exc,ey,xym->emc", h_src[:, _sl(a)], y[:, _sl(l)], cg)
        msg[:, _sl(e)] = msg[:, _sl(e)] + w[p] * tp
    msg = msg * a_edge[:, None, :]
    return h.new_zeros(n, (lmax_out + 1) ** 2, c).index_add(0, dst, msg)


def _padded_neighbours(dst: Tensor, n: int) -> tuple[Tensor, Tensor, int]:
    """Edges grouped by target: (edge id per slot [N*K] with E for empty slots, order, K)."""
    e = dst.numel()
    order = torch.argsort(dst, stable=True)
    counts = torch.bincount(dst, minlength=n)
    k = cast(int, counts.max().clamp(min=1).item()) if e else 1  # slots per node, >= 1
    torch._check(k >= 1)  # lets torch.compile / torch.export use the data-dependent k as a size
    ptr = torch.cumsum(counts, 0) - counts
    sorted_dst = dst[order]
    rank = torch.arange(e, device=dst.device) - ptr[sorted_dst]
    slot_edge = torch.full((n * k,), e, dtype=torch.long, device=dst.device)
    slot_edge[sorted_dst * k + rank] = order
    return slot_edge, order, k


def wigner6j_conv(
    h: Tensor,
    pos: Tensor,
    edge_index: Tensor,
    alpha: Tensor,
    *,
    lmax_in: int,
    l_filter: Sequence[int],
    lmax_out: int,
    parity: str = "all",
    path_weights: Tensor | None = None,
    batch: Tensor | None = None,
    shifts: Tensor | None = None,
    normalization: str = "component",
    centring: str = "target",
    tables: dict[int, tuple[Tensor, Tensor]] | None = None,
) -> Tensor:
    """The convolution of the module docstring by the node-level (Wigner 6j) factorisation.

    Same arguments and result as :func:`edge_reference`, plus ``batch`` [N] (structure of each
    node, for ``centring="structure"``) and ``centring`` ("structure" | "target" | "none").
    ``tables`` (from :func:`outer_tables` with the same settings; :class:`Wigner6jConv` keeps them
    as buffers) skips the table look-up, so the function traces without Python-side work
    (``torch.compile(fullgraph=True)``, ``torch.export``).
    """
    if centring not in _CENTRINGS:
        raise ValueError(f"centring must be one of {_CENTRINGS}, got {centring!r}")
    if torch.is_autocast_enabled(h.device.type) and pos.is_floating_point():
        h, alpha = h.to(pos.dtype), alpha.to(pos.dtype)  # autocast: one dtype in; matmuls follow autocast
    n, c, e_count = _check_inputs(h, pos, edge_index, alpha, batch, shifts, lmax_in)
    l_values = sorted(set(l_filter))
    paths = conv_paths(lmax_in, l_values, lmax_out, parity)
    w = _path_weight_tensor(path_weights, len(paths), c, h)
    dtype = h.dtype
    n_out = (lmax_out + 1) ** 2
    if n == 0 or e_count == 0 or not paths:
        return h.new_zeros(n, n_out, c) + 0.0 * h.sum() + 0.0 * w.sum()
    src, dst = edge_index[0].long(), edge_index[1].long()

    # centres: per target node [N, 3]
    if centring == "structure":
        b = batch.long() if batch is not None else torch.zeros(n, dtype=torch.long, device=h.device)
        n_struct = int(b.max()) + 1
        sums = pos.new_zeros(n_struct, 3).index_add(0, b, pos.detach())
        counts = torch.bincount(b, minlength=n_struct).clamp(min=1).to(dtype)
        centre = (sums / counts[:, None])[b]  # detached: the result does not depend on it
    elif centring == "target":
        centre = pos
    else:
        centre = torch.zeros_like(pos)
    r_tgt = pos - centre  # [N, 3]
    r_src = pos[src] - centre[dst]  # [E, 3]
    vec = pos[dst] - pos[src]
    if shifts is not None:
        r_src = r_src + shifts
        vec = vec - shifts
    sq = (vec * vec).sum(-1)  # |r|, with zero derivatives of every order at r = 0 (no NaN)
    dist = torch.where(sq > 0, torch.where(sq > 0, sq, 1.0).sqrt(), 0.0)  # [E]
    # coincident atoms (|r_ij| = 0) have no direction: keep only l = 0 (Y^l(0) = 0 for l > 0, as e3nn)
    inv_dist = torch.where(dist > 0, 1 / torch.where(dist > 0, dist, torch.ones_like(dist)), 0.0)
    lmax_f = max(l_values)
    rs = solid_harmonics(lmax_f, r_src, normalization)  # [E, (Lf+1)^2]
    rt = solid_harmonics(lmax_f, r_tgt, normalization)  # [N, (Lf+1)^2]

    # per-edge scalar rows Omega[e, (l, B)] = R^B(r_src) / |r_ij|^l, b in bs(l)
    bs_of = {l: ((l,) if centring == "target" else tuple(range(l + 1))) for l in l_values}
    rows, row_slices = [], {}
    off = 0
    for l in l_values:
        cols = torch.cat([torch.arange(b * b, (b + 1) ** 2) for b in bs_of[l]])
        rows.append(rs[:, cols] * inv_dist[:, None] ** l)
        row_slices[l] = slice(off, off + cols.numel())
        off += cols.numel()
    omega = torch.cat(rows, dim=1)  # [E, K]

    # neighbour sums as batched matmuls over padded neighbour lists, one per filter degree l
    a_dim = (lmax_in + 1) ** 2
    slot_edge, _, kmax = _padded_neighbours(dst, n)  # [N*kmax]
    # empty slots gather an all-zero row (index n), never a real node: 0 * NaN would carry one
    # structure's NaN or inf into every other structure of the batch
    src_pad = torch.cat([src, src.new_full((1,), n)])[slot_edge]
    h_ext = torch.cat([h, h.new_zeros(1, *h.shape[1:])])  # [N+1, A, C]
    if alpha.dim() == 1:
        omega = omega * alpha[:, None]
        feat = h_ext[src_pad]  # [N*kmax, A, C]
    else:
        alpha_pad = torch.cat([alpha, alpha.new_zeros(1, c)])[slot_edge]  # [N*kmax, C]
        feat = h_ext[src_pad] * alpha_pad[:, None, :]  # [N*kmax, A, C]
    feat = feat.view(n, kmax, a_dim * c)  # [N, kmax, A*C]
    omega_pad = torch.cat([omega, omega.new_zeros(1, omega.shape[1])])[slot_edge]  # [N*kmax, K]
    omega_pad = omega_pad.view(n, kmax, -1).transpose(1, 2)  # [N, K, kmax]

    # outer products per target node: out[i, M, C] = sum_(A,B) u[i,A,B,M] S[i,B,A,C] w[a,l,e]
    out = h.new_zeros(n, n_out, c)
    for l in l_values:
        es = tuple((a, e) for (a, ll, e) in paths if ll == l)
        if not es:
            continue
        if tables is not None:
            table, path_index = tables[l]
        else:
            table = _outer_table(lmax_in, l, lmax_out, es, bs_of[l], normalization)
            path_index = _path_index_table(tuple(paths), l, lmax_in, lmax_out)
        table = table.to(device=h.device, dtype=dtype)  # [A, B, G, M]
        s_l = torch.bmm(omega_pad[:, row_slices[l]], feat).view(n, -1, a_dim, c)  # [N, B, A, C]
        u = torch.einsum("ig,abgm->iabm", rt[:, : (l + 1) ** 2], table)  # [N, A, B, M]
        q = torch.einsum("iabm,ibac->iamc", u, s_l)  # [N, A, M, C]
        w_l = w[path_index.to(h.device)]  # [A, M, C]
        out = out + (q * w_l).sum(1)
    return out


def outer_tables(
    lmax_in: int,
    l_filter: Sequence[int],
    lmax_out: int,
    parity: str = "all",
    normalization: str = "component",
    centring: str = "target",
) -> dict[int, tuple[Tensor, Tensor]]:
    """``{l: (T_l [A, B, G, M] float64, path index [A, M])}`` for :func:`wigner6j_conv`'s
    ``tables``: the filter degrees ``l`` that have paths, with the settings of the call."""
    l_values = sorted(set(l_filter))
    paths = conv_paths(lmax_in, l_values, lmax_out, parity)
    out = {}
    for l in l_values:
        es = tuple((a, e) for (a, ll, e) in paths if ll == l)
        if es:
            bs = (l,) if centring == "target" else tuple(range(l + 1))
            out[l] = (
                _outer_table(lmax_in, l, lmax_out, es, bs, normalization).clone(),
                _path_index_table(tuple(paths), l, lmax_in, lmax_out).clone(),
            )
    return out


@functools.cache
def _path_index_table(paths: tuple[tuple[int, int, int], ...], l: int, lmax_in: int, lmax_out: int) -> Tensor:
    """[A, M] index of path (deg(A), l, deg(M)) in ``paths``, or len(paths) (a zero row)."""
    pid = {p: k for k, p in enumerate(paths)}
    return torch.tensor(
        [
            [pid.get((_deg(a), l, _deg(m)), len(paths)) for m in range((lmax_out + 1) ** 2)]
            for a in range((lmax_in + 1) ** 2)
        ]
    )


def _deg(m: int) -> int:
    """Degree of the flat e3nn index m."""
    return math.isqrt(m)


class Wigner6jConv(TableModule):
    """Module form of :func:`wigner6j_conv` (no learnable parameters; weights come as inputs).

    ``forward(h, pos, edge_index, alpha, *, batch=None, shifts=None, path_weights=None)`` ->
    [N, (lmax_out+1)^2, C]. ``self.paths`` lists the (a, l, e) paths in the order of
    ``path_weights``; ``self.centring`` says which centring runs; ``method="edge"`` runs
    :func:`edge_reference` instead (same result, for comparisons), visible as ``self.method``.
    """

    def __init__(
        self,
        lmax_in: int,
        lmax_out: int,
        l_filter: int | Sequence[int],
        *,
        parity: str = "all",
        normalization: str = "component",
        centring: str = "target",
        method: str = "node",
    ) -> None:
        super().__init__()
        if method not in ("node", "edge"):
            raise ValueError(f"method must be 'node' or 'edge', got {method!r}")
        self.method = method
        for name, value in (("lmax_in", lmax_in), ("lmax_out", lmax_out)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        ls = list(range(l_filter + 1)) if isinstance(l_filter, int) else list(l_filter)
        if not ls or min(ls) < 0:
            raise ValueError(f"l_filter must be a non-negative int or non-empty list, got {l_filter!r}")
        if centring not in _CENTRINGS:
            raise ValueError(f"centring must be one of {_CENTRINGS}, got {centring!r}")
        self.lmax_in, self.lmax_out, self.l_filter = lmax_in, lmax_out, sorted(set(ls))
        self.parity, self.normalization, self.centring = parity, normalization, centring
        self.paths = conv_paths(lmax_in, self.l_filter, lmax_out, parity)
        # the exact tables as buffers (device moves, dtype kept): forward is pure tensor code
        self._table_degrees = []
        self._table_key = (parity, normalization, centring == "target")
        for l, (table, path_index) in outer_tables(
            lmax_in, self.l_filter, lmax_out, parity, normalization, centring
        ).items():
            self.register_table(f"table_{l}", table)
            self.register_buffer(f"path_index_{l}", path_index, persistent=False)
            self._table_degrees.append(l)

    def forward(
        self,
        h: Tensor,
        pos: Tensor,
        edge_index: Tensor,
        alpha: Tensor,
        *,
        batch: Tensor | None = None,
        shifts: Tensor | None = None,
        path_weights: Tensor | None = None,
    ) -> Tensor:
        if self.method == "edge":
            return self.reference(h, pos, edge_index, alpha, shifts=shifts, path_weights=path_weights)
        return wigner6j_conv(
            h,
            pos,
            edge_index,
            alpha,
            lmax_in=self.lmax_in,
            l_filter=self.l_filter,
            lmax_out=self.lmax_out,
            parity=self.parity,
            path_weights=path_weights,
            batch=batch,
            shifts=shifts,
            normalization=self.normalization,
            centring=self.centring,
            tables=self._tables(),
        )

    def _tables(self) -> dict[int, tuple[Tensor, Tensor]] | None:
        """The stored tables, or None (look-up per call) if settings changed since __init__."""
        if self._table_key != (self.parity, self.normalization, self.centring == "target"):
            return None
        return {
            l: (getattr(self, f"table_{l}"), getattr(self, f"path_index_{l}")) for l in self._table_degrees
        }

    def reference(
        self,
        h: Tensor,
        pos: Tensor,
        edge_index: Tensor,
        alpha: Tensor,
        *,
        batch: Tensor | None = None,
        shifts: Tensor | None = None,
        path_weights: Tensor | None = None,
    ) -> Tensor:
        """:func:`edge_reference` with this module's settings (``batch`` is not needed)."""
        return edge_reference(
            h,
            pos,
            edge_index,
            alpha,
            lmax_in=self.lmax_in,
            l_filter=self.l_filter,
            lmax_out=self.lmax_out,
            parity=self.parity,
            path_weights=path_weights,
            shifts=shifts,
            normalization=self.normalization,
        )

    def extra_repr(self) -> str:
        return (
            f"lmax_in={self.lmax_in}, lmax_out={self.lmax_out}, l_filter={self.l_filter}, "
            f"paths={len(self.paths)}, centring={self.centring!r}, method={self.method!r}"
        )
