"""HybridNet (E2Former + SE(3)-Hyena): float64 equivariance, forces = -dE/dr (gradcheck), errors."""

from __future__ import annotations

import pytest
import torch

from equiscale.models.hybrid import HybridNet
from equiscale.testing import assert_equivariant


def _structures():
    g = torch.Generator().manual_seed(0)
    pos = torch.cat(
        [
            torch.randn(7, 3, generator=g, dtype=torch.float64) * 1.6,
            torch.randn(5, 3, generator=g, dtype=torch.float64) * 1.4 + 3.0,
        ]
    )
    z = torch.tensor([6, 1, 1, 8, 7, 1, 6, 8, 1, 1, 6, 7])
    batch = torch.tensor([0] * 7 + [1] * 5)
    return pos, z, batch


def _model(**kw):
    torch.manual_seed(0)
    args = dict(
        num_elements=10, channels=8, lmax=2, num_layers=2, heads=2, num_radial=4, cutoff=3.0, filter_hidden=8
    )
    args.update(kw)
    model = HybridNet(**args).double().eval()
    with torch.no_grad():
        model.pos_weight.normal_()  # zero at initialisation: exercise the position channel too
    return model


@pytest.mark.parametrize(
    "parity,centring,long_range",
    [
        ("e3", "structure", "none"),
        ("e3", "target", "none"),
        ("se3", "structure", "none"),
        ("e3", "target", "coulomb"),
    ],
)
def test_energy_invariant_forces_equivariant(parity, centring, long_range):
    pos, z, batch = _structures()
    model = _model(parity=parity, centring=centring, long_range=long_range)

    def fn(p):
        out = model({"pos": p, "z": z, "batch": batch})
        return out["energy"], out["forces"]

    errors = assert_equivariant(
        fn,
        [pos],
        ["position"],
        ["scalar", "vector"],
        rotation=True,
        reflection=parity == "e3",
        translation=True,
        trials=1,
        tol=1e-9,
    )
    assert set(errors) >= {"rotation", "translation"}


def test_se3_parity_is_not_reflection_equivariant():
    """The check above can fail: with parity "se3" a reflection changes the forces."""
    from equiscale.testing import equivariance_error

    pos, z, batch = _structures()
    model = _model(parity="se3")

    def fn(p):
        return model({"pos": p, "z": z, "batch": batch})["forces"]

    err = equivariance_error(
        fn, [pos], ["position"], ["vector"], rotation=False, reflection=True, translation=False
    )
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

    assert torch.autograd.gradcheck(
        forces_of, (pos.clone().requires_grad_(True),), eps=1e-6, atol=1e-6, fast_mode=True
    )


def test_coulomb_term_is_the_pair_sum():
    import math

    from equiscale.models.hybrid import COULOMB_EV_A, coulomb_energy

    pos, _, _ = _structures()
    g = torch.Generator().manual_seed(1)
    q = torch.randn(12, generator=g, dtype=torch.float64)
    sigma = 0.7
    got = coulomb_energy(q, pos, [7, 5], sigma, block=3)  # blocks of 3 rows
    want = []
    for lo, hi in ((0, 7), (7, 12)):
        e = 0.0
        for i in range(lo, hi):
            for j in range(i + 1, hi):
                r = float((pos[i] - pos[j]).norm())
                e += float(q[i] * q[j]) * math.erf(r / (math.sqrt(2) * sigma)) / r
        want.append(COULOMB_EV_A * e)
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    model = _model(long_range="coulomb")
    _, z, batch = _structures()
    out = model({"pos": pos, "z": z, "batch": batch})
    charges = out["charges"].detach()
    assert abs(float(charges[:7].sum())) < 1e-12 and abs(float(charges[7:].sum())) < 1e-12
    assert charges.abs().max() > 1e-3  # not trivially zero
    small = _model(channels=4, num_layers=1, lmax=1, long_range="coulomb")
    small.compute_forces = False
    p = pos[7:].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: small({"pos": x, "z": z[7:]})["energy"], (p,), eps=1e-6, atol=1e-7
    )


def test_coulomb_blocks_give_the_gradients_of_the_full_pair_matrix():
    """Row blocks under checkpointing: forces and a force loss's gradients (create_graph) equal
    those of the whole pair matrix at once."""
    import math

    from equiscale.models.hybrid import COULOMB_EV_A, coulomb_energy

    g = torch.Generator().manual_seed(2)
    pos0 = torch.randn(9, 3, generator=g, dtype=torch.float64) * 2
    q0 = torch.randn(9, generator=g, dtype=torch.float64)
    sigma = 0.8

    def full(q, pos):
        d = pos[:, None] - pos[None]
        off = ~torch.eye(9, dtype=torch.bool)
        r = torch.where(off, (d * d).sum(-1), torch.ones(9, 9, dtype=pos.dtype)).sqrt()
        k = torch.where(off, torch.erf(r / (math.sqrt(2) * sigma)) / r, torch.zeros_like(r))
        return (COULOMB_EV_A * 0.5 * (q[:, None] * q[None] * k).sum())[None]

    results = []
    for energy_of in (full, lambda q, p: coulomb_energy(q, p, [9], sigma, block=2)):
        q, pos = q0.clone().requires_grad_(True), pos0.clone().requires_grad_(True)
        (forces,) = torch.autograd.grad(-energy_of(q, pos).sum(), pos, create_graph=True)
        forces.square().sum().backward()
        results.append((forces.detach(), q.grad, pos.grad))
    for got, want in zip(results[1], results[0]):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="long_range"):
        HybridNet(long_range="ewald")
    with pytest.raises(ValueError, match="coulomb_sigma"):
        HybridNet(long_range="coulomb", coulomb_sigma=0.0)
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
