"""Regenerate ``results/reliability.md``: ``python tools/reliability_report.py`` (or
``equiscale bench reliability``), from a source checkout: the cases are the test catalogues under
``tests/reliability_catalogue``, so the report counts exactly what the tests check.

Runs, in one process on the CPU: the bad-input and empty-input catalogues, the degenerate
geometry cases, the hypothesis property checks (same strategies and example counts as the tests),
bf16 autocast on every model, the memory estimate against measured peaks, and the kill/resume
cycles (single process and DDP with 2 CPU processes). Writes the Markdown report and a JSON record
beside it (command, git commit, device, versions, date, wall time).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from equiscale.provenance import atomic_write_bytes, environment

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "tests") not in sys.path:  # the catalogues are test code: tests/reliability_catalogue
    sys.path.insert(0, str(REPO / "tests"))

__all__ = ["add_arguments", "run", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results/reliability.md"),
        help="Markdown report (a .json record is written beside it)",
    )
    parser.add_argument("--kills", type=int, default=3, help="SIGKILL/resume cycles, single process")
    parser.add_argument(
        "--ddp-kills", type=int, default=3, help="SIGKILL/resume cycles under DDP (2 CPU procs)"
    )
    parser.add_argument("--no-faults", action="store_true", help="skip the kill/resume runs")
    parser.add_argument(
        "--no-classes",
        action="store_true",
        help="skip the tests of the failure classes (they need a source checkout)",
    )
    parser.add_argument(
        "--examples-scale",
        type=float,
        default=1.0,
        help="multiply the hypothesis example counts (1 = the tests' counts)",
    )


def _command() -> str:
    if "bench" in sys.argv[1:3]:  # equiscale bench reliability ...
        return " ".join(["equiscale", *map(shlex.quote, sys.argv[1:])])
    return " ".join(["python tools/reliability_report.py", *map(shlex.quote, sys.argv[1:])])


def _bad_inputs(tmp: Path) -> dict[str, Any]:
    from reliability_catalogue import common as C
    from reliability_catalogue.bad_inputs import bad_input_cases

    rows, failures = {}, []
    for case in bad_input_cases(tmp):
        entry = case.entry.split(".")[0]
        tried, ok = rows.get(entry, (0, 0))
        try:
            C.run_bad_input(case)
            ok += 1
        except AssertionError as err:
            failures.append(str(err)[:300])
        rows[entry] = (tried + 1, ok)
    return {"per_entry": rows, "failures": failures}


def _empty(tmp: Path) -> dict[str, Any]:
    from reliability_catalogue import common as C
    from reliability_catalogue.empty import empty_cases

    done, failures = 0, []
    cases = empty_cases(tmp / "empty")
    for case in cases:
        try:
            C.run_empty(case)
            done += 1
        except Exception as err:  # noqa: BLE001 - reported
            failures.append(f"{case.id}: {type(err).__name__}: {str(err)[:200]}")
    return {"tried": len(cases), "passed": done, "failures": failures}


def _files(tmp: Path) -> dict[str, Any]:
    from reliability_catalogue import common as C
    from reliability_catalogue.files import safe_file_cases

    rows, failures = [], []
    for case in safe_file_cases(tmp):
        try:
            C.run_empty(case)
            rows.append(case.id)
        except Exception as err:  # noqa: BLE001 - reported
            failures.append(f"{case.id}: {type(err).__name__}: {str(err)[:200]}")
    return {"passed": rows, "failures": failures}


def _degenerate() -> dict[str, Any]:
    from reliability_catalogue import common as C
    from reliability_catalogue.geometry import degenerate_cases

    rows, failures, largest = {}, [], []
    for case in degenerate_cases():
        tried, ok = rows.get(case.entry, (0, 0))
        try:
            out = C.run_degenerate(case)
            ok += 1
            big = max((float(t.abs().max()), k) for k, t in out.items() if t is not None and t.numel())
            largest.append((big[0], case.id, big[1]))
        except Exception as err:  # noqa: BLE001 - reported
            failures.append(f"{case.id}: {type(err).__name__}: {str(err)[:200]}")
        rows[case.entry] = (tried + 1, ok)
    largest.sort(reverse=True)
    return {"per_entry": rows, "failures": failures, "largest": largest[:6]}


def _profiler_check() -> dict[str, Any]:
    """bench.common.peak_memory (torch profiler sum) vs the resident-set peak on known workloads."""
    from equiscale.bench.common import peak_memory
    from equiscale.bench.context import peak_bytes

    def live():
        keep = [torch.randn(1 << 20) for _ in range(100)]  # 400 MiB live at the end
        return len(keep)

    def churn():
        total = 0.0
        for _ in range(100):  # 4 MiB at a time
            total += float(torch.randn(1 << 20)[0])
        return total

    out = {}
    for name, fn, truth in (("100 x 4 MiB kept", live, 400), ("100 x 4 MiB, one at a time", churn, 4)):
        out[name] = {
            "true_mib": truth,
            "profiler_mib": round(peak_memory(fn) / 2**20),
            "rss_mib": round(peak_bytes(fn, "cpu") / 2**20),
        }
    return out


def _properties(scale: float) -> dict[str, Any]:
    from reliability_catalogue import properties as P

    out: dict[str, Any] = {}
    for name, (check, strategy) in P.strategies().items():
        out[name] = _property(name, check, strategy, scale)
    return out


def _property(name: str, check: Any, strategy: Any, scale: float) -> dict[str, Any]:
    from hypothesis import HealthCheck, given, settings

    from reliability_catalogue import properties as P

    stats: dict[str, Any] = {"examples": 0, "max_err_float64": 0.0, "max_err_float32": 0.0, "violations": 0}

    @settings(
        max_examples=max(1, int(P.EXAMPLES[name] * scale)),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(strategy)
    def prop(kwargs):
        stats["examples"] += 1
        error, budget = check(**kwargs)
        key = "max_err_float64" if kwargs["dtype"] == torch.float64 else "max_err_float32"
        stats[key] = max(stats[key], error)
        if error > budget:
            stats["violations"] += 1
            raise AssertionError(f"{name} {kwargs}: {error} > {budget}")

    try:
        prop()
    except AssertionError as err:
        stats["failure"] = str(err)[:300]
    stats["budget_float64"], stats["budget_float32"] = P.BUDGETS[name]
    return stats


def _autocast() -> dict[str, Any]:
    from reliability_catalogue.precision import AUTOCAST_MODELS, autocast_equivariance

    out: dict[str, Any] = {}
    for dtype in (torch.bfloat16, torch.float16):
        label = str(dtype).replace("torch.", "")
        for name in AUTOCAST_MODELS:
            try:
                res = autocast_equivariance(name, dtype, trials=3)
            except Exception as err:  # noqa: BLE001 - reported
                res = {"error": f"{type(err).__name__}: {str(err)[:200]}"}
            out[f"{name} ({label})"] = res
    return out


def _memory() -> dict[str, Any]:
    from equiscale.bench.context import peak_bytes
    from equiscale.models.equivariant_transformer import EquivariantTransformer
    from equiscale.models.se3_hyena import SE3HyenaNet
    from equiscale.train.memory import MemoryBudgetError, check_memory, estimate_peak_memory

    rows = []
    for name, cls, (b, n, cs, cv, depth) in (
        ("se3hyena", SE3HyenaNet, (1, 20000, 48, 4, 2)),
        ("se3hyena", SE3HyenaNet, (2, 8192, 24, 12, 1)),
        ("se3hyena", SE3HyenaNet, (1, 32768, 32, 8, 4)),
        ("eq_transformer", EquivariantTransformer, (2, 6000, 16, 8, 2)),
        ("eq_transformer", EquivariantTransformer, (1, 8192, 64, 16, 1)),
    ):
        torch.manual_seed(0)
        model = cls(cs, cv, depth)
        batch = {"pos": torch.randn(b, n, 3), "token_type": torch.zeros(b, n, 3)}

        def step(model=model, batch=batch):
            model.zero_grad(set_to_none=True)
            model(batch).square().sum().backward()

        step()
        measured = peak_bytes(step, "cpu")
        est = estimate_peak_memory(
            name,
            batch=b,
            tokens=n,
            scalar_channels=cs,
            vector_channels=cv,
            depth=depth,
            n_parameters=sum(p.numel() for p in model.parameters()),
        )
        rows.append(
            {
                "model": name,
                "batch": b,
                "tokens": n,
                "Cs": cs,
                "Cv": cv,
                "depth": depth,
                "measured": measured,
                "estimate": est,
                "ratio": round(est / measured, 2),
            }
        )
    try:
        check_memory(
            "se3hyena",
            available=80 * 2**30,
            tokens=3_500_000,
            batch=1,
            depth=4,
            scalar_channels=64,
            vector_channels=16,
            device="cuda",
        )
        example = "(fits)"
    except MemoryBudgetError as err:
        example = str(err)
    return {"rows": rows, "example": example}


def _faults(kills: int, ddp_kills: int, tmp: Path) -> dict[str, Any]:
    from reliability_catalogue.faults import kill_resume_cycles

    out = {}
    for label, n, ddp, epochs in (
        ("single process", kills, False, 60),
        ("DDP, 2 CPU processes", ddp_kills, True, 24),
    ):
        if n <= 0:
            continue
        try:
            out[label] = kill_resume_cycles(
                tmp / label.split(",")[0].replace(" ", "_"), kills=n, ddp=ddp, epochs=epochs, seed=0
            )
        except Exception as err:  # noqa: BLE001 - reported
            out[label] = {"error": f"{type(err).__name__}: {str(err)[:300]}", "kills": 0, "identical": False}
    return out


def _fmt(x: float) -> str:
    return f"{x:.1e}" if isinstance(x, float) else str(x)


def _markdown(rec: dict[str, Any]) -> str:
    from equiscale.train.memory import format_bytes

    L = [
        "# Reliability report (issues 6 and 11)",
        "",
        f"- command: `{rec['command']}`",
        f"- git commit: `{rec['git_commit']}`",
        f"- device: {rec['device']} (torch threads {rec['torch_threads']})",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in rec["versions"].items() if v),
        f"- date (UTC): {rec['date_utc']}",
        f"- wall time: {rec['wall_time_s']} s",
        "",
    ]
    bad = rec["bad_inputs"]
    tried = sum(t for t, _ in bad["per_entry"].values())
    ok = sum(o for _, o in bad["per_entry"].values())
    L += [
        "## Summary",
        "",
        "| what | count |",
        "|---|---|",
        f"| bad inputs tried | {tried} |",
        f"| bad inputs rejected with ValueError/TypeError naming the argument | {ok} |",
        f"| empty inputs (0 tokens/edges/atoms, 1 atom) with shaped, finite results | "
        f"{rec['empty']['passed']} of {rec['empty']['tried']} |",
    ]
    deg = rec["degenerate"]
    dt = sum(t for t, _ in deg["per_entry"].values())
    do = sum(o for _, o in deg["per_entry"].values())
    L.append(f"| degenerate geometry cases with finite outputs and gradients | {do} of {dt} |")
    n_files = len(rec["files"]["passed"]) + len(rec["files"]["failures"])
    L.append(
        f"| safe-file checks (untrusted checkpoint, corrupt caches, interrupted write, npz) | "
        f"{len(rec['files']['passed'])} of {n_files} |"
    )
    for label, f in rec.get("faults", {}).items():
        L.append(
            f"| kill/resume cycles survived with identical final state ({label}) | "
            f"{f.get('kills', 0) if f.get('identical') else 0} (of {f.get('kills', 0)} kills) |"
        )
    total_ex = sum(p["examples"] for p in rec["properties"].values())
    L.append(f"| property-test examples run (all operators) | {total_ex} |")
    L += _status(rec, ok, tried, do, dt, total_ex)
    L += _classes_section(rec.get("classes"))
    L += [
        "",
        "## Bad inputs per entry point",
        "",
        "| entry point | tried | rejected clearly |",
        "|---|---|---|",
    ]
    L += [f"| `{k}` | {t} | {o} |" for k, (t, o) in bad["per_entry"].items()]
    if bad["failures"]:
        L += ["", "Not rejected clearly:", ""] + [f"- {f}" for f in bad["failures"]]
    if rec["empty"]["failures"]:
        L += ["", "Empty-input failures:", ""] + [f"- {f}" for f in rec["empty"]["failures"]]
    files = rec["files"]
    n_files = len(files["passed"]) + len(files["failures"])
    L += [
        "",
        "## Safe files",
        "",
        f"{len(files['passed'])} of {n_files} checks pass (the malformed "
        "extxyz files, the unsafe YAML and the corrupt checkpoint are among the bad inputs):",
        "",
    ]
    L += [f"- {f}" for f in files["passed"]] + [f"- FAILED: {f}" for f in files["failures"]]
    L += [
        "",
        "## Degenerate geometry",
        "",
        "Coincident points (r_ij = 0), all points coincident, collinear, coplanar, tetrahedron + "
        "centre (triple eigenvalue), 1e4 from the origin, tiny (1e-6) and huge (1e3) scales. "
        "Energy/force models: energy, forces and the gradients of a force loss (second "
        "derivatives) w.r.t. positions and parameters; other models: output and gradients.",
        "",
        "| entry point | cases | finite |",
        "|---|---|---|",
    ]
    L += [f"| `{k}` | {t} | {o} |" for k, (t, o) in deg["per_entry"].items()]
    if deg["failures"]:
        L += ["", "Failures:", ""] + [f"- {f}" for f in deg["failures"]]
    L += ["", "Finite is not small: the largest magnitudes among the degenerate cases:", ""]
    L += [f"- {v:.2g} ({what}) in {cid}" for v, cid, what in deg["largest"]]
    L += [
        "",
        "## Property tests (hypothesis, fast path vs reference)",
        "",
        "Relative error = max|fast - reference| / max|reference|; budgets from each docstring.",
        "",
        "| operator | examples | max err float64 | budget | max err float32 | budget | violations |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, p in rec["properties"].items():
        L.append(
            f"| `{k}` | {p['examples']} | {_fmt(p['max_err_float64'])} | {_fmt(p['budget_float64'])} | "
            f"{_fmt(p['max_err_float32'])} | {_fmt(p['budget_float32'])} | {p['violations']} |"
        )
    L += [
        "",
        "## Mixed precision (autocast on the CPU: bfloat16 and float16)",
        "",
        "Equivariance error (relative, max over 3 random transformations) in float32 and under "
        "`torch.autocast('cpu', dtype=...)`; 'change' = max |autocast - float32| output / max "
        "|float32 output|. Kept in float32 under autocast: the long convolutions (FFTs), the frames "
        "of frame averaging (float64), the Wigner-6j geometry (solid harmonics, |r|^l), the E2Former "
        "attention softmax and RMS norm.",
        "",
        "| model (autocast dtype) | finite | fp32 rotation | autocast rotation | autocast reflection | "
        "autocast translation | change |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, r in rec["autocast"].items():
        if "error" in r:
            L.append(f"| {k} | error: {r['error']} | | | | | |")
            continue
        a, f = r["autocast"], r["float32"]
        refl = _fmt(a["reflection"]) if "reflection" in a else "n/a (SE(3) model)"
        L.append(
            f"| {k} | {r['finite']} | {_fmt(f['rotation'])} | {_fmt(a['rotation'])} | {refl} | "
            f"{_fmt(a['translation'])} | {_fmt(r['max_rel_change'])} |"
        )
    mem = rec["memory"]
    L += [
        "",
        "## Memory honesty",
        "",
        "`equiscale.train.memory.estimate_peak_memory` against the resident-set peak of one "
        "training step (forward + backward; float32):",
        "",
        "| model | batch | tokens | Cs | Cv | depth | measured | estimate | estimate / measured |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    L += [
        f"| {r['model']} | {r['batch']} | {r['tokens']} | {r['Cs']} | {r['Cv']} | {r['depth']} | "
        f"{format_bytes(r['measured'])} | {format_bytes(r['estimate'])} | {r['ratio']} |"
        for r in mem["rows"]
    ]
    L += [
        "",
        "What `check_memory` says before a 3.5M-token SE3HyenaNet step on an 80 GiB budget:",
        "",
        f"> {mem['example']}",
        "",
    ]
    prof = rec["profiler_check"]
    L += [
        "",
        "Cross-check of the two CPU peak-memory methods on known workloads (the profiler sum "
        "counted child ops twice and missed frees before commit 492f063: it read 800 MiB and 408 MiB "
        "for these rows; the estimate above is fitted on resident-set peaks):",
        "",
        "| workload | true | profiler sum (bench.common) | resident-set peak (bench.context) |",
        "|---|---|---|---|",
    ]
    L += [
        f"| {k} | {v['true_mib']} MiB | {v['profiler_mib']} MiB | {v['rss_mib']} MiB |"
        for k, v in prof.items()
    ]
    L += [
        "",
        "The estimate is fitted on CPU resident-set peaks; it is not validated on CUDA (no GPU "
        "here). `equiscale train` calls `check_config_memory` before every run (long-context "
        "se3hyena / eq_transformer, also under frame averaging); `bench context` does not call it "
        "yet (its owner's file).",
        "",
    ]
    if rec.get("faults"):
        L += [
            "## Kill / resume",
            "",
            "Tiny n-body EGNN training (`equiscale train`, 200 samples), SIGKILL to the whole "
            "process group at random moments after a fresh checkpoint, `--resume` each time; the "
            "final weights, optimizer state, epoch count and test metrics compared with an "
            "unbroken run (torch.equal).",
            "",
            "| run | kills | identical | kill times after (re)start (s) | wall (s) |",
            "|---|---|---|---|---|",
        ]
        for label, f in rec["faults"].items():
            L.append(
                f"| {label} | {f.get('kills')} | {f.get('identical')} | {f.get('kill_times_s', '')} | "
                f"{f.get('wall_s', f.get('error', ''))} |"
            )
    return "\n".join(L) + "\n"


def _classes_section(classes: dict[str, Any] | None) -> list[str]:
    """Issue 11's classes and our own finds: per class, the tests that pin it and how many pass."""
    if not classes:
        return []
    out = ["", "## Classes of failure beyond the catalogue (issue 11 and our own search)", ""]
    if classes.get("error"):
        return out + [f"Not run: {classes['error']}"]
    rows = classes["rows"]
    fixed = sum(r["tried"] > 0 and r["passed"] == r["tried"] for r in rows)
    own = [r for r in rows if r["origin"] == "own search"]
    out += [
        f"{fixed} of {len(rows)} classes pass all their tests ({sum(r['tried'] for r in rows)} "
        f"tests, {sum(r['passed'] for r in rows)} passed); {len(own)} classes come from our own "
        "adversarial search. Each class's tests fail on the defect.",
        "",
        "| kind | origin | class | tests | passed |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        sel = "<br>".join(f"`{t}`" for t in r["tests"])
        out.append(f"| {r['kind']} | {r['origin']} | {r['what']} | {sel} | {r['passed']}/{r['tried']} |")
    failed = [f for r in rows for f in r["failed"]]
    if failed:
        out += ["", "Failing:", ""] + [f"- {f}" for f in failed]
    return out


def _status(rec: dict[str, Any], ok: int, tried: int, do: int, dt: int, examples: int) -> list[str]:
    """Issue 6's points, each with the figure reached in this run."""
    files = rec["files"]
    faults = rec.get("faults", {})
    kills = {k: (f.get("kills", 0), bool(f.get("identical"))) for k, f in faults.items()}
    ac = [r for r in rec["autocast"].values() if "error" not in r]
    worst_ac = max((max(r["autocast"].values()) for r in ac), default=float("nan"))
    mem = rec["memory"]["rows"]
    ratios = [r["ratio"] for r in mem]
    props = rec["properties"]
    viol = sum(p["violations"] for p in props.values())
    rows = [
        (
            "1. input validation, empty inputs",
            ok == tried and rec["empty"]["passed"] == rec["empty"]["tried"],
            f"{ok}/{tried} bad inputs rejected naming the argument; {rec['empty']['passed']}/"
            f"{rec['empty']['tried']} empty inputs shaped and finite",
        ),
        ("2. degenerate geometry", do == dt, f"{do}/{dt} cases finite (outputs, gradients, 2nd derivatives)"),
        (
            "3. property tests vs reference",
            viol == 0,
            f"{len(props)} operators, {examples} examples, {viol} budget violations",
        ),
        (
            "4. safe files",
            not files["failures"],
            f"{len(files['passed'])} checks + malformed extxyz/YAML/ckpt among the bad inputs",
        ),
        (
            "5. runs that survive SIGKILL (single, DDP)",
            bool(kills) and all(i and k > 0 for k, i in kills.values()),
            "; ".join(f"{k}: {n} kills, identical={i}" for k, (n, i) in kills.items())
            or "not run (--no-faults)",
        ),
        (
            "6. memory honesty",
            bool(ratios) and min(ratios) >= 1.0,
            f"estimate/measured {min(ratios):.2f}..{max(ratios):.2f} on CPU (not validated on CUDA); "
            "`equiscale train` stops runs that will not fit"
            if ratios
            else "no rows",
        ),
        (
            "7. mixed precision",
            len(ac) == len(rec["autocast"]) and all(r["finite"] for r in ac),
            f"{len(ac)}/{len(rec['autocast'])} model x dtype runs finite under autocast; worst equivariance "
            f"error {worst_ac:.1e}",
        ),
    ]
    out = ["", "## Issue 6, point by point", "", "| point | met | figure |", "|---|---|---|"]
    out += [f"| {name} | {'yes' if met else 'NO'} | {fig} |" for name, met, fig in rows]
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    warnings.filterwarnings("ignore")
    t0 = time.time()
    rec: dict[str, Any] = {
        "command": _command(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **environment("cpu"),
    }
    with tempfile.TemporaryDirectory(prefix="equiscale_reliability_") as tmp_name:
        tmp = Path(tmp_name)
        rec["bad_inputs"] = _bad_inputs(tmp)
        rec["empty"] = _empty(tmp)
        rec["degenerate"] = _degenerate()
        rec["files"] = _files(tmp)
        rec["properties"] = _properties(args.examples_scale)
        rec["autocast"] = _autocast()
        rec["memory"] = _memory()
        rec["profiler_check"] = _profiler_check()
        if not args.no_classes:
            from reliability_catalogue.classes import run_classes

            rec["classes"] = run_classes()
        if not args.no_faults:
            rec["faults"] = _faults(args.kills, args.ddp_kills, tmp)
    rec["wall_time_s"] = round(time.time() - t0, 1)
    out = Path(args.out)
    atomic_write_bytes(out, _markdown(rec).encode())
    atomic_write_bytes(out.with_suffix(".json"), (json.dumps(rec, indent=2, default=str) + "\n").encode())
    print(_markdown(rec))
    print(f"written: {out} and {out.with_suffix('.json')}")
    return rec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/reliability_report.py", description=__doc__.split("\n\n")[0]
    )
    add_arguments(parser)
    run(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
