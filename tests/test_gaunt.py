"""GauntTensorProduct: every back end against the quadrature reference, equivariance, gradients,
symmetry, broadcasting, float32 budget, errors; many-body products; odd-path complement."""

from __future__ import annotations

import math

import pytest
import torch
from e3nn import o3

from equiscale.ops.gaunt import (
    BACKENDS,
    CGOddPaths,
    GauntProduct,
    GauntTensorProduct,
    choose_backend,
    gaunt_power,
    gaunt_product,
    gaunt_reference,
)
from equiscale.so3 import from_e3nn, sh_irreps, to_e3nn
from equiscale.testing import assert_equivariant, wigner_D


def _feature(lmax, *lead, c=3, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*lead, (lmax + 1) ** 2, c, generator=gen, dtype=dtype)


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("degrees", [(0, 4, 4), (3, 5, 2), (8, 7, 9), (2, 2, 0), (1, 0, 3)])
def test_backends_equal_reference(backend, degrees):
    l1, l2, lo = degrees
    x, y = _feature(l1, 2, c=3, seed=1), _feature(l2, 2, c=3, seed=2)
    out = GauntTensorProduct(l1, l2, lo, backend=backend)(x, y)
    ref = gaunt_reference(x, y, lmax_out=lo)
    assert out.shape == (2, (lo + 1) ** 2, 3)
    assert _rel(out, ref) < 1e-10


@pytest.mark.parametrize("seed", range(4))
def test_random_shapes_and_broadcasting(seed):
    gen = torch.Generator().manual_seed(100 + seed)
    l1, l2, lo = (int(v) for v in torch.randint(0, 6, (3,), generator=gen))
    c = int(torch.randint(1, 4, (1,), generator=gen))
    x = _feature(l1, 3, 1, c=c, seed=seed)  # [3, 1, K1, c]
    y = _feature(l2, 1, 2, c=1, seed=seed + 50)  # [1, 2, K2, 1] (C = 1 broadcasts)
    ref = gaunt_reference(x, y, lmax_out=lo)
    assert ref.shape == (3, 2, (lo + 1) ** 2, c)
    for backend in BACKENDS:
        out = GauntTensorProduct(l1, l2, lo, backend=backend)(x, y)
        assert out.shape == ref.shape
        assert _rel(out, ref) < 1e-10, backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_broadcast_different_numbers_of_leading_dims(backend):
    x = _feature(2, 3, 2, c=4, seed=30)  # [3, 2, 9, 4]
    y = _feature(1, c=1, seed=31)  # [4, 1]
    ref = gaunt_reference(x, y.expand(3, 2, 4, 1), lmax_out=2)
    tp = GauntTensorProduct(2, 1, 2, backend=backend)
    assert _rel(tp(x, y), ref) < 1e-10
    out = GauntTensorProduct(1, 2, 2, backend=backend)(y, x)
    assert out.shape == (3, 2, 9, 4) and _rel(out, ref) < 1e-10
    if backend != "dense":
        module = GauntProduct([1, 2], 2, backend=backend)
        assert _rel(module(y, x), ref) < 1e-10


def test_reference_matches_gaunt_table_and_e3nn_uuu_paths():
    """The product is e3nn's "uuu" TensorProduct on the Gaunt paths, path weights c(l1, l2, l3)."""
    lmax, c = 3, 2
    x, y = _feature(lmax, 4, c=c, seed=3), _feature(lmax, 4, c=c, seed=4)
    irreps = sh_irreps(lmax, c)
    paths = [
        (a, b, d)
        for a in range(lmax + 1)
        for b in range(lmax + 1)
        for d in range(lmax + 1)
        if abs(a - b) <= d <= a + b and (a + b + d) % 2 == 0
    ]
    from equiscale.so3 import gaunt_coefficients

    table = gaunt_coefficients(lmax, lmax, lmax)
    weights = []
    for a, b, d in paths:
        block = table[a * a : (a + 1) ** 2, b * b : (b + 1) ** 2, d * d : (d + 1) ** 2]
        w3j = o3.wigner_3j(a, b, d, dtype=torch.float64)
        weights.append((block * w3j).sum() / math.sqrt(2 * d + 1))  # e3nn "component" norm
    instructions = [(a, b, d, "uuu", True, 1.0) for a, b, d in paths]
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn bakes its 3j constants in the default dtype
    try:
        tp = o3.TensorProduct(
            irreps,
            irreps,
            irreps,
            instructions,
            irrep_normalization="component",
            path_normalization="none",
            internal_weights=False,
            shared_weights=True,
        )
    finally:
        torch.set_default_dtype(default)
    weight = torch.stack([w.repeat(c) for w in weights])  # [paths, c]
    out = from_e3nn(tp(to_e3nn(x), to_e3nn(y), weight.reshape(-1).to(torch.float64)), lmax, c)
    assert _rel(out, gaunt_reference(x, y, lmax_out=lmax)) < 1e-10


