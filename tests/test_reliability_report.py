"""`equiscale bench reliability` finds the report generator (tools/reliability_report.py) and the
catalogues it runs (tests/reliability_catalogue) in the source checkout, although neither ships in
the package."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")  # the report runs the property strategies: the test extra

from equiscale.bench import reliability
from equiscale.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_the_report_is_found_in_the_checkout():
    assert reliability.find_checkout() == ROOT
    tool = reliability._tool()
    assert Path(tool.__file__).resolve() == ROOT / "tools" / "reliability_report.py"
    from reliability_catalogue.bad_inputs import bad_input_cases  # what the report runs

    assert bad_input_cases(Path("listing-writes-nothing"))


def test_bench_reliability_help_lists_the_report_options():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        main(["bench", "reliability", "--help"])  # argparse prints the help and exits 0
    assert done.value.code == 0
    text = out.getvalue()
    for option in ("--out", "--kills", "--no-faults", "--no-classes", "--examples-scale"):
        assert option in text, text
