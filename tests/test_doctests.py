"""The examples in the docstrings of the exact-math and operator layers run and print what they
say (so3, ops, nn and the testing helpers; `python -m pytest tests/test_doctests.py`)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import equiscale.nn
import equiscale.ops
import equiscale.so3


def _modules() -> list[str]:
    names = ["equiscale.testing"]
    for package in (equiscale.so3, equiscale.ops, equiscale.nn):
        names.append(package.__name__)
        names += [m.name for m in pkgutil.iter_modules(package.__path__, package.__name__ + ".")]
    return names


MODULES = _modules()


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, extraglobs={"torch": importlib.import_module("torch")}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name}"


def test_the_examples_are_found():
    """Not vacuous: the documented examples of so3 and ops are among those run."""
    counts = {}
    for name in MODULES:
        module = importlib.import_module(name)
        counts[name] = sum(len(t.examples) for t in doctest.DocTestFinder().find(module, name))
    for name in (
        "equiscale.so3.wigner6j",
        "equiscale.so3.layout",
        "equiscale.ops.gaunt",
        "equiscale.ops.long_conv",
        "equiscale.ops._wigner6j_conv",
        "equiscale.testing",
    ):
        assert counts[name] > 0, name
    assert sum(counts.values()) >= 12
