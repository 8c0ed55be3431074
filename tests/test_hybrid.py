"""HybridNet (E2Former + SE(3)-Hyena): float64 equivariance, forces = -dE/dr (gradcheck), errors."""

from __future__ import annotations

import pytest
import torch

from equiscale.models.hybrid import HybridNet
from equiscale.testing import assert_equivariant


def _structures():
    g = torch.Generator().manual_seed(0)
    pos = torch.cat([torch.randn(7, 3, generator=g, dtype=torch.float64) * 1.6,
                     torch.randn(5, 3, generator=g, dtype=torch.float64) * 1.4 + 3.0])
    z = torch.tensor([6, 1, 1, 8, 7, 1, 6, 8, 1, 1, 6, 7])
    batch = torch.tensor([0] * 7 + [1] * 5)
    return pos, z, batch


def _model(**kw):
    torch.manual_seed(0)
    args = dict(num_elements=10, channels=8, lmax=2, num_layers=2, heads=2, num_radial=4, cutoff=3.0,
                filter_hidden=8)
    args.update(kw)
    model = HybridNet(**args).double().eval()
    with torch.no_grad():
        model.pos_weight.normal_()  # zero at initialisation: exercise the position channel too
    return model


@pytest.mark.parametrize("parity,centring", [("e3", "structure"), ("e3", "target"), ("se3", "structure")])
def test_energy_invariant_forces_equivariant(parity, centring):
    pos, z, batch = _structures()
    model = _model(parity=parity, centring=centring)

    def fn(p):
        out = model({"pos": p, "z": z, "batch": batch})
        return out["energy"], out["forces"]

    errors = assert_equivariant(fn, [pos], ["position"], ["scalar", "vector"], rotation=True,
                                reflection=parity == "e3", translation=True, trials=1, tol=1e-9)
    assert set(errors) >= {"rotation", "translation"}


def test_se3_parity_is_not_reflection_equivariant():
    """The check above can fail: with parity "se3" a reflection changes the forces."""
    from equiscale.testing import equivariance_error

    pos, z, batch = _structures()
    model = _model(parity="se3")

    def fn(p):
        return model({"pos": p, "z": z, "batch": batch})["forces"]

    err = equivariance_error(fn, [pos], ["position"], ["vector"], rotation=False, reflection=True,
                             translation=False)
    assert err["reflection"] > 1e-6


def test_global_blocks_see_beyond_the_cutoff():
    """Moving an atom of structure 0 far beyond r_c of every other atom changes the others' forces
    (the Hyena blocks couple all atoms); structure 1 is untouched (structures are independent)."""
    pos, z, batch = _structures()
    model = _model()
    a = model({"pos": pos, "z": z, "batch": batch})["forces"]
    moved = pos.clone()
    moved[0] += torch.tensor([40.0, 0.0, 0.0], dtype=torch.float64)
    b = model({"pos": moved, "z": z, "batch": batch})["forces"]
    assert (a[1:7] - b[1:7]).abs().max() > 1e-6
    torch.testing.assert_close(a[7:], b[7:], rtol=1e-12, atol=1e-12)


def test_forces_are_exact_gradients():
    pos, z, batch = _structures()
    pos, z = pos[7:], z[7:]  # one structure of 5 atoms: gradcheck cost grows with 3N
    model = _model(channels=4, num_layers=1, lmax=1)
    forces = model({"pos": pos, "z": z})["forces"]
    model.compute_forces = False

    def energy(p):
        return model({"pos": p, "z": z})["energy"]

    p = pos.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(energy, (p,), eps=1e-6, atol=1e-7)
    (grad,) = torch.autograd.grad(energy(p).sum(), p)
    torch.testing.assert_close(forces, -grad, rtol=1e-12, atol=1e-12)
    # training mode keeps the graph of the forces (create_graph): their own gradient is exact too,
    # so a force loss trains the weights correctly
    model.compute_forces = True
    model.train()

    def forces_of(p):
        return model({"pos": p, "z": z})["forces"]

    assert torch.autograd.gradcheck(forces_of, (pos.clone().requires_grad_(True),), eps=1e-6, atol=1e-6,
                                    fast_mode=True)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="lmax"):
        HybridNet(lmax=0)
    with pytest.raises(ValueError, match="parity"):
        HybridNet(parity="o3")
    with pytest.raises(ValueError, match="channels"):
        HybridNet(channels=0)
    pos, z, batch = _structures()
    model = _model()
    with pytest.raises(ValueError, match="sorted"):
        model({"pos": pos, "z": z, "batch": batch.flip(0)})
    with pytest.raises(ValueError, match="cell"):
        model({"pos": pos, "z": z, "batch": batch, "cell": torch.eye(3, dtype=torch.float64)[None]})
