"""Catalogues of bad, empty and degenerate inputs for the public entry points.

Each case is tiny (a few atoms or tokens, a few channels) and builds everything it needs when it
runs, so a catalogue costs nothing to list. The same lists drive ``tests/test_reliability_*.py``
and ``python -m equiscale.reliability`` (the report counts what the tests check).

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

__all__ = [
    "BadInput",
    "EmptyInput",
    "Degenerate",
    "bad_input_cases",
    "empty_cases",
    "degenerate_cases",
    "run_bad_input",
    "run_empty",
    "run_degenerate",
]

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
    from equiscale.ops.wigner6j_conv import Wigner6jConv

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


# -------------------------------------------------------------------------------- bad inputs


def bad_input_cases(tmp_dir: str | Path | None = None) -> list[BadInput]:
    """Every public entry point with inputs it must refuse (ValueError/TypeError naming the
    argument). ``tmp_dir``: a writable folder for the file cases (default: a fresh temp dir)."""
    import tempfile

    from equiscale import ops as w6
    from equiscale.data import nbody, recall
    from equiscale.data.extxyz import read_extxyz
    from equiscale.ops import gaunt, long_conv, neighbors
    from equiscale.train.config import TrainConfig, load_config

    tmp = Path(tmp_dir) if tmp_dir is not None else Path(tempfile.mkdtemp(prefix="equiscale_bad_"))
    cases: list[BadInput] = []

    def add(
        entry: str,
        what: str,
        call: Callable[[], Any],
        *mentions: str,
        exc: tuple[type[BaseException], ...] = (ValueError, TypeError),
    ) -> None:
        cases.append(BadInput(entry, what, call, tuple(mentions), exc))

    # ---- Gaunt tensor product
    x, y = _randn(5, 4, 8), _randn(5, 4, 8, seed=1)
    add("GauntTensorProduct", "negative degree", lambda: _tp(-1, 1, 2), "lmax_in1", "-1")
    add("GauntTensorProduct", "float degree", lambda: _tp(1.5, 1, 2), "lmax_in1", "1.5")
    add("GauntTensorProduct", "negative output degree", lambda: _tp(1, 1, -2), "lmax_out")
    add("GauntTensorProduct", "unknown backend", lambda: _tp(backend="fft"), "backend", "fft")
    add(
        "GauntTensorProduct",
        "odd parity",
        lambda: gaunt.GauntTensorProduct(1, 1, 1, parity="odd"),
        "parity",
        "odd",
    )
    add(
        "GauntTensorProduct.forward",
        "x has 9 SH rows for lmax_in1=1",
        lambda: _tp()(_randn(5, 9, 8), y),
        r"\bx\b",
        r"\(5, 9, 8\)",
    )
    add("GauntTensorProduct.forward", "y is a vector [5, 3]", lambda: _tp()(x, _randn(5, 3)), r"\by\b")
    add("GauntTensorProduct.forward", "integer x", lambda: _tp()(x.long(), y), r"\bx\b", "int64")
    add("GauntTensorProduct.forward", "x is a list", lambda: _tp()(x.tolist(), y), r"\bx\b", "list")
    add(
        "GauntTensorProduct.forward",
        "float32 x with float64 y",
        lambda: _tp()(x, y.double()),
        r"\bx\b",
        "float64",
    )
    add(
        "GauntTensorProduct.forward",
        "channels 8 vs 5",
        lambda: _tp()(x, _randn(5, 4, 5)),
        r"\bx\b",
        r"\(5, 4, 5\)",
    )
    add(
        "GauntTensorProduct.forward",
        "y on another device (meta)",
        lambda: _tp()(x, y.to("meta")),
        "device",
        "meta",
    )
    add(
        "GauntTensorProduct.forward",
        "batch 5 vs 3 (fourier)",
        lambda: _tp(backend="fourier")(x, _randn(3, 4, 8)),
        r"\bx\b",
        r"\(3, 4, 8\)",
    )
    add("gaunt_power", "nu = 0", lambda: gaunt.gaunt_power(x, 0, 2), r"\bnu\b", "0")
    add("gaunt_power", "x without SH axis", lambda: gaunt.gaunt_power(_randn(4), 2, 2), r"\bx\b")
    add("gaunt_reference", "negative lmax_out", lambda: gaunt.gaunt_reference(x, y, lmax_out=-1), "lmax_out")
    add("GauntPowers", "max_power 0", lambda: gaunt.GauntPowers(1, 0, 1), "max_power")
    add("GauntProduct", "no inputs", lambda: gaunt.GauntProduct([], 2), "lmax_in")
    add("GauntProduct", "power 0", lambda: gaunt.GauntProduct([1, 1], 2, powers=[1, 0]), "powers")

    # ---- long convolutions
    u, hf = _randn(2, 6, 4), _randn(6, 4, seed=1)
    q, k = _randn(2, 6, 3), _randn(2, 6, 3, seed=1)
    add("fft_conv", "integer u", lambda: long_conv.fft_conv(u.long(), hf), r"\bu\b", "int64")
    add("fft_conv", "u is a list", lambda: long_conv.fft_conv(u.tolist(), hf), r"\bu\b", "list")
    add("fft_conv", "1-D u", lambda: long_conv.fft_conv(_randn(6), hf), r"\bu\b", r"\(6,\)")
    add(
        "fft_conv",
        "causal filter of length 5 for 6 tokens",
        lambda: long_conv.fft_conv(u, _randn(5, 4)),
        r"\bh\b",
        "5",
    )
    add(
        "fft_conv",
        "bidirectional filter of length 0",
        lambda: long_conv.fft_conv(u, _randn(0, 4), causal=False),
        r"\bh\b",
        "0",
    )
    add(
        "fft_conv", "dim = -1 (the channel axis)", lambda: long_conv.fft_conv(u, hf, dim=-1), r"\bdim\b", "-1"
    )
    add(
        "fft_conv",
        "float32 u with float64 h",
        lambda: long_conv.fft_conv(u, hf.double()),
        r"\bu\b",
        r"\bh\b",
        "float64",
    )
    add(
        "fft_conv",
        "h on another device (meta)",
        lambda: long_conv.fft_conv(u, hf.to("meta")),
        r"\bh\b",
        "meta",
    )
    add(
        "fft_cross_conv",
        "q with 4 components",
        lambda: long_conv.fft_cross_conv(_randn(2, 6, 4), k),
        r"\bq\b",
        r"\(2, 6, 4\)",
    )
    add(
        "fft_cross_conv",
        "k with 2 components",
        lambda: long_conv.fft_cross_conv(q, _randn(2, 6, 2)),
        r"\bk\b",
    )
    add(
        "fft_dot_conv",
        "causal k of length 4",
        lambda: long_conv.fft_dot_conv(q, _randn(2, 4, 3)),
        r"\bk\b",
        "4",
    )
    add("fft_dot_conv", "boolean q", lambda: long_conv.fft_dot_conv(q > 0, k), r"\bq\b", "bool")
    add(
        "fft_cross_dot_conv",
        "float64 k",
        lambda: long_conv.fft_cross_dot_conv(q, k.double()),
        r"\bk\b",
        "float64",
    )
    add(
        "fft_conv_reference",
        "causal filter too long",
        lambda: long_conv.fft_conv_reference(u, _randn(7, 4)),
        r"\bh\b",
        "7",
    )
    add(
        "fft_cross_conv_reference",
        "q with 2 components",
        lambda: long_conv.fft_cross_conv_reference(_randn(2, 6, 2), k),
        r"\bq\b",
    )

    # ---- Wigner-6j convolution
    h, pos, ei, alpha = _graph()
    add("Wigner6jConv", "negative lmax_in", lambda: w6.Wigner6jConv(-1, 1, 1), "lmax_in", "-1")
    add("Wigner6jConv", "negative lmax_out", lambda: w6.Wigner6jConv(1, -1, 1), "lmax_out", "-1")
    add("Wigner6jConv", "negative filter degree", lambda: w6.Wigner6jConv(1, 1, [0, -1]), "l_filter")
    add("Wigner6jConv", "unknown centring", lambda: _w6j(centring="middle"), "centring", "middle")
    add("Wigner6jConv", "unknown parity", lambda: _w6j(parity="odd"), "parity", "odd")
    add(
        "Wigner6jConv.forward",
        "h with 9 SH rows",
        lambda: _w6j()(_randn(3, 9, 2), pos, ei, alpha),
        r"\bh\b",
        r"\(3, 9, 2\)",
    )
    add(
        "Wigner6jConv.forward",
        "pos [3, 2]",
        lambda: _w6j()(h, _randn(3, 2), ei, alpha),
        r"\bpos\b",
        r"\(3, 2\)",
    )
    add(
        "Wigner6jConv.forward",
        "float64 pos with float32 h",
        lambda: _w6j()(h, pos.double(), ei, alpha),
        r"\bpos\b",
        "float64",
    )
    add(
        "Wigner6jConv.forward",
        "edge_index [3, E]",
        lambda: _w6j()(h, pos, torch.zeros(3, 3, dtype=torch.long), alpha),
        "edge_index",
    )
    add(
        "Wigner6jConv.forward",
        "float edge_index",
        lambda: _w6j()(h, pos, ei.float(), alpha),
        "edge_index",
        "float32",
    )
    add(
        "Wigner6jConv.forward",
        "edge_index points at node 7 of 3",
        lambda: _w6j()(h, pos, torch.tensor([[0, 7], [1, 2]]), torch.ones(2)),
        "edge_index",
        "7",
    )
    add(
        "Wigner6jConv.forward",
        "alpha [E, 5] for C = 2",
        lambda: _w6j()(h, pos, ei, torch.ones(3, 5)),
        r"\balpha\b",
        r"\(3, 5\)",
    )
    add(
        "Wigner6jConv.forward",
        "shifts [E, 2]",
        lambda: _w6j()(h, pos, ei, alpha, shifts=torch.zeros(3, 2)),
        r"\bshifts\b",
    )
    add(
        "Wigner6jConv.forward",
        "float batch",
        lambda: _w6j()(h, pos, ei, alpha, batch=torch.zeros(3)),
        r"\bbatch\b",
    )
    add(
        "Wigner6jConv.forward",
        "path_weights of the wrong length",
        lambda: _w6j()(h, pos, ei, alpha, path_weights=torch.ones(99)),
        "path_weights",
        "99",
    )
    add(
        "Wigner6jConv.forward",
        "pos on another device (meta)",
        lambda: _w6j()(h, pos.to("meta"), ei, alpha),
        r"\bpos\b",
        "meta",
    )
    add(
        "edge_reference",
        "alpha [E + 1]",
        lambda: w6.edge_reference(h, pos, ei, torch.ones(4), lmax_in=1, l_filter=[1], lmax_out=1),
        r"\balpha\b",
    )

    # ---- neighbour lists
    p = _randn(5, 3)
    add(
        "neighbor_list",
        "pos [5, 2]",
        lambda: neighbors.neighbor_list(_randn(5, 2), 1.0),
        r"\bpos\b",
        r"\(5, 2\)",
    )
    add(
        "neighbor_list", "pos is a list", lambda: neighbors.neighbor_list(p.tolist(), 1.0), r"\bpos\b", "list"
    )
    add("neighbor_list", "integer pos", lambda: neighbors.neighbor_list(p.long(), 1.0), r"\bpos\b", "int64")
    add("neighbor_list", "negative cutoff", lambda: neighbors.neighbor_list(p, -1.0), "cutoff", "-1")
    add("neighbor_list", "zero cutoff", lambda: neighbors.neighbor_list(p, 0.0), "cutoff")
    add(
        "neighbor_list",
        "batch of length 4 for 5 atoms",
        lambda: neighbors.neighbor_list(p, 1.0, batch=torch.zeros(4, dtype=torch.long)),
        r"\bbatch\b",
    )
    add(
        "neighbor_list",
        "unsorted batch",
        lambda: neighbors.neighbor_list(p, 1.0, batch=torch.tensor([0, 1, 0, 1, 1])),
        r"\bbatch\b",
    )
    add(
        "neighbor_list",
        "cell [2, 3, 3] for one structure",
        lambda: neighbors.neighbor_list(p, 1.0, cell=torch.eye(3).expand(2, 3, 3), pbc=True),
        r"\bcell\b",
    )
    add(
        "neighbor_list",
        "pbc without a cell",
        lambda: neighbors.neighbor_list(p, 1.0, pbc=True),
        r"\bpbc\b",
        r"\bcell\b",
    )
    add(
        "neighbor_list",
        "pbc of length 2",
        lambda: neighbors.neighbor_list(p, 1.0, cell=torch.eye(3), pbc=[True, False]),
        r"\bpbc\b",
    )

    # ---- models
    add(
        "EGNN",
        "hidden = 0",
        lambda: __import__("equiscale.models.egnn", fromlist=["EGNN"]).EGNN(0, 2),
        r"\bhidden\b",
    )
    add(
        "EGNN.forward",
        "loc [B, N, 2]",
        lambda: _egnn()({**_nbody_batch(), "loc": _randn(2, 4, 2)}),
        r"\bloc\b",
        r"\(2, 4, 2\)",
    )
    add(
        "EGNN.forward",
        "charges [B, N + 1]",
        lambda: _egnn()({**_nbody_batch(), "charges": torch.ones(2, 5)}),
        r"\bcharges\b",
    )
    add(
        "EGNN.forward",
        "batch without 'vel'",
        lambda: _egnn()({"loc": _randn(2, 4, 3), "charges": torch.ones(2, 4)}),
        "vel",
    )
    add(
        "EGNN.forward",
        "float64 batch for a float32 model",
        lambda: _egnn()(_nbody_batch(dtype=F64)),
        r"\bloc\b",
        "float64",
        "float32",
    )
    add("SE3HyenaNet", "depth = -1", lambda: _hyena().__class__(8, 4, -1), r"\bdepth\b", "-1")
    add("SE3HyenaNet", "scalar_channels = -1", lambda: _hyena().__class__(-1, 4, 1), "scalar_channels", "-1")
    add("SE3HyenaNet", "unknown parity", lambda: _hyena(parity="o3"), r"\bparity\b", "o3")
    add(
        "SE3HyenaNet.forward",
        "pos [B, N, 2]",
        lambda: _hyena()({**_recall_batch(), "pos": _randn(2, 5, 2)}),
        r"\bpos\b",
    )
    add(
        "SE3HyenaNet.forward",
        "token_type with 2 columns",
        lambda: _hyena()({**_recall_batch(), "token_type": torch.zeros(2, 5, 2)}),
        r"token_type|scalars",
        r"\(2, 5, 2\)",
    )
    add(
        "SE3HyenaNet.forward", "batch without positions", lambda: _hyena()({"x": _randn(2, 5, 3)}), r"\bpos\b"
    )
    add(
        "SE3HyenaNet.forward",
        "float64 batch for a float32 model",
        lambda: _hyena()(_recall_batch(dtype=F64)),
        r"\bpos\b",
        "float64",
        "float32",
    )
    add(
        "SE3HyenaNet.forward",
        "0 tokens (no last token to predict at)",
        lambda: _hyena()(_recall_batch(n=0)),
        r"\bpos\b",
        "0",
    )
    add(
        "EquivariantTransformer",
        "heads do not divide channels",
        lambda: _transformer().__class__(8, 4, 1, heads=3),
        r"heads",
        "3",
    )
    add(
        "EquivariantTransformer.forward",
        "n-body batch with vel [B, N, 2]",
        lambda: _transformer(scalar_in=1, vector_in=1)({**_nbody_batch(), "vel": _randn(2, 4, 2)}),
        r"\bvel\b|\bvec\b",
    )
    add("FrameAveraging", "frames='some'", lambda: _frame_avg(frames="some"), r"\bframes\b", "some")
    add("FrameAveraging", "group='so2'", lambda: _frame_avg(group="so2"), r"\bgroup\b", "so2")
    add(
        "FrameAveraging",
        "unknown backbone",
        lambda: __import__("equiscale.models.frame_averaging", fromlist=["x"]).FrameAveraging("resnet"),
        r"backbone|model",
        "resnet",
    )
    add(
        "FrameAveraging.forward",
        "pos [B, N, 2]",
        lambda: _frame_avg()({**_recall_batch(), "pos": _randn(2, 5, 2)}),
        r"\bpos\b",
    )
    add(
        "FrameAveraging.forward",
        "batch without positions",
        lambda: _frame_avg()({"x": _randn(2, 5, 3)}),
        r"\bpos\b",
    )
    add(
        "E2Former",
        "channels not divisible by heads",
        lambda: _e2former(channels=6, heads=4),
        r"channels",
        "heads",
    )
    add("E2Former", "negative lmax", lambda: _e2former(lmax=-1), r"\blmax\b", "-1")
    add("E2Former.forward", "batch without 'z'", lambda: _e2former()({"pos": _randn(4, 3)}), r"\bz\b")
    add(
        "E2Former.forward",
        "pos [1, N, 3]",
        lambda: _e2former()({**_molecule(), "pos": _randn(1, 4, 3)}),
        r"\bpos\b",
        r"\(1, 4, 3\)",
    )
    add(
        "E2Former.forward",
        "z = 12 with num_elements = 10",
        lambda: _e2former()({**_molecule(), "z": torch.tensor([1, 2, 12, 3])}),
        r"\bz\b",
        "12",
    )
    add(
        "E2Former.forward",
        "float64 pos for a float32 model",
        lambda: _e2former()(_molecule(dtype=F64)),
        r"\bpos\b",
        "float64",
        "float32",
    )
    add("GauntNet", "num_layers = 0", lambda: _gauntnet(num_layers=0), "num_layers")
    add("GauntNet", "negative lmax", lambda: _gauntnet(lmax=-1), r"\blmax\b", "-1")
    add("GauntNet", "unknown backend", lambda: _gauntnet(backend="cuda"), "backend", "cuda")
    add(
        "GauntNet.forward",
        "z = -1",
        lambda: _gauntnet()({**_molecule(), "z": torch.tensor([1, -1, 2, 3])}),
        r"\bz\b",
        "-1",
    )
    add(
        "GauntNet.forward",
        "pos [N, 4]",
        lambda: _gauntnet()({**_molecule(), "pos": _randn(4, 4)}),
        r"\bpos\b",
        r"\(4, 4\)",
    )
    add(
        "GauntNet.forward",
        "integer pos",
        lambda: _gauntnet()({**_molecule(), "pos": torch.zeros(4, 3, dtype=torch.long)}),
        r"\bpos\b",
        "int64",
    )
    add(
        "GauntNet.forward",
        "float64 pos for a float32 model",
        lambda: _gauntnet()(_molecule(dtype=F64)),
        r"\bpos\b",
        "float64",
        "float32",
    )

    # ---- exact tables (so3), layers (nn), more models and the task builders
    from equiscale import nn as enn
    from equiscale import so3
    from equiscale.models.baselines import GNNBaseline, MLPBaseline
    from equiscale.models.se3_hyena import HyenaNet

    add("wigner_6j", "negative j", lambda: so3.wigner_6j(-1, 1, 1, 1, 1, 1), "j1", "-1")
    add("sh_dim", "negative lmax", lambda: so3.sh_dim(-1), r"\blmax\b", "-1")
    add("lmax_from_dim", "5 is not a square", lambda: so3.lmax_from_dim(5), r"\bdim\b", "5")
    add("solid_harmonics", "r [4, 2]", lambda: so3.solid_harmonics(2, _randn(4, 2)), r"\br\b", r"\(4, 2\)")
    add("solid_harmonics", "negative lmax", lambda: so3.solid_harmonics(-1, _randn(4, 3)), r"\blmax\b", "-1")
    add("gaunt_coefficients", "negative degree", lambda: so3.gaunt_coefficients(-1, 1, 1), "lmax_in1")
    add("sphere_grid_points", "negative degree", lambda: so3.sphere_grid_points(-1), r"\bdegree\b", "-1")
    add(
        "real_spherical_harmonics",
        "negative lmax",
        lambda: so3.real_spherical_harmonics(-1, _randn(4, 3)),
        r"\blmax\b",
        "-1",
    )
    add(
        "real_spherical_harmonics",
        "vectors [4, 2]",
        lambda: so3.real_spherical_harmonics(2, _randn(4, 2)),
        r"\bvectors\b",
        r"\(4, 2\)",
    )
    add("to_e3nn", "5 SH rows", lambda: so3.to_e3nn(_randn(4, 5, 2)), r"\bx\b", "5")
    add(
        "wigner6j_conv_weights",
        "negative degree",
        lambda: so3.wigner6j_conv_weights(-1, 1, 1),
        r"\ba\b",
        "-1",
    )
    add("DegreeLinear", "0 input channels", lambda: enn.DegreeLinear(1, 0, 4), "channels", "0")
    add("DegreeLinear", "negative lmax", lambda: enn.DegreeLinear(-1, 2, 4), r"\blmax\b", "-1")
    add(
        "DegreeLinear.forward",
        "3 channels for 2",
        lambda: enn.DegreeLinear(1, 2, 4)(_randn(3, 4, 3)),
        r"\bx\b",
        r"\(3, 4, 3\)",
    )
    add(
        "GauntSelfMix.forward",
        "9 SH rows for lmax 1",
        lambda: enn.GauntSelfMix(1, 1, 2)(_randn(3, 9, 2)),
        r"\bx\b",
        r"\(3, 9, 2\)",
    )
    gconv = lambda: enn.GauntConv(1, 1, 1, 2)
    add("GauntConv", "negative lmax", lambda: enn.GauntConv(-1, 1, 1, 2), r"\blmax\b", "-1")
    add(
        "GauntConv", "unknown method", lambda: enn.GauntConv(1, 1, 1, 2, method="fast"), r"\bmethod\b", "fast"
    )
    add("GauntConv.forward", "pos [3, 2]", lambda: gconv()(_randn(3, 4, 2), _randn(3, 2), ei), r"\bpos\b")
    add(
        "GauntConv.forward",
        "float edge_index",
        lambda: gconv()(_randn(3, 4, 2), _randn(3, 3), ei.float()),
        "edge_index",
        "float32",
    )
    add(
        "GauntConv.forward",
        "edge_index points at node 5 of 3",
        lambda: gconv()(_randn(3, 4, 2), _randn(3, 3), torch.tensor([[0], [5]])),
        "edge_index",
        "5",
    )
    add(
        "GauntConv.forward",
        "shifts [2, 3] for 1 edge",
        lambda: gconv()(_randn(3, 4, 2), _randn(3, 3), torch.tensor([[0], [1]]), torch.zeros(2, 3)),
        r"\bshifts\b",
        r"\(2, 3\)",
    )
    add(
        "GauntManyBody.forward",
        "float z",
        lambda: enn.GauntManyBody(1, 1, 2)(_randn(3, 4, 2), torch.zeros(3)),
        r"\bz\b",
        "float32",
    )
    add(
        "GauntManyBody.forward",
        "z = 7 with 3 elements",
        lambda: enn.GauntManyBody(1, 1, 2, num_elements=3)(_randn(3, 4, 2), torch.tensor([0, 1, 7])),
        r"\bz\b",
        "7",
    )
    add("SE3HyenaOperator", "unknown parity", lambda: enn.SE3HyenaOperator(4, 2, parity="o3"), "parity", "o3")
    add(
        "SE3HyenaOperator.forward",
        "vectors with 3 channels for 2",
        lambda: enn.SE3HyenaOperator(4, 2)(_randn(2, 5, 4), _randn(2, 5, 3, 3)),
        "vectors",
        r"\(2, 5, 3, 3\)",
    )
    add(
        "EquivariantAttention",
        "heads do not divide channels",
        lambda: enn.EquivariantAttention(4, 2, 3),
        "heads",
        "3",
    )
    add(
        "EquivariantAttention.forward",
        "v [B, N, 2, 2]",
        lambda: enn.EquivariantAttention(4, 2, 2)(_randn(2, 5, 4), _randn(2, 5, 2, 2)),
        r"\bv\b",
        r"\(2, 5, 2, 2\)",
    )
    add(
        "HyenaOperator.forward", "width 5 for 6", lambda: enn.HyenaOperator(6)(_randn(2, 5, 5)), r"\bx\b", "6"
    )
    add("ImplicitFilter.forward", "n = -1", lambda: enn.ImplicitFilter(4)(-1), r"\bn\b", "-1")
    add(
        "VectorLinear.forward",
        "3 channels for 2",
        lambda: enn.VectorLinear(2, 3)(_randn(5, 3, 3)),
        r"\bv\b",
        r"\(5, 3, 3\)",
    )
    add(
        "HyenaNet.forward",
        "pos [B, N, 2]",
        lambda: HyenaNet(8, 2, 1)({**_recall_batch(), "pos": _randn(2, 5, 2)}),
        r"\bpos\b",
        r"\(2, 5, 2\)",
    )
    add(
        "HyenaNet.forward",
        "float64 batch for a float32 model",
        lambda: HyenaNet(8, 2, 1)(_recall_batch(dtype=F64)),
        r"\bpos\b",
        "float64",
    )
    add("HyenaNet.forward", "0 tokens", lambda: HyenaNet(8, 2, 1)(_recall_batch(n=0)), r"\bpos\b", "0")
    add(
        "MLPBaseline.forward",
        "4 particles for a 5-particle model",
        lambda: MLPBaseline(5)(_nbody_batch()),
        "n_particles",
        "4",
    )
    add(
        "GNNBaseline.forward",
        "batch without 'vel'",
        lambda: GNNBaseline(8, 1)({"loc": _randn(2, 4, 3)}),
        "vel",
    )
    from equiscale.train.tasks.molecules import md_task, qm9_task
    from equiscale.train.tasks.nbody import nbody_task
    from equiscale.train.tasks.recall import recall_task

    add("qm9_task", "unknown target", lambda: qm9_task(target="bogus"), r"\btarget\b", "bogus")
    add("qm9_task", "n_train = -1", lambda: qm9_task(n_train=-1), "n_train", "-1")
    add(
        "md_task",
        "missing extxyz file",
        lambda: md_task(path=str(tmp / "none.extxyz")),
        r"none\.extxyz",
        exc=(FileNotFoundError,),
    )
    add("recall_task", "length 2", lambda: recall_task(length=2), r"\blength\b", "2")
    add("nbody_task", "n_train = -3", lambda: nbody_task(n_train=-3), r"\bn\b", "-3")

    # ---- models: inputs on another device than the weights (meta stands in for a GPU)
    def meta(batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: v.to("meta") if v.is_floating_point() else v for k, v in batch.items()}

    add(
        "EGNN.forward",
        "batch on another device (meta)",
        lambda: _egnn()(meta(_nbody_batch())),
        r"\bloc\b",
        "meta",
    )
    add(
        "SE3HyenaNet.forward",
        "batch on another device (meta)",
        lambda: _hyena()(meta(_recall_batch())),
        r"\bpos\b",
        "meta",
    )
    add(
        "HyenaNet.forward",
        "batch on another device (meta)",
        lambda: HyenaNet(8, 2, 1)(meta(_recall_batch())),
        r"\bpos\b",
        "meta",
    )
    add(
        "FrameAveraging.forward",
        "batch on another device (meta)",
        lambda: _frame_avg()(meta(_recall_batch())),
        r"\bpos\b",
        "meta",
    )
    add(
        "E2Former.forward",
        "pos on another device (meta)",
        lambda: _e2former()(meta(_molecule())),
        r"\bpos\b",
        "meta",
    )
    add(
        "GauntNet.forward",
        "pos on another device (meta)",
        lambda: _gauntnet()(meta(_molecule())),
        r"\bpos\b",
        "meta",
    )

    # ---- data
    add(
        "charged_particles",
        "unknown split",
        lambda: nbody.charged_particles("validation"),
        r"\bsplit\b",
        "validation",
    )
    add(
        "charged_particles", "n = 0", lambda: nbody.charged_particles("test", n=0, cache=False), r"\bn\b", "0"
    )
    add(
        "charged_particles",
        "n = -5",
        lambda: nbody.charged_particles("test", n=-5, cache=False),
        r"\bn\b",
        "-5",
    )
    add(
        "charged_particles",
        "cache_dir is a number",
        lambda: nbody.charged_particles("test", cache_dir=3),
        "cache_dir",
    )
    add("nbody_baselines", "traj is a dict", lambda: nbody.nbody_baselines({}), r"\btraj\b", "dict")
    add("make_recall_sample", "length 2", lambda: recall.make_recall_sample(2, 4), r"\blength\b", "2")
    add("make_recall_sample", "length 5.5", lambda: recall.make_recall_sample(5.5, 4), r"\blength\b", "5.5")
    add("make_recall_sample", "vocab 0", lambda: recall.make_recall_sample(9, 0), r"\bvocab\b", "0")
    add(
        "make_recall_sample",
        "float16 dtype is fine, a string is not",
        lambda: recall.make_recall_sample(9, 2, dtype="float32"),
        r"\bdtype\b",
    )
    add("RecallDataset", "size -1", lambda: recall.RecallDataset(-1, 9, 2), r"\bsize\b", "-1")
    add("RecallDataset", "length 1", lambda: recall.RecallDataset(4, 1, 2), r"\blength\b", "1")
    good = "2\nProperties=species:S:1:pos:R:3 energy=-1.5\nH 0 0 0\nH 0 0 0.74\n"
    bad_files = [
        ("count line is not a number", "two\nProperties=species:S:1:pos:R:3\nH 0 0 0\nH 0 0 1\n", ":1:"),
        ("negative atom count", "-2\n\n", ":1:"),
        ("file ends inside a frame", "3\nProperties=species:S:1:pos:R:3\nH 0 0 0\n", "expected 3"),
        ("atom line with 3 columns", good.replace("H 0 0 0.74", "H 0 0.74"), ":4:"),
        ("coordinate is not a number", good.replace("0.74", "0.7x4"), ":4:"),
        ("unknown element", good.replace("H 0 0 0\n", "Xx 0 0 0\n"), "Xx"),
        ("energy is not a number", good.replace("-1.5", "minus"), ":2:"),
        ("Lattice with 8 numbers", good.replace("energy=-1.5", 'Lattice="1 0 0 0 1 0 0 0"'), "Lattice"),
        ("pbc with 2 flags", good.replace("energy=-1.5", 'pbc="T T"'), r"\bpbc\b"),
        ("Properties without pos", good.replace("pos:R:3", "xyz:R:3"), r"\bpos\b"),
        ("bad Properties triple", good.replace("pos:R:3", "pos:Q:3"), "Properties|pos:Q:3"),
        ("unbalanced quote", good.replace("energy=-1.5", 'comment="open'), ":2:"),
    ]
    for i, (what, text, pattern) in enumerate(bad_files):
        name = f"bad{i}.extxyz"
        add(
            "read_extxyz",
            what,
            (lambda n=name, t=text: read_extxyz(_extxyz(tmp, n, t))),
            re.escape(name),
            pattern,
        )

    # qm9: the loader refuses a bad cache argument before parsing anything
    from equiscale.data import qm9

    add("load_qm9", "cache is a number", lambda: qm9.load_qm9(cache=5), "cache")

    # ---- trainer configuration and command line
    add("load_config", "lr = -1", lambda: load_config(None, ["lr=-1"]), r"\blr\b", "-1")
    add("load_config", "lr = 'fast'", lambda: load_config(None, ["lr=fast"]), r"\blr\b", "fast")
    add(
        "load_config",
        "batch_size = 'ten'",
        lambda: load_config(None, ["batch_size=ten"]),
        "batch_size",
        "ten",
    )
    add("load_config", "batch_size = 0", lambda: load_config(None, ["batch_size=0"]), "batch_size")
    add("load_config", "max_epochs = 2.5", lambda: load_config(None, ["max_epochs=2.5"]), "max_epochs", "2.5")
    add("load_config", "unknown field", lambda: load_config(None, ["epochz=3"]), "epochz")
    add("load_config", "override without '='", lambda: load_config(None, ["lr"]), "override", "lr")
    add("load_config", "optimizer 'sgd'", lambda: load_config(None, ["optimizer=sgd"]), "optimizer", "sgd")
    add("load_config", "scheduler 'step'", lambda: load_config(None, ["scheduler=step"]), "scheduler", "step")
    add("load_config", "max_time '5 minutes'", lambda: load_config(None, ["max_time=5 minutes"]), "max_time")
    add("load_config", "data_args is a list", lambda: load_config(None, ["data_args=[1, 2]"]), "data_args")
    add("load_config", "negative grad_clip", lambda: load_config(None, ["grad_clip=-1"]), "grad_clip")
    yaml_list = tmp / "list.yaml"
    yaml_list.write_text("- task\n- nbody\n")
    add("load_config", "YAML holds a list", lambda: load_config(yaml_list), "list.yaml", "mapping")
    yaml_bad = tmp / "broken.yaml"
    yaml_bad.write_text("task: [nbody\n")
    add("load_config", "YAML does not parse", lambda: load_config(yaml_bad), "broken.yaml")
    yaml_code = tmp / "code.yaml"
    yaml_code.write_text("task: !!python/object/apply:os.system ['echo pwned']\n")
    add(
        "load_config",
        "YAML with a python tag (safe loader refuses it)",
        lambda: load_config(yaml_code),
        "code.yaml",
    )
    add("TrainConfig", "seed = True", lambda: TrainConfig(seed=True), r"\bseed\b", "True")
    add("TrainConfig", "weight_decay = -0.1", lambda: TrainConfig(weight_decay=-0.1), "weight_decay")
    add("equiscale train", "unknown --set field", lambda: _cli(["train", "--set", "nonsense=1"]), "nonsense")
    add("equiscale train", "--set lr=-1", lambda: _cli(["train", "--set", "lr=-1"]), r"\blr\b")
    add(
        "equiscale train",
        "unknown model",
        lambda: _cli(["train", "--model", "resnet50", "--out", str(tmp / "run_bad_model")]),
        "model",
        "resnet50",
    )
    add(
        "equiscale train",
        "missing --config file",
        lambda: _cli(["train", "--config", str(tmp / "no.yaml")]),
        "no.yaml",
        exc=(ValueError,),
    )
    add("equiscale bench", "unknown benchmark", lambda: _cli(["bench", "nope"]), "benchmark", "nope")
    add("equiscale data", "unknown data set", lambda: _cli(["data", "nope"]), "data set", "nope")
    add(
        "equiscale eval",
        "missing checkpoint",
        lambda: _cli(["eval", "--checkpoint", str(tmp / "x.ckpt")]),
        r"x\.ckpt",
    )
    bad_ckpt = tmp / "garbage.ckpt"
    bad_ckpt.write_bytes(b"\x80\x04not a checkpoint")
    add(
        "equiscale eval",
        "corrupt checkpoint",
        lambda: _cli(["eval", "--checkpoint", str(bad_ckpt)]),
        r"garbage\.ckpt",
    )
    return cases


# ------------------------------------------------------------------------------- empty inputs


def empty_cases() -> list[EmptyInput]:
    """0 tokens, 0 edges, 0 atoms, a single atom: correctly shaped empty or zero results, no NaN."""
    from equiscale import ops as w6
    from equiscale.data.extxyz import read_extxyz
    from equiscale.data.recall import RecallDataset
    from equiscale.ops import gaunt, long_conv, neighbors

    cases: list[EmptyInput] = []

    def add(entry: str, what: str, call: Callable[[], Any], check: Callable[[Any], None]) -> None:
        cases.append(EmptyInput(entry, what, call, check))

    for backend in ("dense", "fourier", "grid"):
        add(
            "GauntTensorProduct.forward",
            f"batch 0 ({backend})",
            lambda b=backend: _tp(backend=b)(_randn(0, 4, 8), _randn(0, 4, 8)),
            lambda out: _shape(out, (0, 9, 8)),
        )
    add(
        "GauntTensorProduct.forward",
        "0 channels",
        lambda: _tp(backend="grid")(_randn(3, 4, 0), _randn(3, 4, 0)),
        lambda out: _shape(out, (3, 9, 0)),
    )
    add(
        "gaunt_power",
        "batch 0",
        lambda: gaunt.gaunt_power(_randn(0, 4, 2), 3, 2),
        lambda out: _shape(out, (0, 9, 2)),
    )
    add(
        "gaunt_reference",
        "batch 0",
        lambda: gaunt.gaunt_reference(_randn(0, 4, 2), _randn(0, 4, 2), lmax_out=2),
        lambda out: _shape(out, (0, 9, 2)),
    )
    for name, fn, tail in (
        ("fft_conv", long_conv.fft_conv, (4,)),
        ("fft_cross_conv", long_conv.fft_cross_conv, (3,)),
        ("fft_dot_conv", long_conv.fft_dot_conv, ()),
    ):
        c = 4 if name == "fft_conv" else 3
        add(
            name,
            "0 tokens",
            lambda f=fn, c=c: f(_randn(2, 0, c), _randn(2, 0, c)),
            lambda out, t=tail: _shape(out, (2, 0) + t),
        )
        add(
            name,
            "1 token, bidirectional",
            lambda f=fn, c=c: f(_randn(2, 1, c), _randn(2, 1, c), causal=False),
            lambda out, t=tail: _shape(out, (2, 1) + t),
        )
    add(
        "fft_conv",
        "batch 0",
        lambda: long_conv.fft_conv(_randn(0, 5, 4), _randn(5, 4)),
        lambda out: _shape(out, (0, 5, 4)),
    )
    add(
        "fft_cross_dot_conv",
        "0 tokens",
        lambda: long_conv.fft_cross_dot_conv(_randn(2, 0, 3), _randn(2, 0, 3)),
        lambda out: (_shape(out[0], (2, 0, 3)), _shape(out[1], (2, 0))),
    )
    add(
        "fft_conv_reference",
        "0 tokens",
        lambda: long_conv.fft_conv_reference(_randn(2, 0, 4), _randn(0, 4)),
        lambda out: _shape(out, (2, 0, 4)),
    )

    empty_e = torch.zeros(2, 0, dtype=torch.long)
    add(
        "Wigner6jConv.forward",
        "0 edges",
        lambda: _w6j()(_randn(3, 4, 2), _randn(3, 3), empty_e, torch.ones(0)),
        lambda out: _zeros(out, (3, 4, 2)),
    )
    add(
        "Wigner6jConv.forward",
        "0 atoms",
        lambda: _w6j()(_randn(0, 4, 2), _randn(0, 3), empty_e, torch.ones(0)),
        lambda out: _shape(out, (0, 4, 2)),
    )
    add(
        "Wigner6jConv.forward",
        "single atom, no edges",
        lambda: _w6j(centring="target")(_randn(1, 4, 2), _randn(1, 3), empty_e, torch.ones(0)),
        lambda out: _zeros(out, (1, 4, 2)),
    )
    add(
        "edge_reference",
        "0 edges",
        lambda: w6.edge_reference(
            _randn(3, 4, 2), _randn(3, 3), empty_e, torch.ones(0), lmax_in=1, l_filter=[0, 1], lmax_out=1
        ),
        lambda out: _zeros(out, (3, 4, 2)),
    )
    add(
        "neighbor_list",
        "0 atoms",
        lambda: neighbors.neighbor_list(torch.zeros(0, 3), 2.0),
        lambda nb: (_shape(nb.edge_index, (2, 0)), _shape(nb.shifts, (0, 3))),
    )
    add(
        "neighbor_list",
        "single atom",
        lambda: neighbors.neighbor_list(torch.zeros(1, 3), 2.0),
        lambda nb: _shape(nb.edge_index, (2, 0)),
    )
    add(
        "neighbor_list",
        "single atom in a periodic box (its own images)",
        lambda: neighbors.neighbor_list(torch.zeros(1, 3), 1.2, cell=torch.eye(3), pbc=True),
        lambda nb: (_shape(nb.edge_index, (2, 6)), _shape(nb.shifts, (6, 3))),
    )

    add("EGNN.forward", "0 particles", lambda: _egnn()(_nbody_batch(n=0)), lambda out: _shape(out, (2, 0, 3)))
    add("EGNN.forward", "1 particle", lambda: _egnn()(_nbody_batch(n=1)), lambda out: _shape(out, (2, 1, 3)))
    add("EGNN.forward", "batch 0", lambda: _egnn()(_nbody_batch(b=0)), lambda out: _shape(out, (0, 4, 3)))
    add(
        "SE3HyenaNet.forward_tokens",
        "0 tokens",
        lambda: _hyena(vector_out=2, scalar_out=3).forward_tokens(_randn(2, 0, 3), None, _randn(2, 0, 3)),
        lambda out: (_shape(out[0], (2, 0, 3)), _shape(out[1], (2, 0, 2, 3)), _shape(out[2], (2, 0, 3))),
    )
    add(
        "SE3HyenaNet.forward",
        "1 token",
        lambda: _hyena()(_recall_batch(n=1)),
        lambda out: _shape(out, (2, 3)),
    )
    add(
        "SE3HyenaNet.forward",
        "n-body with 0 particles",
        lambda: _hyena(scalar_in=1, vector_in=1, causal=False)(_nbody_batch(n=0)),
        lambda out: _shape(out, (2, 0, 3)),
    )
    add(
        "SE3HyenaNet.forward",
        "batch 0",
        lambda: _hyena()(_recall_batch(b=0)),
        lambda out: _shape(out, (0, 3)),
    )
    add(
        "EquivariantTransformer.forward",
        "1 token",
        lambda: _transformer()(_recall_batch(n=1)),
        lambda out: _shape(out, (2, 3)),
    )
    add(
        "EquivariantTransformer.forward_tokens",
        "0 tokens",
        lambda: _transformer().forward_tokens(_randn(2, 0, 3), None, _randn(2, 0, 3)),
        lambda out: _shape(out[1], (2, 0, 1, 3)),
    )
    add(
        "FrameAveraging.forward",
        "1 token (all eigenvalues 0)",
        lambda: _frame_avg()(_recall_batch(n=1)),
        lambda out: _shape(out, (2, 3)),
    )
    for name, build in (("E2Former", _e2former), ("GauntNet", _gauntnet)):
        add(
            f"{name}.forward",
            "0 atoms",
            lambda b=build: b()(_molecule(n=0)),
            lambda out: (_shape(out["forces"], (0, 3)), out["energy"].numel() <= 1 or _fail("energy")),
        )
        add(
            f"{name}.forward",
            "single atom",
            lambda b=build: b()(_molecule(n=1)),
            lambda out: (_shape(out["energy"], (1,)), _zeros(out["forces"], (1, 3))),
        )
        add(
            f"{name}.forward",
            "two structures, one of them a single atom",
            lambda b=build: b()(
                {"pos": _randn(4, 3), "z": torch.tensor([1, 2, 1, 3]), "batch": torch.tensor([0, 0, 0, 1])}
            ),
            lambda out: (_shape(out["energy"], (2,)), _shape(out["forces"], (4, 3))),
        )
        add(
            f"{name}.forward",
            "atoms beyond the cutoff (0 edges)",
            lambda b=build: b()(
                {
                    "pos": 10.0 * torch.arange(3.0)[:, None].expand(3, 3).contiguous(),
                    "z": torch.tensor([1, 2, 3]),
                }
            ),
            lambda out: (_shape(out["energy"], (1,)), _zeros(out["forces"], (3, 3))),
        )
    from equiscale import nn as enn

    add(
        "DegreeLinear.forward",
        "batch 0",
        lambda: enn.DegreeLinear(1, 2, 4)(_randn(0, 4, 2)),
        lambda out: _shape(out, (0, 4, 4)),
    )
    add(
        "GauntSelfMix.forward",
        "batch 0",
        lambda: enn.GauntSelfMix(1, 1, 2)(_randn(0, 4, 2)),
        lambda out: _shape(out, (0, 4, 2)),
    )
    for method in ("grid", "edge"):
        add(
            "GauntConv.forward",
            f"0 edges ({method})",
            lambda m=method: enn.GauntConv(1, 1, 1, 2, method=m)(_randn(3, 4, 2), _randn(3, 3), empty_e),
            lambda out: _shape(out, (3, 4, 2)),
        )
        add(
            "GauntConv.forward",
            f"0 atoms ({method})",
            lambda m=method: enn.GauntConv(1, 1, 1, 2, method=m)(_randn(0, 4, 2), _randn(0, 3), empty_e),
            lambda out: _shape(out, (0, 4, 2)),
        )
    add(
        "GauntManyBody.forward",
        "0 atoms",
        lambda: enn.GauntManyBody(1, 1, 2)(_randn(0, 4, 2), torch.zeros(0, dtype=torch.long)),
        lambda out: _shape(out, (0, 4, 2)),
    )
    add(
        "SE3HyenaOperator.forward",
        "0 tokens",
        lambda: enn.SE3HyenaOperator(4, 2)(_randn(2, 0, 4), _randn(2, 0, 3, 2)),
        lambda out: (_shape(out[0], (2, 0, 4)), _shape(out[1], (2, 0, 3, 2))),
    )
    add(
        "SE3HyenaOperator.forward",
        "1 token, bidirectional",
        lambda: enn.SE3HyenaOperator(4, 2, causal=False)(_randn(2, 1, 4), _randn(2, 1, 3, 2)),
        lambda out: (_shape(out[0], (2, 1, 4)), _shape(out[1], (2, 1, 3, 2))),
    )
    add(
        "EquivariantAttention.forward",
        "0 tokens",
        lambda: enn.EquivariantAttention(4, 2, 2)(_randn(2, 0, 4), _randn(2, 0, 3, 2)),
        lambda out: (_shape(out[0], (2, 0, 4)), _shape(out[1], (2, 0, 3, 2))),
    )
    add(
        "HyenaOperator.forward",
        "0 tokens",
        lambda: enn.HyenaOperator(6)(_randn(2, 0, 6)),
        lambda out: _shape(out, (2, 0, 6)),
    )
    add("ImplicitFilter.forward", "n = 0", lambda: enn.ImplicitFilter(4)(0), lambda out: _shape(out, (0, 4)))
    from equiscale.models.baselines import GNNBaseline
    from equiscale.models.se3_hyena import HyenaNet

    add(
        "GNNBaseline.forward",
        "0 particles",
        lambda: GNNBaseline(8, 1)(_nbody_batch(n=0)),
        lambda out: _shape(out, (2, 0, 3)),
    )
    add(
        "HyenaNet.forward",
        "1 token",
        lambda: HyenaNet(8, 2, 1)(_recall_batch(n=1)),
        lambda out: _shape(out, (2, 3)),
    )
    add("RecallDataset", "size 0", lambda: RecallDataset(0, 9, 2), lambda ds: len(ds) == 0 or _fail("len"))
    add(
        "read_extxyz",
        "empty file",
        lambda: read_extxyz(_tmp_file("")),
        lambda frames: frames == [] or _fail("[]"),
    )
    add(
        "read_extxyz",
        "frame with 0 atoms",
        lambda: read_extxyz(_tmp_file("0\nenergy=0.0\n")),
        lambda frames: _shape(torch.as_tensor(frames[0].pos), (0, 3)),
    )
    return cases


def _fail(what: str) -> None:
    raise AssertionError(f"unexpected {what}")


def _tmp_file(text: str) -> Path:
    import tempfile

    fd, name = tempfile.mkstemp(suffix=".extxyz")
    with open(fd, "w") as fh:
        fh.write(text)
    return Path(name)


# -------------------------------------------------------------------------- degenerate geometry


def _geometries(n: int = 5) -> dict[str, Tensor]:
    """Point clouds ``[n, 3]`` (float64) that break naive code."""
    g = _randn(n, 3, dtype=F64, seed=7)
    line = torch.linspace(-1.0, 1.0, n, dtype=F64)[:, None] * torch.tensor([0.6, 0.0, 0.8], dtype=F64)
    plane = g * torch.tensor([1.0, 1.0, 0.0], dtype=F64)
    coinc = g.clone()
    coinc[1] = coinc[0]  # r_01 = 0
    tetra = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1], [0, 0, 0]], dtype=F64)[:n]
    return {
        "coincident pair (r_ij = 0)": coinc,
        "all points coincident": torch.zeros(n, 3, dtype=F64) + 0.3,
        "collinear": line,
        "coplanar": plane,
        "tetrahedron + centre (triple eigenvalue)": tetra,
        "1e4 from the origin": g + 1e4,
        "tiny scale (1e-6)": 1e-6 * g,
        "huge scale (1e3, beyond the cutoff)": 1e3 * g,
    }


def _energy_force_case(build: Callable[[], Any], pos: Tensor) -> dict[str, Tensor]:
    """Energy, forces and the second derivatives a force loss needs (params and positions)."""
    model = build().double().train()
    p = pos.clone().requires_grad_(True)
    out = model({"pos": p, "z": torch.arange(p.shape[0]) % 3 + 1})
    loss = out["energy"].pow(2).sum() + out["forces"].pow(2).sum()
    params = [q for q in model.parameters() if q.requires_grad]
    grads = torch.autograd.grad(loss, [p, *params], allow_unused=True)
    result = {
        "energy": out["energy"].detach(),
        "forces": out["forces"].detach(),
        "d(loss)/d(pos) (2nd derivative)": grads[0] if grads[0] is not None else torch.zeros(1),
    }
    flat = [g.reshape(-1) for g in grads[1:] if g is not None]
    result["d(loss)/d(params) (2nd derivative)"] = torch.cat(flat) if flat else torch.zeros(1)
    return result


def _point_model_case(build: Callable[[], Any], batch: dict[str, Tensor], pos_key: str) -> dict[str, Tensor]:
    model = build().double().train()
    batch = dict(batch)
    p = batch[pos_key].clone().requires_grad_(True)
    batch[pos_key] = p
    out = model(batch)
    params = [q for q in model.parameters() if q.requires_grad]
    grads = torch.autograd.grad(out.pow(2).sum(), [p, *params], allow_unused=True)
    flat = [g.reshape(-1) for g in grads[1:] if g is not None]
    return {"output": out.detach(), "d/d(pos)": grads[0], "d/d(params)": torch.cat(flat)}


def _w6j_case(pos: Tensor, centring: str, reference: bool) -> dict[str, Tensor]:
    from equiscale.ops import neighbors

    h = _randn(pos.shape[0], 4, 2, dtype=F64).requires_grad_(True)
    p = pos.clone().requires_grad_(True)
    n = pos.shape[0]
    ei = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")).reshape(2, -1)
    ei = ei[:, ei[0] != ei[1]]  # complete graph, coincident pairs included
    conv = _w6j(centring=centring)
    fn = conv.reference if reference else conv
    out = fn(h, p, ei, torch.ones(ei.shape[1], dtype=F64))
    gp, gh = torch.autograd.grad(out.pow(2).sum(), [p, h])
    del neighbors
    return {"output": out.detach(), "d/d(pos)": gp, "d/d(h)": gh}


def _gaunt_conv_case(pos: Tensor, method: str, odd: bool) -> dict[str, Tensor]:
    """GauntConv on a complete graph (radial weights re-drawn so the geometry matters): output,
    gradient and second derivative (of the squared gradient) w.r.t. positions."""
    from equiscale.nn.gaunt import GauntConv

    torch.manual_seed(0)
    conv = GauntConv(1, 2, 1, 2, method=method, odd_paths=odd, cutoff=3.0).double()
    torch.nn.init.normal_(conv.radial[-1].weight)
    n = pos.shape[0]
    ei = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")).reshape(2, -1)
    ei = ei[:, ei[0] != ei[1]]
    p = pos.clone().requires_grad_(True)
    out = conv(_randn(n, 4, 2, dtype=F64), p, ei)
    (g,) = torch.autograd.grad(out.pow(2).sum(), p, create_graph=True)
    (g2,) = torch.autograd.grad(g.pow(2).sum(), p)
    return {"output": out.detach(), "d/d(pos)": g.detach(), "second derivative": g2}


def degenerate_cases() -> list[Degenerate]:
    """Degenerate geometry for the operators and models: outputs, gradients and (for energy/force
    models) the second derivatives a force loss needs must be finite."""
    cases: list[Degenerate] = []
    geoms = _geometries()

    def add(
        entry: str,
        what: str,
        call: Callable[[], dict[str, Tensor]],
        check: Callable[[dict[str, Tensor]], None] = lambda out: None,
    ) -> None:
        cases.append(Degenerate(entry, what, call, check))

    for what, pos in geoms.items():
        if "huge" in what:
            continue  # edges are given explicitly here: the huge cloud is just another scale
        for centring in ("structure", "target"):
            add(
                "Wigner6jConv",
                f"{what}, centring={centring}",
                lambda p=pos, c=centring: _w6j_case(p, c, False),
            )
        add("edge_reference", what, lambda p=pos: _w6j_case(p, "structure", True))
    for what, pos in geoms.items():
        add("E2Former", what, lambda p=pos: _energy_force_case(_e2former, p))
        add("GauntNet", what, lambda p=pos: _energy_force_case(_gauntnet, p))
        batch = {
            "loc": pos[None],
            "vel": torch.ones(1, pos.shape[0], 3, dtype=F64),
            "charges": torch.ones(1, pos.shape[0], dtype=F64),
        }
        add("EGNN", what, lambda b=batch: _point_model_case(_egnn, b, "loc"))
        recall = {"pos": pos[None], "token_type": torch.ones(1, pos.shape[0], 3, dtype=F64)}
        add("SE3HyenaNet", what, lambda b=recall: _point_model_case(_hyena, b, "pos"))
        add("EquivariantTransformer", what, lambda b=recall: _point_model_case(_transformer, b, "pos"))
        degenerate_spectrum = any(w in what for w in ("all points coincident", "collinear", "tetrahedron"))

        def fa_check(out: dict[str, Tensor], expect: bool = degenerate_spectrum) -> None:
            if expect:
                assert bool(out["degenerate flag"].all()), "repeated eigenvalues were not flagged"

        def fa_call(b=recall) -> dict[str, Tensor]:
            out = _point_model_case(_frame_avg, b, "pos")
            from equiscale.models.frame_averaging import pca_frames

            out["degenerate flag"] = pca_frames(b["pos"])[2].to(F64)
            return out

        add("FrameAveraging", what, fa_call, fa_check)
    for method in ("grid", "edge"):
        for odd in (False, True):
            for what in ("coincident pair (r_ij = 0)", "all points coincident", "tiny scale (1e-6)"):
                add(
                    f"GauntConv(method={method!r}, odd_paths={odd})",
                    what,
                    lambda m=method, o=odd, p=geoms[what]: _gaunt_conv_case(p, m, o),
                )
    from equiscale.ops import neighbors

    add(
        "neighbor_list",
        "coincident pair: edge_vectors finite, both directions listed",
        lambda: {
            "r": neighbors.edge_vectors(
                geoms["coincident pair (r_ij = 0)"],
                neighbors.neighbor_list(geoms["coincident pair (r_ij = 0)"], 2.0).edge_index,
            )
        },
    )
    return cases


# ------------------------------------------------------------------------------------ safe files


class _Payload:
    """Unpickling this would create ``marker`` (stands in for arbitrary code in a checkpoint)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _malicious_checkpoint(tmp: Path) -> dict[str, Any]:
    from equiscale.train import load_checkpoint

    marker, path = tmp / "pwned", tmp / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"config": _Payload(marker)}}, path)
    try:
        load_checkpoint(path)
        refused = ""
    except ValueError as err:
        refused = str(err)
    return {"refused": refused, "ran_code": marker.exists(), "names_file": "evil.ckpt" in refused}


