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
        ("e3", "global", "none"),
        ("e3", "attention", "none"),
        ("e3", "hybrid_attention", "none"),
    ],
)
def test_energy_invariant_forces_equivariant(parity, centring, long_range):
    """Rotation, reflection (parity e3) and translation to 1e-9 in float64; centring "global" /
    "attention" stand for the global-only variants (blocks="global" / "attention")."""
    pos, z, batch = _structures()
    kw = (
        {"blocks": centring}
        if centring in ("global", "attention", "hybrid_attention")
        else {"centring": centring}
    )
    model = _model(parity=parity, long_range=long_range, **kw)

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


def test_global_only_has_no_local_blocks_and_differs_from_hybrid():
    """blocks="global" builds no E2Former block and gives another energy than the hybrid with the
    same seed (the local blocks are really skipped, not zeroed)."""
    pos, z, batch = _structures()
    glob, hyb = _model(blocks="global"), _model()
    assert len(glob.local) == 0 and len(hyb.local) == 2
    assert sum(p.numel() for p in glob.parameters()) < sum(p.numel() for p in hyb.parameters())
    e_glob = glob({"pos": pos, "z": z, "batch": batch})["energy"]
    e_hyb = hyb({"pos": pos, "z": z, "batch": batch})["energy"]
    assert (e_glob - e_hyb).abs().max() > 1e-6


@pytest.mark.parametrize("blocks", ["hybrid", "global", "attention", "hybrid_attention"])
def test_forces_are_exact_gradients(blocks):
    pos, z, batch = _structures()
    pos, z = pos[7:], z[7:]  # one structure of 5 atoms: gradcheck cost grows with 3N
    model = _model(channels=4, num_layers=1, lmax=1, blocks=blocks)
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
    with pytest.raises(ValueError, match="blocks"):
        HybridNet(blocks="local")
    pos, z, batch = _structures()
    model = _model()
    with pytest.raises(ValueError, match="sorted"):
        model({"pos": pos, "z": z, "batch": batch.flip(0)})
    with pytest.raises(ValueError, match="cell"):
        model({"pos": pos, "z": z, "batch": batch, "cell": torch.eye(3, dtype=torch.float64)[None]})


def _dynamics(blocks="hybrid", **kw):
    from equiscale.models.hybrid import HybridDynamics

    torch.manual_seed(0)
    model = HybridDynamics(
        channels=8,
        lmax=2,
        num_layers=2,
        heads=2,
        num_radial=4,
        cutoff=3.0,
        filter_hidden=8,
        blocks=blocks,
        **kw,
    ).double()
    with torch.no_grad():  # zero at initialisation (the copy baseline): exercise every path
        model.out.normal_()
        model.pos_weight.normal_()
    return model


def _dynamics_batch():
    g = torch.Generator().manual_seed(1)
    loc = torch.randn(2, 9, 3, generator=g, dtype=torch.float64) * 1.8
    vel = torch.randn(2, 9, 3, generator=g, dtype=torch.float64)
    q = torch.randn(2, 9, generator=g, dtype=torch.float64)
    return loc, vel, q


@pytest.mark.parametrize("blocks", ["hybrid", "local", "global"])
def test_dynamics_is_e3_equivariant(blocks):
    loc, vel, q = _dynamics_batch()
    model = _dynamics(blocks)

    def fn(loc, vel, q):
        return model({"loc": loc, "vel": vel, "charges": q})

    errors = assert_equivariant(
        fn,
        [loc, vel, q],
        ["position", "vector", "scalar"],
        ["position"],
        rotation=True,
        reflection=True,
        translation=True,
        trials=1,
        tol=1e-9,
    )
    assert set(errors) >= {"rotation", "reflection", "translation"}


