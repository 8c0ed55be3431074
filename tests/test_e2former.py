"""E2Former: invariant energy, rotating forces, forces = -dE/dr, smooth cutoff, training step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from equiscale.models.e2former import E2Former
from equiscale.nn.e2former import EquivariantRMSNorm, Gate, SO3Linear
from equiscale.testing import assert_equivariant


def _molecules(seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(11, 3, generator=g, dtype=torch.float64) * 1.3
    z = torch.randint(1, 9, (11,), generator=g)
    batch = torch.tensor([0] * 4 + [1] * 7)
    return pos, z, batch


def _model(**kw):
    torch.manual_seed(0)
    args = dict(channels=8, lmax=2, num_layers=2, heads=2, num_radial=6, cutoff=3.5)
    args.update(kw)
    return E2Former(**args).double().eval()


@pytest.mark.parametrize("centring", ["structure", "target"])
def test_energy_invariant_forces_equivariant(centring):
    pos, z, batch = _molecules()
    model = _model(centring=centring, direct_forces=True)

    def fn(p):
        out = model({"pos": p, "z": z, "batch": batch})
        return out["energy"], out["forces"], out["direct_forces"]

    full = centring == "structure"  # the other centring: one rotation (same code otherwise)
    assert_equivariant(
        fn,
        [pos],
        ["position"],
        ["scalar", "vector", "vector"],
        rotation=True,
        reflection=full,
        translation=full,
        trials=2 if full else 1,
    )


def test_permutation_within_structure():
    pos, z, batch = _molecules(1)
    model = _model()
    perm = torch.cat([torch.tensor([2, 0, 3, 1]), 4 + torch.randperm(7)])
    a = model({"pos": pos, "z": z, "batch": batch})
    b = model({"pos": pos[perm], "z": z[perm], "batch": batch})
    torch.testing.assert_close(b["energy"], a["energy"], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(b["forces"], a["forces"][perm], rtol=1e-10, atol=1e-12)


def test_forces_are_negative_energy_gradient():
    pos, z, batch = _molecules(2)
    model = _model()
    out = model({"pos": pos, "z": z, "batch": batch})
    d = torch.randn(11, 3, dtype=torch.float64) * 1e-6
    e_plus = model({"pos": pos + d, "z": z, "batch": batch})["energy"].sum()
    e_minus = model({"pos": pos - d, "z": z, "batch": batch})["energy"].sum()
    fd = float((e_plus - e_minus).detach()) / 2
    assert fd == pytest.approx(-float((out["forces"] * d).sum()), rel=1e-5, abs=1e-14)


def test_energy_continuous_when_atom_crosses_cutoff():
    model = _model(cutoff=3.0)
    z = torch.tensor([6, 8])
    energies = []
    for r in (2.999999, 3.000001):
        pos = torch.tensor([[0.0, 0.0, 0.0], [r, 0.0, 0.0]], dtype=torch.float64)
        energies.append(float(model({"pos": pos, "z": z})["energy"].detach()))
    assert abs(energies[0] - energies[1]) < 1e-9


def test_training_step_and_periodic_input():
    pos, z, batch = _molecules(3)
    model = _model()
    model.train()
    out = model({"pos": pos, "z": z, "batch": batch})
    loss = out["energy"].square().mean() + out["forces"].square().mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    # periodic copper-like box: energy invariant under wrapping an atom into the next image
    model.eval()
    cell = torch.eye(3, dtype=torch.float64) * 4.0
    p = torch.rand(6, 3, dtype=torch.float64) * 4.0
    zz = torch.full((6,), 29)
    kw = dict(cell=cell[None], pbc=torch.tensor([[True, True, True]]))
    e1 = model({"pos": p, "z": zz, **kw})["energy"]
    p2 = p.clone()
    p2[0] += cell[1]
    e2 = model({"pos": p2, "z": zz, **kw})["energy"]
    torch.testing.assert_close(e1, e2, rtol=1e-10, atol=1e-10)


def test_layers_equivariant_and_bad_input():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5, 9, 6, generator=g, dtype=torch.float64)
    for layer in (SO3Linear(2, 6, 4), EquivariantRMSNorm(2, 6), Gate(2, 6)):
        layer = layer.double()
        assert_equivariant(layer, [x], [("sh", 2)], [("sh", 2)], reflection=True)
    model = _model()
    with pytest.raises(ValueError, match="'z'"):
        model({"pos": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match="pos must be"):
        model({"pos": torch.zeros(2, 2), "z": torch.ones(2, dtype=torch.long)})


def test_edge_method_gives_the_same_model():
    pos, z, batch = _molecules(5)
    node = _model()
    edge = _model(conv_method="edge")
    edge.load_state_dict(node.state_dict())
    a = node({"pos": pos, "z": z, "batch": batch})
    b = edge({"pos": pos, "z": z, "batch": batch})
    torch.testing.assert_close(a["energy"], b["energy"], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(a["forces"], b["forces"], rtol=1e-9, atol=1e-12)
    assert edge.blocks[0].attn.conv.method == "edge"
    with pytest.raises(ValueError, match="method"):
        _model(conv_method="fast")


@pytest.mark.filterwarnings("ignore::FutureWarning")  # ASE's numerical-stress helper
def test_stress_matches_finite_strain_and_ase():
    pytest.importorskip("ase")  # the train extra
    from ase import Atoms

    from equiscale.train.ase_calculator import EquiscaleCalculator

    torch.manual_seed(0)
    model = (
        E2Former(channels=8, lmax=1, num_layers=1, heads=2, num_radial=4, cutoff=3.0, compute_stress=True)
        .double()
        .eval()
    )
    g = torch.Generator().manual_seed(1)
    cell = torch.tensor([[3.6, 0.1, 0.0], [0.0, 3.5, 0.2], [0.1, 0.0, 3.7]], dtype=torch.float64)
    pos = torch.rand(4, 3, generator=g, dtype=torch.float64) @ cell
    z = torch.full((4,), 29)
    kw = dict(z=z, pbc=torch.tensor([[True, True, True]]))
    out = model({"pos": pos, "cell": cell[None], **kw})
    assert out["stress"].shape == (1, 3, 3)
    sigma = out["stress"][0].detach()
    volume = float(torch.linalg.det(cell))
    d = 1e-5
    for i, j in [(0, 0), (1, 2), (2, 1)]:
        eps = torch.zeros(3, 3, dtype=torch.float64)
        eps[i, j] = eps[j, i] = d / 2 if i != j else d

        def energy(e):
            m = torch.eye(3, dtype=torch.float64) + e
            return float(model({"pos": pos @ m, "cell": (cell @ m)[None], **kw})["energy"].detach())

        fd = (energy(eps) - energy(-eps)) / (2 * d) / volume
        expected = float(sigma[i, j] + sigma[j, i]) / 2 if i != j else float(sigma[i, i])
        assert fd == pytest.approx(expected, rel=1e-5, abs=1e-10)
    atoms = Atoms(numbers=[29] * 4, positions=pos.numpy(), cell=cell.numpy(), pbc=True)
    atoms.calc = EquiscaleCalculator(model)
    numerical = atoms.calc.calculate_numerical_stress(atoms, d=1e-5)
    assert np.allclose(atoms.get_stress(), numerical, rtol=1e-4, atol=1e-9)
