"""The reliability catalogues: named cases and property strategies shared by
``tests/test_reliability_*.py`` and the report generator ``tools/reliability_report.py``.

Test code, not library code: nothing under ``src/equiscale`` imports it.

- :mod:`.common`: case types (``BadInput``, ``EmptyInput``, ``Degenerate``) and their runners.
- :mod:`.bad_inputs`, :mod:`.empty`, :mod:`.geometry`, :mod:`.files`: the catalogues; each takes
  the folder its file cases may write to (``tmp_path`` in the tests).
- :mod:`.properties`: fast operator vs reference, hypothesis strategies and error budgets.
- :mod:`.precision`: bf16/fp16 autocast on every model.
- :mod:`.faults`: SIGKILL/resume cycles, single process and DDP.
- :mod:`.classes`: the failure classes and the tests that cover each.
"""
