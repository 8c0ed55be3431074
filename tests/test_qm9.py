"""QM9 from the qm9pack wheel: parsing, caching, task splits and atom references."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ase")  # equiscale.data (extxyz): the train extra
import torch

from equiscale.data import qm9
from equiscale.train.tasks.molecules import collate_molecules, qm9_task


@pytest.fixture(scope="module")
def first_molecules():
    return qm9._parse(qm9.qm9_folder(), limit=300)


def test_parse_first_molecules(first_molecules):
    a = first_molecules
    assert a["ptr"].shape == (301,) and a["index"][:3].tolist() == [1, 2, 3]
    # methane: C + 4 H, U0 = -40.47893 Ha (the wheel's first row)
    assert a["z"][:5].tolist() == [6, 1, 1, 1, 1]
    assert a["InternalEnergy_0K_au"][0] == pytest.approx(-40.47893)
    ch = np.linalg.norm(a["pos"][1:5] - a["pos"][0], axis=1)
    assert np.allclose(ch, 1.09, atol=0.01)  # C-H bond length in A
    assert a["pos"].shape == (a["ptr"][-1], 3)


def test_cache_roundtrip(tmp_path, monkeypatch, first_molecules):
    calls = []
    monkeypatch.setattr(qm9, "_parse", lambda folder: calls.append(1) or first_molecules)
    a = qm9.load_qm9(str(tmp_path))
    b = qm9.load_qm9(str(tmp_path))
    assert len(calls) == 1 and np.array_equal(a["pos"], b["pos"])


def test_task_splits_and_references(monkeypatch, first_molecules):
    monkeypatch.setattr(qm9, "load_qm9", lambda cache=None: first_molecules)
    task = qm9_task("U0", n_train=150, n_val=50, n_test=50, seed=1)
    assert (len(task.train), len(task.val), len(task.test)) == (150, 50, 50)
    # per-element references take out almost all of the total energy (~ -10 keV per molecule)
    e = torch.stack([s["energy"] for s in task.train.items])
    assert float(e.abs().mean()) < 1.0
    batch = collate_molecules([task.train[i] for i in range(4)])
    assert batch["batch"].shape == batch["z"].shape and batch["energy"].shape == (4,)
    assert int(batch["n_atoms"].sum()) == batch["pos"].shape[0]
    pred = {"energy": batch["energy"] + 0.1}
    m = task.metrics(pred, batch)
    assert float(m["energy_mae"]) == pytest.approx(0.1, rel=1e-5)
    with pytest.raises(ValueError, match="target"):
        qm9_task("nope")
    with pytest.raises(ValueError, match="n_train"):
        qm9_task("U0", n_train=300, n_val=50, n_test=50)
