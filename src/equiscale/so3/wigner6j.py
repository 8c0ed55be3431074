"""Wigner 6j symbols (exact, Racah's formula) and the recoupling weights of the Wigner-6j convolution.

A 6j symbol ``{j1 j2 j3; j4 j5 j6}`` is the overlap of two ways of coupling three angular momenta.
It is computed here with Racah's single-sum formula in Python integers and ``Fraction``:

    {j1 j2 j3; j4 j5 j6} = D(j1 j2 j3) D(j1 j5 j6) D(j4 j2 j6) D(j4 j5 j3)
        * sum_t (-1)^t (t + 1)! / [ (t - a1)! (t - a2)! (t - a3)! (t - a4)! (b1 - t)! (b2 - t)! (b3 - t)! ]

with a1 = j1+j2+j3, a2 = j1+j5+j6, a3 = j4+j2+j6, a4 = j4+j5+j3, b1 = j1+j2+j4+j5,
b2 = j2+j3+j5+j6, b3 = j3+j1+j6+j4 and the triangle coefficient
D(a b c) = sqrt((a+b-c)! (a-b+c)! (-a+b+c)! / (a+b+c+1)!).  The symbol is zero unless the four
triads (j1 j2 j3), (j1 j5 j6), (j4 j2 j6), (j4 j5 j3) satisfy the triangle rule with integer sums.

The exact value is ``sign * sqrt(square)`` with ``square`` a ``Fraction`` (:func:`wigner_6j_exact`);
:func:`wigner_6j` rounds it once to a float (relative error below 2 ulp).

Recoupling (standard Condon-Shortley Clebsch-Gordan coefficients, which e3nn's real
``wigner_3j(l1, l2, l3) * sqrt(2 l3 + 1)`` are, in e3nn's real basis):

    [h^a (x) [A^b (x) B^c]^f]^e = sum_d U(a, b, c, d, e, f) [[h^a (x) A^b]^d (x) B^c]^e,
    U = (-1)^(a+b+c+e) sqrt((2d+1)(2f+1)) {a b d; c e f}.

Check: ``wigner_6j(1, 1, 1, 1, 1, 1) == 1/6``.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from numbers import Rational

__all__ = [
    "wigner_6j",
    "wigner_6j_exact",
    "recoupling_coefficient",
    "wigner6j_conv_weights",
]


def _twice(j: object, name: str) -> int:
    """2j as an int for an integer or half-integer ``j`` (int, Fraction or float); else ValueError."""
    if isinstance(j, bool):
        raise TypeError(f"{name} must be an integer or half-integer, got bool {j!r}")
    if isinstance(j, int):
        two = 2 * j
    elif isinstance(j, (Rational, float)):
        two_f = Fraction(j) * 2
        if two_f.denominator != 1:
            raise ValueError(f"{name} must be an integer or half-integer, got {j!r}")
        two = int(two_f)
    else:
        raise TypeError(f"{name} must be an int, Fraction or float, got {type(j).__name__}")
    if two < 0:
        raise ValueError(f"{name} must be >= 0, got {j!r}")
    return two


def _triangle(a2: int, b2: int, c2: int) -> bool:
    """Triangle rule on doubled arguments: |a-b| <= c <= a+b and a+b+c an integer."""
    return (a2 + b2 + c2) % 2 == 0 and abs(a2 - b2) <= c2 <= a2 + b2


def _delta_squared(a2: int, b2: int, c2: int) -> Fraction:
    """D(a b c)^2 = (a+b-c)! (a-b+c)! (-a+b+c)! / (a+b+c+1)! on doubled arguments."""
    f = math.factorial
    return Fraction(
        f((a2 + b2 - c2) // 2) * f((a2 - b2 + c2) // 2) * f((-a2 + b2 + c2) // 2),
        f((a2 + b2 + c2) // 2 + 1),
    )


@functools.cache
def _wigner_6j_twice(j1: int, j2: int, j3: int, j4: int, j5: int, j6: int) -> tuple[int, Fraction]:
    """(sign, square) of the 6j symbol for doubled arguments; (0, 0) when a triangle fails."""
    triads = ((j1, j2, j3), (j1, j5, j6), (j4, j2, j6), (j4, j5, j3))
    if not all(_triangle(*t) for t in triads):
        return 0, Fraction(0)
    a = [sum(t) // 2 for t in triads]
    b = [(j1 + j2 + j4 + j5) // 2, (j2 + j3 + j5 + j6) // 2, (j3 + j1 + j6 + j4) // 2]
    f = math.factorial
    total = Fraction(0)
    for t in range(max(a), min(b) + 1):
        den = f(t - a[0]) * f(t - a[1]) * f(t - a[2]) * f(t - a[3])
        den *= f(b[0] - t) * f(b[1] - t) * f(b[2] - t)
        total += Fraction((-1) ** t * f(t + 1), den)
    if total == 0:
        return 0, Fraction(0)
    prefactor = Fraction(1)
    for triad in triads:
        prefactor *= _delta_squared(*triad)
    sign = 1 if total > 0 else -1
    return sign, total * total * prefactor


def wigner_6j_exact(j1, j2, j3, j4, j5, j6) -> tuple[int, Fraction]:
    """Exact 6j symbol as ``(sign, square)``: the value is ``sign * sqrt(square)``.

    Arguments are non-negative integers or half-integers (int, ``Fraction`` or float).
    ``sign`` is 0 (and ``square`` 0) when a triangle condition fails or the sum vanishes.

    >>> wigner_6j_exact(1, 1, 1, 1, 1, 1)
    (1, Fraction(1, 36))
    """
    names = ("j1", "j2", "j3", "j4", "j5", "j6")
    twice = [_twice(j, n) for j, n in zip((j1, j2, j3, j4, j5, j6), names)]
    return _wigner_6j_twice(*twice)


def wigner_6j(j1, j2, j3, j4, j5, j6) -> float:
    """Wigner 6j symbol ``{j1 j2 j3; j4 j5 j6}`` as a float, from the exact value (cached).

    Zero when a triangle condition fails. Shares the symmetries of the symbol, e.g. invariance
    under any permutation of its columns.

    >>> wigner_6j(1, 1, 1, 1, 1, 1)
    0.16666666666666666
    """
    sign, square = wigner_6j_exact(j1, j2, j3, j4, j5, j6)
    if sign == 0:
        return 0.0
    return sign * _sqrt_fraction(square)


def _sqrt_fraction(x: Fraction) -> float:
    """sqrt of a positive Fraction, within 1 ulp: integer square root with >= 64 bits, one rounding."""
    n, d = x.numerator, x.denominator
    s = max(0, (d.bit_length() - n.bit_length()) // 2 + 64)
    root = math.isqrt((n << (2 * s)) // d)
    return float(Fraction(root, 1 << s))


def recoupling_coefficient(a: int, b: int, c: int, d: int, e: int, f: int) -> float:
    """Overlap <((a b) d, c) e | (a, (b c) f) e> of two couplings of three angular momenta.

    U = (-1)^(a+b+c+e) sqrt((2d+1)(2f+1)) {a b d; c e f}, so that for unitary (Condon-Shortley)
    Clebsch-Gordan couplings  [h^a (x) [A^b (x) B^c]^f]^e = sum_d U [[h^a (x) A^b]^d (x) B^c]^e.
    Integer arguments.
    """
    for name, v in zip("abcdef", (a, b, c, d, e, f)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    sign = -1 if (a + b + c + e) % 2 else 1
    return sign * math.sqrt((2 * d + 1) * (2 * f + 1)) * wigner_6j(a, b, d, c, e, f)


@functools.cache
def wigner6j_conv_weights(
    a: int, l: int, e: int, normalization: str = "component"
) -> tuple[tuple[int, int, float], ...]:
    """Weights W(b, d) that move the tensor product [h^a (x) Y^l(r_i - r_j)]^e onto the nodes.

    With solid harmonics R^l(r) = |r|^l Y^l(r_hat) (e3nn, ``normalization``) and unitary CG
    couplings ``[x (x) y]^e = sqrt(2e+1) * wigner_3j(l1, l2, e)``:

        [h^a (x) R^l(r_i - r_j)]^e
            = sum_{b=0..l} sum_d W(b, d) [[h^a (x) R^b(r_j)]^d (x) R^(l-b)(r_i)]^e,
        W(b, d) = (-1)^b k(l, b) U(a, b, l-b, d, e, l),

    where k(l, b) is the solid-harmonic addition coefficient
    (:func:`equiscale.so3.solid_harmonics.addition_coefficient`) and U the
    :func:`recoupling_coefficient`. Returns ``((b, d, W), ...)`` (cached, immutable); terms with
    W = 0 are left out.
    """
    from equiscale.so3.solid_harmonics import addition_coefficient

    for name, v in (("a", a), ("l", l), ("e", e)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be a non-negative int, got {v!r}")
    if not abs(a - l) <= e <= a + l:
        raise ValueError(f"(a, l, e) = ({a}, {l}, {e}) violates the triangle rule")
    weights: list[tuple[int, int, float]] = []
    for b in range(l + 1):
        c = l - b
        k = (-1) ** b * addition_coefficient(l, b, normalization)
        for d in range(abs(a - b), a + b + 1):
            if not abs(d - c) <= e <= d + c:
                continue
            u = recoupling_coefficient(a, b, c, d, e, l)
            if u != 0.0:
                weights.append((b, d, k * u))
    return tuple(weights)
