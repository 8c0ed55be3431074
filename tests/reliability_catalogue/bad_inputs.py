"""Bad inputs: every public entry point with inputs it must refuse, with a ValueError or
TypeError whose message names the argument (``tests/test_reliability_inputs.py``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from reliability_catalogue.common import (
    F64,
    BadInput,
    _cli,
    _e2former,
    _egnn,
    _extxyz,
    _frame_avg,
    _gauntnet,
    _graph,
    _hyena,
    _molecule,
    _nbody_batch,
    _randn,
    _recall_batch,
    _tp,
    _transformer,
    _w6j,
    _write,
)

# add(entry, what, call, *mentions, exc=(ValueError, TypeError)): one case
_Add = Callable[..., None]


def bad_input_cases(tmp: Path) -> list[BadInput]:
    """Every public entry point with inputs it must refuse (ValueError/TypeError naming the
    argument). ``tmp``: a writable folder for the file cases; nothing is written to it until a
    case runs, so listing the catalogue (test collection) leaves no files behind."""
    cases: list[BadInput] = []

    def add(
        entry: str,
        what: str,
        call: Callable[[], Any],
        *mentions: str,
        exc: tuple[type[BaseException], ...] = (ValueError, TypeError),
    ) -> None:
        cases.append(BadInput(entry, what, call, tuple(mentions), exc))

    for section in _SECTIONS:
        section(add, tmp)
    return cases


def _gaunt(add: _Add, tmp: Path) -> None:
    """Gaunt tensor product."""
    from equiscale.ops import gaunt

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


def _long_convolutions(add: _Add, tmp: Path) -> None:
    """Long convolutions."""
    from equiscale.ops import long_conv

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


def _wigner6j_conv(add: _Add, tmp: Path) -> None:
    """Wigner-6j convolution."""
    from equiscale import ops as w6

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


def _neighbour_lists(add: _Add, tmp: Path) -> None:
    """Neighbour lists."""
    from equiscale.ops import neighbors

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


def _models(add: _Add, tmp: Path) -> None:
    """Models."""

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


def _tables_layers_and_tasks(add: _Add, tmp: Path) -> None:
    """Exact tables (so3), layers (nn), more models and the task builders."""

    from equiscale import nn as enn
    from equiscale import so3
    from equiscale.models.baselines import GNNBaseline, MLPBaseline
    from equiscale.models.se3_hyena import HyenaNet

    ei = _graph()[2]  # the ring of edges of the Wigner-6j cases
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


def _models_on_another_device(add: _Add, tmp: Path) -> None:
    """Models: inputs on another device than the weights (meta stands in for a GPU)."""
    from equiscale.models.se3_hyena import HyenaNet

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


def _data(add: _Add, tmp: Path) -> None:
    """Data."""
    from equiscale.data import nbody, recall
    from equiscale.data.extxyz import read_extxyz

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


def _config_and_command_line(add: _Add, tmp: Path) -> None:
    """Trainer configuration and command line."""
    from equiscale.train.config import TrainConfig, load_config

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
    yaml_list = lambda: _write(tmp / "list.yaml", "- task\n- nbody\n")
    add("load_config", "YAML holds a list", lambda: load_config(yaml_list()), "list.yaml", "mapping")
    yaml_bad = lambda: _write(tmp / "broken.yaml", "task: [nbody\n")
    add("load_config", "YAML does not parse", lambda: load_config(yaml_bad()), "broken.yaml")
    yaml_code = lambda: _write(tmp / "code.yaml", "task: !!python/object/apply:os.system ['echo pwned']\n")
    add(
        "load_config",
        "YAML with a python tag (safe loader refuses it)",
        lambda: load_config(yaml_code()),
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
    bad_ckpt = lambda: _write(tmp / "garbage.ckpt", b"\x80\x04not a checkpoint")
    add(
        "equiscale eval",
        "corrupt checkpoint",
        lambda: _cli(["eval", "--checkpoint", str(bad_ckpt())]),
        r"garbage\.ckpt",
    )


_SECTIONS = (
    _gaunt,
    _long_convolutions,
    _wigner6j_conv,
    _neighbour_lists,
    _models,
    _tables_layers_and_tasks,
    _models_on_another_device,
    _data,
    _config_and_command_line,
)
