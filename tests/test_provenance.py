"""Records name no machine paths: paths below the working directory are written relative to it."""

from __future__ import annotations

import json

from equiscale.provenance import portable_path, write_record


def test_portable_path_is_relative_below_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert portable_path(tmp_path / "runs" / "a" / "best.ckpt") == "runs/a/best.ckpt"
    assert portable_path("runs/b.json") == "runs/b.json"
    outside = tmp_path.parent / "elsewhere.json"
    assert portable_path(outside) == str(outside)  # not below: kept, never silently rewritten


def test_write_record_carries_provenance_and_writes_atomically(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rec = write_record(tmp_path / "r.json", {"output": portable_path(tmp_path / "d.npz")}, started=0.0)
    on_disk = json.loads((tmp_path / "r.json").read_text())
    assert on_disk == rec and on_disk["output"] == "d.npz"
    for key in ("command", "git_commit", "versions", "wall_time_s"):
        assert key in on_disk
    assert not list(tmp_path.glob("*.tmp*"))  # no temporary file left behind


def test_command_line_names_a_module_run_as_python_m(monkeypatch):
    """``python -m equiscale.train.nve ...`` is recorded as typed, not as ``nve.py ...``; the
    console script stays ``equiscale ...``."""
    import sys
    import types

    from equiscale.provenance import command_line

    main = types.ModuleType("__main__")
    main.__spec__ = types.SimpleNamespace(name="equiscale.train.nve")
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr(sys, "argv", ["/somewhere/equiscale/train/nve.py", "--checkpoint", "a b.ckpt"])
    assert command_line() == "python -m equiscale.train.nve --checkpoint 'a b.ckpt'"
    monkeypatch.setattr(sys, "argv", ["/venv/bin/equiscale", "train", "--config", "c.yaml"])
    assert command_line() == "equiscale train --config c.yaml"
