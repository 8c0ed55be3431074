"""The equivariance utilities catch what they should and pass what they should."""

import pytest
import torch
from e3nn import o3

from equiscale.testing import assert_equivariant, equivariance_error, random_rotation, wigner_D


def test_random_rotation_is_orthogonal_with_requested_determinant():
    g = torch.Generator().manual_seed(0)
    for reflection in (False, True):
        R = random_rotation(generator=g, reflection=reflection)
        assert torch.allclose(R @ R.T, torch.eye(3, dtype=R.dtype), atol=1e-14)
        assert torch.det(R).item() == pytest.approx(-1.0 if reflection else 1.0, abs=1e-12)


@pytest.mark.parametrize("reflection", [False, True])
def test_wigner_D_rotates_spherical_harmonics_to_float64_precision(reflection):
    R = random_rotation(generator=torch.Generator().manual_seed(1), reflection=reflection)
    x = torch.randn(20, 3, dtype=torch.float64)
    lmax = 8
    Y = o3.spherical_harmonics(list(range(lmax + 1)), x, normalize=True)
    Y_rot = o3.spherical_harmonics(list(range(lmax + 1)), x @ R.T, normalize=True)
    D = wigner_D(lmax, R)
    assert (Y_rot - Y @ D.T).abs().max() < 1e-12
    assert torch.allclose(D @ D.T, torch.eye(D.shape[0], dtype=D.dtype), atol=1e-12)


def test_equivariance_error_detects_a_non_equivariant_map():
    errs = equivariance_error(
        lambda x: x * torch.tensor([1.0, 2.0, 3.0], dtype=x.dtype),
        [torch.randn(5, 3)],
        ["vector"],
        ["vector"],
    )
    assert errs["rotation"] > 1e-2


def test_cross_product_is_a_pseudovector_not_a_vector():
    fn = lambda a, b: torch.linalg.cross(a, b)
    inputs = [torch.randn(6, 3), torch.randn(6, 3)]
    assert_equivariant(fn, inputs, ["vector", "vector"], ["pseudovector"], reflection=True)
    errs = equivariance_error(fn, inputs, ["vector", "vector"], ["vector"], reflection=True)
    assert errs["rotation"] < 1e-12 and errs["reflection"] > 0.5


def test_translation_and_permutation_checks():
    def centre_and_pair_sum(pos, idx):
        centred = pos - pos.mean(0)
        out = torch.zeros_like(centred).index_add_(0, idx[1], centred[idx[0]])
        return centred, out

    pos = torch.randn(7, 3)
    idx = torch.randint(0, 7, (2, 15))
    errs = assert_equivariant(
        centre_and_pair_sum,
        [pos, idx],
        ["position", "index"],
        ["vector", "vector"],
        translation=True,
        permutation=True,
        node_dims=[0, None],
        out_node_dims=[0, 0],
    )
    assert set(errs) == {"rotation", "translation", "permutation"}
    # a map that depends on node order fails the permutation check
    errs = equivariance_error(
        lambda p: p.cumsum(0),
        [pos],
        ["vector"],
        ["vector"],
        rotation=False,
        permutation=True,
        node_dims=[0],
        out_node_dims=[0],
    )
    assert errs["permutation"] > 1e-3


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="in_types"):
        equivariance_error(lambda x: x, [torch.randn(3)], [], ["vector"])
    with pytest.raises(ValueError, match="R must have shape"):
        wigner_D(2, torch.eye(2))


def test_non_finite_outputs_fail():
    """A function returning NaN (or inf) fails the check instead of reporting an error of 0."""
    import pytest

    from equiscale.testing import assert_equivariant, equivariance_error

    pos = torch.randn(4, 3, dtype=torch.float64)
    for bad in (float("nan"), float("inf")):
        fn = lambda p, bad=bad: p * bad
        with pytest.raises(AssertionError, match="not finite"):
            assert_equivariant(fn, [pos], ["position"], ["vector"])
        with pytest.raises(AssertionError, match="not finite"):
            equivariance_error(fn, [pos], ["position"], ["vector"])
    # finite only for the unmoved input: caught after the transformation
    first = {"done": False}

    def flaky(p):
        out = p.clone() if not first["done"] else p * float("nan")
        first["done"] = True
        return out

    with pytest.raises(AssertionError, match="after the rotation"):
        equivariance_error(flaky, [pos], ["position"], ["vector"])
