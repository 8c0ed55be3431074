"""Empty inputs: 0 tokens, 0 edges, 0 atoms, one atom give correctly shaped, finite results
(``tests/test_reliability_inputs.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from reliability_catalogue.common import (
    EmptyInput,
    _e2former,
    _egnn,
    _fail,
    _frame_avg,
    _gauntnet,
    _hyena,
    _molecule,
    _nbody_batch,
    _randn,
    _recall_batch,
    _shape,
    _tp,
    _transformer,
    _w6j,
    _write,
    _zeros,
)


def empty_cases(tmp: Path) -> list[EmptyInput]:
    """0 tokens, 0 edges, 0 atoms, a single atom: correctly shaped empty or zero results, no NaN.
    ``tmp``: a writable folder for the file cases (written only when a case runs)."""
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
        lambda: read_extxyz(_write(tmp / "empty.extxyz", "")),
        lambda frames: frames == [] or _fail("[]"),
    )
    add(
        "read_extxyz",
        "frame with 0 atoms",
        lambda: read_extxyz(_write(tmp / "zero_atoms.extxyz", "0\nenergy=0.0\n")),
        lambda frames: _shape(torch.as_tensor(frames[0].pos), (0, 3)),
    )
    return cases
