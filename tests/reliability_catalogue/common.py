"""Catalogues of bad, empty and degenerate inputs for the public entry points.

Each case is tiny (a few atoms or tokens, a few channels) and builds everything it needs (files
included) when it runs, so a catalogue costs nothing to list and listing it writes nothing. The
same lists drive ``tests/test_reliability_*.py`` and the report ``tools/reliability_report.py``
(``equiscale bench reliability`` in a source checkout), so the report counts exactly what the
tests check.

This module: the case types, their runners and the small constructors the catalogues share.
The catalogues: :mod:`.bad_inputs`, :mod:`.empty`, :mod:`.geometry`, :mod:`.files`.

- :class:`BadInput`: ``call()`` must raise ``ValueError`` or ``TypeError`` (``exc``) whose message
  matches every regular expression in ``mentions`` (the argument's name, and where it helps the
  actual value).
- :class:`EmptyInput`: ``call()`` returns a result; ``check(result)`` asserts its shape and that
  nothing is NaN (it raises ``AssertionError`` otherwise).
- :class:`Degenerate`: ``call()`` returns a dict of tensors (outputs, gradients, second
  derivatives) that must all be finite; ``check`` may assert more (shapes, flags).
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

F64 = torch.float64


@dataclass(frozen=True)
class BadInput:
    entry: str  # the public name under test, e.g. "GauntTensorProduct.forward"
    what: str  # what is wrong, e.g. "x has the wrong number of SH rows"
    call: Callable[[], Any]
    mentions: tuple[str, ...]  # regexes the message must match (argument name first)
    exc: tuple[type[BaseException], ...] = (ValueError, TypeError)

    @property
    def id(self) -> str:
        return f"{self.entry}: {self.what}"


@dataclass(frozen=True)
class EmptyInput:
    entry: str
    what: str
    call: Callable[[], Any]
    check: Callable[[Any], None]

    @property
    def id(self) -> str:
        return f"{self.entry}: {self.what}"


@dataclass(frozen=True)
class Degenerate:
    entry: str
    what: str
    call: Callable[[], dict[str, Tensor]]
    check: Callable[[dict[str, Tensor]], None] = field(default=lambda out: None)

    @property
    def id(self) -> str:
        return f"{self.entry}: {self.what}"


def run_bad_input(case: BadInput) -> str:
    """Run one bad-input case; return the error message, or raise AssertionError saying why not."""
    try:
        case.call()
    except case.exc as err:
        msg = str(err)
        for pattern in case.mentions:
            if not re.search(pattern, msg):
                raise AssertionError(f"{case.id}: message does not mention {pattern!r}: {msg!r}") from None
        return msg
    except Exception as err:  # noqa: BLE001 - the point is to report the wrong kind of error
        raise AssertionError(
            f"{case.id}: raised {type(err).__name__} instead of "
            f"{'/'.join(e.__name__ for e in case.exc)}: {err}"
        ) from None
    raise AssertionError(f"{case.id}: no error was raised")


def run_empty(case: EmptyInput) -> None:
    case.check(case.call())


def _all_finite(out: dict[str, Tensor]) -> None:
    for name, t in out.items():
        if t is None:
            continue
        bad = (~torch.isfinite(t)).sum().item()
        assert bad == 0, f"{name}: {bad} of {t.numel()} entries are not finite"


def run_degenerate(case: Degenerate) -> dict[str, Tensor]:
    out = case.call()
    _all_finite(out)
    case.check(out)
    return out


# --------------------------------------------------------------------------------------- helpers


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> Tensor:
    return torch.randn(*shape, generator=_g(seed), dtype=dtype)


def _cli(argv: list[str]) -> None:
    """Run the CLI; a non-zero exit becomes a ValueError carrying its stderr (one line expected)."""
    from equiscale.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    text = err.getvalue()
    if code != 0:
        if "Traceback" in text:
            raise RuntimeError(f"CLI printed a traceback: {text[-300:]}")
        raise ValueError(text.strip())


def _shape(t: Any, shape: tuple[int, ...], dtype: torch.dtype | None = None) -> None:
    assert isinstance(t, Tensor), f"expected a tensor, got {type(t).__name__}"
    assert tuple(t.shape) == shape, f"expected shape {shape}, got {tuple(t.shape)}"
    assert not torch.isnan(t).any(), "result holds NaN"
    if dtype is not None:
        assert t.dtype == dtype, f"expected dtype {dtype}, got {t.dtype}"


def _zeros(t: Any, shape: tuple[int, ...]) -> None:
    _shape(t, shape)
    assert t.numel() == 0 or float(t.abs().max()) == 0.0, "expected zeros"


# ---------------------------------------------------------------------------------- constructors
# Small models; every case builds its own (construction is milliseconds at these sizes).


def _egnn():
    from equiscale.models.egnn import EGNN

    return EGNN(hidden=8, layers=2)


def _hyena(**kw):
    from equiscale.models.se3_hyena import SE3HyenaNet

    return SE3HyenaNet(8, 4, 1, filter_hidden=8, **kw)


def _transformer(**kw):
    from equiscale.models.equivariant_transformer import EquivariantTransformer

    return EquivariantTransformer(8, 4, 1, heads=2, **kw)


def _frame_avg(**kw):
    from equiscale.models.frame_averaging import FrameAveraging

    return FrameAveraging(
        "hyena", {"scalar_channels": 8, "vector_channels": 2, "depth": 1, "filter_hidden": 8}, **kw
    )


def _e2former(**kw):
    from equiscale.models.e2former import E2Former

    args = {
        "num_elements": 10,
        "channels": 8,
        "lmax": 1,
        "num_layers": 1,
        "heads": 2,
        "num_radial": 4,
        "cutoff": 3.0,
    }
    args.update(kw)
    return E2Former(**args)


def _gauntnet(**kw):
    from equiscale.models.gaunt_net import GauntNet

    args = {
        "num_elements": 10,
        "channels": 8,
        "lmax": 1,
        "lmax_sh": 1,
        "num_layers": 1,
        "correlation": 2,
        "cutoff": 3.0,
        "num_basis": 4,
    }
    args.update(kw)
    return GauntNet(**args)


def _tp(l1: int = 1, l2: int = 1, lo: int = 2, backend: str = "dense"):
    from equiscale.ops.gaunt import GauntTensorProduct

    return GauntTensorProduct(l1, l2, lo, backend=backend)


def _w6j(**kw):
    from equiscale.ops import Wigner6jConv

    return Wigner6jConv(1, 1, 1, **kw)


def _graph(n: int = 3, dtype: torch.dtype = torch.float32):
    """h [n, 4, 2], pos [n, 3], a ring of edges, alpha [E]."""
    h = _randn(n, 4, 2, dtype=dtype)
    pos = _randn(n, 3, dtype=dtype, seed=1)
    src = torch.arange(n)
    edge_index = torch.stack([src, (src + 1) % n])
    return h, pos, edge_index, torch.ones(n, dtype=dtype)


def _nbody_batch(b: int = 2, n: int = 4, dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    return {
        "loc": _randn(b, n, 3, dtype=dtype),
        "vel": _randn(b, n, 3, dtype=dtype, seed=1),
        "charges": torch.ones(b, n, dtype=dtype),
    }


def _recall_batch(b: int = 2, n: int = 5, dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    return {"pos": _randn(b, n, 3, dtype=dtype), "token_type": torch.zeros(b, n, 3, dtype=dtype)}


def _molecule(n: int = 4, dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    return {"pos": _randn(n, 3, dtype=dtype), "z": torch.arange(n) % 3 + 1}


def _extxyz(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def _write(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` (text or bytes) and return the path: file cases call it when they
    run, never when the catalogue is listed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


def _fail(what: str) -> None:
    raise AssertionError(f"unexpected {what}")
