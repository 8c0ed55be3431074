"""QM9 offline, from the ``qm9pack`` wheel (``pip install qm9pack==1.0.3``; the ``qm9`` extra).

The wheel holds all 130,831 molecules (B3LYP/6-31G(2df,p) geometries in A and 12+ targets) as
CSV files in its ``data/`` folder. ``import qm9pack`` needs ``pkg_resources`` (gone from current
setuptools), so the folder is located without importing it:
``importlib.util.find_spec("qm9pack").submodule_search_locations[0]``.

:func:`load_qm9` parses the CSVs once (about a minute) into flat arrays and caches them as a
checksummed ``.npz`` (``equiscale.data.cache``): ``z [total_atoms]``, ``pos [total_atoms, 3]``
(A), ``ptr [M+1]`` (atoms of molecule k are ``ptr[k]:ptr[k+1]``), ``index [M]`` (QM9 id) and one
float64 array per column of :data:`QM9_COLUMNS`, in the wheel's units (Hartree, Debye, bohr^3 ...).
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np

from equiscale.data.cache import cache_dir, cached_arrays

__all__ = ["QM9_COLUMNS", "QM9_TARGETS", "HARTREE_TO_EV", "qm9_folder", "load_qm9"]

HARTREE_TO_EV = 27.211386245988

#: numeric CSV columns kept, by their wheel names
QM9_COLUMNS = (
    "Dipole_debye",
    "Polarizability_bohr3",
    "HOMO_au",
    "LUMO_au",
    "HOMO_LUMO_gap_au",
    "R2_bohr2",
    "ZPVE_au",
    "InternalEnergy_0K_au",
    "InternalEnergy_298K_au",
    "Enthalphy_298K_au",
    "GibbsFreeEnergy_298K_au",
    "Heatcapacity_Cv_cal_mol_K",
)

#: conventional target names -> (column, factor to the unit used for training/metrics, unit)
QM9_TARGETS: dict[str, tuple[str, float, str]] = {
    "mu": ("Dipole_debye", 1.0, "D"),
    "alpha": ("Polarizability_bohr3", 1.0, "bohr^3"),
    "homo": ("HOMO_au", HARTREE_TO_EV, "eV"),
    "lumo": ("LUMO_au", HARTREE_TO_EV, "eV"),
    "gap": ("HOMO_LUMO_gap_au", HARTREE_TO_EV, "eV"),
    "r2": ("R2_bohr2", 1.0, "bohr^2"),
    "zpve": ("ZPVE_au", HARTREE_TO_EV, "eV"),
    "U0": ("InternalEnergy_0K_au", HARTREE_TO_EV, "eV"),
    "U": ("InternalEnergy_298K_au", HARTREE_TO_EV, "eV"),
    "H": ("Enthalphy_298K_au", HARTREE_TO_EV, "eV"),
    "G": ("GibbsFreeEnergy_298K_au", HARTREE_TO_EV, "eV"),
    "Cv": ("Heatcapacity_Cv_cal_mol_K", 1.0, "cal/mol/K"),
}

_SYMBOLS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}


def qm9_folder() -> Path:
    """The ``data/`` folder of the installed ``qm9pack`` wheel (without importing it)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "QM9 needs the qm9pack wheel: pip install qm9pack==1.0.3 (or pip install equiscale[qm9])"
        )
    folder = Path(spec.submodule_search_locations[0]) / "data"
    if not (folder / "qm9_part1.csv").is_file():
        raise FileNotFoundError(f"qm9pack is installed but {folder}/qm9_part1.csv is missing")
    return folder


def _parse(folder: Path, limit: int | None = None) -> dict[str, np.ndarray]:
    """Parse the CSVs of ``folder`` (the first ``limit`` molecules when given)."""
    csv.field_size_limit(sys.maxsize)
    zs: list[int] = []
    pos: list[np.ndarray] = []
    ptr = [0]
    index: list[int] = []
    cols: dict[str, list[float]] = {c: [] for c in QM9_COLUMNS}
    for part in ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv"):
        path = folder / part
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {"Elements", "XYZ_Ang", "Index", *QM9_COLUMNS} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f"{path}: missing columns {sorted(missing)}")
            for row in reader:
                if limit is not None and len(index) >= limit:
                    break
                where = f"{path}:{reader.line_num}"
                try:
                    elements = [s.strip(" '\"") for s in row["Elements"].strip("[]").split(",")]
                    flat = row["XYZ_Ang"].replace("[", "").replace("]", "").replace("*^", "e")
                    xyz = np.array([float(v) for v in flat.split(",")]).reshape(-1, 3)
                    z = [_SYMBOLS[s] for s in elements]
                    values = [float(row[c]) for c in QM9_COLUMNS]
                except (KeyError, ValueError) as err:
                    raise ValueError(f"{where}: malformed QM9 row: {err}") from None
                if len(xyz) != len(z):
                    raise ValueError(f"{where}: {len(z)} elements but {len(xyz)} coordinates")
                zs.extend(z)
                pos.append(xyz)
                ptr.append(len(zs))
                index.append(int(row["Index"]))
                for c, v in zip(QM9_COLUMNS, values):
                    cols[c].append(v)
    arrays = {
        "z": np.array(zs, dtype=np.int8),
        "pos": np.concatenate(pos).astype(np.float64),
        "ptr": np.array(ptr, dtype=np.int64),
        "index": np.array(index, dtype=np.int64),
    }
    arrays.update({c: np.array(v, dtype=np.float64) for c, v in cols.items()})
    return arrays


def load_qm9(cache: str | None = None) -> dict[str, np.ndarray]:
    """All of QM9 as flat arrays (module docstring), parsed once and cached."""
    folder = qm9_folder()
    path = cache_dir(cache) / "qm9pack_1.0.3.npz"
    return cached_arrays(path, lambda: _parse(folder), required=("z", "pos", "ptr", "index", *QM9_COLUMNS))
