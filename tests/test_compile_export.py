"""torch.compile(fullgraph=True) of every operator (forward and backward equal to eager) and of every
energy model with forces (a force loss backpropagates through the compiled graph); torch.export of
every energy model, saved, loaded and differentiated for forces without our code.

``backend="aot_eager"``: Dynamo's graph capture and AOTAutograd, the parts that fail on graph
breaks and on untraceable code, without the minutes of C++ compilation of the default backend.
"""

from __future__ import annotations

import io

import pytest
import torch

from equiscale.models.e2former import E2Former
from equiscale.models.egnn_energy import EGNNEnergy
from equiscale.models.export import compile_energy_forces, export_energy, exported_energy_forces
from equiscale.models.gaunt_net import GauntNet
from equiscale.nn.hyena import SE3HyenaOperator
from equiscale.ops import (
    CGOddPaths,
    GauntPowers,
    GauntProduct,
    GauntTensorProduct,
    Wigner6jConv,
    fft_conv,
    fft_cross_conv,
    fft_dot_conv,
    neighbor_list,
)

D = torch.float64


def _rand(*shape, seed=0):
    return torch.randn(*shape, dtype=D, generator=torch.Generator().manual_seed(seed))


def _structure(n=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    pos = 2.0 * torch.randn(n, 3, dtype=D, generator=gen)
    z = torch.randint(0, 4, (n,), generator=gen)
    edge_index = neighbor_list(pos, 3.5).edge_index
    return pos, z, edge_index


def _wigner(centring):
    pos, _, edge_index = _structure()
    conv = Wigner6jConv(2, 2, 2, centring=centring)
    h, alpha = _rand(10, 9, 3, seed=1), _rand(edge_index.shape[1], 3, seed=2)
    return (lambda h, pos, alpha: conv(h, pos, edge_index, alpha)), (h, pos, alpha)


def _operators():
    x, y = _rand(4, 9, 3, seed=3), _rand(4, 9, 3, seed=4)
    cases = {
        f"gaunt_{b}": (GauntTensorProduct(2, 2, 2, backend=b), (x, y)) for b in ("dense", "grid", "fourier")
    }
    cases["gaunt_product"] = (GauntProduct([2, 2, 2], 2), (x, y, x))
    cases["gaunt_powers"] = (GauntPowers(2, 3, 2), (x,))
    cases["cg_odd_paths"] = (CGOddPaths(2, 2, 2), (x, y))
    cases["wigner6j_target"] = _wigner("target")
    cases["wigner6j_structure"] = _wigner("structure")
    u, q = _rand(2, 40, 3, seed=5), _rand(2, 40, 3, 3, seed=6)
    cases["fft_conv_causal"] = (lambda u, h: fft_conv(u, h), (u, _rand(40, 3, seed=7)))
    cases["fft_conv_bidirectional"] = (lambda u, h: fft_conv(u, h, causal=False), (u, _rand(79, 3, seed=8)))
    cases["fft_cross_conv"] = (lambda a, b: fft_cross_conv(a, b), (q, _rand(2, 40, 3, 3, seed=9)))
    cases["fft_dot_conv"] = (lambda a, b: fft_dot_conv(a, b, causal=False), (q, _rand(2, 40, 3, 3, seed=10)))
    torch.manual_seed(0)
    op = SE3HyenaOperator(4, 3).double()
    cases["se3_hyena"] = (op, (_rand(2, 40, 4, seed=11), _rand(2, 40, 3, 3, seed=12)))
    return cases


OPERATORS = _operators()


def _outputs(out):
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_operator_compiles_without_graph_breaks(name):
    fn, args = OPERATORS[name]
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    eager_args = [a.clone().requires_grad_(True) for a in args]
    comp_args = [a.clone().requires_grad_(True) for a in args]
    eager, comp = _outputs(fn(*eager_args)), _outputs(compiled(*comp_args))
    for e, c in zip(eager, comp):
        torch.testing.assert_close(c, e, rtol=1e-12, atol=1e-12)
    weights = [_rand(*e.shape, seed=20 + i) for i, e in enumerate(eager)]
    sum((w * e).sum() for w, e in zip(weights, eager)).backward()
    sum((w * c).sum() for w, c in zip(weights, comp)).backward()
    for e, c in zip(eager_args, comp_args):
        torch.testing.assert_close(c.grad, e.grad, rtol=1e-10, atol=1e-12)


def _models():
    return {
        "gauntnet": lambda: GauntNet(
            num_elements=4, channels=8, lmax=1, lmax_sh=2, num_layers=2, cutoff=3.5, self_connection=True
        ),
        "e2former": lambda: E2Former(num_elements=4),
        "egnn_energy": lambda: EGNNEnergy(num_elements=4),
    }


MODELS = _models()


def _eager_energy_forces(model, pos, z, edge_index, create_graph=False):
    p = pos.clone().requires_grad_(True)
    energy = model({"pos": p, "z": z, "edge_index": edge_index})["energy"]
    (grad,) = torch.autograd.grad(energy.sum(), p, create_graph=create_graph)
    return energy, -grad


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_energy_model_compiles_with_forces_and_force_training(name):
    torch.manual_seed(0)
    model = MODELS[name]().double()
    pos, z, edge_index = _structure()
    shifts = pos.new_zeros(edge_index.shape[1], 3)
    torch._dynamo.reset()
    run = compile_energy_forces(model, backend="aot_eager")
    energy, forces = run(pos, z, edge_index, shifts)
    # a force loss trains through the compiled graph (the double backward of eager training)
    forces.pow(2).sum().backward()
    compiled_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert compiled_grads
    model.zero_grad()
    e_ref, f_ref = _eager_energy_forces(model, pos, z, edge_index, create_graph=True)
    f_ref.pow(2).sum().backward()
    torch.testing.assert_close(energy, e_ref.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(forces.detach(), f_ref.detach(), rtol=1e-10, atol=1e-12)
    for n, p in model.named_parameters():
        if n in compiled_grads:  # a parameter the forces do not depend on: None eager, 0 compiled
            eager = p.grad if p.grad is not None else torch.zeros_like(p)
            torch.testing.assert_close(compiled_grads[n], eager, rtol=1e-9, atol=1e-11, msg=n)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_energy_model_exports_and_loads_without_our_code(name):
    torch.manual_seed(0)
    model = MODELS[name]().double().eval()
    pos, z, edge_index = _structure()
    program = export_energy(model, pos, z, edge_index)
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    loaded = torch.export.load(buffer)
    # the loaded program is plain aten: forces come from torch.autograd on it
    for n, seed in ((10, 0), (7, 5)):  # the example size and another (dynamic atoms and edges)
        pos, z, edge_index = _structure(n, seed)
        shifts = pos.new_zeros(edge_index.shape[1], 3)
        energy, forces = exported_energy_forces(loaded, pos, z, edge_index, shifts)
        e_ref, f_ref = _eager_energy_forces(model, pos, z, edge_index)
        torch.testing.assert_close(energy, e_ref.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(forces, f_ref, rtol=1e-10, atol=1e-12)


def test_energy_function_rejects_a_model_without_forces_flag():
    from equiscale.models.export import EnergyFunction

    with pytest.raises(TypeError, match="energy model"):
        EnergyFunction(torch.nn.Linear(3, 1))
