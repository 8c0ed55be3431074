"""Constant tables that follow a module's device but keep their own dtype.

``module.to(torch.float64)``, ``.half()``, ``.to(torch.bfloat16)`` (and Lightning's ``"64-true"``,
``"16-true"``, ``"bf16-true"`` precisions, which call ``.to(dtype)``) cast every floating-point and
complex buffer. For the exact tables of our operators that is wrong: ``.to(float64)`` casts a
complex128 table to float64 and drops its imaginary part (a silent wrong answer), and ``.half()``
rounds a float64 table to 3 digits for good, so a later ``.double()`` cannot restore it. A
:class:`TableModule` registers such tables with :meth:`TableModule.register_table`; they move
with ``.to(device)`` / ``.cuda()`` but keep the dtype they were built in (float64 or complex128).
Forward passes cast them to the dtype of the inputs, as they always did, and call
:meth:`TableModule.check_device` first: an input on another device than the tables is a clear
error naming both devices (a mixed-device product must never run).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

__all__ = ["TableModule"]


class TableModule(nn.Module):
    """``nn.Module`` whose tables (see :meth:`register_table`) ignore dtype casts."""

    def register_table(self, name: str, table: torch.Tensor) -> None:
        """A non-persistent buffer that follows the device, never the dtype, of the module."""
        self.register_buffer(name, table, persistent=False)
        names = self.__dict__.setdefault("_table_names", set())
        names.add(name)

    def _apply(self, fn: Any, recurse: bool = True) -> TableModule:
        names = self.__dict__.get("_table_names", set())
        kept = {n: t for n in names if (t := self._buffers.get(n)) is not None}
        with warnings.catch_warnings():  # the cast of the tables' copies is thrown away below
            warnings.filterwarnings("ignore", "Casting complex values to real")
            super()._apply(fn, recurse)
        for n, old in kept.items():
            moved = self._buffers[n]
            if moved is not None:
                self._buffers[n] = old.to(moved.device)  # new device, own dtype
        return self

    def check_device(self, x: torch.Tensor, name: str = "x") -> None:
        """Raise ``ValueError`` when ``x`` is not on the device of this module's tables."""
        for n in self.__dict__.get("_table_names", ()):
            table = self._buffers.get(n)
            if table is not None and table.device != x.device:
                raise ValueError(
                    f"{name} is on {x.device} but the tables of {type(self).__name__} are on "
                    f"{table.device}; move the module with .to({str(x.device)!r}) (or the input)"
                )
            return
