"""Safe files: untrusted checkpoints run no code, corrupt caches are rebuilt with a warning, an
interrupted checkpoint write leaves the previous file intact, malformed npz input names the key."""

from __future__ import annotations

import pytest
import torch

from equiscale.reliability import cases as C

FILES = C.safe_file_cases()


@pytest.mark.parametrize("case", FILES, ids=[c.id for c in FILES])
def test_safe_files(case):
    C.run_empty(case)


def test_the_malicious_payload_is_live(tmp_path):
    """Not vacuous: the same file *does* run its payload when loaded without weights_only."""
    out = C._malicious_checkpoint(tmp_path)
    assert out["ran_code"] is False and out["refused"]
    torch.load(tmp_path / "evil.ckpt", weights_only=False)
    assert (tmp_path / "pwned").exists()
