"""GauntNet: invariant energy, equivariant forces (E(3)), forces = -dE/dpos, batching."""

from __future__ import annotations

import pytest
import torch

from equiscale.models.gaunt_net import GauntNet
from equiscale.testing import assert_equivariant


def _molecule(n=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    pos = 1.2 * torch.randn(n, 3, generator=gen, dtype=torch.float64)
    z = torch.randint(0, 4, (n,), generator=gen)
    return pos, z


def _model(**kw):
    torch.manual_seed(0)
    return GauntNet(
        num_elements=4, channels=8, lmax=2, lmax_sh=2, num_layers=2, correlation=2, cutoff=4.0, **kw
    ).double()


def test_energy_invariant_forces_equivariant():
    model = _model().eval()
    pos, z = _molecule()
    fn = lambda pos: tuple(model({"pos": pos, "z": z})[k] for k in ("energy", "forces"))
    errors = assert_equivariant(
        fn, [pos], ["position"], ["scalar", "vector"], reflection=True, translation=True, tol=1e-9
    )
    assert max(errors.values()) < 1e-9


@pytest.mark.parametrize(
    "options", [dict(self_connection=True), dict(many_body_mix=True), dict(radial_layers=2, radial_hidden=12)]
)
def test_options_keep_equivariance_and_forces(options):
    model = _model(**options).eval()
    if model.self_connection is not None:  # identity at initialisation: make it do something
        with torch.no_grad():
            for w in model.self_connection:
                w.add_(0.3 * torch.randn_like(w))
    pos, z = _molecule(seed=4)
    fn = lambda pos: tuple(model({"pos": pos, "z": z})[k] for k in ("energy", "forces"))
    errors = assert_equivariant(
        fn, [pos], ["position"], ["scalar", "vector"], reflection=True, translation=True, tol=1e-9
    )
    assert max(errors.values()) < 1e-9
    perm = torch.randperm(pos.shape[0], generator=torch.Generator().manual_seed(0))
    out, permuted = model({"pos": pos, "z": z}), model({"pos": pos[perm], "z": z[perm]})
    torch.testing.assert_close(permuted["energy"], out["energy"], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(permuted["forces"], out["forces"][perm], rtol=1e-10, atol=1e-12)
    # the option changes the function (a silently ignored option would not)
    assert (out["energy"] - _model().eval()({"pos": pos, "z": z})["energy"]).abs().max() > 1e-6


def test_forces_are_minus_energy_gradient():
    model = _model().eval()
    pos, z = _molecule(4, seed=1)
    forces = model({"pos": pos, "z": z})["forces"]
    eps = 1e-6
    shifted = pos.clone()
    shifted[2, 1] += eps
    e_plus = model({"pos": shifted, "z": z})["energy"]
    shifted[2, 1] -= 2 * eps
    e_minus = model({"pos": shifted, "z": z})["energy"]
    numeric = -(e_plus - e_minus) / (2 * eps)
    assert abs(numeric.item() - forces[2, 1].item()) < 1e-6


def test_batched_equals_separate_and_training_grads():
    model = _model()
    (p1, z1), (p2, z2) = _molecule(4, seed=2), _molecule(3, seed=3)
    batch = {"pos": torch.cat([p1, p2]), "z": torch.cat([z1, z2]), "batch": torch.tensor([0] * 4 + [1] * 3)}
    out = model(batch)
    e1 = model({"pos": p1, "z": z1})["energy"]
    e2 = model({"pos": p2, "z": z2})["energy"]
    torch.testing.assert_close(out["energy"], torch.cat([e1, e2]))
    loss = out["energy"].pow(2).sum() + out["forces"].pow(2).sum()
    loss.backward()  # force loss reaches the weights (create_graph while training)
    assert model.convs[0].radial[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="z must lie"):
        model({"pos": p1, "z": z1 + 10})


@pytest.mark.parametrize("build", ["gauntnet", "e2former", "egnn_energy"])
@pytest.mark.parametrize("z", [torch.tensor([1.7, 1.0, 2.0]), torch.tensor([True, False, True])])
def test_non_integer_atomic_numbers_are_an_error(build, z):
    """A float 1.7 was truncated to element 1 (and bools read as 0/1): silent wrong answers."""
    from equiscale.models.e2former import E2Former
    from equiscale.models.egnn_energy import EGNNEnergy

    model = {
        "gauntnet": lambda: GauntNet(num_elements=4, channels=4, lmax=1, lmax_sh=1, num_layers=1),
        "e2former": lambda: E2Former(num_elements=4),
        "egnn_energy": lambda: EGNNEnergy(num_elements=4),
    }[build]()
    with pytest.raises(TypeError, match=r"batch\['z'\] must be an integer tensor"):
        model({"pos": torch.randn(3, 3), "z": z})
