"""Regenerate ``results/reliability.md`` from a source checkout (``equiscale bench reliability``).

The report runs the test catalogues (``tests/reliability_catalogue``) and the report generator
(``tools/reliability_report.py``); both are test code and do not ship in the wheel. This module
only finds them: in the checkout the package was installed from (``pip install -e .``), else in
the current directory. Outside a checkout it stops with a message that says so.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["add_arguments", "run", "find_checkout"]

_TOOL = Path("tools") / "reliability_report.py"


def find_checkout() -> Path | None:
    """The source checkout holding ``tools/reliability_report.py`` and ``tests/``, or None."""
    for root in (Path(__file__).resolve().parents[3], Path.cwd()):
        if (root / _TOOL).is_file() and (root / "tests" / "reliability_catalogue").is_dir():
            return root
    return None


def _tool() -> ModuleType:
    root = find_checkout()
    if root is None:
        raise FileNotFoundError(
            "equiscale bench reliability needs a source checkout (tools/reliability_report.py and "
            "tests/reliability_catalogue); run it from the repository"
        )
    name = "equiscale_reliability_report"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, root / _TOOL)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    if find_checkout() is None:  # still list the command; running it explains what is missing
        return
    _tool().add_arguments(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    return _tool().run(args)
