"""The symmetry-broken n-body variant (a constant external field): its own cache files, the
standard data untouched, and the physics of the added force."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ase")  # equiscale.data (extxyz): the train extra

from equiscale.data import nbody as nb
from equiscale.train.tasks.nbody import nbody_task

FIELD = (0.1, -0.2, 0.3)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_standard_data_is_unchanged_and_cached_apart(tmp_path: Path) -> None:
    std = nb.charged_particles("test", cache_dir=tmp_path, n=20)
    folder = tmp_path / "nbody"
    std_file = folder / f"{nb.PROTOCOL}-test-first20.npz"  # the name it always had
    assert sorted(p.name for p in folder.iterdir()) == [std_file.name]
    before = _sha(std_file)
    broken = nb.charged_particles("test", cache_dir=tmp_path, n=20, field=FIELD)
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 2 and nb.field_tag(FIELD) in names[0] + names[1]
    assert _sha(std_file) == before  # the standard file is not touched
    again = nb.charged_particles("test", cache_dir=tmp_path, n=20)
    np.testing.assert_array_equal(again.loc, std.loc)
    # a zero field is the standard data, read from the standard file
    zero = nb.charged_particles("test", cache_dir=tmp_path, n=20, field=[0, 0, 0])
    np.testing.assert_array_equal(zero.loc, std.loc)
    assert sorted(p.name for p in folder.iterdir()) == names
    # the field changes the trajectories, not the draws
    np.testing.assert_array_equal(broken.charges, std.charges)
    assert np.abs(broken.loc[:, 40] - std.loc[:, 40]).mean() > 1e-2
    np.testing.assert_allclose(broken.loc[:, 0], std.loc[:, 0], atol=0.1)


def test_standard_path_still_equals_the_reference_transcription() -> None:
    charges, loc_draw, vel_draw = nb._split_draws("test", 0, 6)
    loc, vel = nb._simulate(charges, loc_draw, vel_draw, length=600)
    for k in range(6):
        rl, rv = nb._reference_trajectory(charges[k], loc_draw[k], vel_draw[k], length=600)
        np.testing.assert_allclose(loc[k], rl.transpose(0, 2, 1), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(vel[k], rv.transpose(0, 2, 1), rtol=1e-12, atol=1e-12)


def test_field_force_is_q_times_e() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 4)) * 3.0  # [3, n, B], far apart: no clipping
    q = rng.choice([-1.0, 1.0], size=(5, 4))
    qq = q[nb._PAIR_I] * q[nb._PAIR_J]
    qfield = np.asarray(FIELD)[:, None, None] * q[None]
    plain = nb._forces(x, qq)
    assert np.abs(plain).max() < nb.MAX_F
    np.testing.assert_allclose(nb._forces(x, qq, qfield) - plain, qfield, atol=1e-12)


def test_momentum_changes_by_total_charge_times_field() -> None:
    """Coulomb forces conserve momentum (when unclipped); the field adds (sum_i q_i) E per unit
    time: from frame 30 to 40 (one time unit) sum_i v_i grows by (sum_i q_i) E."""
    std = nb.charged_particles("test", n=30, cache=False)
    broken = nb.charged_particles("test", n=30, cache=False, field=FIELD)
    dp_std = std.vel[:, 40].sum(1) - std.vel[:, 30].sum(1)
    dp = broken.vel[:, 40].sum(1) - broken.vel[:, 30].sum(1)
    expected = broken.charges.sum(1)[:, None] * np.asarray(FIELD)
    conserving = np.abs(dp_std).max(1) < 1e-9
    assert conserving.sum() >= 20
    close = np.abs(dp - expected).max(1) < 1e-12
    assert close[conserving].mean() >= 0.8  # a few clip in close encounters


def test_task_and_bad_fields() -> None:
    task = nbody_task(n_train=10, n_val=10, n_test=10, field=list(FIELD))
    assert "external field" in task.describe
    assert nb.field_tag(None) == nb.field_tag((0.0, 0.0, 0.0)) == ""
    assert nb.field_tag((0.0, -0.5, 1.0)) != nb.field_tag((0.0, 0.5, 1.0))
    for bad, err in (
        ((1.0, 2.0), ValueError),
        ("abc", ValueError),
        (0.2, ValueError),
        ((True, 0, 0), TypeError),
        ((float("nan"), 0.0, 0.0), ValueError),
    ):
        with pytest.raises(err, match="field"):
            nb.charged_particles("test", n=2, cache=False, field=bad)
