"""Rules of the repository that a test can keep: the committed checkpoints are exactly the named
exceptions of .gitignore, and each is loaded by a committed command or config."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_committed_checkpoints_are_the_named_exceptions():
    committed = set(_git("ls-files", "*.ckpt").split())
    gitignore = (ROOT / ".gitignore").read_text()
    assert re.search(r"^\*\.ckpt$", gitignore, flags=re.M), "checkpoints are ignored by default"
    exceptions = set(re.findall(r"^!(\S+\.ckpt)$", gitignore, flags=re.M))
    assert committed == exceptions
    used = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "configs").glob("*.yaml"))])
    for path in exceptions:
        assert path in used, f"{path} is committed but no committed command or config loads it"
        assert (ROOT / path).stat().st_size < 2_000_000, path