def _corrupt_cache(tmp: Path, how: str) -> dict[str, Any]:
    import warnings

    import numpy as np

    from equiscale.data.cache import CorruptCacheWarning, cached_arrays, load_npz, save_npz

    path = tmp / f"cache_{how}.npz"
    save_npz(path, {"x": np.arange(5.0)})
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:40])
    else:  # the same checksum with other numbers
        with np.load(path) as z:
            stored = {k: z[k] for k in z.files}
        stored["x"] = stored["x"] + 1
        np.savez(path, **stored)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        arrays = cached_arrays(path, lambda: {"x": np.arange(5.0) * 2})
    warned = any(issubclass(w.category, CorruptCacheWarning) for w in caught)
    again = load_npz(path)  # the rebuilt file is intact
    leftovers = [p.name for p in tmp.iterdir() if p.name.endswith(".tmp")]
    return {
        "warned": warned,
        "rebuilt": bool((arrays["x"] == np.arange(5.0) * 2).all()),
        "intact": bool((again["x"] == arrays["x"]).all()),
        "leftovers": leftovers,
    }


def _interrupted_checkpoint_write(tmp: Path) -> dict[str, Any]:
    from equiscale.train.checkpoint_io import AtomicCheckpointIO

    io_ = AtomicCheckpointIO()
    path = tmp / "ckpts" / "last.ckpt"
    io_.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    before = path.read_bytes()
    try:
        io_.save_checkpoint({"epoch": 2, "w": torch.zeros(3), "bad": lambda: None}, path)  # pickling fails
        failed = False
    except Exception:  # noqa: BLE001 - the write is meant to fail midway
        failed = True
    leftovers = [p.name for p in path.parent.iterdir() if p.name != "last.ckpt"]
    return {
        "failed": failed,
        "unchanged": path.read_bytes() == before,
        "leftovers": leftovers,
        "loads": torch.load(path, weights_only=True)["epoch"] == 1,
    }


