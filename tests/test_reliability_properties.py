"""Property-based tests (hypothesis): every fast operator against its reference path over random
degrees, batch shapes, channel counts and dtypes, within the float32/float64 budgets of its
docstring (``reliability_catalogue.properties.BUDGETS``)."""

from __future__ import annotations

import pytest

pytest.importorskip("hypothesis")  # the test extra
from hypothesis import HealthCheck, given, settings

from reliability_catalogue import properties as P

STRATEGIES = P.strategies()
EXAMPLES = P.EXAMPLES
RUN: dict[str, int] = {}


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_fast_operator_matches_reference_within_budget(name):
    check, strategy = STRATEGIES[name]

    @settings(
        max_examples=EXAMPLES[name],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(strategy)
    def prop(kwargs):
        RUN[name] = RUN.get(name, 0) + 1
        error, budget = check(**kwargs)
        assert error <= budget, f"{name} {kwargs}: relative error {error:.3g} > budget {budget:.3g}"

    prop()
    assert RUN[name] >= EXAMPLES[name] // 2, f"only {RUN[name]} examples ran"


def test_every_operator_has_a_budget_and_a_strategy():
    assert set(STRATEGIES) == set(P.BUDGETS)
    for name, (f64, f32) in P.BUDGETS.items():
        assert 0 <= f64 <= f32 <= 1e-4, name


def test_a_wrong_operator_is_caught():
    """The check is not vacuous: a fast path with a perturbed output exceeds the budget."""
    import torch

    from equiscale.ops import long_conv

    original = long_conv.fft_conv
    try:
        long_conv.fft_conv = lambda u, h, causal=True, dim=-2: original(u, h, causal, dim) * (1 + 1e-6)
        error, budget = P.check_long_conv("fft_conv", 9, True, (2,), 3, torch.float64, 0)
    finally:
        long_conv.fft_conv = original
    assert error > budget


def test_zz_examples_ran_per_operator(capsys):
    """Runs last in this file: every operator got its examples (printed for the log)."""
    with capsys.disabled():
        print("\nproperty examples per operator:", RUN)
    for name in STRATEGIES:
        assert RUN.get(name, 0) >= EXAMPLES[name] // 2, (name, RUN.get(name))
