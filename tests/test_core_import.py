"""The core is lean: `import equiscale` (and so3, ops, nn, models) loads no Lightning, matplotlib or
ASE, and the command line's help loads not even torch. Each check runs in a fresh interpreter, so
nothing imported by other tests hides an import."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("lightning", "matplotlib", "ase")


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_import_equiscale_loads_no_optional_package():
    # the command of issue 14, verbatim
    code = (
        "import equiscale, sys; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('lightning','matplotlib','ase')))"
    )
    assert _run(code) == "[]"


def test_core_layers_load_no_optional_package():
    code = (
        "import sys, equiscale.so3, equiscale.ops, equiscale.nn, equiscale.models, equiscale.testing; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    assert _run(code) == "[]"


def test_front_names_resolve_lazily_and_completely():
    import equiscale

    code = (
        "import sys, equiscale; print('torch' in sys.modules, "
        "type(equiscale.GauntTensorProduct).__name__, 'torch' in sys.modules)"
    )
    assert _run(code) == "False type True"  # import is instant; the first use loads torch
    exported = set(equiscale.__all__) - {"__version__"}
    assert exported == set(equiscale._EXPORTS)
    for name in sorted(exported):
        assert getattr(equiscale, name).__name__ == name
    assert exported <= set(dir(equiscale))
    with pytest.raises(AttributeError, match="nonsense"):
        equiscale.nonsense  # noqa: B018


def test_cli_help_loads_no_torch():
    """`equiscale --help` builds the parser from name tables only: no torch, no models."""
    code = (
        "import sys; from equiscale.cli import build_parser; build_parser().format_help(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning', 'e3nn')))"
    )
    assert _run(code) == "[]"
