"""Reliability: catalogues of bad, empty and degenerate inputs for every public entry point, a
peak-memory estimate that stops runs that will not fit, and the generator of
``results/reliability.md`` (``python -m equiscale.reliability``).

- :mod:`equiscale.reliability.cases`: ``bad_input_cases()``, ``empty_cases()``,
  ``degenerate_cases()``: lists of small named cases, shared by ``tests/test_reliability_*.py``
  and the report, so the counts in the report are exactly what the tests check.
- :mod:`equiscale.reliability.memory`: :func:`estimate_peak_memory` and
  :func:`check_memory` (raises :class:`MemoryBudgetError`, a ``MemoryError`` that says how many
  bytes are needed, how many are available and what to change).
- :mod:`equiscale.reliability.properties`: one check per fast operator against its reference
  path, with the float32/float64 budgets of the operator's docstring (driven by hypothesis in the
  tests and in the report).
"""