def test_dynamics_starts_at_the_copy_and_learns():
    """At initialisation the prediction is the input frame; one optimiser step on a target moves
    the loss down (the zero-initialised readout does not block the gradient); structures in a batch
    are independent."""
    from equiscale.models.hybrid import HybridDynamics

    loc, vel, q = _dynamics_batch()
    torch.manual_seed(0)
    model = HybridDynamics(channels=8, lmax=1, num_layers=1, heads=2, num_radial=4, cutoff=3.0).double()
    batch = {"loc": loc, "vel": vel, "charges": q}
    torch.testing.assert_close(model(batch), loc, rtol=0, atol=0)
    target = loc + 0.1 * vel
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = ((model(batch) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]
    single = model({"loc": loc[:1], "vel": vel[:1], "charges": q[:1]})
    torch.testing.assert_close(single, model(batch)[:1], rtol=1e-12, atol=1e-12)


def test_dynamics_local_only_is_local():
    """blocks="local": with two clusters 30 A apart (r_c 3 A), moving an atom of cluster A changes
    no prediction in cluster B; the hybrid's do change (its Hyena blocks couple all atoms)."""
    loc, vel, q = _dynamics_batch()
    loc[:, 5:] += torch.tensor([30.0, 0.0, 0.0], dtype=torch.float64)  # atoms 5..8: cluster B
    moved = loc.clone()
    moved[0, 0] += torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    for blocks, changes in (("local", False), ("hybrid", True)):
        model = _dynamics(blocks)
        a = model({"loc": loc, "vel": vel, "charges": q})
        b = model({"loc": moved, "vel": vel, "charges": q})
        diff = (a[0, 5:] - b[0, 5:]).abs().max().item()
        assert (diff > 1e-6) == changes, (blocks, diff)
        torch.testing.assert_close(a[1], b[1], rtol=1e-12, atol=1e-12)


def test_dynamics_bad_input_raises():
    from equiscale.models.hybrid import HybridDynamics

    loc, vel, q = _dynamics_batch()
    model = _dynamics()
    with pytest.raises(ValueError, match="charges"):
        model({"loc": loc, "vel": vel})
    with pytest.raises(ValueError, match=r"\[B, N, 3\]"):
        model({"loc": loc[0], "vel": vel[0], "charges": q[0]})
    with pytest.raises(ValueError, match="blocks"):
        HybridDynamics(blocks="nothing")
    with pytest.raises(TypeError, match="radial_basis"):  # a misspelt trunk option is not swallowed
        HybridDynamics(radial_basis=4)
    # the trunk options reach the trunk: HybridNet's defaults, and what is passed
    assert HybridDynamics().cutoff == HybridNet().cutoff == 5.0
    assert HybridDynamics(cutoff=3.5, checkpoint_blocks=True).checkpoint_blocks
    with pytest.raises(TypeError, match="radial_basis"):
        HybridNet(radial_basis=4)


def test_coulomb_term_is_finite_for_atoms_on_top_of_each_other():
    """Gaussian charges have a finite pair energy at r = 0 (2 k q_i q_j / (sqrt(2 pi) sigma)); two
    atoms at one point gave NaN energy and NaN forces before the small-r series. The series and
    the closed form agree across the switch, and the gradient is exact there (gradcheck)."""
    import math

    from equiscale.models.hybrid import COULOMB_EV_A, coulomb_energy

    q = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    sigma = 0.8
    on_top = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, 0.0]], dtype=torch.float64)
    p = on_top.clone().requires_grad_(True)
    e = coulomb_energy(q, p, [3], sigma)
    (grad,) = torch.autograd.grad(e.sum(), p)
    assert torch.isfinite(e).all() and torch.isfinite(grad).all()
    scale = 1.0 / (math.sqrt(2.0) * sigma)

    def by_hand(x):  # k sum_{i<j} q_i q_j erf(s r) / r, with its limit 2 s / sqrt(pi) at r = 0
        total = 0.0
        for i in range(3):
            for j in range(i + 1, 3):
                r = float((x[i] - x[j]).norm())
                f = 2 * scale / math.sqrt(math.pi) if r == 0 else math.erf(scale * r) / r
                total += float(q[i] * q[j]) * f
        return COULOMB_EV_A * total

    assert e.item() == pytest.approx(by_hand(on_top), rel=1e-12)
    for gap in (1e-9, 0.9e-3 / scale, 1.1e-3 / scale):  # either side of the series switch (s r = 1e-3)
        near = on_top.clone()
        near[1, 0] = gap
        assert coulomb_energy(q, near, [3], sigma).item() == pytest.approx(by_hand(near), rel=1e-10)
        near = near.requires_grad_(True)
        assert torch.autograd.gradcheck(
            lambda x: coulomb_energy(q, x, [3], sigma), (near,), eps=1e-7, atol=1e-6
        )


def test_checkpointed_blocks_give_the_same_energy_forces_and_training_gradients():
    """checkpoint_blocks=True recomputes each block in the backward pass: energy, forces and the
    parameter gradients of a force loss (double backward, as in training) are those of the plain
    model to float64 rounding."""
    pos, z, batch = _structures()
    plain, ckpt = _model(), _model(checkpoint_blocks=True)
    ckpt.load_state_dict(plain.state_dict())
    for m in (plain, ckpt):
        m.train()
    outs, grads = [], []
    for m in (plain, ckpt):
        out = m({"pos": pos, "z": z, "batch": batch})
        loss = (out["forces"] ** 2).sum() + out["energy"].sum()
        m.zero_grad()
        loss.backward()
        outs.append(out)
        grads.append({k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None})
    torch.testing.assert_close(outs[0]["energy"], outs[1]["energy"], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(outs[0]["forces"], outs[1]["forces"], rtol=1e-12, atol=1e-12)
    assert set(grads[0]) == set(grads[1]) and len(grads[0]) > 10
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], rtol=1e-10, atol=1e-12)


def test_global_only_model_trains_its_forces_from_initialisation():
    """blocks="global": the forces depend on the positions at initialisation and a force loss has a
    non-zero gradient for the position channel (with a zero-initialised position weight both were
    exactly 0: the forces stayed at 0 for the whole T4 run)."""
    torch.manual_seed(0)
    model = HybridNet(
        num_elements=10,
        channels=8,
        lmax=1,
        num_layers=2,
        heads=2,
        num_radial=4,
        cutoff=3.0,
        filter_hidden=8,
        blocks="global",
    ).train()
    pos, z, _ = _structures()
    out = model({"pos": pos.float()[:7], "z": z[:7]})
    assert out["forces"].abs().max() > 1e-4
    loss = ((out["forces"] - 1.0) ** 2).mean()
    loss.backward()
    assert model.pos_weight.grad.abs().max() > 1e-6
