"""2D Fourier back end of the Gaunt product (the paper's algorithm).

SH -> 2D Fourier (``so3.fourier``), separable and sparse in v:

    xp [M, L+1, N] --bmm a [M, 2L+1 (u), L+1]--> A [M, U, N] --mm b^T [V, M]--> X [V, U, N]

the product of spherical functions is the 2D linear convolution of their coefficient arrays, done by
zero-padded FFTs of size ``P = sum_i (2 L_i + 1) - (n - 1)``; then back to SH,

    Z [2Lo+1 (v), P (u), N] --mm E^T [Mo, V]--> B [Mo, P, N] --bmm S^T [Mo, Lo+1, P]--> Re -> out.
"""

from __future__ import annotations

import torch

from equiscale.ops._gaunt_common import gather_padded, rows_first, rows_last
from equiscale.ops._tables import TableModule
from equiscale.so3.fourier import phi_fourier, phi_projection, theta_fourier, theta_projection
from equiscale.so3.grid import padded_sh_index


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


class FourierSynthesis(TableModule):
    """``[..., (L+1)^2, C]`` -> 2D Fourier coefficients ``[..., C, 2L+1 (v), 2L+1 (u)]`` (complex;
    the FFT axes last and contiguous)."""

    a: torch.Tensor
    b_t: torch.Tensor
    index: torch.Tensor

    def __init__(self, lmax: int) -> None:
        super().__init__()
        self.lmax = lmax
        self.register_table("a", theta_fourier(lmax))  # [M, U, L+1]
        self.register_table("b_t", phi_fourier(lmax).T.contiguous())  # [V, M]
        self.register_buffer("index", padded_sh_index(lmax), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_device(x)
        flat, rest = rows_first(x)
        m, u, lp = self.a.shape
        ctype = complex_dtype(x.dtype)
        xp = gather_padded(flat, self.index, m, lp).to(ctype)  # [M, L+1, N]
        big_a = torch.bmm(self.a.to(ctype), xp)  # [M, U, N]
        big_x = self.b_t.to(ctype) @ big_a.reshape(m, -1)  # [V, U * N]
        return big_x.view(m, u, -1).permute(2, 0, 1).reshape(*rest, m, u)  # [..., C, V, U]


def _fast_size(n: int) -> int:
    """Smallest ``m >= n`` whose prime factors are 2, 3 and 5 (fast FFT lengths)."""
    m = n
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def fourier_multiply(coefficients: list[torch.Tensor]) -> torch.Tensor:
    """2D linear convolution of coefficient arrays ``[..., V_i, U_i]`` (centred index ranges) by
    zero-padded FFTs: ``[..., sum V_i - n + 1, sum U_i - n + 1]`` (broadcast over ``...``)."""
    size = sum(c.shape[-1] for c in coefficients) - len(coefficients) + 1
    rest = torch.broadcast_shapes(*(c.shape[:-2] for c in coefficients))
    if 0 in rest:  # FFT libraries reject empty batches
        return coefficients[0].new_zeros(*rest, size, size)
    fast = _fast_size(size)  # padding beyond `size` only adds zeros: no wrap-around
    spectrum = None
    for c in coefficients:
        s = torch.fft.fft2(c, s=(fast, fast))
        spectrum = s if spectrum is None else spectrum * s
    return torch.fft.ifft2(spectrum)[..., :size, :size]


class FourierAnalysis(TableModule):
    """2D Fourier coefficients ``[..., C, 2Vi+1 (v), 2U+1 (u)]`` of a torus function -> SH
    coefficients ``[..., (L+1)^2, C]`` of its projection onto degrees ``<= lmax``."""

    e_t: torch.Tensor
    s_t: torch.Tensor
    slots: torch.Tensor

    def __init__(self, lmax: int, umax: int) -> None:
        super().__init__()
        self.lmax, self.umax = lmax, umax
        self.register_table("e_t", phi_projection(lmax).T.contiguous())  # [M, V]
        s = theta_projection(lmax, umax).transpose(1, 2).contiguous()  # [M, L+1, P]
        self.register_table("s_t", s)
        index = padded_sh_index(lmax)
        slots = torch.empty((lmax + 1) ** 2, dtype=torch.long)
        keep = index < (lmax + 1) ** 2
        slots[index[keep]] = torch.arange(index.numel())[keep]
        self.register_buffer("slots", slots, persistent=False)

    def forward(self, z: torch.Tensor, real_dtype: torch.dtype) -> torch.Tensor:
        self.check_device(z, "z")
        vi = (z.shape[-2] - 1) // 2
        lo = self.lmax
        if vi < lo:  # the product has fewer azimuthal orders than the output: pad with zeros
            z = torch.nn.functional.pad(z, (0, 0, lo - vi, lo - vi))
            vi = lo
        z = z[..., vi - lo : vi + lo + 1, :]  # [..., C, 2Lo+1, P]
        rest = tuple(z.shape[:-2])
        z = z.reshape(-1, z.shape[-2], z.shape[-1]).permute(1, 2, 0)  # [2Lo+1, P, N]
        m, lp, p = self.s_t.shape
        ctype = z.dtype
        b = self.e_t.to(ctype) @ z.reshape(z.shape[0], -1)  # [M, P * N]
        o = torch.bmm(self.s_t.to(ctype), b.view(m, p, -1)).real.to(real_dtype)  # [M, L+1, N]
        out = o.reshape(m * lp, -1).index_select(0, self.slots)
        return rows_last(out, rest)
