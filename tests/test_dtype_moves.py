"""Every module gives the reference answer after dtype and device moves.

``module.to(dtype)`` (also what Lightning's ``64-true``/``16-true``/``bf16-true`` precisions call)
once cast the complex tables of the Fourier Gaunt product to real and dropped their imaginary
parts (relative error 1.0, no warning), and ``.half()`` rounded float64 tables for good. The
reference is ``copy.deepcopy(module).double()`` in float64. Budgets: parameter-free operators
give the float64 reference to 1e-12 after any round trip (their tables keep their own dtype);
modules with parameters to 1e-12 after ``.to(float64)``, to 1e-4 in float32, and within the
rounding of their parameters (2e-2 for float16, 5e-2 for bfloat16) after a round trip through a
half-precision dtype.
"""

from __future__ import annotations

import copy

import pytest
import torch

from equiscale.models.e2former import E2Former
from equiscale.models.egnn_energy import EGNNEnergy
from equiscale.models.gaunt_net import GauntNet
from equiscale.models.se3_hyena import SE3HyenaNet
from equiscale.nn.hyena import SE3HyenaOperator
from equiscale.ops import Wigner6jConv
from equiscale.ops.gaunt import GauntTensorProduct
from equiscale.ops.neighbors import neighbor_list


def _gen():
    return torch.Generator().manual_seed(0)


def _molecule():
    g = _gen()
    return {
        "pos": 1.3 * torch.randn(7, 3, generator=g, dtype=torch.float64),
        "z": torch.randint(0, 4, (7,), generator=g),
    }


def _wigner_inputs():
    g = _gen()
    pos = 2.0 * torch.randn(12, 3, generator=g, dtype=torch.float64)
    nb = neighbor_list(pos, 3.5)
    h = torch.randn(12, 9, 4, generator=g, dtype=torch.float64)
    return (h, pos, nb.edge_index, torch.rand(nb.edge_index.shape[1], 4, generator=g, dtype=torch.float64))


def _energy_call(model, inputs):
    out = model(inputs)
    return torch.cat([out["energy"], out["forces"].flatten()])


CASES = {
    # name: (factory, inputs in float64, call(module, inputs) -> tensor, has parameters)
    **{
        f"gaunt_tp_{b}": (
            lambda b=b: GauntTensorProduct(3, 3, 3, backend=b),
            lambda: tuple(torch.randn(3, 16, 2, generator=_gen(), dtype=torch.float64) for _ in range(2)),
            lambda m, x: m(*x),
            False,
        )
        for b in ("fourier", "grid", "dense")
    },
    "wigner6j_conv": (lambda: Wigner6jConv(2, 2, 2), _wigner_inputs, lambda m, x: m(*x), False),
    "se3_hyena_operator": (
        lambda: SE3HyenaOperator(6, 3),
        lambda: (
            torch.randn(2, 10, 6, generator=_gen(), dtype=torch.float64),
            torch.randn(2, 10, 3, 3, generator=_gen(), dtype=torch.float64),
        ),
        lambda m, x: torch.cat([t.flatten() for t in m(*x)]),
        True,
    ),
    "se3_hyena_net": (
        lambda: SE3HyenaNet(8, 4, depth=1, scalar_in=0),
        lambda: torch.randn(2, 10, 3, generator=_gen(), dtype=torch.float64),
        lambda m, x: m.forward_tokens(x)[1].flatten(),
        True,
    ),
    "e2former": (
        lambda: E2Former(num_elements=4, channels=8, lmax=2, num_layers=1, heads=2, num_radial=4, cutoff=3.5),
        _molecule,
        _energy_call,
        True,
    ),
    "gauntnet_fourier": (
        lambda: GauntNet(
            num_elements=4,
            channels=4,
            lmax=1,
            lmax_sh=2,
            num_layers=1,
            correlation=2,
            cutoff=3.5,
            backend="fourier",
        ),
        _molecule,
        _energy_call,
        True,
    ),
    "gauntnet_bessel": (
        lambda: GauntNet(
            num_elements=4,
            channels=4,
            lmax=1,
            lmax_sh=2,
            num_layers=1,
            correlation=2,
            cutoff=3.5,
            radial="bessel",
        ),
        _molecule,
        _energy_call,
        True,
    ),
    "egnn_energy": (
        lambda: EGNNEnergy(num_elements=4, channels=8, num_layers=2, cutoff=3.5),
        _molecule,
        _energy_call,
        True,
    ),
}


def _cast(x, dtype):
    if isinstance(x, dict):
        return {k: _cast(v, dtype) for k, v in x.items()}
    if isinstance(x, tuple):
        return tuple(_cast(v, dtype) for v in x)
    return x.to(dtype) if x.is_floating_point() else x


def _rel(a, b):
    return float((a.double() - b).norm() / b.norm().clamp_min(1e-300))


@pytest.mark.parametrize("name", sorted(CASES))
def test_dtype_round_trips_give_the_reference(name):
    factory, make_inputs, call, has_params = CASES[name]
    torch.manual_seed(0)
    module = factory().eval()
    x64 = make_inputs()
    ref = call(copy.deepcopy(module).double(), x64)
    assert torch.isfinite(ref).all() and ref.abs().max() > 0
    half_budget = {torch.float16: 2e-2, torch.bfloat16: 5e-2}
    moves = {
        "to(float64)": (lambda m: m.to(torch.float64), torch.float64, 1e-12),
        "to(float32)": (lambda m: m.to(torch.float32), torch.float32, 1e-4),
        "to(cpu, float64)": (lambda m: m.to("cpu", torch.float64), torch.float64, 1e-12),
        "float().double()": (lambda m: m.float().double(), torch.float64, 1e-12),
        "half().double()": (
            lambda m: m.half().double(),
            torch.float64,
            half_budget[torch.float16] if has_params else 1e-12,
        ),
        "to(bfloat16).to(float64)": (
            lambda m: m.to(torch.bfloat16).to(torch.float64),
            torch.float64,
            half_budget[torch.bfloat16] if has_params else 1e-12,
        ),
    }
    errors = {}
    for label, (move, dtype, budget) in moves.items():
        moved = move(copy.deepcopy(module))
        errors[label] = _rel(call(moved, _cast(x64, dtype)).detach(), ref)
        assert errors[label] < budget, f"{name} after {label}: relative error {errors[label]:.3g}"


@pytest.mark.parametrize("backend", ["dense", "grid", "fourier"])
def test_input_on_another_device_than_the_tables_is_an_error(backend):
    from equiscale.ops import CGOddPaths, GauntTensorProduct

    tp = GauntTensorProduct(2, 2, 2, backend=backend)  # tables on the CPU
    x = torch.randn(3, 9, 4, device="meta")  # any other device: meta needs no accelerator
    with pytest.raises(ValueError, match=r"x is on meta.*tables .* are on cpu"):
        tp(x, x)
    with pytest.raises(ValueError, match="meta"):
        CGOddPaths(2, 2, 2)(x, x)
