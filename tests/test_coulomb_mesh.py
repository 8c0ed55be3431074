"""Particle-mesh Coulomb sum (equiscale.ops.coulomb.coulomb_energy_mesh) against the direct pair sum:
energies and forces on random inputs (float64 budget 1e-6 relative on the energy, float32 1e-5),
batched structures, gradients of its own energy (gradcheck, double backward), invariance to its
mesh error, errors that name the argument, and the HybridNet option that uses it."""

from __future__ import annotations

import math

import pytest
import torch

from equiscale.ops.coulomb import coulomb_energy, coulomb_energy_mesh
from equiscale.testing import random_rotation


def _system(n: int = 120, box: float = 11.0, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(n, 3, generator=g, dtype=dtype) * box
    q = torch.randn(n, generator=g, dtype=dtype)
    return q - q.mean(), pos


def _energy_forces(fn, q, pos):
    p = pos.clone().requires_grad_(True)
    e = fn(q, p)
    (g,) = torch.autograd.grad(e.sum(), p)
    return e.detach(), -g


@pytest.mark.parametrize("spacing,smoothing", [(0.5, None), (0.4, 1.4)])
def test_mesh_sum_equals_the_direct_sum(spacing, smoothing):
    """smoothing None = sigma (no short part); 1.4 > sigma adds the short-range pair part."""
    q, pos = _system()
    sigma = 1.0
    e0, f0 = _energy_forces(lambda q, p: coulomb_energy(q, p, [len(q)], sigma), q, pos)
    e1, f1 = _energy_forces(
        lambda q, p: coulomb_energy_mesh(q, p, [len(q)], sigma, spacing=spacing, smoothing=smoothing), q, pos
    )
    assert abs(float(e1 - e0)) < 1e-6 * abs(float(e0))
    rms = f0.pow(2).mean().sqrt()
    assert float((f1 - f0).abs().max()) < 2e-5 * float(rms)


def test_structures_of_a_batch_are_independent_and_float32_keeps_its_budget():
    qa, pa = _system(40, 7.0, seed=1)
    qb, pb = _system(25, 6.0, seed=2)
    qb = qb + 0.3  # a charged structure: the self terms are removed per atom, not per structure
    q, pos = torch.cat([qa, qb]), torch.cat([pa, pb + 50.0])
    both = coulomb_energy_mesh(q, pos, [40, 25], 0.8, spacing=0.4)
    alone = torch.cat(
        [
            coulomb_energy_mesh(qa, pa, [40], 0.8, spacing=0.4),
            coulomb_energy_mesh(qb, pb, [25], 0.8, spacing=0.4),
        ]
    )
    torch.testing.assert_close(both, alone, rtol=1e-12, atol=1e-12)
    direct = coulomb_energy(q, pos, [40, 25], 0.8)
    torch.testing.assert_close(both, direct, rtol=1e-6, atol=1e-9)
    f32 = coulomb_energy_mesh(q.float(), pos.float(), [40, 25], 0.8, spacing=0.4)
    assert f32.dtype == torch.float32
    torch.testing.assert_close(f32.double(), direct, rtol=1e-5, atol=1e-5)


def test_invariance_holds_to_the_mesh_error_only():
    """The mesh follows the bounding box: a rotation or translation changes the energy by the mesh
    error (below 1e-6 relative here), not by float64 round-off."""
    q, pos = _system(80, 9.0, seed=3)
    e = coulomb_energy_mesh(q, pos, [80], 1.0, spacing=0.5)
    rot = random_rotation(torch.float64, torch.Generator().manual_seed(0))
    moved = pos @ rot.T + torch.tensor([0.17, -3.3, 12.71], dtype=torch.float64)
    e2 = coulomb_energy_mesh(q, moved, [80], 1.0, spacing=0.5)
    assert abs(float(e2 - e)) < 1e-6 * abs(float(e))


def test_gradients_of_the_mesh_energy_are_exact_twice():
    """Forces are the exact gradient of the mesh energy (gradcheck in pos and q) and the force
    graph differentiates again (a force loss): gradgradcheck."""
    q, pos = _system(5, 3.0, seed=4)
    p = pos.clone().requires_grad_(True)
    qq = q.clone().requires_grad_(True)

    def energy(qv, pv):
        return coulomb_energy_mesh(qv, pv, [5], 1.0, spacing=0.5, smoothing=1.2)

    assert torch.autograd.gradcheck(energy, (qq, p), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradgradcheck(energy, (qq, p), eps=1e-6, atol=1e-5)


def test_coincident_atoms_give_finite_energy_and_forces():
    q, pos = _system(6, 3.0, seed=5)
    pos[1] = pos[0]
    e, f = _energy_forces(
        lambda q, p: coulomb_energy_mesh(q, p, [6], 0.7, spacing=0.3, smoothing=1.0), q, pos
    )
    assert bool(torch.isfinite(e).all()) and bool(torch.isfinite(f).all())
    assert float(e) == pytest.approx(float(coulomb_energy(q, pos, [6], 0.7)), rel=1e-6)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"spacing": 0.0}, "spacing"),
        ({"spacing": True}, "spacing"),
        ({"spacing": 0.5, "smoothing": 0.8}, "smoothing"),
        ({"sigma": -1.0}, "sigma"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    q, pos = _system(10, 4.0)
    sigma = kwargs.pop("sigma", 1.0)
    with pytest.raises(ValueError, match=match):
        coulomb_energy_mesh(q, pos, [10], sigma, **kwargs)


def test_bad_inputs_are_named():
    q, pos = _system(10, 4.0)
    with pytest.raises(ValueError, match="counts"):
        coulomb_energy_mesh(q, pos, [9], 1.0)
    bad = pos.clone()
    bad[3, 1] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        coulomb_energy_mesh(q, bad, [10], 1.0)
    with pytest.raises(ValueError, match="dtype"):
        coulomb_energy_mesh(q.float(), pos, [10], 1.0)
    # a non-contiguous view gives the energy of its contiguous copy
    wide = torch.cat([pos, pos], dim=1)[:, ::2]  # [10, 3], stride 2
    assert not wide.is_contiguous()
    torch.testing.assert_close(
        coulomb_energy_mesh(q, wide, [10], 1.0), coulomb_energy_mesh(q, wide.contiguous(), [10], 1.0)
    )
    far = pos.clone()
    far[0] += 5000.0  # one atom 5,000 A away: a mesh of ~10^12 points is refused, not allocated
    with pytest.raises(ValueError, match="max_points"):
        coulomb_energy_mesh(q, far, [10], 1.0)


def test_hybrid_mesh_option_matches_the_direct_option():
    """Same weights, long_range "coulomb_mesh" vs "coulomb": energies and forces agree to the mesh
    error; the option's arguments are checked."""
    from equiscale.models.hybrid import HybridNet

    g = torch.Generator().manual_seed(0)
    pos = torch.randn(14, 3, generator=g, dtype=torch.float64) * 2.0
    z = torch.randint(1, 9, (14,), generator=g)
    args = dict(num_elements=10, channels=8, lmax=1, num_layers=1, heads=2, num_radial=4, cutoff=3.0)
    torch.manual_seed(0)
    direct = HybridNet(**args, long_range="coulomb").double().eval()
    mesh = HybridNet(**args, long_range="coulomb_mesh", mesh_spacing=0.4).double().eval()
    mesh.load_state_dict(direct.state_dict())
    a, b = direct({"pos": pos, "z": z}), mesh({"pos": pos, "z": z})
    assert float(a["charges"].detach().abs().max()) > 1e-3
    torch.testing.assert_close(b["energy"], a["energy"], rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(b["forces"], a["forces"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="mesh_spacing"):
        HybridNet(**args, long_range="coulomb_mesh", mesh_spacing=-1.0)