@pytest.mark.parametrize("backend", BACKENDS)
def test_equivariance(backend):
    tp = GauntTensorProduct(3, 2, 4, backend=backend)
    errors = assert_equivariant(
        tp,
        [_feature(3, 5, seed=5), _feature(2, 5, seed=6)],
        [("sh", 3), ("sh", 2)],
        [("sh", 4)],
        reflection=True,
        tol=1e-10,
    )
    assert errors["rotation"] < 1e-10 and errors["reflection"] < 1e-10


@pytest.mark.parametrize("backend", BACKENDS)
def test_symmetric(backend):
    x, y = _feature(3, 2, seed=7), _feature(3, 2, seed=8)
    tp = GauntTensorProduct(3, 3, 3, backend=backend)
    assert _rel(tp(x, y), tp(y, x)) < 1e-13


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_and_gradgradcheck(backend):
    tp = GauntTensorProduct(2, 1, 2, backend=backend)
    x = _feature(2, 1, c=2, seed=9).requires_grad_()
    y = _feature(1, 1, c=1, seed=10).requires_grad_()
    assert torch.autograd.gradcheck(tp, (x, y))
    assert torch.autograd.gradgradcheck(tp, (x, y))


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_error_budget(backend):
    """Stated budget (ops/gaunt.py): relative error < 1e-5 in float32 for L <= 12."""
    l1, l2, lo = (6, 6, 6) if backend == "dense" else (12, 12, 12)
    x, y = _feature(l1, 4, c=2, seed=11), _feature(l2, 4, c=2, seed=12)
    ref = gaunt_reference(x, y, lmax_out=lo)
    out = GauntTensorProduct(l1, l2, lo, backend=backend)(x.float(), y.float())
    assert out.dtype == torch.float32
    assert _rel(out.double(), ref) < 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_bfloat16_error_budget(backend):
    """Stated budget (ops/gaunt.py): relative error < 2e-2 in bfloat16."""
    x, y = _feature(4, 4, c=2, seed=13), _feature(4, 4, c=2, seed=14)
    ref = gaunt_reference(x, y, lmax_out=4)
    out = GauntTensorProduct(4, 4, 4, backend=backend)(x.bfloat16(), y.bfloat16())
    assert out.dtype == torch.bfloat16
    assert _rel(out.double(), ref) < 2e-2


def test_auto_backend_is_visible_and_valid():
    tp = GauntTensorProduct(4, 4, 4)
    assert tp.backend in BACKENDS and tp.backend == choose_backend(4, "cpu")
    assert "backend=" in repr(tp)


def test_empty_inputs():
    for backend in BACKENDS:
        tp = GauntTensorProduct(2, 2, 3, backend=backend)
        out = tp(_feature(2, 0, 4), _feature(2, 0, 4))
        assert out.shape == (0, 4, 16, 3)


def test_bad_inputs_raise():
    tp = GauntTensorProduct(2, 1, 2, backend="grid")
    with pytest.raises(ValueError, match="x must have shape"):
        tp(_feature(3, 2), _feature(1, 2))
    with pytest.raises(ValueError, match="y must have shape"):
        tp(_feature(2, 2), _feature(2, 2))
    with pytest.raises(ValueError, match="broadcast"):
        tp(_feature(2, 2, c=3), _feature(1, 2, c=2))
    with pytest.raises(TypeError, match="dtype"):
        tp(_feature(2, 2), _feature(1, 2, dtype=torch.float32))
    with pytest.raises(TypeError, match="x must be a floating"):
        tp(torch.ones(2, 9, 3, dtype=torch.long), _feature(1, 2))
    with pytest.raises(ValueError, match="lmax_in1"):
        GauntTensorProduct(-1, 1, 1)
    with pytest.raises(ValueError, match="backend"):
        GauntTensorProduct(1, 1, 1, backend="cuequivariance")
    with pytest.raises(ValueError, match="device"):
        choose_backend(3, "meta")


