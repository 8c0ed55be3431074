"""Classes of failure found after the first catalogue, each pinned by tests that fail on the defect.

Issue 11 listed classes that the bad-input catalogue did not hold (silent wrong answers, crashes,
a command line that broke its promises, no compile/export); our own adversarial search added more.
Each class names the tests (pytest node ids or ``file::-k expression``) that fail on the defect;
:func:`run_classes` runs them and counts, so the report says what the tests check, not what was
once fixed. The tests live in ``tests/`` of a source checkout; without one the section says so.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FailureClass", "CLASSES", "run_classes"]


@dataclass(frozen=True)
class FailureClass:
    kind: str  # "silent wrong answer" | "crash or unclear error" | "command line" | "deployment"
    origin: str  # "issue 11" or "own search"
    what: str  # the class, with the input that showed it
    tests: tuple[str, ...]  # pytest selectors: "tests/x.py::name" or "tests/x.py -k expr"


W = "silent wrong answer"
C = "crash or unclear error"
L = "command line"
D = "deployment"
I11, OWN = "issue 11", "own search"

CLASSES: tuple[FailureClass, ...] = (
    FailureClass(
        W,
        I11,
        "module.to(dtype)/.half() casts exact complex/float64 tables (relative error 1.0)",
        ("tests/test_dtype_moves.py -k round_trips",),
    ),
    FailureClass(
        W,
        I11,
        "SE3Hyena normalised convolution in float32 with gate weights up to e^10 (early tokens ~1e10)",
        ("tests/test_hyena.py -k extreme_gate_weights",),
    ),
    FailureClass(
        W,
        I11,
        "Wigner6jConv float32 error growing with box size (structure centring)",
        ("tests/test_wigner6j_conv.py -k 200A_system or far_from_origin",),
    ),
    FailureClass(
        W,
        I11,
        "NaN in one structure reaching another through padded gather slots",
        ("tests/test_batch_independence.py",),
    ),
    FailureClass(
        W,
        I11,
        "assert_equivariant reporting 0.0 for NaN outputs",
        ("tests/test_testing_utils.py -k non_finite",),
    ),
    FailureClass(
        W,
        I11,
        "Gaunt grid/fourier tables on one device, input on another: a tensor of "
        "garbage on the tables' device",
        ("tests/test_dtype_moves.py -k another_device",),
    ),
    FailureClass(
        W,
        OWN,
        "float or bool atomic numbers truncated to element indices (1.7 -> 1)",
        ("tests/test_gaunt_net.py -k non_integer",),
    ),
    FailureClass(
        W,
        OWN,
        "Wigner6jConv settings changed after construction used with the tables built for the old settings",
        ("tests/test_wigner6j_conv.py -k settings_changed",),
    ),
    FailureClass(
        W,
        OWN,
        "a float64 (64-true) DDP run resumed from its checkpoint drifts from an "
        "unbroken one by float32 rounding (~5e-8 relative after one epoch)",
        ("tests/test_context_parallel_training.py -k killed_and_resumed",),
    ),
    FailureClass(
        C,
        OWN,
        "a context-parallel rank whose own output is not the prediction skipped "
        "backward, leaving the other ranks waiting in collectives",
        ("tests/test_distributed_hyena.py",),
    ),
    FailureClass(
        C, I11, "Wigner6jConv on non-contiguous features", ("tests/test_wigner6j_conv.py -k non_contiguous",)
    ),
    FailureClass(
        C,
        I11,
        "neighbor_list: NaN/inf cell (SIGFPE), cutoff^3 time for huge cutoffs",
        (
            "tests/test_batch_independence.py -k non_finite_cell",
            "tests/test_neighbors.py -k huge_cutoff or bad_inputs",
        ),
    ),
    FailureClass(
        C,
        I11,
        "fft_conv backward for bidirectional filters of length M >= 2N+1",
        ("tests/test_long_conv.py -k longer_than",),
    ),
    FailureClass(
        C,
        I11,
        "errors that do not say what is wrong (int dtype, l_filter > 12, negative batch, empty checkpoint)",
        ("tests/test_wigner6j_conv.py -k errors_name", "tests/test_trainer.py -k empty_checkpoint"),
    ),
    FailureClass(
        L,
        I11,
        "tracebacks and accepted nonsense: absurd CLI values, gpu without CUDA, "
        "data md --timestep 0, --lr inf, --max-time abc",
        ("tests/test_cli_options.py", "tests/test_config.py -k nonsense or invalid"),
    ),
    FailureClass(
        L,
        I11,
        "--resume with other model_args, eval --batch-size 0, an n-body checkpoint in the ASE calculator",
        ("tests/test_trainer.py -k existing_run",),
    ),
    FailureClass(
        L,
        I11,
        "SIGTERM exiting 0, disk full, best.ckpt before last.ckpt, committed results overwritten",
        ("tests/test_trainer.py -k sigterm or disk_full or before_best or not_overwritten",),
    ),
    FailureClass(
        D,
        I11,
        "torch.compile(fullgraph) graph breaks, no export of energy models",
        ("tests/test_compile_export.py",),
    ),
)


def _pytest(selector: str, root: Path, junit: Path) -> tuple[int, int, list[str]]:
    path, _, expr = selector.partition(" -k ")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", path]
    if expr:
        cmd += ["-k", expr]
    subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
    if not junit.is_file():
        return 0, 0, [f"{selector}: pytest wrote no report"]
    passed, tried, failed = 0, 0, []
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("skipped") is not None:
            continue
        tried += 1
        if case.find("failure") is None and case.find("error") is None:
            passed += 1
        else:
            failed.append(f"{case.get('classname')}::{case.get('name')}")
    return passed, tried, failed


def run_classes(root: str | Path | None = None) -> dict[str, Any]:
    """Run every class's tests (a source checkout's ``tests/``); per class: tests run and passed."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    if not (root / "tests").is_dir():
        return {"error": f"no tests/ folder under {root} (a source checkout is needed)", "rows": []}
    rows = []
    with tempfile.TemporaryDirectory(prefix="equiscale_classes_") as tmp:
        for k, cls in enumerate(CLASSES):
            passed = tried = 0
            failed: list[str] = []
            for j, selector in enumerate(cls.tests):
                p, t, f = _pytest(selector, root, Path(tmp) / f"{k}_{j}.xml")
                passed, tried, failed = passed + p, tried + t, failed + f
            rows.append(
                {
                    "kind": cls.kind,
                    "origin": cls.origin,
                    "what": cls.what,
                    "tests": list(cls.tests),
                    "tried": tried,
                    "passed": passed,
                    "failed": failed,
                }
            )
    return {"rows": rows}
