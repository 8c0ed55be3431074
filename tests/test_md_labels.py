"""MD labels are the calculator's own forces, and the consistency checks catch labels that are not.

The committed ethanol set once stored forces read through ASE's ``FixCom`` constraint (not -dE/dr,
net forces up to 8 eV/A); these tests fail on such labels.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ase")  # equiscale.data (extxyz): the train extra

from equiscale.data import md
from equiscale.data.consistency import (
    DataConsistencyError,
    check_finite_differences,
    check_frames,
    trajectory_work_residual,
)
from equiscale.data.extxyz import read_extxyz, write_extxyz
from equiscale.train.tasks.molecules import md_task

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT / "data").glob("md_*_xtb.extxyz"))


def _fixcom_adjusted(frame):
    """The label ``atoms.get_forces()`` returns with ``FixCom`` set (ASE's own adjust_forces)."""
    from ase import Atoms
    from ase.constraints import FixCom

    atoms = Atoms(numbers=frame.z, positions=frame.pos)
    forces = np.array(frame.forces, dtype=np.float64)
    FixCom().adjust_forces(atoms, forces)
    return replace(frame, forces=forces)


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_committed_labels_equal_recomputed_xtb(path):
    """Stored energies and forces equal GFN2-xTB's at the stored positions (25 frames)."""
    pytest.importorskip("tblite")
    frames = read_extxyz(path)
    calc = md.make_calculator("xtb")
    from ase import Atoms

    for k in np.random.default_rng(0).choice(len(frames), 25, replace=False):
        f = frames[int(k)]
        atoms = Atoms(numbers=f.z, positions=f.pos)
        atoms.calc = calc
        assert atoms.get_potential_energy() == pytest.approx(f.energy, abs=1e-6)
        assert np.abs(atoms.get_forces() - f.forces).max() < 1e-4, f"{path.name} frame {k}"
    check_frames(frames, source=path.name)


def test_check_rejects_fixcom_labels(tmp_path):
    """The committed data with the FixCom-adjusted labels (the old defect) is rejected on read and by
    finite differences; the raw labels pass both."""
    pytest.importorskip("tblite")
    frames = read_extxyz(ROOT / "data" / "md_CH3CH2OH_xtb.extxyz")[:200]
    bad = [_fixcom_adjusted(f) for f in frames]
    assert max(np.linalg.norm(f.forces.sum(0)) for f in bad) > 1.0
    with pytest.raises(DataConsistencyError, match="net force"):
        check_frames(bad)
    path = write_extxyz(tmp_path / "fixcom.extxyz", bad)
    with pytest.raises(DataConsistencyError, match="not -dE/dr"):
        md_task(str(path), n_train=100, n_val=50, n_test=50)
    calc = md.make_calculator("xtb")
    with pytest.raises(DataConsistencyError, match="finite"):
        check_finite_differences(bad, lambda f: md.frame_energy(f, calc), n_frames=5)
    assert check_finite_differences(frames, lambda f: md.frame_energy(f, calc), n_frames=5) < 1e-3
    # the trapezoid work check is blind to this defect (the centre of mass is fixed): say so
    good_res = trajectory_work_residual(frames)["rms_residual"]
    assert trajectory_work_residual(bad)["rms_residual"] == pytest.approx(good_res, rel=1e-6)


def test_check_rejects_nan_and_wrong_units():
    g = np.random.default_rng(1)
    from equiscale.data.extxyz import Frame

    def frame(forces):
        return Frame(z=np.array([8, 1, 1]), pos=g.normal(size=(3, 3)), energy=-1.0, forces=forces)

    ok = g.normal(size=(3, 3))
    ok -= ok.mean(0)
    check_frames([frame(ok)])
    nan = ok.copy()
    nan[1, 2] = np.nan
    with pytest.raises(DataConsistencyError, match="frame 1 has non-finite forces"):
        check_frames([frame(ok), frame(nan)])
    with pytest.raises(DataConsistencyError, match="eV/A"):
        check_frames([frame(ok * 1e3)])
    with pytest.raises(DataConsistencyError, match="non-finite energy"):
        check_frames([replace(frame(ok), energy=float("inf"))])


def test_generator_stores_calculator_forces(tmp_path):
    """`equiscale data md` with xTB: stored forces are the calculator's (zero net force, finite
    differences), not the FixCom-adjusted ones, and the record holds the checks."""
    pytest.importorskip("tblite")
    parser = argparse.ArgumentParser()
    md.add_arguments(parser)
    out = tmp_path / "water.extxyz"
    args = parser.parse_args(
        ["--system", "H2O", "--frames", "6", "--interval", "3", "--equilibrate", "3", "--out", str(out)]
    )
    record = md.run(args)
    assert record["checks"]["max_net_force_eV_per_A"] < 1e-6
    assert record["checks"]["finite_difference_max_error_eV_per_A"] < 1e-3
    frames = read_extxyz(out)
    calc = md.make_calculator("xtb")
    from ase import Atoms

    for f in frames:
        atoms = Atoms(numbers=f.z, positions=f.pos)
        atoms.calc = calc
        assert np.abs(atoms.get_forces() - f.forces).max() < 1e-6


@pytest.mark.parametrize(
    "flag,value", [("timestep", "0"), ("temperature", "-300"), ("timestep", "nan"), ("friction", "-1")]
)
def test_md_generator_rejects_nonsense(tmp_path, flag, value):
    """`data md --timestep 0` / `--temperature -300` once wrote NaN positions and exited 0."""
    parser = argparse.ArgumentParser()
    md.add_arguments(parser)
    args = parser.parse_args(
        [
            "--system",
            "Cu",
            "--calculator",
            "emt",
            "--frames",
            "2",
            f"--{flag}={value}",
            "--out",
            str(tmp_path / "x.extxyz"),
        ]
    )
    with pytest.raises(ValueError, match=flag):
        md.run(args)
    assert not (tmp_path / "x.extxyz").exists()
