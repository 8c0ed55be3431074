"""Degenerate geometry: coincident points (r_ij = 0), collinear, coplanar and highly symmetric
clouds (frame averaging with repeated eigenvalues), points 1e4 from the origin, tiny and huge
scales. Outputs, gradients and, for energy/force models, the second derivatives a force loss needs
are finite (cases in ``tests/reliability_catalogue/geometry.py``)."""

from __future__ import annotations

import pytest
import torch

from reliability_catalogue import common as C
from reliability_catalogue.geometry import degenerate_cases

DEGENERATE = degenerate_cases()


@pytest.mark.parametrize("case", DEGENERATE, ids=[c.id for c in DEGENERATE])
def test_degenerate_geometry_is_finite(case: C.Degenerate):
    out = C.run_degenerate(case)
    assert out and all(t is None or torch.isfinite(t).all() for t in out.values())


def test_every_model_and_geometry_is_covered():
    entries = {c.entry for c in DEGENERATE}
    assert {
        "Wigner6jConv",
        "E2Former",
        "GauntNet",
        "EGNN",
        "SE3HyenaNet",
        "EquivariantTransformer",
        "FrameAveraging",
    } <= entries
    whats = {c.what for c in DEGENERATE if c.entry == "GauntNet"}
    assert any("r_ij = 0" in w for w in whats) and any("1e4" in w for w in whats)
    assert any("collinear" in w for w in whats) and any("coplanar" in w for w in whats)


def test_zero_length_edge_keeps_only_degree_zero_like_the_reference():
    """Fast Wigner-6j path and the e3nn edge reference agree on coincident atoms (Y^l(0) = 0)."""
    torch.manual_seed(0)
    pos = torch.randn(4, 3, dtype=torch.float64)
    pos[1] = pos[0]
    h = torch.randn(4, 4, 3, dtype=torch.float64)
    ei = torch.tensor([[0, 1, 2, 3, 1], [1, 0, 0, 0, 2]])
    alpha = torch.rand(5, dtype=torch.float64)
    for centring in ("structure", "target"):
        conv = C._w6j(centring=centring)
        fast, ref = conv(h, pos, ei, alpha), conv.reference(h, pos, ei, alpha)
        assert torch.allclose(fast, ref, atol=1e-10, rtol=1e-10), (centring, (fast - ref).abs().max())


def test_far_from_origin_matches_reference_and_nothing_overflows():
    """1e4 from the origin, float64: the structure-centred fast path still equals the reference."""
    torch.manual_seed(1)
    pos = torch.randn(5, 3, dtype=torch.float64) + 1e4
    h = torch.randn(5, 4, 2, dtype=torch.float64)
    ei = torch.tensor([[0, 1, 2, 3, 4, 0], [1, 2, 3, 4, 0, 2]])
    alpha = torch.ones(6, dtype=torch.float64)
    conv = C._w6j()
    fast, ref = conv(h, pos, ei, alpha), conv.reference(h, pos, ei, alpha)
    assert torch.allclose(fast, ref, atol=1e-9, rtol=1e-9)


def test_coincident_atoms_are_listed_as_zero_length_neighbours():
    from equiscale.ops.neighbors import edge_vectors, neighbor_list

    pos = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    nb = neighbor_list(pos, 1.0)
    assert nb.edge_index.tolist() == [[1, 0], [0, 1]]  # both directions, no self pairs
    assert float(edge_vectors(pos, nb.edge_index).abs().max()) == 0.0
