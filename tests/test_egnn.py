"""EGNN and the baselines: E(3) and permutation equivariance, shapes, errors."""

import pytest
import torch

from equiscale.models.baselines import GNNBaseline, MLPBaseline
from equiscale.models.egnn import EGNN, complete_graph
from equiscale.testing import assert_equivariant, equivariance_error


def _inputs(b=3, n=5):
    g = torch.Generator().manual_seed(0)
    return [
        torch.randn(b, n, 3, generator=g),
        torch.randn(b, n, 3, generator=g),
        torch.randint(0, 2, (b, n), generator=g).float() * 2 - 1,
    ]


def _call(model):
    return lambda loc, vel, q: model({"loc": loc, "vel": vel, "charges": q})


def test_complete_graph():
    e = complete_graph(4)
    assert e.shape == (2, 12) and not (e[0] == e[1]).any()


def test_egnn_is_e3_and_permutation_equivariant():
    torch.manual_seed(0)
    model = EGNN(hidden=16, layers=3).double()
    for layer in model.layers:  # make the coordinate update large enough to matter
        torch.nn.init.normal_(layer.phi_x[-1].weight, std=0.3)
    errs = assert_equivariant(
        _call(model),
        _inputs(),
        ["position", "vector", "scalar"],
        ["position"],
        reflection=True,
        translation=True,
        permutation=True,
        node_dims=[1, 1, 1],
        out_node_dims=[1],
    )
    assert set(errs) == {"rotation", "reflection", "translation", "permutation"}


def test_baselines_are_not_rotation_equivariant():
    torch.manual_seed(0)
    for model in (MLPBaseline(hidden=32), GNNBaseline(hidden=16, layers=2)):
        errs = equivariance_error(
            _call(model.double()), _inputs(), ["position", "vector", "scalar"], ["position"]
        )
        assert errs["rotation"] > 1e-4


def test_egnn_rejects_bad_shapes():
    model = EGNN(hidden=8, layers=1)
    loc, vel, q = _inputs()
    with pytest.raises(ValueError, match="loc and vel"):
        model({"loc": loc[..., :2], "vel": vel, "charges": q})
    with pytest.raises(ValueError, match="charges"):
        model({"loc": loc, "vel": vel, "charges": q[:, :3]})
    with pytest.raises(ValueError, match="hidden"):
        EGNN(hidden=0)