def test_parity_errors_and_irreps():
    with pytest.raises(ValueError, match="no antisymmetric path"):
        GauntTensorProduct(1, 1, 1, parity="odd")
    with pytest.raises(ValueError, match="0o"):
        GauntTensorProduct.from_irreps("0e+1o", "0e+1o", "0o+1e")
    tp = GauntTensorProduct.from_irreps("8x0e+8x1o", "8x0e+8x1o", "0e+1o+2e", backend="dense")
    assert (tp.lmax_in1, tp.lmax_in2, tp.lmax_out) == (1, 1, 2)
    tp = GauntTensorProduct.from_irreps("0o+1e", "0e+1o", "0o+1e", backend="grid")  # pseudo x sh
    assert tp.lmax_out == 1
    with pytest.raises(ValueError, match="irreps_in1"):
        GauntTensorProduct.from_irreps("0e+2e", "0e", "0e")


def test_odd_paths_complement():
    odd = CGOddPaths(1, 1, 1)
    a = torch.randn(4, 3, dtype=torch.float64)
    b = torch.randn(4, 3, dtype=torch.float64)
    # 1o x 1o -> 1e is the cross product (e3nn l=1 order is x, y, z)
    x = torch.zeros(4, 4, 1, dtype=torch.float64)
    y = torch.zeros(4, 4, 1, dtype=torch.float64)
    x[:, 1:, 0], y[:, 1:, 0] = a, b
    out = odd(x, y)[:, 1:, 0]
    cross = torch.linalg.cross(a, b)
    scale = (out * cross).sum() / (cross * cross).sum()
    assert (out - scale * cross).abs().max() < 1e-12 and abs(scale.item()) > 0.1
    assert odd(x, y)[:, 0].abs().max() < 1e-14  # 1 x 1 -> 0 is even: not in the complement
    odd = CGOddPaths(2, 2, 2)
    assert_equivariant(
        odd,
        [_feature(2, 3), _feature(2, 3, seed=1)],
        [("sh", 2), ("sh", 2)],
        [("pseudo_sh", 2)],
        reflection=True,
        tol=1e-10,
    )
    x2, y2 = _feature(2, 3, seed=2), _feature(2, 3, seed=3)
    gaunt = GauntTensorProduct(2, 2, 2, backend="dense")
    assert (gaunt(x2, y2) * odd(x2, y2)).abs().sum() > 0  # both parts present, distinct
    torch.testing.assert_close(odd(x2, y2), -odd(y2, x2))  # antisymmetric: l1+l2+l3 odd


@pytest.mark.parametrize("backend", ["grid", "fourier"])
def test_many_body(backend):
    x, y, z = _feature(2, 3, seed=13), _feature(3, 3, seed=14), _feature(1, 3, c=1, seed=15)
    ref = gaunt_reference(x, y, z, lmax_out=4)
    assert _rel(gaunt_product([x, y, z], 4, backend=backend), ref) < 1e-10
    for nu in (2, 3, 4, 6):
        ref = gaunt_reference(*([x] * nu), lmax_out=3)
        assert _rel(gaunt_power(x, nu, 3, backend=backend), ref) < 1e-10
    module = GauntProduct([2, 1], 3, powers=[2, 3], backend=backend)
    ref = gaunt_reference(x, x, z, z, z, lmax_out=3)
    assert _rel(module(x, z), ref) < 1e-10
    with pytest.raises(ValueError, match="nu"):
        gaunt_power(x, 0, 3)
    with pytest.raises(ValueError, match="powers"):
        GauntProduct([2], 3, powers=[0])


def test_many_body_gradients_and_equivariance():
    module = GauntProduct([2], 2, powers=[3], backend="grid")
    x = _feature(2, 2, c=1, seed=16).requires_grad_()
    assert torch.autograd.gradcheck(module, (x,))
    assert torch.autograd.gradgradcheck(module, (x,))
    assert_equivariant(module, [_feature(2, 4)], [("sh", 2)], [("sh", 2)], tol=1e-10)


def test_wigner_d_consistency():
    """Sanity check of the rotation used above: D is orthogonal."""
    from equiscale.testing import random_rotation

    d = wigner_D(4, random_rotation())
    assert (d @ d.T - torch.eye(25, dtype=torch.float64)).abs().max() < 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
def test_torch_compile_full_graph(backend):
    """One graph, no breaks (dynamo + AOT autograd; inductor code generation is left to users)."""
    tp = GauntTensorProduct(2, 1, 2, backend=backend)
    compiled = torch.compile(tp, fullgraph=True, dynamic=False, backend="aot_eager")
    x = _feature(2, 3, c=2, seed=20, dtype=torch.float32).requires_grad_()
    y = _feature(1, 3, c=2, seed=21, dtype=torch.float32)
    out = compiled(x, y)
    torch.testing.assert_close(out, tp(x, y))
    (grad,) = torch.autograd.grad(out.square().sum(), x)
    (expected,) = torch.autograd.grad(tp(x, y).square().sum(), x)
    torch.testing.assert_close(grad, expected)
