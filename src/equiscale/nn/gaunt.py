"""Layers on the Gaunt tensor product: learnable weights sit outside the (weightless) product.

All features are ``[N, (L+1)^2, C]`` (e3nn real SH, channels last).

- :class:`DegreeLinear`: ``out[n, (l m), d] = sum_c x[n, (l m), c] W[l, c, d]`` (+ bias on l = 0):
  one weight matrix per degree, expanded to rows once and applied in one einsum. Equivariant
  because it acts on channels only and is shared by the 2l+1 rows of a degree.
- :class:`GauntSelfMix`: ``W_o ( (W_1 x) * (W_2 x) )``: the x_i * x_i feature interaction.
- :class:`GauntConv`: ``m_i = W_o sum_{j in N(i)} (W_in x_j) * (R(|r_ij|) Y(r_ij)) / avg_neighbors``,
  R per (degree of Y, channel) from a radial MLP on a Gaussian basis times a smooth envelope; by
  default summed on the sphere grid (transforms per node, not per edge).
- :class:`GauntManyBody`: MACE-style symmetric contraction
  ``B[n, (l m), c] = sum_{nu=1..nu_max} w[z_n, nu, l, c] (A^nu)[n, (l m), c]`` with the powers
  ``A^nu`` computed on one sphere grid (one transform in, one projection per power) and
  per-element weights ``w``.

Parity: the Gaunt product only has even (l1 + l2 + l3) paths, so these layers are E(3)-equivariant
(reflections included) but cannot produce pseudo-tensors (no cross product). ``odd_paths=True``
(``GauntSelfMix``, ``GauntConv``) adds the missing paths through :class:`equiscale.ops.CGOddPaths`
(dense Clebsch-Gordan, low L) with their own output weights; the layer is then SO(3)- but not
E(3)-equivariant (odd paths give pseudo-tensors that are added to tensors).
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from torch import Tensor, nn

from equiscale.nn.radial import radial_basis, smooth_envelope
from equiscale.ops._tables import TableModule
from equiscale.ops.gaunt import (
    CGOddPaths,
    GauntPowers,
    GauntTensorProduct,
    GridAnalysis,
    GridSynthesis,
)
from equiscale.so3.grid import sphere_grid_points
from equiscale.so3.layout import sh_degrees

__all__ = ["DegreeLinear", "GauntSelfMix", "GauntConv", "GauntManyBody"]


def _check_feature(x: Tensor, lmax: int, channels: int, name: str) -> None:
    if x.dim() < 2 or x.shape[-2] != (lmax + 1) ** 2 or x.shape[-1] != channels:
        raise ValueError(f"{name} must have shape [..., {(lmax + 1) ** 2}, {channels}], got {tuple(x.shape)}")


class DegreeLinear(nn.Module):
    """Per-degree channel mixing ``[..., (L+1)^2, C_in] -> [..., (L+1)^2, C_out]``; bias on l = 0."""

    degree: Tensor

    def __init__(self, lmax: int, channels_in: int, channels_out: int, bias: bool = True) -> None:
        super().__init__()
        if channels_in < 1 or channels_out < 1:
            raise ValueError(f"channels must be >= 1, got {channels_in}, {channels_out}")
        self.lmax, self.channels_in, self.channels_out = lmax, channels_in, channels_out
        self.weight = nn.Parameter(torch.randn(lmax + 1, channels_in, channels_out) / math.sqrt(channels_in))
        self.bias = nn.Parameter(torch.zeros(channels_out)) if bias else None
        self.register_buffer("degree", sh_degrees(lmax), persistent=False)  # [K]

    def forward(self, x: Tensor) -> Tensor:
        _check_feature(x, self.lmax, self.channels_in, "x")
        out = torch.einsum("...kc,kcd->...kd", x, self.weight[self.degree])  # [..., K, C_out]
        if self.bias is not None:
            out = torch.cat([out[..., :1, :] + self.bias, out[..., 1:, :]], dim=-2)
        return out


class GauntSelfMix(nn.Module):
    """``out = W_o ((W_1 x) * (W_2 x))`` (+ ``W_odd CGOddPaths(W_1 x, W_2 x)`` if ``odd_paths``).

    ``x [N, (L_in+1)^2, C] -> [N, (L_out+1)^2, C]``.
    """

    def __init__(
        self, lmax_in: int, lmax_out: int, channels: int, backend: str = "auto", odd_paths: bool = False
    ) -> None:
        super().__init__()
        self.lmax_in, self.lmax_out, self.channels = lmax_in, lmax_out, channels
        self.left = DegreeLinear(lmax_in, channels, channels, bias=False)
        self.right = DegreeLinear(lmax_in, channels, channels, bias=False)
        self.tp = GauntTensorProduct(lmax_in, lmax_in, lmax_out, backend=backend)
        self.out = DegreeLinear(lmax_out, channels, channels)
        self.odd = CGOddPaths(lmax_in, lmax_in, lmax_out) if odd_paths else None
        self.odd_out = DegreeLinear(lmax_out, channels, channels, bias=False) if odd_paths else None

    def forward(self, x: Tensor) -> Tensor:
        _check_feature(x, self.lmax_in, self.channels, "x")
        a, b = self.left(x), self.right(x)
        out = self.out(self.tp(a, b))
        if self.odd is not None and self.odd_out is not None:
            out = out + self.odd_out(self.odd(a, b))
        return out


def _legendre(x: Tensor, lmax: int) -> Tensor:
    """Legendre polynomials ``P_0..P_lmax`` of ``x`` stacked on a new last axis."""
    out = [torch.ones_like(x), x]
    for l in range(2, lmax + 1):
        out.append(((2 * l - 1) * x * out[-1] - (l - 1) * out[-2]) / l)
    return torch.stack(out[: lmax + 1], dim=-1)


class GauntConv(TableModule):
    """Equivariant convolution ``x_j * Y(r_ij)`` with radial weights, summed over neighbours.

        m_i = W_o P_{<= L_out} [ sum_{j in N(i)} f_j * g_ij ] / avg_neighbors,
        f_j = sum_{lm} (W_in x_j)_{lm} Y_{lm},   g_ij = sum_{lm} R_l(|r_ij|) Y_{lm}(r_ij) Y_{lm}

    (per channel; ``R [E, L_sh+1, C]`` from a radial MLP on a Gaussian or Bessel basis, ``radial``,
    with ``radial_layers`` hidden layers of width ``radial_hidden``, times a smooth envelope).
    Each summand is the Gaunt product ``(W_in x_j) * (R Y(r_ij))``.

    ``method="grid"`` (default) uses that the projection is linear: ``f_j`` is put on the sphere grid
    once per *node*, ``g_ij`` is evaluated on the grid directly by the addition theorem
    ``sum_m Y_lm(a) Y_lm(b) = (2l+1)/(4 pi) P_l(a.b)``, products are summed over neighbours on the
    grid, and each node is projected once: per edge only elementwise work, O(E G C), G grid points.
    ``method="edge"`` is the textbook path: one ``GauntTensorProduct`` (``backend``) per edge, then
    the sum; tests check the two agree to 1e-10 in float64.

    ``forward(x [N, (L_in+1)^2, C], pos [N, 3], edge_index [2, E], shifts [E, 3] | None)``
    ``-> [N, (L_out+1)^2, C]``. Edges ``(j -> i)``: row 0 source j, row 1 target i,
    ``r_ij = pos[i] - pos[j] - shifts`` (``equiscale.ops.neighbors`` convention); ``|r_ij| > 0``.
    """

    sh_degree: Tensor
    points: Tensor
    addition: Tensor

    def __init__(
        self,
        lmax_in: int,
        lmax_sh: int,
        lmax_out: int,
        channels: int,
        *,
        cutoff: float = 5.0,
        num_basis: int = 8,
        radial_hidden: int = 32,
        radial_layers: int = 1,
        avg_neighbors: float = 10.0,
        method: str = "grid",
        backend: str = "auto",
        odd_paths: bool = False,
        radial: str = "gaussian",
    ) -> None:
        super().__init__()
        if cutoff <= 0 or avg_neighbors <= 0:
            raise ValueError(f"cutoff and avg_neighbors must be > 0, got {cutoff}, {avg_neighbors}")
        for name, value in (("radial_hidden", radial_hidden), ("radial_layers", radial_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if method not in ("grid", "edge"):
            raise ValueError(f"method must be 'grid' or 'edge', got {method!r}")
        if backend not in ("auto", "dense", "fourier", "grid"):
            raise ValueError(f"backend must be 'auto', 'dense', 'fourier' or 'grid', got {backend!r}")
        self.lmax_in, self.lmax_sh, self.lmax_out = lmax_in, lmax_sh, lmax_out
        self.channels, self.cutoff, self.avg_neighbors = channels, cutoff, avg_neighbors
        self.method = method
        self.lin_in = DegreeLinear(lmax_in, channels, channels, bias=False)
        self.basis = radial_basis(radial, num_basis, cutoff)
        widths = [num_basis] + [radial_hidden] * radial_layers
        hidden = [m for a, b in zip(widths[:-1], widths[1:]) for m in (nn.Linear(a, b), nn.SiLU())]
        self.radial = nn.Sequential(*hidden, nn.Linear(radial_hidden, (lmax_sh + 1) * channels))
        self.lin_out = DegreeLinear(lmax_out, channels, channels)
        if method == "grid":
            degree = lmax_in + lmax_sh + lmax_out
            self.synth = GridSynthesis(lmax_in, degree)
            self.analysis = GridAnalysis(lmax_out, degree)
            points, _ = sphere_grid_points(degree)  # [n_t, n_p, 3]
            self.register_table("points", points.transpose(0, 1).contiguous())
            scale = torch.tensor(
                [(2 * l + 1) / (4 * math.pi) for l in range(lmax_sh + 1)], dtype=torch.float64
            )
            self.register_table("addition", scale)  # [L_sh+1]
        else:
            self.tp = GauntTensorProduct(lmax_in, lmax_sh, lmax_out, backend=backend)
        self.odd = CGOddPaths(lmax_in, lmax_sh, lmax_out) if odd_paths else None
        self.odd_out = DegreeLinear(lmax_out, channels, channels, bias=False) if odd_paths else None
        self.register_buffer("sh_degree", sh_degrees(lmax_sh), persistent=False)

    def forward(self, x: Tensor, pos: Tensor, edge_index: Tensor, shifts: Tensor | None = None) -> Tensor:
        _check_feature(x, self.lmax_in, self.channels, "x")
        if pos.shape != (x.shape[0], 3):
            raise ValueError(f"pos must have shape [{x.shape[0]}, 3], got {tuple(pos.shape)}")
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise ValueError(f"edge_index must have shape [2, E], got {tuple(edge_index.shape)}")
        if edge_index.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"edge_index must be an integer tensor, got {edge_index.dtype}")
        if (
            edge_index.numel()
            and not torch.compiler.is_compiling()
            and (int(edge_index.min()) < 0 or int(edge_index.max()) >= x.shape[0])
        ):
            raise ValueError(
                f"edge_index entries must lie in [0, N={x.shape[0]}), got "
                f"[{int(edge_index.min())}, {int(edge_index.max())}]"
            )
        if shifts is not None and shifts.shape != (edge_index.shape[1], 3):
            raise ValueError(
                f"shifts must have shape [E={edge_index.shape[1]}, 3], got {tuple(shifts.shape)}"
            )
        src, dst = edge_index[0], edge_index[1]
        vec = pos[dst] - pos[src]  # [E, 3]
        if shifts is not None:
            vec = vec - shifts
        sq = (vec * vec).sum(-1)  # |r|, with zero derivatives of every order at r = 0 (no NaN)
        length = torch.where(sq > 0, torch.where(sq > 0, sq, 1.0).sqrt(), 0.0)  # [E]
        radial = self.radial(self.basis(length)) * smooth_envelope(length, self.cutoff)[:, None]
        radial = radial.view(-1, self.lmax_sh + 1, self.channels)  # [E, L_sh+1, C]
        # coincident atoms (|r_ij| = 0) have no direction: keep only l = 0 (Y^l(0) = 0 for l > 0)
        radial = torch.cat([radial[:, :1], radial[:, 1:] * (length > 0).to(radial.dtype)[:, None, None]], 1)
        safe_length = torch.where(length > 0, length, torch.ones_like(length))
        h = self.lin_in(x)  # [N, K, C]
        if self.method == "grid":
            f = self.synth(h)  # [n_p, n_t, N, C]
            n_p, n_t = f.shape[0], f.shape[1]
            f = f.reshape(n_p * n_t, *f.shape[2:]).transpose(0, 1).contiguous()  # [N, G, C]
            direction = vec / safe_length[:, None]  # [E, 3]
            cos = direction @ self.points.to(vec.dtype).reshape(-1, 3).T  # [E, G]
            legendre = _legendre(cos, self.lmax_sh) * self.addition.to(vec.dtype)  # [E, G, Ls+1]
            edge_filter = torch.bmm(legendre, radial)  # [E, G, C]
            products = f.index_select(0, src) * edge_filter  # [E, G, C]
            summed = products.new_zeros(f.shape).index_add(0, dst, products)  # [N, G, C]
            summed = summed.transpose(0, 1).reshape(n_p, n_t, *summed.shape[::2])  # [n_p, n_t, N, C]
            out = self.analysis(summed)  # [N, Ko, C]
        else:
            unit = vec / safe_length[:, None]  # 0 for coincident atoms: finite to every order
            sh = o3.spherical_harmonics(
                list(range(self.lmax_sh + 1)), unit, normalize=False, normalization="integral"
            )  # [E, Ks]
            edge_filter = sh[:, :, None] * radial[:, self.sh_degree]  # [E, Ks, C]
            messages = self.tp(h.index_select(0, src), edge_filter)  # [E, Ko, C]
            out = messages.new_zeros(x.shape[0], *messages.shape[1:]).index_add(0, dst, messages)
        out = self.lin_out(out / self.avg_neighbors)
        if self.odd is not None and self.odd_out is not None:
            sh = o3.spherical_harmonics(
                list(range(self.lmax_sh + 1)),
                vec / safe_length[:, None],
                normalize=False,
                normalization="integral",
            )
            edge_filter = sh[:, :, None] * radial[:, self.sh_degree]
            odd = self.odd(h.index_select(0, src), edge_filter)  # [E, Ko, C] pseudo-tensors
            odd = odd.new_zeros(x.shape[0], *odd.shape[1:]).index_add(0, dst, odd)
            out = out + self.odd_out(odd / self.avg_neighbors)
        return out


class GauntManyBody(nn.Module):
    """MACE-style symmetric contraction on the sphere grid:
    ``B[n, (l m), c] = sum_{nu=1..correlation} w[z_n, nu, l, c] (A^nu)[n, (l m), c]``, then a
    :class:`DegreeLinear`. ``forward(a [N, (L_in+1)^2, C], z [N] long) -> [N, (L_out+1)^2, C]``.

    ``mix=True`` replaces the powers by chained products of channel-mixed copies,
    ``P_nu = (W_1 A) * (W_2 A) * ... * (W_nu A)`` (Gaunt products, :class:`DegreeLinear` ``W_k``):
    ``correlation`` syntheses instead of one, and the factors of a product no longer share one
    channel, so a product can couple channels as the many-body basis of MACE couples paths.
    """

    degree: Tensor

    def __init__(
        self,
        lmax_in: int,
        lmax_out: int,
        channels: int,
        correlation: int = 3,
        num_elements: int = 10,
        backend: str = "grid",
        mix: bool = False,
    ) -> None:
        super().__init__()
        if correlation < 1 or num_elements < 1:
            raise ValueError(f"correlation and num_elements must be >= 1, got {correlation}, {num_elements}")
        self.lmax_in, self.lmax_out, self.channels = lmax_in, lmax_out, channels
        self.correlation, self.num_elements = correlation, num_elements
        if backend != "grid":
            raise ValueError(f"backend must be 'grid' (powers stay on one sphere grid), got {backend!r}")
        self.mix = bool(mix)
        if self.mix:
            degree = correlation * lmax_in + lmax_out
            self.factors = nn.ModuleList(
                DegreeLinear(lmax_in, channels, channels, bias=False) for _ in range(correlation)
            )
            self.synth = GridSynthesis(lmax_in, degree)
            self.analysis = GridAnalysis(lmax_out, degree)
        else:
            self.powers = GauntPowers(lmax_in, correlation, lmax_out)
        self.weight = nn.Parameter(
            torch.randn(num_elements, correlation, lmax_out + 1, channels) / correlation
        )
        self.out = DegreeLinear(lmax_out, channels, channels)
        self.register_buffer("degree", sh_degrees(lmax_out), persistent=False)

    def forward(self, a: Tensor, z: Tensor) -> Tensor:
        _check_feature(a, self.lmax_in, self.channels, "a")
        if z.shape != (a.shape[0],) or z.dtype not in (torch.int32, torch.int64):
            raise ValueError(
                f"z must be an integer tensor of shape [{a.shape[0]}], got {tuple(z.shape)} {z.dtype}"
            )
        if (
            z.numel()
            and not torch.compiler.is_compiling()
            and (int(z.min()) < 0 or int(z.max()) >= self.num_elements)
        ):
            raise ValueError(
                f"z must lie in [0, num_elements={self.num_elements}), got [{int(z.min())}, {int(z.max())}]"
            )
        w = self.weight[z.long()][:, :, self.degree]  # [N, nu, Ko, C]
        powers = self._chained(a) if self.mix else self.powers(a)  # [nu, N, Ko, C]
        return self.out(torch.einsum("vnkc,nvkc->nkc", powers, w))

    def _chained(self, a: Tensor) -> Tensor:
        """``[P_1, ..., P_correlation]`` with ``P_nu = prod_{k <= nu} (W_k a)`` on one grid."""
        f = self.synth(torch.stack([w(a) for w in self.factors]))  # [n_p, n_t, nu, N, C]
        products = [f[:, :, 0]]
        for k in range(1, self.correlation):
            products.append(products[-1] * f[:, :, k])
        return self.analysis(torch.stack(products, dim=2))  # [nu, N, Ko, C]