def safe_file_cases(tmp_dir: str | Path | None = None) -> list[EmptyInput]:
    """Files: untrusted checkpoints and configs run no code, corrupt caches are rebuilt with a
    warning, an interrupted checkpoint write leaves the previous file intact, malformed
    npz/extxyz input is reported with the key or line (the extxyz cases are in bad_input_cases)."""
    import tempfile

    import numpy as np

    from equiscale.data.cache import CacheError, load_npz, save_npz

    tmp = Path(tmp_dir) if tmp_dir is not None else Path(tempfile.mkdtemp(prefix="equiscale_files_"))
    cases: list[EmptyInput] = []

    def add(entry: str, what: str, call: Callable[[], Any], check: Callable[[Any], None]) -> None:
        cases.append(EmptyInput(entry, what, call, check))

    def expect(out: dict[str, Any], **want: Any) -> None:
        for key, value in want.items():
            assert out[key] == value, f"{key}: expected {value!r}, got {out[key]!r} ({out})"

    add(
        "load_checkpoint",
        "a checkpoint whose unpickling would run code is refused (weights_only)",
        lambda: _malicious_checkpoint(tmp),
        lambda o: expect(o, ran_code=False, names_file=True),
    )
    for how in ("truncated", "checksum mismatch"):
        add(
            "cached_arrays",
            f"{how} cache file is rebuilt with a CorruptCacheWarning",
            lambda h=how: _corrupt_cache(tmp, h),
            lambda o: expect(o, warned=True, rebuilt=True, intact=True, leftovers=[]),
        )
    add(
        "AtomicCheckpointIO",
        "a write that fails midway leaves the previous checkpoint intact",
        lambda: _interrupted_checkpoint_write(tmp),
        lambda o: expect(o, failed=True, unchanged=True, leftovers=[], loads=True),
    )

    def missing_key() -> str:
        path = save_npz(tmp / "keys.npz", {"a": np.zeros(2)})
        try:
            load_npz(path, required=("a", "forces"))
        except CacheError as err:
            return str(err)
        return ""

    add(
        "load_npz",
        "an npz without a required array names the key and the file",
        missing_key,
        lambda msg: ("forces" in msg and "keys.npz" in msg) or _fail(f"message {msg!r}"),
    )

    def pickled_npz() -> str:
        path = tmp / "objects.npz"
        np.savez(path, a=np.array([{"x": 1}], dtype=object))
        try:
            load_npz(path)
        except CacheError as err:
            return str(err)
        return ""

    add(
        "load_npz",
        "an npz holding pickled objects is refused (allow_pickle=False)",
        pickled_npz,
        lambda msg: "objects.npz" in msg or _fail(f"message {msg!r}"),
    )
    return cases
