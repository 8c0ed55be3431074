"""Build and install as users do: ``python -m build`` makes an sdist and a wheel (the wheel built
from the sdist), the wheel installs into a fresh virtual environment that sees no system
packages (torch==2.13.0, e3nn, numpy and vesin come from the package index), and from a folder
outside the repository an example runs and ``import equiscale`` loads no optional package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("build")  # the dev extra

ROOT = Path(__file__).resolve().parents[1]
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")


def _run(cmd: list[str], cwd: Path, timeout: int = 900) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd)}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.mark.slow
def test_wheel_installs_in_a_fresh_venv_and_its_example_runs(tmp_path):
    dist = tmp_path / "dist"
    # sdist, then the wheel from the unpacked sdist (so the sdist is known to build)
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)], cwd=tmp_path)
    (wheel,) = dist.glob("equiscale-*.whl")
    (sdist,) = dist.glob("equiscale-*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    assert "equiscale/py.typed" in names and "equiscale/ops/gaunt.py" in names
    assert not [n for n in names if n.startswith(("tests/", "tools/", "equiscale/reliability/"))]
    with tarfile.open(sdist) as tar:
        members = {Path(m).relative_to(Path(m).parts[0]).as_posix() for m in tar.getnames() if "/" in m}
    assert {"tests/test_wheel.py", "examples/gaunt_in_e3nn_model.py", "mkdocs.yml"} <= members

    venv = tmp_path / "venv"  # no --system-site-packages: only what the wheel asks for
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    py = venv / "bin" / "python"
    pip = [str(py), "-m", "pip", "install", "-q", "--no-compile"]  # no .pyc for all of torch: faster
    _run([*pip, TORCH_SPEC], cwd=tmp_path)
    _run([*pip, str(wheel)], cwd=tmp_path)
    installed = _run([str(py), "-m", "pip", "list", "--format=freeze"], cwd=tmp_path).lower()
    for extra in ("lightning", "matplotlib", "ase=", "tblite", "pyyaml"):
        assert extra not in installed, f"{extra} is not a core dependency"

    user = tmp_path / "user"  # a user's folder: a copy of the example, no repository in sight
    user.mkdir()
    shutil.copy(ROOT / "examples" / "gaunt_in_e3nn_model.py", user)
    out = _run(
        [str(py), "gaunt_in_e3nn_model.py", "--lmax", "1", "--channels", "4", "--nodes", "5"], cwd=user
    )
    assert "equivariance error" in out
    where = _run([str(py), "-c", "import equiscale; print(equiscale.__file__)"], cwd=user)
    assert str(venv) in where and str(ROOT) not in where
    code = (
        "import equiscale, sys; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('lightning','matplotlib','ase')))"
    )
    assert _run([str(py), "-c", code], cwd=user).strip() == "[]"
    version = _run([str(venv / "bin" / "equiscale"), "--version"], cwd=user)
    assert version.strip().startswith("equiscale ")
