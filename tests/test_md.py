"""MD data (ASE + EMT / GFN2-xTB), extxyz in and out, the MD task and the ASE calculator."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

pytest.importorskip("ase")  # equiscale.data (extxyz): the train extra
import torch

from equiscale.data import md
from equiscale.data.extxyz import Frame, read_extxyz, write_extxyz
from equiscale.models.e2former import E2Former
from equiscale.train.ase_calculator import EquiscaleCalculator
from equiscale.train.tasks.molecules import collate_molecules, md_task


def _args(**kw):
    parser = argparse.ArgumentParser()
    md.add_arguments(parser)
    return parser.parse_args([f"--{k}={v}" for k, v in kw.items()])


def test_extxyz_roundtrip_and_ase_compatible(tmp_path):
    from ase.io import read

    g = np.random.default_rng(0)
    frames = [
        Frame(z=np.array([8, 1, 1]), pos=g.normal(size=(3, 3)), energy=-1.5, forces=g.normal(size=(3, 3))),
        Frame(
            z=np.array([29, 29]),
            pos=g.normal(size=(2, 3)),
            energy=2.0,
            forces=g.normal(size=(2, 3)),
            cell=np.eye(3) * 3.6,
            pbc=np.array([True, True, False]),
        ),
    ]
    path = write_extxyz(tmp_path / "x.extxyz", frames)
    back = read_extxyz(path)
    for a, b in zip(frames, back):
        assert np.array_equal(a.z, b.z) and np.allclose(a.pos, b.pos, atol=1e-9)
        assert np.allclose(a.forces, b.forces, atol=1e-9) and a.energy == pytest.approx(b.energy)
    assert back[1].pbc.tolist() == [True, True, False] and np.allclose(back[1].cell, np.eye(3) * 3.6)
    ase_frames = read(path, index=":")
    assert ase_frames[0].get_potential_energy() == pytest.approx(-1.5)
    assert np.allclose(ase_frames[1].get_forces(), frames[1].forces, atol=1e-9)


@pytest.mark.parametrize(
    "text,line,match",
    [
        ("3\nProperties=species:S:1:pos:R:3\nO 0 0 0\nH 1 0 0\n", 4, "file ends inside a frame"),
        ("2\nProperties=species:S:1:pos:R:3\nO 0 0 0\nH 1 x 0\n", 4, "bad pos value"),
        ("2\nProperties=species:S:1:pos:R:3\nO 0 0 0\nH 1 0\n", 4, "expected 4 columns"),
        ("two\n\n", 1, "expected the number of atoms"),
        ("1\nenergy=abc\nO 0 0 0\n", 2, "energy is not a number"),
        ("1\nProperties=species:S:1:pos:R:3\nXx 0 0 0\n", 1, "unknown chemical symbol"),
    ],
)
def test_extxyz_errors_name_the_line(tmp_path, text, line, match):
    path = tmp_path / "bad.extxyz"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as err:
        read_extxyz(path)
    assert f"bad.extxyz:{line}:" in str(err.value)


def test_md_generation_emt_and_task(tmp_path):
    out = tmp_path / "cu.extxyz"
    record = md.run(
        _args(system="Cu", calculator="emt", frames=12, interval=2, equilibrate=2, repeat=1, out=out)
    )
    assert record["frames"] == 12 and (tmp_path / "cu.json").is_file()
    frames = read_extxyz(out)
    assert len(frames) == 12 and frames[0].pbc.all() and frames[0].forces.shape == (4, 3)
    # EMT forces are the negative gradient of the stored energy (check one frame by ASE)
    from ase import Atoms
    from ase.calculators.emt import EMT

    f = frames[3]
    atoms = Atoms(numbers=f.z, positions=f.pos, cell=f.cell, pbc=True, calculator=EMT())
    assert atoms.get_potential_energy() == pytest.approx(f.energy, abs=1e-8)
    task = md_task(str(out), n_train=6, n_val=3, n_test=3)
    batch = collate_molecules([task.train[i] for i in range(3)])
    assert batch["cell"].shape == (3, 3, 3) and batch["forces"].shape == (12, 3)
    model = E2Former(channels=8, lmax=1, num_layers=1, heads=2, num_radial=4, cutoff=3.0, num_elements=30)
    pred = model(batch)
    loss = task.loss(pred, batch)
    assert torch.isfinite(loss) and set(task.metrics(pred, batch)) >= {"forces_mae", "energy_mae"}


def test_md_generation_xtb_small(tmp_path):
    out = tmp_path / "h2o.extxyz"
    md.run(_args(system="H2O", calculator="xtb", frames=2, interval=1, equilibrate=0, out=out))
    frames = read_extxyz(out)
    assert len(frames) == 2 and frames[0].z.tolist() == [8, 1, 1]
    assert -200 < frames[0].energy < -100  # GFN2-xTB water, about -137 eV
    with pytest.raises(ValueError, match="unknown molecule"):
        md.build_system("NotAMolecule", "xtb")


def test_ase_calculator_forces_and_nve():
    from ase import units
    from ase.build import molecule
    from ase.md.verlet import VelocityVerlet

    torch.manual_seed(0)
    model = E2Former(channels=8, lmax=1, num_layers=1, heads=2, num_radial=4, cutoff=4.0)
    refs = np.zeros(100)
    refs[1], refs[6], refs[8] = -10.0, -20.0, -30.0
    atoms = molecule("CH3CH2OH")
    atoms.calc = EquiscaleCalculator(model, atom_refs=refs)
    e0, f0 = atoms.get_potential_energy(), atoms.get_forces()
    assert f0.shape == (9, 3)
    # energy includes the references; forces match a finite difference
    e_model = float(
        model({"pos": torch.tensor(atoms.positions), "z": torch.tensor(atoms.numbers)})["energy"]
        .detach()
        .sum()
    )
    assert e0 == pytest.approx(e_model - 2 * 20 - 6 * 10 - 30, abs=1e-8)
    d = 1e-5
    p = atoms.positions.copy()
    atoms.positions[2, 1] += d
    e_plus = atoms.get_potential_energy()
    atoms.positions = p.copy()
    atoms.positions[2, 1] -= d
    e_minus = atoms.get_potential_energy()
    assert -(e_plus - e_minus) / (2 * d) == pytest.approx(f0[2, 1], rel=1e-5, abs=1e-8)
    atoms.positions = p
    # a few NVE steps conserve energy with a smooth model
    dyn = VelocityVerlet(atoms, 0.25 * units.fs)
    etot0 = atoms.get_potential_energy() + atoms.get_kinetic_energy()
    dyn.run(20)
    etot1 = atoms.get_potential_energy() + atoms.get_kinetic_energy()
    assert abs(etot1 - etot0) < 1e-4


def test_nve_drift_reports_energies():
    from ase.build import molecule

    from equiscale.train.ase_calculator import nve_drift

    torch.manual_seed(0)
    model = E2Former(channels=8, lmax=1, num_layers=1, heads=2, num_radial=4, cutoff=4.0)
    r = nve_drift(molecule("H2O"), EquiscaleCalculator(model), steps=20, record_every=5)
    assert len(r["total_energy_eV"]) == 5 and r["duration_ps"] == pytest.approx(0.01)
    assert abs(r["drift_eV"]) < 1e-3 and r["mean_temperature_K"] > 0
