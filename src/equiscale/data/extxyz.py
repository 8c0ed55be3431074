"""Extended XYZ in and out, with errors that name the file and line.

A frame is::

    <n_atoms>
    Lattice="ax ay az bx by bz cx cy cz" Properties=species:S:1:pos:R:3:forces:R:3 energy=-1.0 pbc="T T T"
    <n_atoms lines, columns as listed in Properties>

``Properties`` lists ``name:type:count`` triples (type S string, R real, I integer, L logical).
``species`` (or ``Z``) and ``pos`` are required; ``forces`` is read when present. Comment-line
keys: ``energy`` (float, eV), ``Lattice`` (9 floats, rows = cell vectors), ``pbc`` (3 of T/F).
This is the format ASE writes for structures with energies and forces (``ase.io.write``).

:func:`read_extxyz` returns a list of :class:`Frame`; malformed input raises ``ValueError`` with
``path:line``. :func:`write_extxyz` writes atomically (temporary file, then ``os.replace``).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from equiscale.provenance import atomic_open

__all__ = ["Frame", "read_extxyz", "write_extxyz"]


@dataclass
class Frame:
    """One structure: z [n] int, pos [n, 3], optional energy, forces [n, 3], cell [3, 3], pbc [3]."""

    z: np.ndarray
    pos: np.ndarray
    energy: float | None = None
    forces: np.ndarray | None = None
    cell: np.ndarray | None = None
    pbc: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=bool))
    info: dict[str, str] = field(default_factory=dict)


def _parse_comment(line: str, where: str) -> dict[str, str]:
    try:
        tokens = shlex.split(line)
    except ValueError as err:
        raise ValueError(f"{where}: cannot parse comment line ({err}): {line.strip()[:80]!r}") from None
    out = {}
    for tok in tokens:
        key, sep, value = tok.partition("=")
        out[key] = value if sep else "T"
    return out


def _properties(spec: str, where: str) -> list[tuple[str, str, int]]:
    parts = spec.split(":")
    if len(parts) % 3:
        raise ValueError(f"{where}: Properties must be name:type:count triples, got {spec!r}")
    props = []
    for i in range(0, len(parts), 3):
        name, kind, count = parts[i : i + 3]
        if kind not in ("S", "R", "I", "L") or not count.isdigit():
            raise ValueError(f"{where}: bad Properties entry {name}:{kind}:{count}")
        props.append((name, kind, int(count)))
    return props


def read_extxyz(path: str | os.PathLike) -> list[Frame]:
    """All frames of an extended XYZ file (module docstring). Errors name ``path:line``."""
    path = Path(path)
    lines = path.read_text().splitlines()
    frames: list[Frame] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        where = f"{path}:{i + 1}"
        try:
            n = int(lines[i].strip())
        except ValueError:
            got = lines[i].strip()[:40]
            raise ValueError(f"{where}: expected the number of atoms, got {got!r}") from None
        if n < 0:
            raise ValueError(f"{where}: negative number of atoms {n}")
        if i + 1 >= len(lines):
            raise ValueError(f"{path}:{i + 2}: missing comment line of a frame with {n} atoms")
        info = _parse_comment(lines[i + 1], f"{path}:{i + 2}")
        props = _properties(info.get("Properties", "species:S:1:pos:R:3"), f"{path}:{i + 2}")
        names = [p[0] for p in props]
        if "pos" not in names or not ({"species", "Z"} & set(names)):
            raise ValueError(f"{path}:{i + 2}: Properties must include pos and species (or Z), got {names}")
        width = sum(p[2] for p in props)
        if i + 2 + n > len(lines):
            raise ValueError(
                f"{path}:{len(lines)}: file ends inside a frame: expected {n} atom lines from line {i + 3}"
            )
        columns: dict[str, list] = {p[0]: [] for p in props}
        for k in range(n):
            ln = i + 2 + k
            fields = lines[ln].split()
            if len(fields) != width:
                raise ValueError(f"{path}:{ln + 1}: expected {width} columns ({names}), got {len(fields)}")
            col = 0
            for name, kind, count in props:
                vals = fields[col : col + count]
                col += count
                try:
                    if kind == "R":
                        parsed = [float(v) for v in vals]
                    elif kind == "I":
                        parsed = [int(v) for v in vals]
                    else:
                        parsed = vals
                except ValueError:
                    raise ValueError(f"{path}:{ln + 1}: bad {name} value {vals}") from None
                columns[name].append(parsed)
        if "Z" in columns:
            z = np.array([c[0] for c in columns["Z"]], dtype=np.int64)
        else:
            try:
                z = np.array([atomic_numbers[c[0]] for c in columns["species"]], dtype=np.int64)
            except KeyError as err:
                raise ValueError(f"{where}: unknown chemical symbol {err.args[0]!r}") from None
        frame = Frame(z=z, pos=np.array(columns["pos"], dtype=np.float64).reshape(n, 3), info=info)
        if "forces" in columns:
            frame.forces = np.array(columns["forces"], dtype=np.float64).reshape(n, 3)
        for key in ("energy", "Energy", "free_energy"):
            if key in info:
                try:
                    frame.energy = float(info[key])
                except ValueError:
                    raise ValueError(f"{path}:{i + 2}: {key} is not a number: {info[key]!r}") from None
                break
        if "Lattice" in info:
            try:
                frame.cell = np.array([float(v) for v in info["Lattice"].split()]).reshape(3, 3)
            except ValueError:
                raise ValueError(
                    f"{path}:{i + 2}: Lattice must hold 9 numbers, got {info['Lattice']!r}"
                ) from None
            frame.pbc = np.ones(3, dtype=bool)
        if "pbc" in info:
            flags = info["pbc"].split()
            if len(flags) != 3 or any(f not in ("T", "F", "True", "False") for f in flags):
                raise ValueError(f"{path}:{i + 2}: pbc must be three of T/F, got {info['pbc']!r}")
            frame.pbc = np.array([f in ("T", "True") for f in flags])
        frames.append(frame)
        i += 2 + n
    return frames


def write_extxyz(path: str | os.PathLike, frames: list[Frame]) -> Path:
    """Write ``frames`` to ``path`` atomically (readable by ASE and :func:`read_extxyz`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for f in frames:
        n = len(f.z)
        props = "species:S:1:pos:R:3" + (":forces:R:3" if f.forces is not None else "")
        head = []
        if f.cell is not None:
            head.append('Lattice="' + " ".join(f"{v:.10f}" for v in np.asarray(f.cell).ravel()) + '"')
        head.append(f"Properties={props}")
        if f.energy is not None:
            head.append(f"energy={f.energy:.10f}")
        head.append('pbc="' + " ".join("T" if p else "F" for p in f.pbc) + '"')
        for key, value in f.info.items():
            if key not in ("Lattice", "Properties", "energy", "pbc"):
                head.append(f"{key}={shlex.quote(str(value))}")
        out.append(str(n))
        out.append(" ".join(head))
        for k in range(n):
            row = [chemical_symbols[int(f.z[k])]] + [f"{v:.10f}" for v in f.pos[k]]
            if f.forces is not None:
                row += [f"{v:.10f}" for v in f.forces[k]]
            out.append(" ".join(row))
    with atomic_open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")
    return path
