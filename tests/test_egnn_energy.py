"""EGNN-style energy model: invariant energy, equivariant forces (E(3) and permutations),
forces = -dE/dpos, batching."""

from __future__ import annotations

import torch

from equiscale.models.egnn_energy import EGNNEnergy
from equiscale.testing import assert_equivariant


def _molecule(n=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    pos = 1.2 * torch.randn(n, 3, generator=gen, dtype=torch.float64)
    return pos, torch.randint(0, 4, (n,), generator=gen)


def _model():
    torch.manual_seed(0)
    return EGNNEnergy(num_elements=4, channels=8, num_layers=2, num_radial=6, cutoff=3.0).double().eval()


def test_energy_invariant_forces_equivariant_and_permutation():
    model = _model()
    pos, z = _molecule()
    fn = lambda pos: tuple(model({"pos": pos, "z": z})[k] for k in ("energy", "forces"))
    errors = assert_equivariant(
        fn, [pos], ["position"], ["scalar", "vector"], reflection=True, translation=True, tol=1e-10
    )
    assert max(errors.values()) < 1e-10
    perm = torch.randperm(pos.shape[0], generator=torch.Generator().manual_seed(1))
    a, b = model({"pos": pos, "z": z}), model({"pos": pos[perm], "z": z[perm]})
    torch.testing.assert_close(b["energy"], a["energy"], rtol=0, atol=1e-12)
    torch.testing.assert_close(b["forces"], a["forces"][perm], rtol=0, atol=1e-12)


def test_forces_are_minus_gradient_and_batching():
    model = _model()
    pos, z = _molecule(5, seed=2)
    forces = model({"pos": pos, "z": z})["forces"]
    eps, shifted = 1e-6, pos.clone()
    shifted[3, 0] += eps
    e_plus = model({"pos": shifted, "z": z})["energy"]
    shifted[3, 0] -= 2 * eps
    e_minus = model({"pos": shifted, "z": z})["energy"]
    assert abs(-(e_plus - e_minus).item() / (2 * eps) - forces[3, 0].item()) < 1e-7
    p2, z2 = _molecule(3, seed=3)
    out = model(
        {"pos": torch.cat([pos, p2]), "z": torch.cat([z, z2]), "batch": torch.tensor([0] * 5 + [1] * 3)}
    )
    torch.testing.assert_close(out["energy"][1], model({"pos": p2, "z": z2})["energy"][0])
