"""bench md-speed: the cluster it times has the requested size and no overlapping molecules, and
the MD timing runs through an ASE calculator."""

from __future__ import annotations

import pytest

pytest.importorskip("ase")  # ASE molecular dynamics: the train extra

import numpy as np

from equiscale.bench.md_speed import _time_md, molecule_cluster


def test_cluster_size_and_spacing():
    atoms = molecule_cluster("CH3CH2OH", 1000, 5.0)
    assert abs(len(atoms) - 1000) <= 9 and len(atoms) % 9 == 0
    d = np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert d.min() > 0.8  # bonded H at ~0.96 A is the closest pair; no two molecules overlap


def test_time_md_with_emt():
    from ase.build import bulk
    from ase.calculators.emt import EMT

    seconds = _time_md(bulk("Cu", "fcc", cubic=True).repeat((2, 2, 2)), EMT(), steps=3)
    assert 0 < seconds < 10
