"""NVE driver (equiscale.train.nve): OpenMM's Verlet and ASE's RATTLE on alanine dipeptide from one
constrained start; constraints hold, OpenMM conserves its energy, the summary is right."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

pytest.importorskip("ase")
pytest.importorskip("openmm")
if importlib.util.find_spec("openmmtools") is None:  # its files only: importing it takes ~10 s
    pytest.skip("openmmtools is not installed (the structures come from its wheel)", allow_module_level=True)

from equiscale.data.protein import load_structure  # noqa: E402
from equiscale.models.hybrid import HybridNet  # noqa: E402
from equiscale.train.ase_calculator import EquiscaleCalculator  # noqa: E402
from equiscale.train.nve import (  # noqa: E402
    DA_A2_PS2_EV,
    KB_EV,
    ase_nve,
    energy_summary,
    geometry_checks,
    openmm_nve,
    protein_start,
)


@pytest.fixture(scope="module")
def start():
    """The prmtop's coordinates with 300 K Maxwell-Boltzmann velocities (seed 0), projected."""
    _, pos_nm = load_structure("alanine-dipeptide")
    rng = np.random.default_rng(0)
    s = protein_start("alanine-dipeptide", pos_nm * 10.0, np.zeros((22, 3)))
    sigma = np.sqrt(300.0 * KB_EV / (s.masses * DA_A2_PS2_EV))  # A/ps per component
    return protein_start("alanine-dipeptide", pos_nm * 10.0, rng.normal(size=(22, 3)) * sigma[:, None])


def _violation(snapshots, start) -> float:
    traj = np.asarray(snapshots)
    pairs = start.constraints
    d = np.linalg.norm(traj[:, pairs[:, 0]] - traj[:, pairs[:, 1]], axis=-1)
    return float(np.abs(d - start.lengths).max())


def test_start_is_constrained_and_still(start):
    assert len(start.lengths) == 12  # one constraint per hydrogen
    assert start.dof == 3 * 22 - 12 - 3
    assert _violation([start.pos], start) < 1e-8
    rel = start.vel[start.constraints[:, 0]] - start.vel[start.constraints[:, 1]]
    bond = start.pos[start.constraints[:, 0]] - start.pos[start.constraints[:, 1]]
    assert np.abs((rel * bond).sum(-1)).max() < 1e-6  # velocities along no constrained bond
    assert np.abs((start.masses[:, None] * start.vel).sum(0)).max() < 1e-9


def test_openmm_verlet_keeps_constraints_and_energy(start):
    snaps: list[np.ndarray] = []
    r = openmm_nve(start, timestep_fs=1.0, steps=60, record_every=2, snapshots=snaps)
    assert len(snaps) == 31 and r["steps"] == 60
    assert _violation(snaps, start) < 1e-6
    assert r["geometry"]["max_constraint_violation_A"] < 1e-6 and r["geometry"]["physical"]
    etot = np.asarray(r["total_energy_eV"])
    # over 60 fs the potential energy moves by ~0.26 eV; the total stays within 10 meV of the start
    # (measured 3.9 meV at 1 fs; 71 meV at 4 fs, and a constraint tolerance of 1e-5 breaks the
    # bond check above)
    assert np.abs(etot - etot[0]).max() < 1e-2
    assert np.ptp(r["potential_energy_eV"]) > 10 * np.abs(etot - etot[0]).max()
    assert 100.0 < r["mean_temperature_K"] < 600.0


def test_ase_rattle_with_untrained_model_keeps_constraints(start):
    torch.manual_seed(0)
    model = HybridNet(
        num_elements=10, channels=4, lmax=1, num_layers=1, heads=1, num_radial=4, filter_hidden=4
    )
    snaps: list[np.ndarray] = []
    r = ase_nve(start, EquiscaleCalculator(model), timestep_fs=1.0, steps=4, record_every=1, snapshots=snaps)
    assert len(snaps) == 5 and r["engine"] == "ase-velocity-verlet-rattle"
    assert np.abs(snaps[0] - start.pos).max() == 0.0
    assert np.abs(snaps[-1] - start.pos).max() > 1e-3  # the atoms moved
    assert _violation(snaps, start) < 1e-6
    assert r["geometry"]["max_constraint_violation_A"] < 1e-6
    ekin0 = 0.5 * (start.masses[:, None] * start.vel**2).sum() * DA_A2_PS2_EV
    assert r["kinetic_energy_eV"][0] == pytest.approx(ekin0, rel=1e-6)  # same units as OpenMM's start


def test_energy_summary_and_geometry_flags(start):
    t = np.arange(11) * 100.0  # fs
    s = energy_summary(t, 2.0 * t / 1000.0, np.full(11, 0.5), n_atoms=4, dof=10)
    assert s["drift_rate_eV_per_ps"] == pytest.approx(2.0) and s["drift_eV"] == pytest.approx(2.0)
    assert s["drift_rate_meV_per_atom_per_ps"] == pytest.approx(500.0)
    assert s["mean_temperature_K"] == pytest.approx(0.5 / (5 * KB_EV))
    flown = start.pos.copy()
    flown[0] += 20.0
    assert geometry_checks([start.pos], start)["physical"]
    assert not geometry_checks([start.pos, flown], start)["physical"]
