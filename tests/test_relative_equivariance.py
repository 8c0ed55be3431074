"""The relative equivariance error (Kim et al. 2023): zero for equivariant models, hand-checked
values for known non-equivariant maps, one number per symmetry, clear errors for bad input."""

from __future__ import annotations

import math

import pytest
import torch

from equiscale.models.baselines import GNNBaseline
from equiscale.models.egnn import EGNN
from equiscale.testing import group_error, relative_equivariance_error, relative_error

TYPES = {"loc": "position", "vel": "vector", "charges": "scalar"}


def _batch(b: int = 6, n: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "loc": torch.randn(b, n, 3, generator=g, dtype=torch.float64),
        "vel": torch.randn(b, n, 3, generator=g, dtype=torch.float64),
        "charges": torch.randint(0, 2, (b, n), generator=g).double() * 2 - 1,
    }


def _errors(model: torch.nn.Module, **kw) -> dict[str, float]:
    return relative_equivariance_error(
        model.double(), _batch(), TYPES, ["position"], node_dims=1, out_node_dims=[1], batch_dim=0, **kw
    )


def test_zero_for_an_exactly_equivariant_model() -> None:
    torch.manual_seed(0)
    errs = _errors(EGNN(hidden=16, layers=2))
    assert list(errs) == ["rotation", "reflection", "translation", "permutation"]
    assert max(errs.values()) < 1e-12, errs


def test_plain_gnn_is_permutation_equivariant_only() -> None:
    torch.manual_seed(0)
    errs = _errors(GNNBaseline(hidden=16, layers=2))
    assert errs["permutation"] < 1e-12
    for name in ("rotation", "reflection", "translation"):
        assert 1e-4 < errs[name] < 1.0, errs


def test_hand_computed_rotation_error() -> None:
    """f(x) = x diag(1, 2, 3), x = e_1, R = 90 degrees about z: f(R x) = 2 e_2, R f(x) = e_2, so
    ||f(Rx) - Rf(x)|| / (||f(Rx)|| + ||Rf(x)||) = 1 / (2 + 1)."""
    scale = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    R = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    x = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    err = group_error(lambda v: v * scale, [x], ["vector"], ["vector"], R=R)
    assert err.item() == pytest.approx(1.0 / 3.0, abs=1e-15)


def test_hand_computed_translation_and_permutation_errors() -> None:
    # f(x) = 2 x on positions: f(x + t) - (f(x) + t) = t
    x = torch.tensor([[1.0, 2.0, 2.0]], dtype=torch.float64)
    t = torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64)
    err = group_error(lambda p: 2 * p, [x], ["position"], ["position"], t=t)
    expected = 3.0 / (torch.linalg.norm(2 * (x + t)) + torch.linalg.norm(2 * x + t)).item()
    assert err.item() == pytest.approx(expected, abs=1e-15)
    # f = cumulative sum over nodes, x = [1, 2], swap: f(gx) = [2, 3], g f(x) = [3, 1]
    s = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    err = group_error(
        lambda v: v.cumsum(0),
        [s],
        ["scalar"],
        ["scalar"],
        perm=torch.tensor([1, 0]),
        node_dims=[0],
        out_node_dims=[0],
    )
    assert err.item() == pytest.approx(math.sqrt(5) / (math.sqrt(13) + math.sqrt(10)), abs=1e-15)


def test_mean_over_trials_matches_the_hand_formula() -> None:
    """f(x) = x + c on vectors: the error of rotation R is |c - R c| / (|R x + c| + |R x + R c|);
    the reported number is its mean over the seeded rotations."""
    from equiscale.testing import random_rotation

    c = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    x = torch.tensor([[0.3, 0.1, -0.7]], dtype=torch.float64)
    errs = relative_equivariance_error(
        lambda v: v + c, [x], ["vector"], ["vector"], symmetries=["rotation"], trials=5, seed=3
    )
    gen = torch.Generator().manual_seed(3)
    by_hand = []
    for _ in range(5):
        R = random_rotation(torch.float64, gen)
        rx = x @ R.T
        by_hand.append(
            (
                torch.linalg.norm(c - R @ c) / (torch.linalg.norm(rx + c) + torch.linalg.norm(rx + R @ c))
            ).item()
        )
    assert errs["rotation"] == pytest.approx(sum(by_hand) / 5, rel=1e-12)


def test_relative_error_bounds_and_per_sample() -> None:
    a = torch.randn(4, 5, 3, dtype=torch.float64)
    b = torch.randn(4, 5, 3, dtype=torch.float64)
    per = relative_error(a, b, batch_dim=0)
    assert per.shape == (4,) and bool(((per >= 0) & (per <= 1)).all())
    assert relative_error(a, -a).item() == pytest.approx(1.0)  # opposite: the upper bound
    assert relative_error(torch.zeros(3), torch.zeros(3)).item() == 0.0  # 0 / 0 reads as 0
    assert relative_error(a[1], b[1]).item() == pytest.approx(per[1].item(), rel=1e-12)


def test_bad_arguments() -> None:
    f = lambda v: v  # noqa: E731
    x = [torch.randn(4, 3)]
    with pytest.raises(ValueError, match="symmetries"):
        relative_equivariance_error(f, x, ["vector"], ["vector"], symmetries=["scaling"])
    with pytest.raises(ValueError, match="trials"):
        relative_equivariance_error(f, x, ["vector"], ["vector"], trials=0)
    with pytest.raises(ValueError, match="in_types"):
        relative_equivariance_error(f, x, ["vector", "scalar"], ["vector"])
    with pytest.raises(ValueError, match="node_dims"):
        relative_equivariance_error(f, x, ["vector"], ["vector"], symmetries=["permutation"])
    with pytest.raises(ValueError, match="translation_scale"):
        relative_equivariance_error(f, x, ["vector"], ["vector"], translation_scale=0.0)
    with pytest.raises(TypeError, match="in_types"):
        relative_equivariance_error(lambda b: b["v"], {"v": x[0]}, ["vector"], ["vector"])
    with pytest.raises(ValueError, match="shapes"):
        relative_error(torch.zeros(3), torch.zeros(4))
    with pytest.raises(AssertionError, match="non-finite"):
        group_error(lambda v: v / 0.0, x, ["vector"], ["vector"], R=torch.eye(3, dtype=torch.float32))
