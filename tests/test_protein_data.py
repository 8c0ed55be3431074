"""Protein data labelled by OpenMM: labels recomputed, exact short/long split, -dE/dr, splits, cache."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from itertools import combinations

import numpy as np
import pytest

pytest.importorskip("openmm")
pytest.importorskip("openmmtools")

from equiscale.data import protein  # noqa: E402
from equiscale.data.cache import CacheError, CorruptCacheWarning, load_npz  # noqa: E402
from equiscale.data.consistency import DataConsistencyError, check_finite_differences  # noqa: E402
from equiscale.data.extxyz import Frame  # noqa: E402

SETTINGS = {"frames": 6, "interval": 10, "equilibrate": 10, "cutoff": 4.0, "platform": "Reference", "seed": 3}


@pytest.fixture(scope="module")
def ala(tmp_path_factory):
    folder = tmp_path_factory.mktemp("protein_cache")
    return protein.protein_frames("alanine-dipeptide", cache_dir=folder, **SETTINGS), folder


@pytest.fixture(scope="module")
def omm():
    prmtop, _ = protein.load_structure("alanine-dipeptide")
    system = protein.build_system(prmtop, "hbonds")
    return system, protein.nonbonded_parameters(system)


def test_shapes_units_and_topology(ala):
    data, _ = ala
    n = 22
    assert len(data) == 6 and data.n_atoms == n
    assert data.pos.shape == data.forces.shape == data.forces_long.shape == (6, n, 3)
    assert data.z.tolist().count(6) == 6 and data.z.tolist().count(1) == 12  # C6 H12 N2 O2
    assert data.residue_names[0] == "ACE" and data.residue_names[-1] == "NME"
    assert np.all(np.diff(data.residue_index) >= 0) and data.residue_index.max() == 2
    assert abs(data.charges.sum()) < 1e-6  # a neutral molecule
    assert np.all(np.diff(data.time_ps) > 0)
    assert data.meta["settings"]["cutoff_A"] == 4.0 and data.meta["generation_seconds"] > 0
    assert 0 < data.meta["md_seconds_per_step"] < data.meta["generation_seconds"]
    # bond lengths in A, not nm
    d = np.linalg.norm(data.pos[0][:, None] - data.pos[0][None], axis=-1)
    assert 0.9 < np.sort(d + 100 * np.eye(n), axis=1)[:, 0].min() < 1.2


def test_velocities_in_A_per_ps(ala, omm):
    from openmm import unit

    data, _ = ala
    system, _ = omm
    mass = np.array([system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(data.n_atoms)])
    dof = 3 * data.n_atoms - system.getNumConstraints() - 3
    kinetic = 0.5 * (mass[None, :, None] * (data.vel * protein.NM_PER_A) ** 2).sum((1, 2))  # kJ/mol
    temperature = 2 * kinetic / (dof * 0.00831446261815324)  # K
    assert 150 < temperature.mean() < 600  # 300 K thermostat, 6 frames of a 22-atom molecule
    # heavy atoms move along their velocities over the 20 fs between frames
    heavy = data.z > 1
    step = ((data.pos[1:] - data.pos[:-1]) / np.diff(data.time_ps)[:, None, None])[:, heavy]
    mid = (0.5 * (data.vel[1:] + data.vel[:-1]))[:, heavy]
    corr = (step * mid).sum() / np.sqrt((step**2).sum() * (mid**2).sum())
    assert corr > 0.5


def test_forces_equal_openmm_recomputed(ala, omm):
    data, _ = ala
    system, _ = omm
    ctx = protein._context(system, "Reference", 1)
    for k in range(len(data)):
        e, f = protein.openmm_forces(ctx, data.pos[k])
        assert e == pytest.approx(data.energy[k], abs=1e-9)
        np.testing.assert_allclose(data.forces[k], f, atol=1e-9, rtol=0)


def _naive_long(pos_nm, params, rc_nm):
    """Pair by pair, in Python: the long-range non-bonded forces (kJ/mol/nm)."""
    exc = {}
    for i, j, qq, s, e in zip(
        params["exc_i"], params["exc_j"], params["exc_qq"], params["exc_sigma"], params["exc_eps"]
    ):
        exc[(min(i, j), max(i, j))] = (qq, s, e)
    q, sg, ep = params["charge"], params["sigma"], params["epsilon"]
    f = np.zeros_like(pos_nm)
    for i, j in combinations(range(len(pos_nm)), 2):
        qq, s, e = exc.get((i, j), (q[i] * q[j], 0.5 * (sg[i] + sg[j]), np.sqrt(ep[i] * ep[j])))
        d = pos_nm[i] - pos_nm[j]
        r = np.linalg.norm(d)
        if r <= rc_nm:
            continue
        dedr = -protein.ONE_4PI_EPS0 * qq / r**2 + 4 * e * (-12 * s**12 / r**13 + 6 * s**6 / r**7)
        f[i] -= dedr * d / r
        f[j] += dedr * d / r
    return f


def test_short_plus_long_is_total(ala, omm):
    import openmm as mm
    from openmm import unit

    data, _ = ala
    system, params = omm
    err = np.abs(data.forces - data.forces_short - data.forces_long).max()
    assert err < 1e-9
    assert np.abs(data.energy - data.energy_short - data.energy_long).max() < 1e-9
    assert np.abs(data.forces_long).max() > 1e-2  # the split is not trivial at 4 A ...
    assert np.abs(data.forces_short).max() > np.abs(data.forces_long).max()  # ... nor all long
    # the long part pair by pair, independently of the vectorised sum
    pos_nm = data.pos[2] * protein.NM_PER_A
    np.testing.assert_allclose(
        data.forces_long[2], _naive_long(pos_nm, params, 0.4) * protein.FORCE_UNIT, atol=1e-10, rtol=0
    )
    # short + long of the numpy pair sum = OpenMM's NonbondedForce alone
    copy = mm.XmlSerializer.deserialize(mm.XmlSerializer.serialize(system))
    for force in copy.getForces():
        force.setForceGroup(1 if isinstance(force, mm.NonbondedForce) else 0)
    ctx = protein._context(copy, "Reference", 1)
    ctx.setPositions(pos_nm)
    state = ctx.getState(getForces=True, getEnergy=True, groups={1})
    f_nb = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    e_nb = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    e_s, f_s = protein.pair_forces(pos_nm, params, 0.4, "short")
    e_l, f_l = protein.pair_forces(pos_nm, params, 0.4, "long")
    np.testing.assert_allclose(f_s + f_l, np.asarray(f_nb), atol=1e-8, rtol=0)
    assert e_s + e_l == pytest.approx(e_nb, abs=1e-8)
    # nothing is beyond 100 A in a 22-atom molecule
    assert not protein.pair_forces(pos_nm, params, 10.0, "long")[1].any()


def test_several_cutoffs_in_one_pass(ala, omm):
    data, _ = ala
    _, params = omm
    pos_nm = data.pos[1] * protein.NM_PER_A
    cutoffs = [0.3, 0.45, 0.7]
    for side in ("long", "short"):
        together = protein.pair_forces_at(pos_nm, params, cutoffs, side, block=7)
        for rc, (e, f) in zip(cutoffs, together):
            e1, f1 = protein.pair_forces(pos_nm, params, rc, side)
            assert e == pytest.approx(e1, abs=1e-10)
            np.testing.assert_allclose(f, f1, atol=1e-10, rtol=0)
    longs = [np.abs(f).sum() for _, f in protein.pair_forces_at(pos_nm, params, cutoffs)]
    assert longs[0] > longs[1] > longs[2] > 0


def test_split_check_catches_a_wrong_part(ala):
    data, _ = ala
    arrays = {k: getattr(data, k) for k in ("pos", "energy", "forces", "forces_short", "forces_long")}
    protein.check_protein_arrays(arrays, split_tol=1e-9)
    bad = dict(arrays, forces_long=arrays["forces_long"] * 1.01)
    with pytest.raises(DataConsistencyError, match="does not add up"):
        protein.check_protein_arrays(bad, split_tol=1e-6)


def test_forces_are_minus_gradient(ala, omm):
    data, _ = ala
    system, _ = omm
    ctx = protein._context(system, "Reference", 1)
    frames = [
        Frame(z=data.z, pos=p, energy=float(e), forces=f)
        for p, e, f in zip(data.pos, data.energy, data.forces)
    ]
    energy = lambda fr: protein.openmm_forces(ctx, fr.pos)[0]
    assert check_finite_differences(frames, energy, n_frames=3, tol=1e-5) < 1e-5
    # a force error with zero net force (invisible to the net-force check) is caught
    delta = np.zeros_like(data.forces[0])
    delta[0, 0], delta[5, 0] = 0.05, -0.05
    wrong = [replace(f, forces=f.forces + delta) for f in frames]
    with pytest.raises(DataConsistencyError, match="not -dE/dr"):
        check_finite_differences(wrong, energy, n_frames=3, tol=1e-3)
    assert data.meta["checks"]["finite_difference_max_error_eV_per_A"] < 1e-3


def test_time_block_splits_are_contiguous():
    train, val, test = protein.time_block_splits(20, 10, 3, 4, gap=1)
    assert train.tolist() == list(range(10)) and val.tolist() == [11, 12, 13]
    assert test.tolist() == [15, 16, 17, 18]
    for block in (train, val, test):
        assert np.all(np.diff(block) == 1)
    assert train.max() < val.min() and val.max() < test.min()
    with pytest.raises(ValueError, match="exceeds the 20 frames"):
        protein.time_block_splits(20, 10, 5, 5, gap=1)
    with pytest.raises(ValueError, match="n_val"):
        protein.time_block_splits(20, 10, 0, 5)


def test_cache_checksum_catches_a_corrupted_file(ala):
    data, folder = ala
    (path,) = list((folder / "protein").glob("*.npz"))
    with np.load(path) as z:
        raw = {k: z[k] for k in z.files}
    raw["forces"] = raw["forces"].copy()
    raw["forces"][0, 0, 0] += 1e-6  # a tiny change, old checksum kept
    with open(path, "wb") as f:
        np.savez(f, **raw)
    with pytest.raises(CacheError, match="checksum mismatch"):
        load_npz(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = protein.protein_frames("alanine-dipeptide", cache_dir=folder, **SETTINGS)
    assert any(issubclass(w.category, CorruptCacheWarning) for w in caught)
    np.testing.assert_array_equal(again.forces, data.forces)  # rebuilt, the same numbers
    load_npz(path)  # intact again


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"system": "ubiquitin"}, "system must be one of"),
        ({"frames": 0}, "frames must be an int"),
        ({"cutoff": -1.0}, "cutoff must be a finite number"),
        ({"platform": "CUDA"}, "platform must be"),
        ({"label_platform": "OpenCL"}, "label_platform must be"),
        ({"constraints": "all"}, "constraints must be"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        protein.generate(**{"frames": 1, "interval": 1, "equilibrate": 0, "platform": "Reference", **kwargs})
    with pytest.raises(ValueError, match=match):
        protein.protein_frames(
            cache=False, **{"frames": 1, "interval": 1, "equilibrate": 0, "platform": "Reference", **kwargs}
        )


def test_cli_writes_data_and_record(tmp_path):
    from equiscale.cli import main

    out = tmp_path / "ala.npz"
    assert (
        main(
            [
                "data",
                "protein",
                "--frames",
                "3",
                "--interval",
                "5",
                "--equilibrate",
                "0",
                "--platform",
                "Reference",
                "--cutoff",
                "4",
                "--fraction-cutoffs",
                "6",
                "100",
                "--out",
                str(out),
                "--cache-dir",
                str(tmp_path / "cache"),
            ]
        )
        == 0
    )
    arrays = load_npz(out, required=protein.REQUIRED)
    assert arrays["forces"].shape == (3, 22, 3)
    record = json.loads(out.with_suffix(".json").read_text())
    fr = record["long_range_fraction"]
    assert set(fr) == {"4", "6", "100"} and fr["100"]["rms_ratio"] == 0.0
    assert 0 < fr["6"]["rms_ratio"] < fr["4"]["rms_ratio"] < 1
    assert record["checks"]["split_max_error_eV_per_A"] < 1e-9


def test_cli_rejects_unknown_system(capsys):
    from equiscale.cli import main

    with pytest.raises(SystemExit):
        main(["data", "protein", "--system", "nonsense"])
    assert "invalid choice" in capsys.readouterr().err


def test_pair_forces_bad_side(omm):
    _, params = omm
    with pytest.raises(ValueError, match="side must be"):
        protein.pair_forces(np.zeros((22, 3)), params, 0.5, "middle")
    with pytest.raises(ValueError, match="cutoff_nm"):
        protein.pair_forces(np.zeros((22, 3)), params, float("nan"))


def test_coulomb_beyond_is_the_coulomb_part_of_the_long_range_forces(ala, omm):
    """coulomb_beyond with the file's charges equals the pair sum beyond r_c with the Lennard-Jones
    terms switched off (no exception pair is beyond 4 A in alanine dipeptide), and differs from
    forces_long by the Lennard-Jones tail alone, which is small beside the Coulomb part."""
    data, _ = ala
    _, params = omm
    coulomb_only = {
        **params,
        "epsilon": np.zeros_like(params["epsilon"]),
        "exc_eps": np.zeros_like(params["exc_eps"]),
    }
    for k in (0, 3):
        pos_nm = data.pos[k] * protein.NM_PER_A
        want = protein.pair_forces(pos_nm, coulomb_only, 0.4, "long")[1] * protein.FORCE_UNIT
        got = protein.coulomb_beyond(data.pos[k], data.charges, 4.0)
        np.testing.assert_allclose(got, want, atol=1e-10, rtol=0)
        assert np.abs(got).max() > 1e-2
        assert np.linalg.norm(got - data.forces_long[k]) < 0.2 * np.linalg.norm(data.forces_long[k])
    with pytest.raises(ValueError, match="cutoff_A"):
        protein.coulomb_beyond(data.pos[0], data.charges, 0.0)
