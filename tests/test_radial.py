"""Radial bases: the Bessel basis equals its closed form, is smooth at r = 0, and GauntNet with it
stays E(3)-equivariant."""

from __future__ import annotations

import math

import pytest
import torch

from equiscale.models.gaunt_net import GauntNet
from equiscale.nn.radial import BesselBasis, radial_basis
from equiscale.testing import assert_equivariant


def test_bessel_closed_form_and_origin():
    cutoff, basis = 4.0, BesselBasis(6, 4.0).double()
    r = torch.linspace(0.05, 4.0, 50, dtype=torch.float64)
    n = torch.arange(1, 7, dtype=torch.float64)
    expected = math.sqrt(2 / cutoff) * torch.sin(n * math.pi * r[:, None] / cutoff) / r[:, None]
    torch.testing.assert_close(basis(r), expected, rtol=1e-12, atol=1e-12)
    assert basis(torch.tensor([cutoff], dtype=torch.float64)).abs().max() < 1e-12
    r0 = torch.tensor([0.0, 1e-7], dtype=torch.float64, requires_grad=True)
    y = basis(r0)
    torch.testing.assert_close(y[0], math.sqrt(2 / cutoff) * n * math.pi / cutoff)
    (g,) = torch.autograd.grad(y.sum(), r0)
    assert torch.isfinite(g).all() and g.abs().max() < 1e-4
    with pytest.raises(ValueError, match="radial_basis"):
        radial_basis("fourier", 4, 1.0)


def test_gauntnet_bessel_equivariant():
    torch.manual_seed(0)
    model = (
        GauntNet(
            num_elements=4,
            channels=8,
            lmax=1,
            lmax_sh=3,
            num_layers=2,
            correlation=3,
            cutoff=4.0,
            radial="bessel",
        )
        .double()
        .eval()
    )
    gen = torch.Generator().manual_seed(0)
    pos = 1.2 * torch.randn(5, 3, generator=gen, dtype=torch.float64)
    z = torch.randint(0, 4, (5,), generator=gen)
    fn = lambda pos: tuple(model({"pos": pos, "z": z})[k] for k in ("energy", "forces"))
    errors = assert_equivariant(
        fn, [pos], ["position"], ["scalar", "vector"], reflection=True, translation=True, tol=1e-9
    )
    assert max(errors.values()) < 1e-9
