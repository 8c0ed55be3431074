"""Imports run one way: so3 -> ops -> nn -> models -> (data, train, bench, cli).

Every module under ``src/equiscale`` is parsed (imports inside functions count too, and so do
``importlib.import_module("equiscale...")`` calls with a constant name) and each edge between two
layers must point down. The layers, lowest first:

- 0, foundation: ``so3`` (exact tables), ``testing`` (equivariance assertions for users' tests),
  ``provenance`` (versions, commit, atomic writes, ``write_record``), ``registry`` (name -> import
  string tables; the strings are resolved only when a name is used, so they are not edges).
- 1 ``ops``; 2 ``distributed`` (sharded long convolutions and halo exchange: built on ``ops``,
  used by ``nn.hyena`` and ``models.se3_hyena``); 3 ``nn``; 4 ``models``; then the package
  front ``equiscale/__init__.py`` (lazy re-exports of ops, nn and models: models may not import
  it, data and above may).
- 5 ``data``; 6 ``train``; 7 ``bench``; 8 ``cli``.

Within a layer a subpackage may import itself; layers of equal rank (the foundation) may not
import each other. No module in the package is test code: none imports pytest or hypothesis.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "equiscale"

RANK = {
    "so3": 0,
    "testing": 0,
    "provenance": 0,
    "registry": 0,
    "ops": 1,
    "distributed": 2,
    "nn": 3,
    "models": 4,
    "": 4.5,  # the package front, equiscale/__init__.py: above models, below data
    "data": 5,
    "train": 6,
    "bench": 7,
    "cli": 8,
}


def _module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> str:
    """``equiscale.ops.gaunt`` -> ``ops``; ``equiscale`` -> ``""`` (the front)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path, src: Path = SRC) -> list[tuple[int, str]]:
    """(line, absolute module) of every equiscale import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(path, src).split(".")
    is_package = path.name == "__init__.py"
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = here if is_package else here[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:  # `from equiscale import registry` imports equiscale.registry
                sub = f"{module}.{alias.name}"
                is_module = (src / Path(*sub.split("."))).with_suffix(".py").is_file() or (
                    src / Path(*sub.split("."))
                ).is_dir()
                out.append((node.lineno, sub if is_module else module))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.append((node.lineno, node.args[0].value))
    return [(line, m) for line, m in out if m == "equiscale" or m.startswith("equiscale.")]


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_layer_is_ranked():
    layers = {_layer(_module_name(p)) for p in MODULES}
    assert layers <= set(RANK), sorted(layers - set(RANK))


def _back_edges(path: Path, src: Path = SRC) -> list[str]:
    here = _layer(_module_name(path, src))
    bad = []
    for line, target in _imports(path, src):
        there = _layer(target)
        if there == here and here != "":
            continue
        if RANK[there] >= RANK[here]:
            bad.append(
                f"{path.relative_to(src)}:{line} imports {target} "
                f"({here or 'front'} rank {RANK[here]} -> {there or 'front'} rank {RANK[there]})"
            )
    return bad


@pytest.mark.parametrize("path", MODULES, ids=[_module_name(p) for p in MODULES])
def test_imports_point_down(path: Path):
    bad = _back_edges(path)
    assert not bad, "\n".join(bad)


def test_the_package_holds_no_test_code():
    """Test catalogues and property strategies live under tests/, reports under tools/."""
    offenders = []
    for path in MODULES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [
                f"{path.relative_to(SRC)}: {n}" for n in names if n.split(".")[0] in ("pytest", "hypothesis")
            ]
    assert not offenders, offenders
    assert not (PACKAGE / "reliability").exists()


def test_the_checker_sees_back_edges(tmp_path):
    """Not vacuous: upward imports, absolute, relative, from the front or by import_module, are
    reported; downward and same-layer ones are not."""
    pkg = tmp_path / "equiscale"
    for sub in ("so3", "ops", "nn", "models"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "registry.py").write_text("")
    (pkg / "ops" / "up.py").write_text(
        "from equiscale.nn import gaunt\n"
        "def f():\n    from ..models import x\n    import importlib\n"
        "    importlib.import_module('equiscale.nn.hyena')\n"
        "from equiscale import registry\nfrom equiscale.so3 import layout\nfrom . import other\n"
    )
    (pkg / "so3" / "front.py").write_text("from equiscale import GauntTensorProduct\n")
    bad = _back_edges(pkg / "ops" / "up.py", tmp_path)
    assert [b.split(" imports ")[1].split(" ")[0] for b in bad] == [
        "equiscale.nn",
        "equiscale.models",
        "equiscale.nn.hyena",
    ], bad
    assert len(_back_edges(pkg / "so3" / "front.py", tmp_path)) == 1
