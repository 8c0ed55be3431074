"""Provenance and safe files: device and versions of a run, git commit, atomic writes.

Used by the benchmarks, the trainer and the data caches alike.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch

__all__ = [
    "environment",
    "atomic_open",
    "atomic_write_bytes",
    "write_json",
    "save_figure",
    "command_line",
    "provenance",
    "write_record",
    "portable_path",
]


def command_line() -> str:
    """The command that is running, as a user would type it (``equiscale ...`` for the CLI)."""
    import shlex
    import sys

    prog = [Path(sys.argv[0]).name]
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)  # set under ``python -m``
    if prog[0] in ("cli.py", "__main__.py", "equiscale"):
        prog = ["equiscale"]
    elif spec is not None and spec.name.startswith("equiscale."):
        prog = ["python", "-m", spec.name]  # e.g. python -m equiscale.train.nve, not "nve.py"
    return " ".join(shlex.quote(a) for a in [*prog, *sys.argv[1:]])


@functools.cache
def _git_commit() -> str:
    """The commit (``-dirty`` with uncommitted changes to tracked files) when first asked in this
    process: the command line asks at start, so a record names the code that ran, not the tree at
    the moment the record is written."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
        commit = out.stdout.strip() or "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(device: str = "cpu") -> dict[str, Any]:
    """Device name, library versions, git commit, host and threads, for a benchmark record."""
    dev = torch.device(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
    else:
        name = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        name = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        name = f"CPU: {name} ({os.cpu_count()} cores)"
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for mod in ("e3nn", "numpy", "lightning", "cuequivariance_torch"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = None
    return {
        "device": name,
        "device_type": dev.type,
        "versions": versions,
        "git_commit": _git_commit(),
        "hostname": socket.gethostname(),
        "torch_threads": torch.get_num_threads(),
    }


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on success fsync it and rename it over
    ``path`` (``os.replace``, atomic on POSIX), on error delete it. A kill at any moment leaves
    either the old file or the new one, never a half-written one. ``mode``: ``"wb"`` or ``"w"``.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600; give it a normal file's mode
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path) as f:
        f.write(data)


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write a matplotlib figure as PNG atomically (no half-written plot after a crash), close it."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())


def provenance(device: str = "cpu", started: float | None = None, ndigits: int = 2) -> dict[str, Any]:
    """What a result must carry: command, UTC date, environment (device, versions, git commit) and,
    when ``started`` (a ``time.time()``) is given, the wall time in seconds."""
    import time

    out: dict[str, Any] = {
        "command": command_line(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **environment(device),
    }
    if started is not None:
        out["wall_time_s"] = round(time.time() - started, ndigits)
    return out


def portable_path(path: str | os.PathLike) -> str:
    """``path`` relative to the working directory when it lies below it (records name no machine
    paths), else as given."""
    p = Path(path)
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def write_record(
    path: str | os.PathLike,
    record: dict[str, Any],
    *,
    device: str = "cpu",
    started: float | None = None,
) -> dict[str, Any]:
    """Add command, commit, environment and wall time to ``record`` and write it atomically as JSON."""
    full = {**provenance(device, started), **record}
    atomic_write_bytes(path, (json.dumps(full, indent=2, default=_json_default) + "\n").encode())
    return full


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)
