"""The documentation site builds with warnings as errors (``mkdocs build --strict``): every page,
every link (the benchmark plots under results/ included) and every API page from the docstrings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")  # the docs extra
pytest.importorskip("mkdocstrings")

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_strict(tmp_path):
    site = tmp_path / "site"
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for page in ("operators", "conventions", "own-data", "interop", "benchmarks", "results", "api/ops"):
        assert (site / page / "index.html").is_file(), page
    assert (site / "results" / "bench_tp_cpu.png").is_file()
    api = (site / "api" / "ops" / "index.html").read_text()
    assert "GauntTensorProduct" in api and "Wigner6jConv" in api
