"""Charged n-body data (EGNN protocol) and the on-disk npz cache."""

from __future__ import annotations

import argparse
import os
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ase")  # equiscale.data (extxyz): the train extra

from equiscale.data import NBodyTrajectories, charged_particles, nbody_baselines
from equiscale.data import cache as cache_mod
from equiscale.data import nbody as nb

N_REF = 48


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask  # test trajectories replayed by the plain reference loop


@pytest.fixture(scope="session")
def nbody_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("equiscale_cache")


@pytest.fixture(scope="session")
def test_split(nbody_cache) -> NBodyTrajectories:
    """The full test split, generated once (~10 s) into a temporary cache folder."""
    return charged_particles("test", cache_dir=nbody_cache)


# ----------------------------------------------------------------------------- protocol


def test_shapes_and_charges(test_split):
    t = test_split
    assert t.split == "test" and len(t) == 2000
    assert t.loc.shape == t.vel.shape == (2000, 49, 5, 3)
    assert t.loc.dtype == t.vel.dtype == np.float64
    assert t.charges.shape == (2000, 5)
    assert set(np.unique(t.charges)) == {-1.0, 1.0}
    assert t.edges.shape == (2000, 5, 5)
    np.testing.assert_array_equal(t.edges[:, 1, 2], t.charges[:, 1] * t.charges[:, 2])
    assert np.isfinite(t.loc).all() and np.isfinite(t.vel).all()


def test_charges_follow_the_seed43_stream(test_split):
    """Charges are the 12001st.. choice() draws of RandomState(43), called as the original does."""
    rs = np.random.RandomState(43)
    for k in range(12000 + 3):
        q = rs.choice(np.array([-1.0, 0.0, 1.0]), size=(5, 1), p=[0.5, 0.0, 0.5])
        rs.randn(3, 5)
        rs.randn(3, 5)
        rs.randn(49, 3, 5)
        rs.randn(49, 3, 5)
        if k >= 12000:
            np.testing.assert_array_equal(test_split.charges[k - 12000], q[:, 0])


def test_split_draws_slices_are_consistent():
    full = nb._split_draws("valid", 0, 6)
    part = nb._split_draws("valid", 2, 5)
    for a, b in zip(full, part):
        np.testing.assert_array_equal(a[2:5], b)
    empty = nb._split_draws("test", 3, 3)
    assert [a.shape for a in empty] == [(0, 5, 1), (0, 3, 5), (0, 3, 5)]


def test_vectorised_equals_reference_loop(test_split):
    """The first N_REF test trajectories, replayed one by one by the plain transcription of
    ``sample_trajectory``: frames 30 and 40 agree to float precision for >= 85% of them
    (bit for bit wherever the local BLAS computes the 3-term dot product as an fma chain)."""
    charges, loc_draw, vel_draw = nb._split_draws("test", 0, N_REF)
    np.testing.assert_array_equal(charges[:, :, 0], test_split.charges[:N_REF])
    frames = [30, 40]
    close, exact = 0, 0
    for k in range(N_REF):
        # 4200 steps: frames 0..40 are those of the 5000-step run (later steps cannot reach back)
        loc, vel = nb._reference_trajectory(charges[k], loc_draw[k], vel_draw[k], length=4200)
        ref = np.stack([loc[frames], vel[frames]]).transpose(0, 1, 3, 2)  # [2, 2, 5, 3]
        ours = np.stack([test_split.loc[k, frames], test_split.vel[k, frames]])
        exact += np.array_equal(ref, ours)
        close += np.allclose(ours, ref, rtol=1e-7, atol=1e-7)
    assert close / N_REF >= 0.85, (close, exact)


