"""Every public entry point refuses bad input with a ValueError/TypeError naming the argument, and
returns correctly shaped empty or zero results (no NaN) for 0 tokens, 0 edges, 0 atoms, 1 atom.

The cases live in ``tests/reliability_catalogue`` (shared with ``tools/reliability_report.py``).
Listing them writes nothing; the file cases write into the test's ``tmp_path`` when they run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("ase")  # equiscale.data (extxyz): the train extra

from reliability_catalogue import common as C
from reliability_catalogue.bad_inputs import bad_input_cases
from reliability_catalogue.empty import empty_cases

_LISTING = Path("catalogue-listing-writes-nothing")  # never created: cases write only when they run
BAD = bad_input_cases(_LISTING)
EMPTY = empty_cases(_LISTING)


def _case(cases: list, case_id: str):
    return next(c for c in cases if c.id == case_id)


@pytest.mark.parametrize("case_id", [c.id for c in BAD])
def test_bad_input_is_refused_with_a_clear_message(case_id: str, tmp_path: Path):
    case = _case(bad_input_cases(tmp_path), case_id)
    with pytest.raises(case.exc) as info:
        case.call()
    message = str(info.value)
    for pattern in case.mentions:
        assert re.search(pattern, message), f"message does not mention {pattern!r}: {message!r}"
    assert "\n" not in message.strip() or "Traceback" not in message


@pytest.mark.parametrize("case_id", [c.id for c in EMPTY])
def test_empty_input_gives_shaped_finite_result(case_id: str, tmp_path: Path):
    C.run_empty(_case(empty_cases(tmp_path), case_id))


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
