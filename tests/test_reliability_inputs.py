"""Every public entry point refuses bad input with a ValueError/TypeError naming the argument, and
returns correctly shaped empty or zero results (no NaN) for 0 tokens, 0 edges, 0 atoms, 1 atom.

The cases live in ``equiscale.reliability.cases`` (shared with ``python -m equiscale.reliability``).
"""

from __future__ import annotations

import re

import pytest

from equiscale.reliability import cases as C

BAD = C.bad_input_cases()
EMPTY = C.empty_cases()


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_bad_input_is_refused_with_a_clear_message(case: C.BadInput):
    with pytest.raises(case.exc) as info:
        case.call()
    message = str(info.value)
    for pattern in case.mentions:
        assert re.search(pattern, message), f"message does not mention {pattern!r}: {message!r}"
    assert "\n" not in message.strip() or "Traceback" not in message


@pytest.mark.parametrize("case", EMPTY, ids=[c.id for c in EMPTY])
def test_empty_input_gives_shaped_finite_result(case: C.EmptyInput):
    C.run_empty(case)


def test_catalogue_covers_every_public_entry_point():
    entries = {c.entry.split(".")[0] for c in BAD}
    expected = {
        "GauntTensorProduct",
        "gaunt_power",
        "fft_conv",
        "fft_cross_conv",
        "fft_dot_conv",
        "fft_cross_dot_conv",
        "Wigner6jConv",
        "neighbor_list",
        "EGNN",
        "SE3HyenaNet",
        "EquivariantTransformer",
        "FrameAveraging",
        "E2Former",
        "GauntNet",
        "charged_particles",
        "make_recall_sample",
        "RecallDataset",
        "read_extxyz",
        "load_qm9",
        "load_config",
        "TrainConfig",
        "equiscale train",
    }
    assert expected <= entries, sorted(expected - entries)
    empty_entries = {c.entry.split(".")[0] for c in EMPTY}
    assert {
        "GauntTensorProduct",
        "fft_conv",
        "Wigner6jConv",
        "neighbor_list",
        "EGNN",
        "SE3HyenaNet",
        "E2Former",
        "GauntNet",
    } <= empty_entries


def test_runner_reports_wrong_kind_of_error_and_silence():
    silent = C.BadInput("x", "accepted", lambda: None, ("x",))
    with pytest.raises(AssertionError, match="no error was raised"):
        C.run_bad_input(silent)
    wrong = C.BadInput("x", "index error", lambda: [][1], ("x",))
    with pytest.raises(AssertionError, match="IndexError"):
        C.run_bad_input(wrong)
    vague = C.BadInput("x", "vague", lambda: (_ for _ in ()).throw(ValueError("bad")), ("lmax",))
    with pytest.raises(AssertionError, match="lmax"):
        C.run_bad_input(vague)
