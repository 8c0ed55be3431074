"""Safe files: untrusted checkpoints run no code, corrupt caches are rebuilt with a warning, an
interrupted checkpoint write leaves the previous file intact, malformed npz input names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("ase")  # equiscale.data (extxyz): the train extra
import torch

from reliability_catalogue import common as C
from reliability_catalogue.files import _malicious_checkpoint, safe_file_cases

FILES = safe_file_cases(Path("catalogue-listing-writes-nothing"))  # never created


@pytest.mark.parametrize("case_id", [c.id for c in FILES])
def test_safe_files(case_id: str, tmp_path: Path):
    C.run_empty(next(c for c in safe_file_cases(tmp_path) if c.id == case_id))


def test_the_malicious_payload_is_live(tmp_path):
    """Not vacuous: the same file *does* run its payload when loaded without weights_only."""
    out = _malicious_checkpoint(tmp_path)
    assert out["ran_code"] is False and out["refused"]
    torch.load(tmp_path / "evil.ckpt", weights_only=False)
    assert (tmp_path / "pwned").exists()
