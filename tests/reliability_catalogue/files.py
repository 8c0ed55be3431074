"""Safe files: untrusted checkpoints, corrupt caches, interrupted writes, malformed npz
(``tests/test_reliability_files.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from reliability_catalogue.common import (
    EmptyInput,
    _fail,
)


class _Payload:
    """Unpickling this would create ``marker`` (stands in for arbitrary code in a checkpoint)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _malicious_checkpoint(tmp: Path) -> dict[str, Any]:
    from equiscale.train import load_checkpoint

    marker, path = tmp / "pwned", tmp / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"config": _Payload(marker)}}, path)
    try:
        load_checkpoint(path)
        refused = ""
    except ValueError as err:
        refused = str(err)
    return {"refused": refused, "ran_code": marker.exists(), "names_file": "evil.ckpt" in refused}


def _corrupt_cache(tmp: Path, how: str) -> dict[str, Any]:
    import warnings

    import numpy as np

    from equiscale.data.cache import CorruptCacheWarning, cached_arrays, load_npz, save_npz

    path = tmp / f"cache_{how}.npz"
    save_npz(path, {"x": np.arange(5.0)})
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:40])
    else:  # the same checksum with other numbers
        with np.load(path) as z:
            stored = {k: z[k] for k in z.files}
        stored["x"] = stored["x"] + 1
        np.savez(path, **stored)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        arrays = cached_arrays(path, lambda: {"x": np.arange(5.0) * 2})
    warned = any(issubclass(w.category, CorruptCacheWarning) for w in caught)
    again = load_npz(path)  # the rebuilt file is intact
    leftovers = [p.name for p in tmp.iterdir() if p.name.endswith(".tmp")]
    return {
        "warned": warned,
        "rebuilt": bool((arrays["x"] == np.arange(5.0) * 2).all()),
        "intact": bool((again["x"] == arrays["x"]).all()),
        "leftovers": leftovers,
    }


def _interrupted_checkpoint_write(tmp: Path) -> dict[str, Any]:
    from equiscale.train.checkpoint_io import AtomicCheckpointIO

    io_ = AtomicCheckpointIO()
    path = tmp / "ckpts" / "last.ckpt"
    io_.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    before = path.read_bytes()
    try:
        io_.save_checkpoint({"epoch": 2, "w": torch.zeros(3), "bad": lambda: None}, path)  # pickling fails
        failed = False
    except Exception:  # noqa: BLE001 - the write is meant to fail midway
        failed = True
    leftovers = [p.name for p in path.parent.iterdir() if p.name != "last.ckpt"]
    return {
        "failed": failed,
        "unchanged": path.read_bytes() == before,
        "leftovers": leftovers,
        "loads": torch.load(path, weights_only=True)["epoch"] == 1,
    }


def safe_file_cases(tmp: Path) -> list[EmptyInput]:
    """Files: untrusted checkpoints and configs run no code, corrupt caches are rebuilt with a
    warning, an interrupted checkpoint write leaves the previous file intact, malformed
    npz/extxyz input is reported with the key or line (the extxyz cases are in bad_input_cases)."""
    import numpy as np

    from equiscale.data.cache import CacheError, load_npz, save_npz

    cases: list[EmptyInput] = []

    def add(entry: str, what: str, call: Callable[[], Any], check: Callable[[Any], None]) -> None:
        cases.append(EmptyInput(entry, what, call, check))

    def expect(out: dict[str, Any], **want: Any) -> None:
        for key, value in want.items():
            assert out[key] == value, f"{key}: expected {value!r}, got {out[key]!r} ({out})"

    add(
        "load_checkpoint",
        "a checkpoint whose unpickling would run code is refused (weights_only)",
        lambda: _malicious_checkpoint(tmp),
        lambda o: expect(o, ran_code=False, names_file=True),
    )
    for how in ("truncated", "checksum mismatch"):
        add(
            "cached_arrays",
            f"{how} cache file is rebuilt with a CorruptCacheWarning",
            lambda h=how: _corrupt_cache(tmp, h),
            lambda o: expect(o, warned=True, rebuilt=True, intact=True, leftovers=[]),
        )
    add(
        "AtomicCheckpointIO",
        "a write that fails midway leaves the previous checkpoint intact",
        lambda: _interrupted_checkpoint_write(tmp),
        lambda o: expect(o, failed=True, unchanged=True, leftovers=[], loads=True),
    )

    def missing_key() -> str:
        path = save_npz(tmp / "keys.npz", {"a": np.zeros(2)})
        try:
            load_npz(path, required=("a", "forces"))
        except CacheError as err:
            return str(err)
        return ""

    add(
        "load_npz",
        "an npz without a required array names the key and the file",
        missing_key,
        lambda msg: ("forces" in msg and "keys.npz" in msg) or _fail(f"message {msg!r}"),
    )

    def pickled_npz() -> str:
        path = tmp / "objects.npz"
        np.savez(path, a=np.array([{"x": 1}], dtype=object))
        try:
            load_npz(path)
        except CacheError as err:
            return str(err)
        return ""

    add(
        "load_npz",
        "an npz holding pickled objects is refused (allow_pickle=False)",
        pickled_npz,
        lambda msg: "objects.npz" in msg or _fail(f"message {msg!r}"),
    )
    return cases
