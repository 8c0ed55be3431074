"""Dense back end of the Gaunt product: contraction with the sparse Gaunt table.

    out[k3, n] = sum_{(k1, k2, k3, g) in table} g * x[k1, n] * y[k2, n]

by gather, multiply and ``index_add``: O(nnz N) time and memory, with ``nnz ~ L^5``; best at small L.
"""

from __future__ import annotations

import torch

from equiscale.ops._gaunt_common import rows_first, rows_last
from equiscale.ops._tables import TableModule
from equiscale.so3.gaunt import gaunt_coefficients_sparse


class DenseGaunt(TableModule):
    i1: torch.Tensor
    i2: torch.Tensor
    i3: torch.Tensor
    values: torch.Tensor

    def __init__(self, lmax_in1: int, lmax_in2: int, lmax_out: int) -> None:
        super().__init__()
        self.k_out = (lmax_out + 1) ** 2
        index, values = gaunt_coefficients_sparse(lmax_in1, lmax_in2, lmax_out)
        self.register_buffer("i1", index[0].contiguous(), persistent=False)
        self.register_buffer("i2", index[1].contiguous(), persistent=False)
        self.register_buffer("i3", index[2].contiguous(), persistent=False)
        self.register_table("values", values)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.check_device(x)
        self.check_device(y, "y")
        shape = torch.broadcast_shapes(x.shape[:-2] + x.shape[-1:], y.shape[:-2] + y.shape[-1:])
        x = x.expand(*shape[:-1], x.shape[-2], shape[-1])
        y = y.expand(*shape[:-1], y.shape[-2], shape[-1])
        fx, rest = rows_first(x)  # [K1, N]
        fy, _ = rows_first(y)  # [K2, N]
        terms = fx.index_select(0, self.i1) * fy.index_select(0, self.i2)  # [nnz, N]
        terms = terms * self.values.to(x.dtype)[:, None]
        out = fx.new_zeros(self.k_out, fx.shape[1]).index_add(0, self.i3, terms)  # [Kout, N]
        return rows_last(out, rest)
