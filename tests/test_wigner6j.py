"""wigner_6j against sympy's exact values; recoupling and addition-theorem constants."""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import pytest
import torch
from e3nn import o3
from sympy import Rational
from sympy.physics.wigner import wigner_6j as sympy_6j

from equiscale.so3.solid_harmonics import addition_coefficient, solid_harmonics
from equiscale.so3.wigner6j import (
    recoupling_coefficient,
    wigner6j_conv_weights,
    wigner_6j,
    wigner_6j_exact,
)


def _sympy_exact(js) -> tuple[int, Fraction]:
    v = sympy_6j(*js)
    sq = Rational(v**2)
    return (0 if v == 0 else (1 if v > 0 else -1)), Fraction(int(sq.p), int(sq.q))


def test_exhaustive_small_arguments_equal_sympy_exactly():
    for js in itertools.product(range(3), repeat=6):
        assert wigner_6j_exact(*js) == _sympy_exact(js), js


def test_sampled_arguments_up_to_8_equal_sympy():
    rng = random.Random(0)
    checked_nonzero = 0
    for _ in range(1000):
        # draw triangles so that most samples are non-zero
        j1, j2 = rng.randint(0, 8), rng.randint(0, 8)
        j3 = rng.randint(abs(j1 - j2), min(j1 + j2, 8))
        j4 = rng.randint(0, 8)
        j5 = rng.randint(0, 8)
        j6 = rng.randint(0, 8)
        js = (j1, j2, j3, j4, j5, j6)
        sign, square = wigner_6j_exact(*js)
        assert (sign, square) == _sympy_exact(js), js
        ref = float(sympy_6j(*js))
        assert wigner_6j(*js) == pytest.approx(ref, rel=1e-15, abs=1e-300), js
        checked_nonzero += sign != 0
    assert checked_nonzero > 150


def test_half_integers_and_known_values():
    assert wigner_6j(1, 1, 1, 1, 1, 1) == pytest.approx(1 / 6, rel=1e-15)
    assert wigner_6j(Fraction(1, 2), Fraction(1, 2), 1, Fraction(1, 2), Fraction(1, 2), 0) == (
        pytest.approx(
            float(sympy_6j(Rational(1, 2), Rational(1, 2), 1, Rational(1, 2), Rational(1, 2), 0)), rel=1e-15
        )
    )
    assert wigner_6j(1, 1, 3, 1, 1, 1) == 0.0  # triangle fails
    assert wigner_6j(1, 1, 1, 1, 1, Fraction(1, 2)) == 0.0  # non-integer triad sum


def test_symmetry_and_large_arguments():
    # column permutations and upper/lower swaps of two columns leave the symbol unchanged
    js = (7, 8, 6, 5, 9, 4)
    v = wigner_6j(*js)
    assert v != 0.0
    assert wigner_6j(8, 7, 6, 9, 5, 4) == pytest.approx(v, rel=1e-15)
    assert wigner_6j(5, 9, 6, 7, 8, 4) == pytest.approx(v, rel=1e-15)
    # far beyond float factorial range: still finite and orthogonality holds
    a, b, c, d = 40, 35, 38, 41
    total = sum(
        (2 * x + 1) * (2 * 39 + 1) * wigner_6j(a, b, x, c, d, 39) ** 2 for x in range(abs(a - b), a + b + 1)
    )
    assert total == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("bad", [-1, 1.25, "1", True])
def test_bad_arguments_raise(bad):
    with pytest.raises((ValueError, TypeError), match="j1"):
        wigner_6j(bad, 1, 1, 1, 1, 1)


def _cg(l1, l2, l3):
    return math.sqrt(2 * l3 + 1) * o3.wigner_3j(l1, l2, l3, dtype=torch.float64)


def test_recoupling_identity_with_e3nn_clebsch_gordan():
    """[h^a (x) [A^b (x) B^c]^f]^e = sum_d U [[h^a (x) A^b]^d (x) B^c]^e with e3nn's real CG."""
    for a, b, c, f, e in [(1, 1, 1, 2, 1), (2, 1, 2, 3, 2), (3, 2, 1, 1, 4), (2, 2, 2, 2, 0)]:
        lhs = torch.einsum("bcf,afe->abce", _cg(b, c, f), _cg(a, f, e))
        rhs = torch.zeros_like(lhs)
        for d in range(abs(a - b), a + b + 1):
            if abs(d - c) <= e <= d + c:
                u = recoupling_coefficient(a, b, c, d, e, f)
                rhs += u * torch.einsum("abd,dce->abce", _cg(a, b, d), _cg(d, c, e))
        torch.testing.assert_close(rhs, lhs, rtol=0, atol=1e-13)


@pytest.mark.parametrize("normalization", ["component", "integral", "norm"])
def test_solid_harmonic_addition_theorem(normalization):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 3, generator=g, dtype=torch.float64)
    y = torch.randn(7, 3, generator=g, dtype=torch.float64)
    for l in range(0, 7):
        lhs = solid_harmonics(l, x + y, normalization)[:, l * l :]
        rhs = torch.zeros_like(lhs)
        for b in range(l + 1):
            rb = solid_harmonics(b, x, normalization)[:, b * b :]
            rc = solid_harmonics(l - b, y, normalization)[:, (l - b) ** 2 :]
            k = addition_coefficient(l, b, normalization)
            rhs += k * torch.einsum("nx,ny,xym->nm", rb, rc, _cg(b, l - b, l))
        torch.testing.assert_close(rhs, lhs, rtol=1e-12, atol=1e-12 * lhs.abs().max())


def test_conv_weights_are_cached_and_checked():
    w = wigner6j_conv_weights(1, 2, 2)
    assert w is wigner6j_conv_weights(1, 2, 2)
    assert all(isinstance(t, tuple) and len(t) == 3 for t in w)
    with pytest.raises(ValueError, match="triangle"):
        wigner6j_conv_weights(1, 4, 1)
