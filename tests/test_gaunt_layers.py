"""Gaunt layers: equivariance (rotations, reflections, translations), references, errors."""

from __future__ import annotations

import pytest
import torch

from equiscale.nn.gaunt import DegreeLinear, GauntConv, GauntManyBody, GauntSelfMix
from equiscale.ops.gaunt import gaunt_reference
from equiscale.testing import assert_equivariant, equivariance_error


def _feature(lmax, n, c, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, (lmax + 1) ** 2, c, generator=gen, dtype=torch.float64)


def _graph(n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    src, dst = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = src != dst
    return pos, torch.stack([src[keep], dst[keep]])


def test_degree_linear_equivariant_and_bias_on_scalars_only():
    layer = DegreeLinear(3, 4, 5).double()
    with torch.no_grad():
        layer.bias.fill_(1.0)
    assert_equivariant(layer, [_feature(3, 2, 4)], [("sh", 3)], [("sh", 3)], reflection=True, tol=1e-10)
    out = layer(torch.zeros(1, 16, 4, dtype=torch.float64))
    assert (out[0, 0] == 1).all() and (out[0, 1:] == 0).all()
    with pytest.raises(ValueError, match="x must have shape"):
        layer(_feature(2, 2, 4))


@pytest.mark.parametrize("backend", ["grid", "dense"])
def test_self_mix_equivariant(backend):
    layer = GauntSelfMix(2, 3, 4, backend=backend).double()
    errors = assert_equivariant(
        layer, [_feature(2, 3, 4)], [("sh", 2)], [("sh", 3)], reflection=True, tol=1e-10
    )
    assert errors["reflection"] < 1e-10


def test_self_mix_odd_paths_so3_only():
    layer = GauntSelfMix(2, 2, 4, odd_paths=True).double()
    errors = equivariance_error(layer, [_feature(2, 3, 4)], [("sh", 2)], [("sh", 2)], reflection=True)
    assert errors["rotation"] < 1e-10  # rotations: still equivariant
    assert errors["reflection"] > 1e-3  # the odd paths are pseudo-tensors: E(3) is given up


@pytest.mark.parametrize("odd_paths", [False, True])
def test_conv_equivariant(odd_paths):
    torch.manual_seed(0)
    layer = GauntConv(2, 2, 2, 4, cutoff=10.0, odd_paths=odd_paths).double()
    assert layer.method == "grid"
    pos, edges = _graph(5)
    x = _feature(2, 5, 4, seed=1)
    fn = lambda x, pos: layer(x, pos, edges)
    errors = assert_equivariant(
        fn,
        [x, pos],
        [("sh", 2), "position"],
        [("sh", 2)],
        translation=True,
        reflection=not odd_paths,
        tol=1e-10,
    )
    assert errors["rotation"] < 1e-10 and errors["translation"] < 1e-10


@pytest.mark.parametrize("lmaxes", [(1, 2, 2), (2, 1, 3), (0, 2, 1)])
def test_conv_grid_equals_edge_reference_and_cutoff(lmaxes):
    l_in, l_sh, l_out = lmaxes
    torch.manual_seed(1)
    grid = GauntConv(l_in, l_sh, l_out, 3, cutoff=1.5, avg_neighbors=2.0).double()
    edge = GauntConv(
        l_in, l_sh, l_out, 3, cutoff=1.5, avg_neighbors=2.0, method="edge", backend="dense"
    ).double()
    edge.load_state_dict(grid.state_dict())
    pos, edges = _graph(6, seed=2)
    x = _feature(l_in, 6, 3, seed=3)
    out = grid(x, pos, edges)
    assert out.shape == (6, (l_out + 1) ** 2, 3)
    torch.testing.assert_close(out, edge(x, pos, edges), rtol=1e-10, atol=1e-12)
    # edges longer than the cutoff contribute exactly nothing (smooth envelope)
    keep = (pos[edges[1]] - pos[edges[0]]).norm(dim=-1) < 1.5
    assert 0 < int(keep.sum()) < edges.shape[1]
    torch.testing.assert_close(grid(x, pos, edges[:, keep]), out)
    empty = grid(x, pos, edges[:, :0])
    torch.testing.assert_close(empty, grid.lin_out(torch.zeros_like(out)))


def test_many_body_equals_reference_powers():
    torch.manual_seed(2)
    layer = GauntManyBody(2, 2, 3, correlation=3, num_elements=4).double()
    a = _feature(2, 5, 3, seed=4)
    z = torch.tensor([0, 1, 3, 1, 2])
    out = layer(a, z)
    w = layer.weight[z][:, :, layer.degree]  # [N, nu, K, C]
    expected = sum(w[:, nu - 1] * gaunt_reference(*([a] * nu), lmax_out=2) for nu in (1, 2, 3))
    torch.testing.assert_close(out, layer.out(expected), rtol=1e-10, atol=1e-12)
    fn = lambda a: layer(a, z)
    assert_equivariant(fn, [a], [("sh", 2)], [("sh", 2)], reflection=True, tol=1e-10)
    with pytest.raises(ValueError, match="z must be"):
        layer(a, z.float())
    with pytest.raises(ValueError, match="backend"):
        GauntManyBody(2, 2, 3, backend="fourier")


def test_many_body_mix_equals_reference_chained_products():
    torch.manual_seed(3)
    layer = GauntManyBody(2, 2, 3, correlation=3, num_elements=4, mix=True).double()
    a = _feature(2, 5, 3, seed=5)
    z = torch.tensor([0, 1, 3, 1, 2])
    out = layer(a, z)
    w = layer.weight[z][:, :, layer.degree]  # [N, nu, K, C]
    mixed = [f(a) for f in layer.factors]
    expected = sum(w[:, nu - 1] * gaunt_reference(*mixed[:nu], lmax_out=2) for nu in (1, 2, 3))
    torch.testing.assert_close(out, layer.out(expected), rtol=1e-10, atol=1e-12)
    # the factors differ, so this is not the power path
    plain = sum(w[:, nu - 1] * gaunt_reference(*([a] * nu), lmax_out=2) for nu in (1, 2, 3))
    assert (layer.out(plain) - out).abs().max() > 1e-3
    fn = lambda a: layer(a, z)
    assert_equivariant(fn, [a], [("sh", 2)], [("sh", 2)], reflection=True, tol=1e-10)


def test_conv_radial_layers_argument():
    conv = GauntConv(1, 2, 1, 4, radial_hidden=6, radial_layers=3)
    linears = [m for m in conv.radial if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [6, 6, 6, 3 * 4]
    with pytest.raises(ValueError, match="radial_layers"):
        GauntConv(1, 2, 1, 4, radial_layers=0)
