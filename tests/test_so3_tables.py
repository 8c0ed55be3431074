"""so3 tables: layout, e3nn's real SH, Gaunt coefficients, SH <-> 2D Fourier, SH <-> sphere grid."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from e3nn import o3
from sympy.physics.wigner import wigner_3j as sympy_3j

from equiscale import so3


def test_layout_index_and_degrees():
    assert so3.sh_index(2, -2) == 4 and so3.sh_dim(3) == 16
    ls, ms = so3.sh_degrees(3), so3.sh_orders(3)
    for k in range(16):
        assert so3.sh_index(int(ls[k]), int(ms[k])) == k
    assert so3.lmax_from_dim(25) == 4
    with pytest.raises(ValueError, match="dim"):
        so3.lmax_from_dim(10)
    with pytest.raises(ValueError, match="lmax"):
        so3.sh_dim(-1)


def test_e3nn_layout_round_trip_matches_irreps_slices():
    lmax, c = 3, 5
    x = torch.randn(2, so3.sh_dim(lmax), c, dtype=torch.float64)
    flat = so3.to_e3nn(x)
    irreps = so3.sh_irreps(lmax, c)
    assert flat.shape == (2, irreps.dim)
    for (mul, ir), sl in zip(irreps, irreps.slices()):
        block = flat[:, sl].reshape(2, mul, ir.dim)  # e3nn mul_ir: [mul, 2l+1]
        expected = x[:, ir.l**2 : (ir.l + 1) ** 2, :].transpose(1, 2)
        torch.testing.assert_close(block, expected, rtol=0, atol=0)
    torch.testing.assert_close(so3.from_e3nn(flat, lmax, c), x, rtol=0, atol=0)
    with pytest.raises(ValueError, match="channels"):
        so3.from_e3nn(flat, lmax, c + 1)


def test_real_sh_equals_e3nn_to_l12():
    v = torch.randn(64, 3, dtype=torch.float64)
    ours = so3.real_spherical_harmonics(12, v)
    ref = o3.spherical_harmonics(list(range(13)), v, True, normalization="integral")
    assert (ours - ref).abs().max() < 1e-12


def test_real_sh_orthonormal_beyond_e3nn():
    lmax = 16
    points, weights = so3.sphere_grid_points(2 * lmax)
    y = so3.real_spherical_harmonics(lmax, points.reshape(-1, 3))
    gram = torch.einsum("pi,p,pj->ij", y, weights.reshape(-1), y)
    assert (gram - torch.eye(so3.sh_dim(lmax), dtype=torch.float64)).abs().max() < 1e-12


def test_quadrature_exact():
    t, w, phi = so3.sphere_quadrature(4)
    assert len(t) == 3 and len(phi) == 5
    points, weights = so3.sphere_grid_points(4)
    assert abs((weights * points[..., 1] ** 4).sum().item() - 4 * math.pi / 5) < 1e-13
    assert abs(weights.sum().item() - 4 * math.pi) < 1e-13


@pytest.mark.parametrize("lmaxes", [(2, 3, 4), (4, 4, 4), (1, 5, 3)])
def test_gaunt_equals_scaled_wigner_3j(lmaxes):
    l1max, l2max, l3max = lmaxes
    table = so3.gaunt_coefficients(l1max, l2max, l3max)
    for l1 in range(l1max + 1):
        for l2 in range(l2max + 1):
            for l3 in range(l3max + 1):
                block = table[l1**2 : (l1 + 1) ** 2, l2**2 : (l2 + 1) ** 2, l3**2 : (l3 + 1) ** 2]
                if not (abs(l1 - l2) <= l3 <= l1 + l2) or (l1 + l2 + l3) % 2:
                    assert block.abs().max() == 0, (l1, l2, l3)
                    continue
                w = o3.wigner_3j(l1, l2, l3, dtype=torch.float64)
                c = (block * w).sum()
                assert (block - c * w).abs().max() < 1e-13
                expected = math.sqrt((2 * l1 + 1) * (2 * l2 + 1) * (2 * l3 + 1) / (4 * math.pi))
                expected *= abs(float(sympy_3j(l1, l2, l3, 0, 0, 0)))
                assert abs(abs(c.item()) - expected) < 1e-13, (l1, l2, l3)


def test_gaunt_symmetric_and_scalar_row():
    table = so3.gaunt_coefficients(3, 3, 3)
    torch.testing.assert_close(table, table.transpose(0, 1), rtol=0, atol=1e-15)
    torch.testing.assert_close(table, table.transpose(0, 2), rtol=0, atol=1e-15)
    eye = torch.eye(16, dtype=torch.float64) / math.sqrt(4 * math.pi)
    torch.testing.assert_close(table[0], eye, rtol=0, atol=1e-15)


def test_gaunt_sparse_matches_dense_and_is_cached_copy():
    index, values = so3.gaunt_coefficients_sparse(3, 2, 4)
    dense = so3.gaunt_coefficients(3, 2, 4)
    assert int((dense != 0).sum()) == values.numel()
    torch.testing.assert_close(dense[index[0], index[1], index[2]], values)
    values.zero_()  # mutating the copy must not change the cache
    assert so3.gaunt_coefficients_sparse(3, 2, 4)[1].abs().max() > 0


def test_fourier_basis_sparse_and_exact():
    lmax = 6
    c = so3.sh_to_fourier(lmax)  # [K, u, v]
    ms = so3.sh_orders(lmax)
    v = torch.arange(-lmax, lmax + 1)
    mask = v.abs()[None, None, :] != ms.abs()[:, None, None]
    assert c.abs()[mask.expand_as(c)].max() == 0  # only v = +-m
    theta = torch.rand(20, dtype=torch.float64) * math.pi
    phi = torch.rand(20, dtype=torch.float64) * 2 * math.pi
    u = torch.arange(-lmax, lmax + 1, dtype=torch.float64)
    eu, ev = torch.exp(1j * u[None] * theta[:, None]), torch.exp(1j * u[None] * phi[:, None])
    values = torch.einsum("kuv,pu,pv->pk", c, eu, ev)
    points = torch.stack([theta.sin() * phi.sin(), theta.cos(), theta.sin() * phi.cos()], -1)
    expected = so3.real_spherical_harmonics(lmax, points)
    assert (values.real - expected).abs().max() < 1e-13
    assert values.imag.abs().max() < 1e-13


def test_fourier_projection_inverts_synthesis():
    lmax = 5
    c = so3.sh_to_fourier(lmax).numpy()
    s = so3.theta_projection(lmax, lmax).numpy()  # [m, u, l]
    e = so3.phi_projection(lmax).numpy()  # [v, m]
    out = np.einsum("kuv,vm,mul->kml", c, e, s).real  # [K, m, l]
    ls, ms = so3.sh_degrees(lmax).numpy(), so3.sh_orders(lmax).numpy()
    gram = out[:, ms + lmax, ls]
    assert np.abs(gram - np.eye(len(ls))).max() < 1e-13


def test_grid_tables_round_trip():
    lmax, degree = 4, 8
    theta, phi = so3.grid_synthesis_tables(lmax, degree)
    theta_a, phi_a = so3.grid_analysis_tables(lmax, degree)
    index = so3.padded_sh_index(lmax)
    x = torch.randn(so3.sh_dim(lmax), dtype=torch.float64)
    xp = torch.cat([x, x.new_zeros(1)])[index].view(2 * lmax + 1, lmax + 1)  # [m, l]
    grid = torch.einsum("mjl,ml,mk->kj", theta, xp, phi)  # [n_phi, n_theta]
    points, _ = so3.sphere_grid_points(degree)
    y = so3.real_spherical_harmonics(lmax, points)  # [n_theta, n_phi, K]
    assert (grid.T - y @ x).abs().max() < 1e-13
    back = torch.einsum("km,mlj,kj->ml", phi_a, theta_a, grid)
    assert (back - xp).abs().max() < 1e-13