def test_reflection_into_the_box_matches_reference():
    """Initial positions outside [-5, 5] are reflected once (the original's _clamp)."""
    rng = np.random.default_rng(0)
    m = 6
    charges = rng.choice([-1.0, 1.0], size=(m, 5, 1))
    loc_draw = rng.standard_normal((m, 3, 5))
    vel_draw = rng.standard_normal((m, 3, 5))
    loc_draw[0, 0, 1], loc_draw[1, 2, 4], loc_draw[2, 1, 0] = 6.5, -5.5, 9.0
    loc, vel = nb._simulate(charges, loc_draw, vel_draw, length=600)
    assert loc.shape == (m, 5, 5, 3)
    for k in range(m):
        rl, rv = nb._reference_trajectory(charges[k], loc_draw[k], vel_draw[k], length=600)
        np.testing.assert_array_equal(loc[k], rl.transpose(0, 2, 1))
        np.testing.assert_array_equal(vel[k], rv.transpose(0, 2, 1))
    x0, v0 = nb._initial_state(loc_draw, vel_draw)
    assert x0[0, 0, 1] == 10.0 - 6.5 and v0[0, 0, 1] <= 0
    assert x0[1, 2, 4] == -10.0 + 5.5 and v0[1, 2, 4] >= 0
    np.testing.assert_allclose(np.linalg.norm(v0, axis=1), 0.5, rtol=1e-15)


def test_empty_simulation():
    z = np.zeros((0, 3, 5))
    loc, vel = nb._simulate(np.zeros((0, 5, 1)), z, z)
    assert loc.shape == vel.shape == (0, 49, 5, 3)


def test_emulated_fma_is_correctly_rounded():
    rng = np.random.default_rng(1)
    a, b, c = rng.standard_normal((3, 3000)) * rng.choice([1e-3, 1.0, 30.0], size=(3, 3000))
    c[:1000] = -(a[:1000] * b[:1000])  # catastrophic cancellation: the result is the rounding error
    got = nb._fma(a, b, c)
    want = np.array([float(Fraction(x) * Fraction(y) + Fraction(z)) for x, y, z in zip(a, b, c)])
    np.testing.assert_array_equal(got, want)


def test_untrained_baselines_match_published(test_split):
    """Copy frame 30 / constant velocity on the test split: 0.2715 / 0.1090 (DESIGN.md)."""
    base = nbody_baselines(test_split)
    assert abs(base["copy"] / 0.2715 - 1) < 0.01, base
    assert abs(base["constant_velocity"] / 0.1090 - 1) < 0.03, base


# ----------------------------------------------------------------------------- cache


def test_cache_is_reused(test_split, nbody_cache, monkeypatch):
    files = list((nbody_cache / "nbody").glob("*.npz"))
    assert [f.name for f in files] == [f"{nb.PROTOCOL}-test.npz"]
    assert not list((nbody_cache / "nbody").glob("*.tmp"))
    monkeypatch.setattr(nb, "_generate", lambda *a, **k: pytest.fail("cache not used"))
    again = charged_particles("test", cache_dir=nbody_cache)
    np.testing.assert_array_equal(again.loc, test_split.loc)
    np.testing.assert_array_equal(again.charges, test_split.charges)


def test_corrupt_nbody_cache_is_rebuilt(test_split, tmp_path, monkeypatch):
    calls = []

    def fake_generate(split, progress=False):
        calls.append(split)
        return {"loc": test_split.loc, "vel": test_split.vel, "charges": test_split.charges}

    monkeypatch.setattr(nb, "_generate", fake_generate)
    charged_particles("test", cache_dir=tmp_path)
    path = tmp_path / "nbody" / f"{nb.PROTOCOL}-test.npz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.warns(cache_mod.CorruptCacheWarning, match="corrupt"):
        rebuilt = charged_particles("test", cache_dir=tmp_path)
    assert calls == ["test", "test"]
    np.testing.assert_array_equal(rebuilt.vel, test_split.vel)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        charged_particles("test", cache_dir=tmp_path)  # intact again: no warning, no rebuild
    assert calls == ["test", "test"]


