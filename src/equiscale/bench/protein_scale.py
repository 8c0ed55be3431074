"""``equiscale bench protein-scale``: time and peak memory of the hybrid, the local model and the
transformer on all-atom protein systems from 1k to 100k+ atoms.

Systems: T4 lysozyme (2,603 atoms, Amber structure from the openmmtools wheel, read by
:func:`equiscale.data.protein.load_structure`) replicated on a cubic lattice of copies, spacing =
the largest extent of the structure + ``--gap`` A (copies do not overlap), copies concatenated in
topology order (lattice sites in lexicographic order) and truncated to the first N atoms; below
2,603 atoms, the first N atoms of one copy. Inside a copy the density is that of the protein.

Models (one structure, float32; width and depth of ``configs/hybrid_protein.yaml``):

- ``hybrid``: :class:`~equiscale.models.hybrid.HybridNet` (E2Former blocks within ``--cutoff`` +
  SE(3)-Hyena blocks over the atoms in topology order), ``long_range="none"``;
- ``hybrid_coulomb``: the same with ``long_range="coulomb"`` (direct pair sum, O(N^2));
- ``hybrid_checkpointed``: the hybrid with ``checkpoint_blocks=True`` (each block's activations
  recomputed in the backward pass instead of kept: less memory for one more forward per block);
- not by default (``--models``): ``hybrid_coulomb_mesh``, the hybrid with the particle-mesh
  Coulomb term (``long_range="coulomb_mesh"``, ``--mesh-spacing``); ``coulomb_direct`` and
  ``coulomb_mesh``, the Coulomb energy and forces of fixed charges alone by the direct pair sum
  (O(N^2)) or the particle-mesh sum (:func:`equiscale.ops.coulomb.coulomb_energy_mesh`);
- ``e2former``: the local :class:`~equiscale.models.e2former.E2Former` at the same width;
- ``transformer``: :class:`~equiscale.models.equivariant_transformer.EquivariantTransformer`
  (``--channels`` scalar and vector channels, ``--layers`` blocks, ``--heads`` heads,
  bidirectional) in the n-body layout (``loc`` = positions, ``vel`` random, ``charges`` = Z / 10).

Modes: ``energy`` is the forward pass alone (energy models with ``compute_forces=False`` under
``no_grad``: what a screening or sampling loop pays per structure; the transformer's ``energy`` is
its ``forward``); ``forward`` is inference (energy models: energy and forces, one ``autograd.grad`` without
``create_graph``, ``model.eval()`` under ``no_grad``; transformer: the model call under
``no_grad``); ``forward_backward`` is a training step (energy models in ``train()`` mode: forces
with ``create_graph=True``, loss = mean(E^2) + mean(F^2), ``loss.backward()``; transformer:
mean squared prediction, ``backward()``).

Per size, model and mode: a first call whose peak memory is measured (a warm-up as well); when it
took less than ``--long-call-s``, a second measured call gives the memory (steady state, after
one-time set-up) and ``--warmup`` more untimed calls follow, then ``--repeats`` timed calls (median,
min, max); a longer first call is followed by ``--long-repeats`` timed calls and its own memory
is reported. Peak memory is :func:`equiscale.bench.context.peak_bytes` (CPU: resident-set high-water
mark above the resident set before the call, glibc mmap threshold 64 KiB while measuring; the
model's parameters and the inputs are allocated before and not counted).

Stopping rule: before each size, the peak memory and the time of one call are predicted from the
two largest sizes measured for that model and mode, ``y(N) = y_last (N / N_last)^p`` with ``p`` their
log-log slope clipped to [1, 3] (p = 1 from a single size); a model and mode stops at the first size
whose prediction exceeds ``--memory-cap-gb`` or ``--time-cap-s``, and the record says where and why.

Also timed: :func:`equiscale.ops.neighbor_list` alone at every size (cell lists, O(N) expected) and
the number of edges per atom. Exponents: least-squares slopes of log time and log peak memory
against log N over the sizes N >= ``--fit-from``.

Writes JSON (default ``results/protein/scale_<device>.json``) and a PNG beside it.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from equiscale.bench.common import check_bench_args, device_slug, fit_exponent, time_fn, write_record
from equiscale.bench.context import memory_method, peak_bytes, set_allocator_mode

__all__ = ["add_arguments", "run", "protein_copies", "replicate", "MODELS", "MODES", "TERMS"]

MODELS = ("hybrid", "e2former", "transformer", "hybrid_coulomb", "hybrid_checkpointed")
TERMS = ("hybrid_coulomb_mesh", "coulomb_direct", "coulomb_mesh")  # chosen with --models only
MODES = ("energy", "forward", "forward_backward")
SYSTEM = "t4-lysozyme"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda or cuda:k")
    parser.add_argument(
        "--atoms",
        type=int,
        nargs="+",
        default=[1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072],
        help="system sizes N (atoms)",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(MODELS),
        choices=MODELS + TERMS,
        help="models to measure (hybrid_coulomb: the O(N^2) direct Coulomb term on top; "
        "hybrid_checkpointed: the hybrid with checkpoint_blocks=True; not by default: "
        "hybrid_coulomb_mesh, the particle-mesh Coulomb term on top; coulomb_direct / coulomb_mesh: "
        "the Coulomb energy of fixed charges alone, direct or particle-mesh sum)",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        default=list(MODES),
        choices=MODES,
        help="energy: the forward pass alone (no forces); forward: energy and forces (inference); "
        "forward_backward: a training step",
    )
    parser.add_argument("--gap", type=float, default=4.0, help="gap (A) between replicated copies")
    parser.add_argument("--channels", type=int, default=16, help="channels C of every model")
    parser.add_argument("--lmax", type=int, default=1, help="degree L of the E2Former features")
    parser.add_argument("--layers", type=int, default=2, help="layers of every model")
    parser.add_argument("--heads", type=int, default=2, help="attention heads")
    parser.add_argument("--num-radial", type=int, default=8, help="radial basis size (E2Former blocks)")
    parser.add_argument("--cutoff", type=float, default=5.0, help="neighbour cutoff (A)")
    parser.add_argument("--filter-hidden", type=int, default=16, help="Hyena filter MLP width")
    parser.add_argument(
        "--mesh-spacing", type=float, default=0.75, help="mesh spacing (A) of the particle-mesh Coulomb sum"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of a short call")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls after the memory calls")
    parser.add_argument(
        "--long-call-s",
        type=float,
        default=5.0,
        help="a first call longer than this (s) is the only warm-up, followed by --long-repeats calls",
    )
    parser.add_argument("--long-repeats", type=int, default=1, help="timed calls of a long call")
    parser.add_argument(
        "--memory-cap-gb", type=float, default=12.0, help="stop where predicted peak memory exceeds this"
    )
    parser.add_argument(
        "--time-cap-s", type=float, default=120.0, help="stop where a predicted call exceeds this (s)"
    )
    parser.add_argument("--fit-from", type=int, default=4096, help="fit exponents over sizes N >= this")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and random inputs")
    parser.add_argument(
        "--out", default=None, help="JSON path (results/protein/scale_<device>.json when not given)"
    )
    parser.add_argument("--no-plot", action="store_true", help="write no PNG beside the JSON")


# ---------------------------------------------------------------------------------------------------
# systems


def protein_copies(system: str = SYSTEM) -> tuple[np.ndarray, np.ndarray]:
    """``(positions [n, 3] in A, atomic numbers [n])`` of ``system`` in topology order."""
    from equiscale.data.protein import load_structure

    prmtop, pos_nm = load_structure(system)
    z = np.array([a.element.atomic_number for a in prmtop.topology.atoms()], dtype=np.int64)
    return pos_nm * 10.0, z


def replicate(pos: np.ndarray, z: np.ndarray, n: int, gap: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """The first ``n`` atoms of copies of ``(pos [m, 3], z [m])`` on a cubic lattice.

    Copy ``c`` sits at lattice site ``(a, b, d)`` = the c-th of ``k^3`` sites in lexicographic order
    (``k`` the smallest side holding ``ceil(n / m)`` copies), shifted by ``spacing * (a, b, d)`` with
    ``spacing = max extent + gap``: atoms of different copies are at least ``gap`` apart.
    Returns ``(pos [n, 3], z [n], info)``.
    """
    if n < 1 or not gap > 0:
        raise ValueError(f"need n >= 1 and gap > 0, got n={n}, gap={gap}")
    m = pos.shape[0]
    copies = -(-n // m)
    side = 1
    while side**3 < copies:
        side += 1
    base = pos - pos.min(0)
    spacing = float(base.max(0).max()) + gap
    sites = np.array([(a, b, d) for a in range(side) for b in range(side) for d in range(side)])[:copies]
    out = (base[None] + spacing * sites[:, None, :]).reshape(-1, 3)[:n]  # [copies * m, 3] -> [n, 3]
    info = {"copies": copies, "lattice_side": side, "spacing_A": spacing}
    return out, np.tile(z, copies)[:n], info


# ---------------------------------------------------------------------------------------------------
# models and calls


class _CoulombTerm(torch.nn.Module):
    """The Coulomb energy (and forces) of fixed charges ``(z - mean z) / 10`` (neutral), width 1 A:
    the direct pair sum (``mesh_spacing=None``) or the particle-mesh sum; the batch layout and
    ``compute_forces`` switch of the energy models."""

    def __init__(self, mesh_spacing: float | None) -> None:
        super().__init__()
        self.mesh_spacing, self.compute_forces = mesh_spacing, True

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        from equiscale.ops.coulomb import coulomb_energy, coulomb_energy_mesh

        z = batch["z"].to(batch["pos"].dtype)
        q = (z - z.mean()) / 10.0
        with torch.enable_grad():
            pos = batch["pos"].detach().requires_grad_(self.compute_forces)
            n = [pos.shape[0]]
            if self.mesh_spacing is None:
                energy = coulomb_energy(q, pos, n, 1.0)
            else:
                energy = coulomb_energy_mesh(q, pos, n, 1.0, spacing=self.mesh_spacing)
            if not self.compute_forces:
                return {"energy": energy}
            (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=self.training)
        return {"energy": energy, "forces": -grad}


def _build(name: str, args: argparse.Namespace) -> torch.nn.Module:
    from equiscale.models.e2former import E2Former
    from equiscale.models.equivariant_transformer import EquivariantTransformer
    from equiscale.models.hybrid import HybridNet

    local = {"num_radial": args.num_radial, "cutoff": args.cutoff}
    if name in ("coulomb_direct", "coulomb_mesh"):
        return _CoulombTerm(mesh_spacing=args.mesh_spacing if name == "coulomb_mesh" else None)
    if name.startswith("hybrid"):
        return HybridNet(
            20,
            args.channels,
            args.lmax,
            args.layers,
            heads=args.heads,
            filter_hidden=args.filter_hidden,
            long_range={"hybrid_coulomb": "coulomb", "hybrid_coulomb_mesh": "coulomb_mesh"}.get(name, "none"),
            mesh_spacing=args.mesh_spacing,
            checkpoint_blocks=name == "hybrid_checkpointed",
            **local,
        )
    if name == "e2former":
        return E2Former(20, args.channels, args.lmax, args.layers, args.heads, **local)
    return EquivariantTransformer(
        args.channels, args.channels, args.layers, heads=args.heads, scalar_in=1, vector_in=1, causal=False
    )


def _calls(
    name: str, pos: np.ndarray, z: np.ndarray, args: argparse.Namespace
) -> tuple[torch.nn.Module, dict[str, Callable[[], None]]]:
    """The model and its ``{mode: call}``."""
    device = args.device
    torch.manual_seed(args.seed)
    model = _build(name, args).to(device)
    p = torch.tensor(pos, dtype=torch.float32, device=device)
    if name == "transformer":
        gen = torch.Generator().manual_seed(args.seed)
        batch = {
            "loc": p[None],  # [1, N, 3]
            "vel": torch.randn(1, len(z), 3, generator=gen).to(device),
            "charges": torch.tensor(z, dtype=torch.float32, device=device)[None] / 10.0,  # [1, N]
        }

        def forward() -> None:
            model.eval()
            with torch.no_grad():
                model(batch)

        def forward_backward() -> None:
            model.train()
            model.zero_grad(set_to_none=True)
            (model(batch) - batch["loc"]).square().mean().backward()

        energy = forward  # the transformer's forward pass is all it computes

    else:
        batch = {"pos": p, "z": torch.tensor(z, device=device)}

        def forward() -> None:
            model.eval()
            with torch.no_grad():
                model(batch)  # energy and forces: one autograd.grad inside, no create_graph

        def forward_backward() -> None:
            model.train()
            model.zero_grad(set_to_none=True)
            out = model(batch)  # forces with create_graph=True
            (out["energy"].square().mean() + out["forces"].square().mean()).backward()

        def energy() -> None:
            model.eval()
            model.compute_forces = False
            try:
                with torch.no_grad():
                    model(batch)  # the forward pass alone: no graph, no forces
            finally:
                model.compute_forces = True

    return model, {"energy": energy, "forward": forward, "forward_backward": forward_backward}


def _measure(fn: Callable[[], None], args: argparse.Namespace) -> dict[str, Any]:
    """Peak memory and timing of ``fn`` (module docstring for the protocol)."""
    cpu = torch.device(args.device).type == "cpu"
    if cpu:
        set_allocator_mode("measure")
    start = time.perf_counter()
    mem = peak_bytes(fn, args.device)
    first = time.perf_counter() - start
    long = first > args.long_call_s
    memory_call = "first"
    if not long:
        mem, memory_call = peak_bytes(fn, args.device), "second"
    if cpu:
        set_allocator_mode("fast")
    if not long:
        for _ in range(args.warmup):
            fn()
    times = [
        time_fn(fn, warmup=0, repeats=1, device=args.device)["median_ms"]
        for _ in range(args.long_repeats if long else args.repeats)
    ]
    times.sort()
    return {
        "median_ms": statistics.median(times),
        "min_ms": times[0],
        "max_ms": times[-1],
        "repeats": len(times),
        "first_call_ms": first * 1e3,
        "peak_mb": mem / 2**20,
        "memory_call": memory_call,
        "loadavg_1min": os.getloadavg()[0],
    }


def _predict(rows: list[dict[str, Any]], key: str, n: int) -> float | None:
    """``key`` at ``n`` from the two largest measured sizes: ``y_last (n / n_last)^p``, the log-log
    slope ``p`` clipped to [1, 3] (1 from a single size)."""
    pts = sorted((r["n"], r[key]) for r in rows if r[key] > 0)
    if not pts:
        return None
    n1, y1 = pts[-1]
    p = 1.0
    if len(pts) >= 2 and pts[-2][0] < n1:
        n0, y0 = pts[-2]
        p = min(3.0, max(1.0, math.log(y1 / y0) / math.log(n1 / n0)))
    return y1 * (n / n1) ** p


def _stop_reason(rows: list[dict[str, Any]], n: int, args: argparse.Namespace) -> str | None:
    mem = _predict(rows, "peak_mb", n)
    if mem is not None and mem > args.memory_cap_gb * 1024:
        return f"predicted peak memory {mem / 1024:.2f} GB > cap {args.memory_cap_gb} GB"
    t = _predict(rows, "median_ms", n)
    if t is not None and t > args.time_cap_s * 1e3:
        return f"predicted time per call {t / 1e3:.0f} s > cap {args.time_cap_s} s"
    return None


def _neighbours(pos: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    from equiscale.ops.neighbors import neighbor_list

    p = torch.tensor(pos, dtype=torch.float32)
    edges = neighbor_list(p, args.cutoff).edge_index.shape[1]
    t = time_fn(lambda: neighbor_list(p, args.cutoff), warmup=0, repeats=3 if len(pos) < 40000 else 1)
    return {"neighbor_list_ms": t["median_ms"], "edges": edges, "edges_per_atom": edges / len(pos)}


def _fit(rows: list[dict[str, Any]], key: str, fit_from: int) -> dict[str, Any] | None:
    sub = sorted((r["n"], r[key]) for r in rows if r["n"] >= fit_from)
    if len(sub) < 2:
        return None
    ns = [n for n, _ in sub]
    return {"exponent": fit_exponent(ns, [y for _, y in sub]), "sizes": ns}


# ---------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.time()
    check_bench_args(
        args,
        at_least_one=("channels", "layers", "heads", "num_radial", "filter_hidden", "repeats"),
        non_negative=("warmup", "lmax"),
        lists_at_least_one=("atoms",),
    )
    check_bench_args(args, at_least_one=("long_repeats", "threads"))
    for name in ("gap", "cutoff", "memory_cap_gb", "time_cap_s", "mesh_spacing"):
        if not getattr(args, name) > 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    if torch.device(args.device).type == "cpu":
        torch.set_num_threads(args.threads)
    method = memory_method(args.device)
    sizes = sorted(set(args.atoms))
    base_pos, base_z = protein_copies()
    print(
        f"protein-scale on {args.device}: {SYSTEM} ({len(base_z)} atoms) replicated, sizes {sizes}, "
        f"models {args.models}; memory: {method}",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    systems: list[dict[str, Any]] = []
    stopped: dict[str, dict[str, Any]] = {m: {mode: None for mode in args.modes} for m in args.models}
    for n in sizes:
        pos, z, info = replicate(base_pos, base_z, n, args.gap)
        systems.append({"n": n, **info, **_neighbours(pos, args)})
        print(
            f"N={n:>7d}  copies {info['copies']}  neighbour list {systems[-1]['neighbor_list_ms']:8.1f} ms  "
            f"{systems[-1]['edges_per_atom']:.1f} edges/atom",
            flush=True,
        )
        for name in args.models:
            active = []
            for mode in args.modes:
                if stopped[name][mode] is not None:
                    continue
                done = [r for r in rows if r["model"] == name and r["mode"] == mode]
                reason = _stop_reason(done, n, args)
                if reason is not None:
                    stopped[name][mode] = {"n": n, "reason": reason}
                    print(f"  {name:<15s} {mode:<16s} stopped at N={n}: {reason}", flush=True)
                else:
                    active.append(mode)
            if not active:
                continue
            model, calls = _calls(name, pos, z, args)
            params = sum(p.numel() for p in model.parameters())
            for mode in active:
                r = {"model": name, "mode": mode, "n": n, "parameters": params, **_measure(calls[mode], args)}
                rows.append(r)
                print(
                    f"  {name:<15s} {mode:<16s} {r['median_ms'] / 1e3:9.2f} s  peak {r['peak_mb']:9.1f} MB",
                    flush=True,
                )
            del model, calls
            gc.collect()
    exponents: dict[str, Any] = {}
    largest: dict[str, Any] = {}
    for name in args.models:
        exponents[name], largest[name] = {}, {}
        for mode in args.modes:
            sub = [r for r in rows if r["model"] == name and r["mode"] == mode]
            largest[name][mode] = max((r["n"] for r in sub), default=None)
            exponents[name][mode] = {
                "time": _fit(sub, "median_ms", args.fit_from),
                "peak_memory": _fit(sub, "peak_mb", args.fit_from),
            }
    record = {
        "benchmark": "protein-scale",
        "config": {k: v for k, v in vars(args).items() if k not in ("func",)},
        "memory_method": method,
        "system": {
            "source": f"{SYSTEM} (equiscale.data.protein.load_structure)",
            "atoms_per_copy": len(base_z),
            "extent_A": (base_pos.max(0) - base_pos.min(0)).tolist(),
            "gap_A": args.gap,
        },
        "systems": systems,
        "neighbor_list_exponent": _fit(systems, "neighbor_list_ms", args.fit_from),
        "rows": rows,
        "exponents": exponents,
        "fit_from": args.fit_from,
        "largest_n": largest,
        "stopped": stopped,
    }
    out = Path(args.out or f"results/protein/scale_{device_slug(args.device)}.json")
    full = write_record(out, record, device=args.device, started=started)
    for name in args.models:
        for mode in args.modes:
            e = exponents[name][mode]
            text = ", ".join(f"{k} {v['exponent']:.2f}" for k, v in e.items() if v is not None)
            print(f"  {name:<15s} {mode:<16s} exponents ({text}), largest N {largest[name][mode]}")
    print(f"wrote {out}")
    if not args.no_plot:
        full["plot"] = str(_plot(full, out.with_suffix(".png")))
        print(f"wrote {full['plot']}")
    return full


def _plot(record: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from equiscale.provenance import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    style = {"energy": "s:", "forward": "x--", "forward_backward": "o-"}
    for i, name in enumerate(record["config"]["models"]):
        for mode in record["config"].get("modes", MODES):
            sub = sorted(
                (r for r in record["rows"] if r["model"] == name and r["mode"] == mode), key=lambda r: r["n"]
            )
            if not sub:
                continue
            ns = [r["n"] for r in sub]
            e = record["exponents"][name][mode]
            stop = record["stopped"][name][mode]
            label = f"{name} {mode}"
            tail = f" (stopped at {stop['n']})" if stop else ""
            t_exp = f" p={e['time']['exponent']:.2f}" if e["time"] else ""
            m_exp = f" p={e['peak_memory']['exponent']:.2f}" if e["peak_memory"] else ""
            axes[0].loglog(
                ns,
                [r["median_ms"] / 1e3 for r in sub],
                style[mode],
                color=f"C{i}",
                label=label + t_exp + tail,
            )
            axes[1].loglog(
                ns, [r["peak_mb"] for r in sub], style[mode], color=f"C{i}", label=label + m_exp + tail
            )
    systems = record["systems"]
    nl = record.get("neighbor_list_exponent")
    axes[0].loglog(
        [s["n"] for s in systems],
        [s["neighbor_list_ms"] / 1e3 for s in systems],
        ":",
        color="gray",
        label="neighbour list" + (f" p={nl['exponent']:.2f}" if nl else ""),
    )
    axes[1].axhline(record["config"]["memory_cap_gb"] * 1024, color="gray", ls=":", label="memory cap")
    axes[0].set(xlabel="atoms N", ylabel="time per call (s)", title="time vs N")
    axes[1].set(xlabel="atoms N", ylabel="peak memory above inputs (MiB)", title="peak memory vs N")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(
        f"equiscale bench protein-scale - T4 lysozyme copies - exponents over N >= {record['fit_from']} - "
        f"{record['device']} - {record['date_utc']}",
        fontsize=9,
    )
    fig.tight_layout()
    return save_figure(fig, path)
