"""Charged n-body data set of the EGNN paper ("nbody_small"), regenerated exactly.

Protocol (EGNN ``n_body_system/dataset/generate_dataset.py --num-train 10000 --seed 43
--sufix small`` with ``ChargedParticlesSim`` from NRI's ``synthetic_sim.py``):

- ``np.random.seed(43)``; the train (10000), valid (2000) and test (2000) trajectories are drawn
  one after the other from that one stream. Per trajectory, in this order:
  ``choice([-1, 0, 1], size=(5, 1), p=[1/2, 0, 1/2])`` (charges q), ``randn(3, 5)`` (positions,
  times ``loc_std = 1``), ``randn(3, 5)`` (velocities, rescaled to norm 0.5 per particle), and,
  after the simulation, two ``randn(49, 3, 5)`` observation-noise draws that are multiplied by
  ``noise_var = 0``: they change nothing in the data but advance the random stream.
- The initial state is reflected into the box ``[-5, 5]^3`` once (``_clamp``); the box is
  then switched off (its call inside the loop is commented out in the original).
- Force on particle i: ``F_i = sum_j q_i q_j (x_i - x_j) / d_ij^(3/2)`` with the squared distance
  ``d_ij = |x_i|^2 + |x_j|^2 - 2 x_i.x_j``; each component clipped to ``+-0.1/dt``.
- Leapfrog with ``dt = 0.001``: a first half kick ``v += dt F(x)``, then for step = 1..4999:
  ``x += dt v``; save ``(x, v)`` when ``step % 100 == 0``; ``v += dt F(x)``. That saves
  49 frames (steps 100, 200, ..., 4900); frame k is the state at step ``100 (k + 1)``.
- The task: input frame 30 (positions, velocities, charges), target positions at frame 40.

Floating point: the simulation is chaotic, so we replay the original arithmetic operation by
operation (same association of every sum, ``np.power(., 1.5)``). The one BLAS call of the
original, the Gram matrix ``A.dot(A.T)``, is computed by OpenBLAS/MKL kernels on any x86-64 CPU
since Haswell as the fused chain ``fma(z_i, z_j, fma(y_i, y_j, x_i x_j))``; we emulate that fma
exactly (error-free transformations with a round-to-odd step, Boldo & Melquiond 2008), so the
vectorised generator equals the plain per-trajectory loop ``_reference_trajectory`` bit for
bit wherever the local BLAS rounds that way.

Symmetry-breaking variant (ours, not in the EGNN protocol): ``field=(E_x, E_y, E_z)`` adds a
constant, uniform external electric field, the force ``q_i E`` on particle i, to the Coulomb forces
before the clipping. It breaks rotation and reflection equivariance of the dynamics (the field
picks a direction) and keeps translation and permutation symmetry. The draws are the same as the
standard set's; only the forces differ. Such data is cached under its own name (the field enters
the file name), and ``field=None`` (the default) runs exactly the standard arithmetic.

Shapes: ``loc``, ``vel`` ``[n_traj, 49, 5, 3]`` float64 (EGNN's loader transposes the saved
``[n_traj, 49, 3, 5]`` to this), ``charges`` ``[n_traj, 5]`` (+-1.0).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from equiscale.data.cache import cache_dir as _cache_dir
from equiscale.data.cache import cached_arrays, save_npz

__all__ = [
    "NBodyTrajectories",
    "SPLITS",
    "add_arguments",
    "charged_particles",
    "field_tag",
    "nbody_baselines",
    "run",
]

# Parameters of the EGNN "nbody_small" charged-particle set.
SEED = 43
SPLITS: dict[str, int] = {"train": 10000, "valid": 2000, "test": 2000}  # drawn in this order
N_BALLS = 5
DIM = 3
BOX_SIZE = 5.0
LOC_STD = 1.0 * (float(N_BALLS) / 5.0) ** (1 / 3)
VEL_NORM = 0.5
INTERACTION_STRENGTH = 1.0
NOISE_VAR = 0.0
DT = 0.001
MAX_F = 0.1 / DT
LENGTH = 5000  # leapfrog steps T
SAMPLE_FREQ = 100
T_SAVE = int(LENGTH / SAMPLE_FREQ - 1)  # 49 frames
CHARGE_TYPES = (-1.0, 0.0, 1.0)
CHARGE_PROB = (1.0 / 2, 0.0, 1.0 / 2)
FRAME_IN, FRAME_OUT = 30, 40
# Bump when anything above or the arithmetic changes: it names the cache files.
PROTOCOL = "egnn-charged5-seed43-v1"


@dataclass
class NBodyTrajectories:
    """One split of the charged n-body set.

    Attributes:
        loc: ``[n_traj, 49, 5, 3]`` float64 positions; frame k is leapfrog step ``100 (k + 1)``.
        vel: ``[n_traj, 49, 5, 3]`` float64 velocities (leapfrog: half a step behind ``loc``).
        charges: ``[n_traj, 5]`` float64, each +1.0 or -1.0.
        split: "train", "valid" or "test".
    """

    loc: np.ndarray
    vel: np.ndarray
    charges: np.ndarray
    split: str

    @property
    def edges(self) -> np.ndarray:
        """``[n_traj, 5, 5]`` charge products ``q_i q_j`` (the original's ``edges``)."""
        return self.charges[:, :, None] * self.charges[:, None, :]

    @property
    def dt_frames(self) -> float:
        """Time between two saved frames (``SAMPLE_FREQ * DT`` = 0.1)."""
        return SAMPLE_FREQ * DT

    def __len__(self) -> int:
        return self.loc.shape[0]


# ----------------------------------------------------------------------------- random draws


def _check_split(split: object) -> str:
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    return split


def _draw_one(rs: np.random.RandomState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The draws of one ``sample_trajectory`` call, in the original's order.

    Returns ``charges [5, 1]``, ``loc_draw [3, 5]`` and ``vel_draw [3, 5]`` (standard normal,
    before scaling); the two observation-noise draws are consumed and dropped.
    """
    charges = rs.choice(np.array(CHARGE_TYPES), size=(N_BALLS, 1), p=list(CHARGE_PROB))
    loc_draw = rs.randn(DIM, N_BALLS)
    vel_draw = rs.randn(DIM, N_BALLS)
    rs.randn(T_SAVE, DIM, N_BALLS)  # loc noise (times noise_var = 0)
    rs.randn(T_SAVE, DIM, N_BALLS)  # vel noise (times noise_var = 0)
    return charges, loc_draw, vel_draw


def _split_draws(split: str, start: int = 0, stop: int | None = None):
    """Draws of trajectories ``start:stop`` of ``split`` from the seed-43 stream.

    The earlier splits' draws are consumed (cheap: ~0.1 ms per trajectory), not simulated.

    Returns:
        charges ``[m, 5, 1]``, loc_draw ``[m, 3, 5]``, vel_draw ``[m, 3, 5]``.
    """
    split = _check_split(split)
    n = SPLITS[split]
    stop = n if stop is None else stop
    if not 0 <= start <= stop <= n:
        raise ValueError(
            f"need 0 <= start <= stop <= {n} for split {split!r}, got start={start}, stop={stop}"
        )
    offset = 0
    for name in SPLITS:
        if name == split:
            break
        offset += SPLITS[name]
    rs = np.random.RandomState(SEED)
    for _ in range(offset + start):
        _draw_one(rs)
    draws = [_draw_one(rs) for _ in range(stop - start)]
    if not draws:
        return (np.zeros((0, N_BALLS, 1)), np.zeros((0, DIM, N_BALLS)), np.zeros((0, DIM, N_BALLS)))
    charges, loc_draw, vel_draw = (np.stack(a) for a in zip(*draws))
    return charges, loc_draw, vel_draw


# ----------------------------------------------------------------------------- reference path


def _reference_l2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared distances ``|a_i|^2 + |b_j|^2 - 2 a_i.b_j`` exactly as the original writes them."""
    a_norm = (a**2).sum(axis=1).reshape(a.shape[0], 1)
    b_norm = (b**2).sum(axis=1).reshape(1, b.shape[0])
    return a_norm + b_norm - 2 * a.dot(b.transpose())


def _reference_forces(loc: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Clipped Coulomb forces ``[3, n]`` for positions ``[3, n]``, the original's expression."""
    n = loc.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        l2_dist_power3 = np.power(_reference_l2(loc.transpose(), loc.transpose()), 3.0 / 2.0)
        forces_size = INTERACTION_STRENGTH * edges / l2_dist_power3
    np.fill_diagonal(forces_size, 0)
    f = (
        forces_size.reshape(1, n, n)
        * np.concatenate([np.subtract.outer(loc[c, :], loc[c, :]).reshape(1, n, n) for c in range(DIM)])
    ).sum(axis=-1)
    f[f > MAX_F] = MAX_F
    f[f < -MAX_F] = -MAX_F
    return f


def _reference_trajectory(
    charges: np.ndarray,
    loc_draw: np.ndarray,
    vel_draw: np.ndarray,
    length: int = LENGTH,
    sample_freq: int = SAMPLE_FREQ,
) -> tuple[np.ndarray, np.ndarray]:
    """Plain per-trajectory transcription of ``ChargedParticlesSim.sample_trajectory``.

    Args:
        charges: ``[5, 1]`` (+-1), loc_draw / vel_draw: ``[3, 5]`` standard-normal draws.
        length, sample_freq: number of leapfrog steps and the saving period.

    Returns:
        ``loc``, ``vel`` ``[length / sample_freq - 1, 3, 5]`` (the original's layout).
    """
    n = charges.shape[0]
    t_save = int(length / sample_freq - 1)
    edges = charges.dot(charges.transpose())
    loc = np.zeros((t_save, DIM, n))
    vel = np.zeros((t_save, DIM, n))
    loc_next = loc_draw * LOC_STD
    vel_next = vel_draw.copy()
    v_norm = np.sqrt((vel_next**2).sum(axis=0)).reshape(1, -1)
    vel_next = vel_next * VEL_NORM / v_norm
    # _clamp, in place, once
    over = loc_next > BOX_SIZE
    loc_next[over] = 2 * BOX_SIZE - loc_next[over]
    vel_next[over] = -np.abs(vel_next[over])
    under = loc_next < -BOX_SIZE
    loc_next[under] = -2 * BOX_SIZE - loc_next[under]
    vel_next[under] = np.abs(vel_next[under])

    vel_next += DT * _reference_forces(loc_next, edges)  # half step
    counter = 0
    for i in range(1, length):
        loc_next += DT * vel_next
        if i % sample_freq == 0:
            loc[counter], vel[counter] = loc_next, vel_next
            counter += 1
        vel_next += DT * _reference_forces(loc_next, edges)
    return loc, vel


# ----------------------------------------------------------------------------- fast path

_SPLITTER = 134217729.0  # 2^27 + 1 (Veltkamp splitting of a double into two 26-bit halves)


def _fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Correctly rounded ``a * b + c`` in float64 (emulated fused multiply-add).

    ``a b = p + pl`` exactly (Dekker), ``c + p = th + tl`` exactly (Knuth's TwoSum),
    ``v = RO(tl + pl)`` rounded to odd, result ``RN(th + v)``: correctly rounded for binary64
    without underflow (Boldo & Melquiond, IEEE Trans. Comput. 57(4), 2008).
    """
    p = a * b
    c1 = _SPLITTER * a
    ah = c1 - (c1 - a)
    al = a - ah
    c2 = _SPLITTER * b
    bh = c2 - (c2 - b)
    bl = b - bh
    pl = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    th = c + p
    bb = th - c
    tl = (c - (th - bb)) + (p - bb)
    v = tl + pl
    bb = v - tl
    err = (tl - (v - bb)) + (pl - bb)
    fix = (err != 0) & ((v.view(np.int64) & 1) == 0)
    if fix.any():
        v[fix] = np.nextafter(v[fix], np.where(err[fix] > 0, np.inf, -np.inf))
    return th + v


_PAIR_I, _PAIR_J = np.triu_indices(N_BALLS, k=1)  # the 10 unordered pairs i < j
_PAIR_ID = np.full((N_BALLS, N_BALLS), -1)
_PAIR_ID[_PAIR_I, _PAIR_J] = np.arange(len(_PAIR_I))
_PAIR_ID[_PAIR_J, _PAIR_I] = np.arange(len(_PAIR_I))
# ordered pairs (i, j), j != i, j increasing for each i: [n, n-1]
_ORD_J = np.array([[j for j in range(N_BALLS) if j != i] for i in range(N_BALLS)])
_ORD_I = np.repeat(np.arange(N_BALLS)[:, None], N_BALLS - 1, axis=1)
_ORD_PAIR = _PAIR_ID[_ORD_I, _ORD_J]


def _forces(x: np.ndarray, qq: np.ndarray, qfield: np.ndarray | None = None) -> np.ndarray:
    """Clipped forces ``[3, n, B]`` for positions ``x`` ``[3, n, B]``, charge products ``qq``
    ``[n_pairs, B]``; the same floating-point operations as ``_reference_forces``.

    ``qfield`` ``[3, n, B]`` (``q_i E``, the external-field force) is added before the clipping;
    ``None`` adds nothing (the standard protocol, bit for bit).
    """
    sq = x * x
    norm = sq[0] + sq[1]
    norm += sq[2]  # |x_i|^2 = (x^2 + y^2) + z^2, [n, B]
    xi = x[:, _PAIR_I]  # [3, P, B]
    xj = x[:, _PAIR_J]
    gram = _fma(xi[2], xj[2], _fma(xi[1], xj[1], xi[0] * xj[0]))  # BLAS dot, [P, B]
    d2 = norm[_PAIR_I] + norm[_PAIR_J]
    d2 -= 2 * gram
    with np.errstate(divide="ignore", invalid="ignore"):
        size = INTERACTION_STRENGTH * qq / np.power(d2, 3.0 / 2.0)  # [P, B]
    # terms size_ij (x_i - x_j) for j != i, summed left to right in j as numpy's sum does
    terms = size[_ORD_PAIR] * (x[:, _ORD_I] - x[:, _ORD_J])  # [3, n, n-1, B]
    f = terms[:, :, 0] + terms[:, :, 1]
    for k in range(2, N_BALLS - 1):
        f += terms[:, :, k]
    if qfield is not None:
        f += qfield
    np.clip(f, -MAX_F, MAX_F, out=f)
    return f


def _initial_state(loc_draw: np.ndarray, vel_draw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale the draws ``[m, 3, n]`` and reflect them into the box once (the original's
    ``_clamp``); returns positions and velocities ``[m, 3, n]``."""
    loc = loc_draw * LOC_STD
    v_norm = np.sqrt((vel_draw**2).sum(axis=1, keepdims=True))
    vel = vel_draw * VEL_NORM / v_norm
    over = loc > BOX_SIZE
    loc = np.where(over, 2 * BOX_SIZE - loc, loc)
    vel = np.where(over, -np.abs(vel), vel)
    under = loc < -BOX_SIZE
    loc = np.where(under, -2 * BOX_SIZE - loc, loc)
    vel = np.where(under, np.abs(vel), vel)
    return loc, vel


def _simulate(
    charges: np.ndarray,
    loc_draw: np.ndarray,
    vel_draw: np.ndarray,
    length: int = LENGTH,
    chunk: int = 2000,
    progress: bool = False,
    field: tuple[float, float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised ``sample_trajectory`` over trajectories.

    Args:
        charges: ``[m, 5, 1]`` or ``[m, 5]``; loc_draw, vel_draw: ``[m, 3, 5]``.
        length: leapfrog steps (a multiple of ``SAMPLE_FREQ``; 5000 in the protocol).
        chunk: trajectories simulated together (bounds memory).
        field: constant external field ``E`` (force ``q_i E``), or None (the standard protocol).

    Returns:
        loc, vel ``[m, length / 100 - 1, 5, 3]``.
    """
    if length % SAMPLE_FREQ or length < 2 * SAMPLE_FREQ:
        raise ValueError(
            f"length must be a multiple of {SAMPLE_FREQ} and at least {2 * SAMPLE_FREQ}, got {length}"
        )
    t_save = length // SAMPLE_FREQ - 1
    m = loc_draw.shape[0]
    q = charges.reshape(m, N_BALLS)
    loc0, vel0 = _initial_state(loc_draw, vel_draw)
    loc_out = np.empty((m, t_save, N_BALLS, DIM))
    vel_out = np.empty((m, t_save, N_BALLS, DIM))
    last_step = t_save * SAMPLE_FREQ  # later steps do not change the saved frames
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=m * last_step, unit="traj-step", unit_scale=True, desc="simulating n-body")
    for s in range(0, m, chunk):
        e = min(s + chunk, m)
        x = np.ascontiguousarray(loc0[s:e].transpose(1, 2, 0))  # [3, n, B]
        v = np.ascontiguousarray(vel0[s:e].transpose(1, 2, 0))
        qt = q[s:e].T  # [n, B]
        qq = qt[_PAIR_I] * qt[_PAIR_J]  # edges q_i q_j, [P, B]
        qfield = None if field is None else np.asarray(field)[:, None, None] * qt[None]  # [3, n, B]
        v += DT * _forces(x, qq, qfield)
        for step in range(1, last_step + 1):
            x += DT * v
            if step % SAMPLE_FREQ == 0:
                k = step // SAMPLE_FREQ - 1
                loc_out[s:e, k] = x.transpose(2, 1, 0)
                vel_out[s:e, k] = v.transpose(2, 1, 0)
                if bar is not None:
                    bar.update((e - s) * SAMPLE_FREQ)
            v += DT * _forces(x, qq, qfield)
    if bar is not None:
        bar.close()
    return loc_out, vel_out


# ----------------------------------------------------------------------------- public API


def _check_field(field: object) -> tuple[float, float, float] | None:
    """``None`` for no field (also for an all-zero one), else a tuple of three finite floats."""
    if field is None:
        return None
    if isinstance(field, (str, bytes)) or not hasattr(field, "__len__") or len(field) != 3:
        raise ValueError(f"field must be None or three numbers (E_x, E_y, E_z), got {field!r}")
    if not all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in field):
        raise TypeError(f"field must hold three numbers, got {field!r}")
    values = tuple(float(e) for e in field)
    if not all(np.isfinite(values)):
        raise ValueError(f"field must be finite, got {field!r}")
    return None if values == (0.0, 0.0, 0.0) else values


def field_tag(field: tuple[float, float, float] | None) -> str:
    """The part of the cache name that names the field: ``""`` for none, else e.g.
    ``"-field0.0_0.0_0.2"`` (``repr`` of each component, ``-`` written ``m``): distinct fields get
    distinct files, and the standard files keep their names."""
    field = _check_field(field)
    if field is None:
        return ""
    return "-field" + "_".join(repr(e).replace("-", "m") for e in field)


def _generate(
    split: str,
    progress: bool = False,
    stop: int | None = None,
    field: tuple[float, float, float] | None = None,
) -> dict[str, np.ndarray]:
    charges, loc_draw, vel_draw = _split_draws(split, 0, stop)
    loc, vel = _simulate(charges, loc_draw, vel_draw, progress=progress, field=field)
    return {"loc": loc, "vel": vel, "charges": charges.reshape(-1, N_BALLS)}


def charged_particles(
    split: str = "test",
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    cache: bool = True,
    progress: bool = False,
    n: int | None = None,
    field: tuple[float, float, float] | None = None,
) -> NBodyTrajectories:
    """The EGNN charged n-body split ``split`` ("train" 10000, "valid" 2000, "test" 2000).

    Args:
        split: which split.
        cache_dir: folder of the on-disk cache; default ``$EQUISCALE_CACHE`` or
            ``~/.cache/equiscale``. A corrupt cache file is reported and rebuilt.
        cache: False to simulate without reading or writing the cache.
        progress: show a progress bar while simulating.
        n: only the first ``n`` trajectories of the split (the same numbers as the full split's
            first ``n``: the draws of everything before them are consumed, not simulated).
        field: constant external field ``(E_x, E_y, E_z)`` that breaks rotation symmetry (see the
            module docstring), or None for the standard EGNN data. Cached under its own name.

    Returns:
        :class:`NBodyTrajectories` with ``loc``, ``vel`` ``[n, 49, 5, 3]``, ``charges [n, 5]``.

    A cold "test" split takes ~10-20 s on one CPU core (the train split five times that).
    """
    split = _check_split(split)
    full = SPLITS[split]
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= full):
        raise ValueError(f"n must be an int in 1..{full} for split {split!r}, got {n!r}")
    stop = None if n is None or n == full else n
    field = _check_field(field)
    if cache:
        folder = _cache_dir(cache_dir) / "nbody"
        name = PROTOCOL + field_tag(field)
        path = folder / f"{name}-{split}.npz"
        if stop is not None and not path.exists():
            path = folder / f"{name}-{split}-first{stop}.npz"
        subset = stop if "first" in path.name else None
        extra = {} if field is None else {"field": field}  # the standard call, as it always was
        arrays = cached_arrays(
            path,
            (lambda: _generate(split, progress, **extra))
            if subset is None
            else (lambda: _generate(split, progress, subset, **extra)),
            required=("loc", "vel", "charges"),
        )
    else:
        if cache_dir is not None:
            raise ValueError("cache_dir was given but cache=False; pass one or the other")
        arrays = _generate(split, progress, stop, field)
    size = arrays["loc"].shape[0]
    if size not in (full, stop):
        raise ValueError(f"cached split {split!r} has {size} trajectories, expected {full}")
    expected = {
        "loc": (size, T_SAVE, N_BALLS, DIM),
        "vel": (size, T_SAVE, N_BALLS, DIM),
        "charges": (size, N_BALLS),
    }
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise ValueError(f"cached {name} has shape {arrays[name].shape}, expected {shape}")
    if stop is not None and size != stop:
        arrays = {k: v[:stop] for k, v in arrays.items()}
    return NBodyTrajectories(loc=arrays["loc"], vel=arrays["vel"], charges=arrays["charges"], split=split)


def nbody_baselines(
    traj: NBodyTrajectories, frame_in: int = FRAME_IN, frame_out: int = FRAME_OUT
) -> dict[str, float]:
    """Untrained baselines: MSE of predicting ``loc[frame_out]`` from frame ``frame_in``.

    - ``copy``: ``loc[frame_in]``.
    - ``constant_velocity``: ``loc[frame_in] + vel[frame_in] * (frame_out - frame_in) * 0.1``
      (ten frames of 100 steps of dt = 0.001 is one time unit).

    MSE is the mean over trajectories, particles and coordinates (as EGNN's ``nn.MSELoss``).
    On the test split these are 0.2715 and 0.1090.
    """
    if not isinstance(traj, NBodyTrajectories):
        raise TypeError(f"traj must be NBodyTrajectories, got {type(traj).__name__}")
    n_frames = traj.loc.shape[1]
    if not 0 <= frame_in < frame_out < n_frames:
        raise ValueError(
            f"need 0 <= frame_in < frame_out < {n_frames}, got frame_in={frame_in}, frame_out={frame_out}"
        )
    x0, v0, x1 = traj.loc[:, frame_in], traj.vel[:, frame_in], traj.loc[:, frame_out]
    horizon = (frame_out - frame_in) * SAMPLE_FREQ * DT
    return {
        "copy": float(np.mean((x0 - x1) ** 2)),
        "constant_velocity": float(np.mean((x0 + v0 * horizon - x1) ** 2)),
    }


# ----------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``equiscale data nbody``."""
    parser.add_argument(
        "--out", type=Path, default=Path("data/nbody"), help="folder for the .npz files, one per split"
    )
    parser.add_argument(
        "--splits",
        nargs="+",
        default=list(SPLITS),
        choices=list(SPLITS),
        metavar="SPLIT",
        help="splits to write, any of: train valid test",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="cache folder ($EQUISCALE_CACHE or ~/.cache/equiscale when not given)",
    )


def run(args: argparse.Namespace) -> dict:
    """Write ``<out>/nbody_<split>.npz`` (loc, vel, charges, edges) for each requested split.

    Returns a record per split: path, number of trajectories, seconds, untrained baselines.
    """
    out = Path(args.out)
    record: dict = {"protocol": PROTOCOL, "out": str(out), "splits": {}}
    for split in args.splits:
        _check_split(split)
        t0 = time.perf_counter()
        traj = charged_particles(split, cache_dir=getattr(args, "cache_dir", None), progress=True)
        path = save_npz(
            out / f"nbody_{split}.npz",
            {"loc": traj.loc, "vel": traj.vel, "charges": traj.charges, "edges": traj.edges},
        )
        seconds = time.perf_counter() - t0
        base = nbody_baselines(traj)
        record["splits"][split] = {
            "path": str(path),
            "n_traj": len(traj),
            "seconds": round(seconds, 2),
            "baselines": base,
        }
        print(
            f"{split:>5}: {len(traj)} trajectories -> {path} ({seconds:.1f} s); "
            f"copy MSE {base['copy']:.4f}, constant-velocity MSE "
            f"{base['constant_velocity']:.4f}"
        )
    return record