def test_cache_folder_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EQUISCALE_CACHE", str(tmp_path / "env"))
    assert cache_mod.cache_dir() == tmp_path / "env"
    assert cache_mod.cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("EQUISCALE_CACHE")
    assert cache_mod.cache_dir() == Path.home() / ".cache" / "equiscale"


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip_byte", "no_checksum", "empty"])
def test_cached_arrays_detects_damage(tmp_path, damage):
    path = tmp_path / "a.npz"
    arrays = {"x": np.arange(1000, dtype=np.float64), "y": np.ones((3, 4), dtype=np.int32)}
    builds = []

    def build():
        builds.append(1)
        return arrays

    cache_mod.cached_arrays(path, build)
    assert len(builds) == 1 and cache_mod.load_npz(path)["x"][5] == 5.0
    assert path.stat().st_mode & 0o777 == 0o666 & ~_current_umask()
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]  # no temporary file left behind
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(raw[:-100])
    elif damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    elif damage == "flip_byte":
        i = raw.index(np.float64(500.0).tobytes())  # inside array x's data
        raw[i + 7] ^= 0x01
        path.write_bytes(bytes(raw))
    elif damage == "no_checksum":
        np.savez(path, **arrays)
    else:
        path.write_bytes(b"")
    with pytest.raises(cache_mod.CacheError):
        cache_mod.load_npz(path)
    with pytest.warns(cache_mod.CorruptCacheWarning):
        out = cache_mod.cached_arrays(path, build)
    assert len(builds) == 2
    np.testing.assert_array_equal(out["x"], arrays["x"])
    np.testing.assert_array_equal(cache_mod.load_npz(path)["y"], arrays["y"])


def test_checksum_catches_silent_change(tmp_path):
    """A well-formed npz whose contents changed (zip CRC intact) is caught by the sha256."""
    path = tmp_path / "b.npz"
    cache_mod.save_npz(path, {"x": np.zeros(4)})
    with np.load(path) as z:
        stored = z[cache_mod.CHECKSUM_KEY]
    np.savez(path, x=np.ones(4), **{cache_mod.CHECKSUM_KEY: stored})
    with pytest.raises(cache_mod.CacheError, match="checksum mismatch"):
        cache_mod.load_npz(path)
    with pytest.raises(FileNotFoundError, match="no cache file"):
        cache_mod.load_npz(tmp_path / "missing.npz")
    cache_mod.save_npz(path, {"x": np.zeros(4)})
    with pytest.raises(cache_mod.CacheError, match="lacks"):
        cache_mod.load_npz(path, required=("x", "y"))


# ----------------------------------------------------------------------------- bad input


def test_bad_arguments_raise(test_split, tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        charged_particles("training")
    with pytest.raises(ValueError, match="split"):
        charged_particles(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cache_dir"):
        charged_particles("test", cache_dir=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cache_dir"):
        charged_particles("test", cache_dir=tmp_path, cache=False)
    with pytest.raises(ValueError, match="frame_in"):
        nbody_baselines(test_split, frame_in=40, frame_out=30)
    with pytest.raises(ValueError, match="frame_out"):
        nbody_baselines(test_split, frame_in=30, frame_out=49)
    with pytest.raises(TypeError, match="traj"):
        nbody_baselines({"loc": test_split.loc})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="start"):
        nb._split_draws("test", 5, 2001)
    with pytest.raises(ValueError, match="length"):
        nb._simulate(np.zeros((1, 5, 1)), np.zeros((1, 3, 5)), np.ones((1, 3, 5)), length=150)
    with pytest.raises(TypeError, match="object"):
        cache_mod.save_npz(tmp_path / "o.npz", {"x": np.array([None])})
    with pytest.raises(ValueError, match="identifier"):
        cache_mod.save_npz(tmp_path / "o.npz", {cache_mod.CHECKSUM_KEY: np.zeros(1)})


# ----------------------------------------------------------------------------- command line


def test_cli_writes_npz(test_split, nbody_cache, tmp_path):
    parser = argparse.ArgumentParser()
    nb.add_arguments(parser)
    args = parser.parse_args(
        ["--out", str(tmp_path / "out"), "--splits", "test", "--cache-dir", str(nbody_cache)]
    )
    record = nb.run(args)
    path = Path(record["splits"]["test"]["path"])
    assert path == tmp_path / "out" / "nbody_test.npz"
    arrays = cache_mod.load_npz(path, required=("loc", "vel", "charges", "edges"))
    np.testing.assert_array_equal(arrays["loc"], test_split.loc)
    assert arrays["edges"].shape == (2000, 5, 5)
    assert record["splits"]["test"]["baselines"] == nbody_baselines(test_split)
    with pytest.raises(SystemExit):
        parser.parse_args(["--splits", "training"])
    assert parser.parse_args([]).splits == ["train", "valid", "test"]
