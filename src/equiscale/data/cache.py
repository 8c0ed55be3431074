"""On-disk cache of numpy arrays: atomic ``.npz`` files with a sha256 checksum inside.

A cached file holds the user's arrays plus one extra entry, ``__sha256__``: the hex digest of
every array's name, dtype, shape and bytes (in sorted name order). Files are written to a
temporary file in the target folder and moved into place with ``os.replace``, so a reader never
sees a half-written file, even when two processes build the same entry at once.

``cached_arrays(path, build)`` loads ``path`` if it is present and intact; if it is missing it
calls ``build()`` and stores the result; if it is corrupt (truncated, not a zip, checksum
mismatch, missing entries) it warns with :class:`CorruptCacheWarning` and rebuilds it.

The cache folder is ``cache_dir(path)``: the argument if given, else the environment variable
``EQUISCALE_CACHE``, else ``~/.cache/equiscale``.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from equiscale.provenance import atomic_open

__all__ = [
    "CHECKSUM_KEY",
    "CacheError",
    "CorruptCacheWarning",
    "array_checksum",
    "cache_dir",
    "cached_arrays",
    "load_npz",
    "save_npz",
]

CHECKSUM_KEY = "__sha256__"
ENV_VAR = "EQUISCALE_CACHE"


class CacheError(ValueError):
    """A cache file exists but cannot be trusted (unreadable or checksum mismatch)."""


class CorruptCacheWarning(UserWarning):
    """Issued when a corrupt cache file is found and rebuilt."""


def cache_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: ``path`` if given, else ``$EQUISCALE_CACHE``, else ``~/.cache/equiscale``.

    The folder is not created here (writers create it on demand).
    """
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"cache_dir must be a str or os.PathLike, got {type(path).__name__}")
        return Path(path).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "equiscale"


def array_checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 hex digest of the arrays' names, dtypes, shapes and C-order bytes (sorted by name)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(a.dtype.str.encode())
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_npz(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` (an ``.npz``) atomically, with their checksum inside.

    Array names must be valid identifiers other than ``__sha256__``; object arrays are refused
    (they would need pickle to read back).
    """
    path = Path(path)
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    for name, a in arrays.items():
        if name == CHECKSUM_KEY or not name.isidentifier():
            raise ValueError(f"array name must be an identifier other than {CHECKSUM_KEY!r}, got {name!r}")
        if a.dtype.hasobject:
            raise TypeError(f"array {name!r} has dtype object; only plain dtypes can be cached")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(arrays)
    payload[CHECKSUM_KEY] = np.array(array_checksum(arrays))
    with atomic_open(path) as f:
        np.savez(f, **payload)
    return path


def load_npz(path: str | os.PathLike[str], required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Read an ``.npz`` written by :func:`save_npz` and verify its checksum.

    Raises FileNotFoundError if absent, :class:`CacheError` if it is unreadable, lacks the
    checksum or one of the ``required`` arrays, or its checksum does not match.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no cache file at {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise CacheError(f"cannot read {path}: {type(err).__name__}: {err}") from err
    stored = arrays.pop(CHECKSUM_KEY, None)
    if stored is None:
        raise CacheError(f"{path} has no {CHECKSUM_KEY} entry")
    missing = [name for name in required if name not in arrays]
    if missing:
        raise CacheError(f"{path} lacks arrays {missing}")
    actual = array_checksum(arrays)
    if str(stored) != actual:
        raise CacheError(
            f"checksum mismatch in {path}: stored {str(stored)[:12]}..., computed {actual[:12]}..."
        )
    return arrays


def cached_arrays(
    path: str | os.PathLike[str],
    build: Callable[[], Mapping[str, np.ndarray]],
    required: tuple[str, ...] = (),
) -> dict[str, np.ndarray]:
    """Load ``path`` if intact, else ``build()`` the arrays, store them atomically, return them.

    A file that exists but is corrupt is reported with a :class:`CorruptCacheWarning`, then
    rebuilt and overwritten.
    """
    path = Path(path)
    try:
        return load_npz(path, required)
    except FileNotFoundError:
        pass
    except CacheError as err:
        warnings.warn(f"corrupt cache file, rebuilding it: {err}", CorruptCacheWarning, stacklevel=2)
    arrays = {name: np.asarray(a) for name, a in build().items()}
    save_npz(path, arrays)
    return arrays
