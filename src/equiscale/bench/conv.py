"""``equiscale bench conv``: Wigner6jConv (node-level tensor products) vs the edge-wise reference.

Systems: a jittered simple-cubic lattice in a periodic box (no two atoms closer than ~0.6 of the
spacing), the spacing chosen so that a ``--cutoff`` sphere holds the requested mean number of
neighbours. Features [N, (L+1)^2, C], filters l = 0..L, outputs 0..L, per-edge scalar alpha.

Measured in one run, on the same inputs and device:

1. vs mean neighbours (``--neighbors``) at ``--atoms``: forward and forward+backward time (median
   of ``--repeats``) and peak memory of ``wigner6j_conv`` (centring "structure", the E2Former
   scheme; and "target") and ``edge_reference``; the relative difference of their outputs is
   checked in the run (the run fails above ``--check-tol``).
2. vs atoms (``--atoms-scan``) at ``--scan-neighbors``: neighbour-list construction (vesin cell
   lists), the convolution, and the whole E2Former energy+forces pass (neighbour list included,
   C = 32, 2 layers); fitted exponents t ~ N^p.
3. model: E2Former (``--model-channels``, L = ``--lmax``, ``--model-layers``) energy + forces, with
   node-level convolutions vs the same model with edge tensor products (``conv_method="edge"``,
   identical outputs, checked), on ``--model-atoms`` at ``--scan-neighbors``.
4. precision: float32 vs a float64 edge reference for a molecule-sized cluster shifted by 0..1e4 A
   and for periodic boxes of growing size, per centring ("none" is the public E2Former scheme).

Writes JSON (default ``results/bench_conv_<device>.json``) and a PNG beside it.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import torch

from equiscale.bench.common import (
    check_bench_args,
    device_slug,
    fit_exponent,
    peak_memory,
    time_fn,
    write_record,
)
from equiscale.ops import edge_reference, wigner6j_conv
from equiscale.ops.neighbors import neighbor_list
from equiscale.provenance import save_figure

__all__ = ["add_arguments", "run", "lattice_system"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda or cuda:k")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float64"],
        help="floating-point type of the timed runs (precision compares both)",
    )
    parser.add_argument("--lmax", type=int, default=2, help="input, filter and output degree L")
    parser.add_argument(
        "--channels", type=int, default=64, help="feature channels C in the neighbour and atoms scans"
    )
    parser.add_argument(
        "--cutoff",
        type=float,
        default=5.0,
        help="neighbour cutoff radius (A); the lattice spacing follows from it",
    )
    parser.add_argument(
        "--atoms", type=int, default=512, help="atoms for the neighbour and L scans (rounded to a cube m^3)"
    )
    parser.add_argument(
        "--neighbors",
        type=int,
        nargs="+",
        default=[8, 16, 32, 64, 128],
        help="mean neighbour counts of the neighbour scan",
    )
    parser.add_argument(
        "--atoms-scan",
        type=int,
        nargs="+",
        default=[216, 512, 1000, 2197, 4096],
        help="atom counts of the atoms scan (each rounded to a cube m^3)",
    )
    parser.add_argument(
        "--scan-neighbors",
        type=int,
        default=32,
        help="mean neighbours in the atoms scan and the model comparison",
    )
    parser.add_argument(
        "--reference-max-edges",
        type=int,
        default=70_000,
        help="skip edge_reference above this many edges in the atoms scan",
    )
    parser.add_argument(
        "--model-atoms", type=int, default=216, help="atoms in the model comparison (rounded to a cube m^3)"
    )
    parser.add_argument(
        "--model-channels", type=int, default=64, help="E2Former channels in the model comparison"
    )
    parser.add_argument("--model-layers", type=int, default=3, help="E2Former layers in the model comparison")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed calls per measurement (median reported)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before each measurement")
    parser.add_argument(
        "--check-tol",
        type=float,
        default=1e-4,
        help="largest relative difference from edge_reference (the run fails above it)",
    )
    parser.add_argument(
        "--out", default=None, help="JSON path (results/bench_conv_<device>.json when not given)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1 keeps timings stable on a shared machine)",
    )
    parser.add_argument("--no-plot", action="store_true", help="write no PNG beside the JSON")
    parser.add_argument(
        "--lmax-scan",
        type=int,
        nargs="+",
        default=[1, 2, 3, 4, 5, 6],
        help="degrees L of the scan against e3nn's edge convolution",
    )
    parser.add_argument("--lscan-channels", type=int, default=32, help="channels in the L scan")
    parser.add_argument("--lscan-neighbors", type=int, default=32, help="mean neighbours in the L scan")
    parser.add_argument(
        "--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS), help="parts to run"
    )


SECTIONS = ("neighbors", "lmax", "atoms", "model", "precision")


def lattice_system(
    n_atoms: int, mean_neighbors: float, cutoff: float, *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions [m^3, 3] (float64), m = round(n_atoms^(1/3)), every site of a jittered m x m x m
    lattice, in a periodic cubic cell [3, 3]; a cutoff sphere holds ~mean_neighbors atoms."""
    spacing = cutoff * (4 * math.pi / 3 / mean_neighbors) ** (1 / 3)
    m = max(1, round(n_atoms ** (1 / 3)))
    g = torch.Generator().manual_seed(seed)
    grid = torch.stack(torch.meshgrid(*[torch.arange(m)] * 3, indexing="ij"), -1).reshape(-1, 3)
    grid = grid.to(torch.float64)
    pos = (grid + 0.4 * (torch.rand(m**3, 3, generator=g, dtype=torch.float64) - 0.5)) * spacing
    return pos, torch.eye(3, dtype=torch.float64) * m * spacing


def _inputs(n: int, k: float, args: argparse.Namespace, dtype: torch.dtype, seed: int = 0):
    pos, cell = lattice_system(n, k, args.cutoff, seed=seed)
    n = pos.shape[0]
    nb = neighbor_list(pos, args.cutoff, cell=cell, pbc=True)
    dev = torch.device(args.device)
    g = torch.Generator().manual_seed(seed + 1)
    e = nb.edge_index.shape[1]
    dim = (args.lmax + 1) ** 2
    h = torch.randn(n, dim, args.channels, generator=g).to(dev, dtype)
    alpha = torch.rand(e, generator=g).to(dev, dtype)
    return dict(
        h=h,
        pos=pos.to(dev, dtype),
        edge_index=nb.edge_index.to(dev),
        alpha=alpha,
        shifts=nb.shifts.to(dev, dtype),
    )


class E3nnEdgeConv(torch.nn.Module):
    """The convolution of ``edge_reference`` written as an e3nn user writes it (NequIP/MACE style):
    per edge, an ``o3.TensorProduct`` "uvu" of h_j (e3nn layout ``[N, C x irreps]``) with
    Y(r_ij), weights per edge = fixed path weight x per-edge channel weight alpha_ij, then
    ``index_add_`` over targets. Output paths of either parity for one (a, l, e) are summed into
    the degree-e block, so the result equals ``edge_reference`` (parity "all", unit path weights).

    forward(h_e3nn [N, C*(L+1)^2], pos [N, 3], edge_index [2, E], alpha [E, C], shifts [E, 3])
    -> [N, C*(L+1)^2] in e3nn layout (degree-major, then channels).
    """

    def __init__(self, lmax: int, channels: int) -> None:
        super().__init__()
        from e3nn import o3

        from equiscale.ops import conv_paths

        self.lmax, self.channels = lmax, channels
        self.irreps_in = o3.Irreps([(channels, (l, (-1) ** l)) for l in range(lmax + 1)])
        self.irreps_sh = o3.Irreps([(1, (l, (-1) ** l)) for l in range(lmax + 1)])
        paths = conv_paths(lmax, list(range(lmax + 1)), lmax, "all")
        outs, instr, scale = [], [], []
        for a, l, e in paths:
            p = (-1) ** (a + l)
            key = (e, p)
            if key not in outs:
                outs.append(key)
            instr.append((a, l, outs.index(key), "uvu", True))
            scale.append(math.sqrt(2 * e + 1))
        self.out_irreps = o3.Irreps([(channels, k) for k in outs])
        self.tp = o3.TensorProduct(
            self.irreps_in,
            self.irreps_sh,
            self.out_irreps,
            instr,
            irrep_normalization="none",
            path_normalization="none",
            internal_weights=False,
            shared_weights=False,
        )
        self.register_buffer("path_scale", torch.tensor(scale), persistent=False)  # [P]
        self.out_degree = [k[0] for k in outs]

    def forward(self, h, pos, edge_index, alpha, shifts=None):
        from e3nn import o3

        src, dst = edge_index[0], edge_index[1]
        vec = pos[dst] - pos[src]
        if shifts is not None:
            vec = vec - shifts
        y = o3.spherical_harmonics(
            list(range(self.lmax + 1)), vec, normalize=True, normalization="component"
        )  # [E, (L+1)^2]
        w = (self.path_scale.to(alpha.dtype)[None, :, None] * alpha[:, None, :]).flatten(1)  # [E, P*C]
        msg = self.tp(h[src], y, w)  # [E, out dim]
        out = msg.new_zeros(h.shape[0], msg.shape[1]).index_add_(0, dst, msg)
        # sum the two parities of each degree e into one [N, C*(2e+1)] block
        blocks = {}
        for (_mul, ir), sl in zip(self.out_irreps, self.out_irreps.slices()):
            blocks[ir.l] = blocks[ir.l] + out[:, sl] if ir.l in blocks else out[:, sl]
        return torch.cat([blocks[l] for l in range(self.lmax + 1)], dim=1)


def to_e3nn_layout(x: torch.Tensor, lmax: int) -> torch.Tensor:
    """[N, (L+1)^2, C] (channels last) -> [N, C*(L+1)^2] (per degree: channel-major, e3nn)."""
    return torch.cat(
        [x[:, l * l : (l + 1) ** 2].transpose(1, 2).reshape(x.shape[0], -1) for l in range(lmax + 1)], dim=1
    )


def _runner(method: str, inp: dict[str, torch.Tensor], lmax: int, backward: bool):
    kw = dict(lmax_in=lmax, l_filter=list(range(lmax + 1)), lmax_out=lmax, shifts=inp["shifts"])
    leaves = {k: inp[k].detach().requires_grad_(backward) for k in ("h", "pos", "alpha")}
    if method == "e3nn_edge":
        channels = inp["h"].shape[2]
        conv = E3nnEdgeConv(lmax, channels).to(inp["h"].device, inp["h"].dtype)
        leaves["h"] = to_e3nn_layout(inp["h"], lmax).detach().requires_grad_(backward)
        if leaves["alpha"].dim() == 1:
            leaves["alpha"] = inp["alpha"][:, None].expand(-1, channels).contiguous().requires_grad_(backward)

    def fn():
        if method == "e3nn_edge":
            out = conv(leaves["h"], leaves["pos"], inp["edge_index"], leaves["alpha"], inp["shifts"])
        elif method == "edge_reference":
            out = edge_reference(leaves["h"], leaves["pos"], inp["edge_index"], leaves["alpha"], **kw)
        else:
            centring = method.split(":")[1]
            out = wigner6j_conv(
                leaves["h"], leaves["pos"], inp["edge_index"], leaves["alpha"], centring=centring, **kw
            )
        if backward:
            out.square().sum().backward()
            for t in leaves.values():
                t.grad = None
        return out

    return fn


METHODS = ["wigner6j:structure", "wigner6j:target", "edge_reference", "e3nn_edge"]
FAST = METHODS[:2]


def _measure(inp, args, methods) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for m in methods:
        entry = {}
        for mode, bw in (("forward", False), ("forward_backward", True)):
            fn = _runner(m, inp, args.lmax, bw)
            if bw:
                entry[mode] = time_fn(fn, warmup=args.warmup, repeats=args.repeats, device=args.device)
            else:
                with torch.no_grad():
                    entry[mode] = time_fn(fn, warmup=args.warmup, repeats=args.repeats, device=args.device)
            entry[mode]["peak_memory_bytes"] = peak_memory(fn, args.device)
        res[m] = entry
    return res


def _check(inp, args) -> dict[str, float]:
    with torch.no_grad():
        ref = _runner("edge_reference", inp, args.lmax, False)()
        out = {}
        for m in FAST:
            fast = _runner(m, inp, args.lmax, False)()
            out[m] = float((fast - ref).norm() / ref.norm())
        e3 = _runner("e3nn_edge", inp, args.lmax, False)()
        out["e3nn_edge"] = float((e3 - to_e3nn_layout(ref, args.lmax)).norm() / ref.norm())
    return out


def _lmax_scan(args: argparse.Namespace, dtype: torch.dtype) -> list[dict[str, Any]]:
    """Wigner6jConv (both centrings), edge_reference and e3nn's edge convolution for each L of
    ``--lmax-scan`` at ``--lscan-channels`` and ``--lscan-neighbors``, per-edge channel weights."""
    rows = []
    print(f"# vs L at {args.atoms} atoms, {args.lscan_neighbors} neighbours, C={args.lscan_channels}")
    for lmax in args.lmax_scan:
        sub = argparse.Namespace(**{**vars(args), "lmax": lmax, "channels": args.lscan_channels})
        inp = _inputs(args.atoms, args.lscan_neighbors, sub, dtype)
        g = torch.Generator().manual_seed(2)
        inp["alpha"] = torch.rand(inp["edge_index"].shape[1], args.lscan_channels, generator=g).to(
            inp["h"].device, dtype
        )
        check = _check(inp, sub)
        # "structure" centring loses float32 precision like (radius / bond)^L (its docstring):
        # recorded, not a failure; the exact paths must agree
        bad = {m: v for m, v in check.items() if m != "wigner6j:structure" and not v < args.check_tol}
        if bad:
            raise RuntimeError(f"L={lmax}: a convolution differs from edge_reference: {bad}")
        res = _measure(inp, sub, METHODS)
        e3 = res["e3nn_edge"]
        row = {
            "lmax": lmax,
            "atoms": inp["pos"].shape[0],
            "edges": inp["edge_index"].shape[1],
            "rel_diff_vs_reference": check,
            "results": res,
            "speedup_vs_e3nn": {
                m: {mode: e3[mode]["median_ms"] / res[m][mode]["median_ms"] for mode in e3} for m in FAST
            },
        }
        rows.append(row)
        print(
            f"L={lmax}: "
            + "  ".join(f"{m} {res[m]['forward_backward']['median_ms']:.1f} ms" for m in METHODS)
            + " (forward+backward)"
        )
    return rows


def _model_time(pos: torch.Tensor, cell: torch.Tensor, args, dtype) -> dict[str, float]:
    """E2Former (C=32, L=--lmax, 2 layers) energy + forces, neighbour list built inside."""
    from equiscale.models.e2former import E2Former

    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = E2Former(channels=32, lmax=args.lmax, num_layers=2, cutoff=args.cutoff)
    model = model.to(dev, dtype).eval()
    z = torch.full((pos.shape[0],), 6, device=dev)
    batch = {
        "pos": pos.to(dev, dtype),
        "z": z,
        "cell": cell[None].to(dev, dtype),
        "pbc": torch.ones(1, 3, dtype=torch.bool),
    }
    return time_fn(lambda: model(batch), warmup=args.warmup, repeats=args.repeats, device=args.device)


def _model_comparison(args, dtype) -> dict[str, Any]:
    """E2Former energy+forces (forward with create_graph-free force backward) and a training
    step (energy+forces loss backward), node vs edge convolutions, same weights and inputs."""
    from equiscale.models.e2former import E2Former

    pos, cell = lattice_system(args.model_atoms, args.scan_neighbors, args.cutoff, seed=11)
    n = pos.shape[0]
    dev = torch.device(args.device)
    z = torch.randint(1, 9, (n,), generator=torch.Generator().manual_seed(0)).to(dev)
    nb = neighbor_list(pos, args.cutoff, cell=cell, pbc=True)
    batch = {
        "pos": pos.to(dev, dtype),
        "z": z,
        "edge_index": nb.edge_index.to(dev),
        "shifts": nb.shifts.to(dev, dtype),
    }
    kw = dict(channels=args.model_channels, lmax=args.lmax, num_layers=args.model_layers, cutoff=args.cutoff)
    torch.manual_seed(0)
    models = {"node": E2Former(**kw).to(dev, dtype)}
    models["edge"] = E2Former(conv_method="edge", **kw).to(dev, dtype)
    models["edge"].load_state_dict(models["node"].state_dict())
    out = {m: models[m].eval()(batch) for m in models}
    diff = float((out["node"]["forces"] - out["edge"]["forces"]).norm() / out["edge"]["forces"].norm())
    if not diff < max(args.check_tol, 1e-3):
        raise RuntimeError(f"E2Former node and edge forces differ: {diff:.2e}")
    res: dict[str, Any] = {"atoms": n, "edges": int(nb.edge_index.shape[1]), **kw, "rel_diff_forces": diff}
    for m, model in models.items():
        model.eval()
        res[f"{m}:energy_forces"] = time_fn(
            lambda model=model: model(batch), warmup=args.warmup, repeats=args.repeats, device=args.device
        )
        model.train()

        def step(model=model):
            o = model(batch)
            (o["energy"].square().sum() + o["forces"].square().sum()).backward()
            model.zero_grad(set_to_none=True)

        res[f"{m}:train_step"] = time_fn(step, warmup=args.warmup, repeats=args.repeats, device=args.device)
    for mode in ("energy_forces", "train_step"):
        res[f"speedup_{mode}"] = res[f"edge:{mode}"]["median_ms"] / res[f"node:{mode}"]["median_ms"]
    print(
        f"E2Former C={kw['channels']} L={kw['lmax']} T={kw['num_layers']}, {n} atoms, "
        f"{res['edges']} edges: energy+forces node {res['node:energy_forces']['median_ms']:.0f} ms"
        f" / edge {res['edge:energy_forces']['median_ms']:.0f} ms; train step node "
        f"{res['node:train_step']['median_ms']:.0f} / edge {res['edge:train_step']['median_ms']:.0f}"
        f" ms (forces rel. diff {diff:.1e})"
    )
    return res


def _precision(args) -> dict[str, Any]:
    """float32 relative error vs a float64 edge reference, far from the origin and in big boxes."""
    lmax = args.lmax
    kw = dict(lmax_in=lmax, l_filter=list(range(lmax + 1)), lmax_out=lmax)
    rows = []
    pos0, _ = lattice_system(27, 12, 3.0, seed=3)  # a 3x3x3 cluster, ~molecule sized
    nb = neighbor_list(pos0, 3.0)
    g = torch.Generator().manual_seed(7)
    h = torch.randn(27, (lmax + 1) ** 2, 8, generator=g, dtype=torch.float64)
    alpha = torch.rand(nb.edge_index.shape[1], generator=g, dtype=torch.float64)
    exact = edge_reference(h, pos0, nb.edge_index, alpha, **kw)
    for shift in (0.0, 1e2, 1e3, 1e4):
        p32 = (pos0 + shift).float()
        row = {"system": "cluster_27_atoms", "shift_A": shift}
        for centring in ("structure", "target", "none"):
            out = wigner6j_conv(h.float(), p32, nb.edge_index, alpha.float(), centring=centring, **kw)
            row[centring] = float((out.double() - exact).norm() / exact.norm())
        ref32 = edge_reference(h.float(), p32, nb.edge_index, alpha.float(), **kw)
        row["edge_reference"] = float((ref32.double() - exact).norm() / exact.norm())
        rows.append(row)
    for n in (64, 512, 4096):
        pos, cell = lattice_system(n, 32, args.cutoff, seed=5)
        n = pos.shape[0]
        nb = neighbor_list(pos, args.cutoff, cell=cell, pbc=True)
        h = torch.randn(n, (lmax + 1) ** 2, 4, generator=g, dtype=torch.float64)
        alpha = torch.rand(nb.edge_index.shape[1], generator=g, dtype=torch.float64)
        exact = edge_reference(h, pos, nb.edge_index, alpha, shifts=nb.shifts, **kw)
        row = {"system": f"periodic_box_{n}_atoms", "box_A": float(cell[0, 0])}
        for centring in ("structure", "target"):
            out = wigner6j_conv(
                h.float(),
                pos.float(),
                nb.edge_index,
                alpha.float(),
                shifts=nb.shifts.float(),
                centring=centring,
                **kw,
            )
            row[centring] = float((out.double() - exact).norm() / exact.norm())
        rows.append(row)
    return {"dtype": "float32 vs float64 edge_reference", "rows": rows}


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.time()
    dtype = getattr(torch, args.dtype)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    neighbor_rows = []
    check_bench_args(
        args,
        at_least_one=(
            "channels",
            "atoms",
            "repeats",
            "lscan_channels",
            "lscan_neighbors",
            "threads",
            "model_atoms",
            "model_channels",
            "scan_neighbors",
        ),
        non_negative=("lmax", "warmup", "model_layers"),
        lists_at_least_one=("neighbors", "atoms_scan"),
    )
    if min(args.lmax_scan, default=0) < 0:
        raise ValueError(f"--lmax-scan must list degrees >= 0, got {args.lmax_scan}")
    if "neighbors" not in args.sections:
        args.neighbors = []
    if "atoms" not in args.sections:
        args.atoms_scan = []
    print(
        f"# Wigner6jConv vs edge_reference, L={args.lmax}, C={args.channels}, {args.dtype}, "
        f"{args.device}, {args.atoms} atoms"
    )
    print(f"{'neigh':>6} {'edges':>8} {'method':>20} {'fwd ms':>9} {'fwd+bwd ms':>11} {'MB':>8}")
    for k in args.neighbors:
        inp = _inputs(args.atoms, k, args, dtype)
        e = inp["edge_index"].shape[1]
        n_atoms = inp["pos"].shape[0]
        check = _check(inp, args)
        bad = {m: v for m, v in check.items() if not v < args.check_tol}
        if bad:
            raise RuntimeError(f"Wigner6jConv differs from edge_reference: {bad}")
        res = _measure(inp, args, METHODS)
        row = {
            "target_neighbors": k,
            "atoms": n_atoms,
            "mean_neighbors": e / n_atoms,
            "edges": e,
            "rel_diff_vs_reference": check,
            "results": res,
        }
        ref, e3 = res["edge_reference"], res["e3nn_edge"]
        for m in FAST:
            row[f"speedup_{m}"] = {mode: ref[mode]["median_ms"] / res[m][mode]["median_ms"] for mode in ref}
            row[f"speedup_vs_e3nn_{m}"] = {
                mode: e3[mode]["median_ms"] / res[m][mode]["median_ms"] for mode in e3
            }
        neighbor_rows.append(row)
        for m in METHODS:
            r = res[m]
            mem = r["forward_backward"]["peak_memory_bytes"]
            print(
                f"{e / n_atoms:>6.1f} {e:>8} {m:>20} {r['forward']['median_ms']:>9.1f} "
                f"{r['forward_backward']['median_ms']:>11.1f} "
                f"{(mem or 0) / 2**20:>8.1f}"
            )

    atom_rows = []
    print(f"# scaling in atoms at {args.scan_neighbors} neighbours")
    for n in args.atoms_scan:
        t0 = time.perf_counter()
        pos, cell = lattice_system(n, args.scan_neighbors, args.cutoff)
        t_nl = time_fn(
            lambda pos=pos, cell=cell: neighbor_list(pos, args.cutoff, cell=cell, pbc=True),
            warmup=1,
            repeats=args.repeats,
        )
        inp = _inputs(n, args.scan_neighbors, args, dtype)
        e = inp["edge_index"].shape[1]
        n = inp["pos"].shape[0]
        methods = FAST + (["edge_reference"] if e <= args.reference_max_edges else [])
        res = {}
        for m in methods:
            with torch.no_grad():
                res[m] = {
                    "forward": time_fn(
                        _runner(m, inp, args.lmax, False),
                        warmup=args.warmup,
                        repeats=args.repeats,
                        device=args.device,
                    )
                }
            res[m]["forward_backward"] = time_fn(
                _runner(m, inp, args.lmax, True), warmup=args.warmup, repeats=args.repeats, device=args.device
            )
        res["e2former:energy_forces"] = _model_time(pos, cell, args, dtype)
        atom_rows.append({"atoms": n, "edges": e, "neighbor_list": t_nl, "results": res})
        print(
            f"{n:>7} atoms {e:>8} edges  neighbours {t_nl['median_ms']:.1f} ms  "
            + "  ".join(f"{m} {res[m]['forward']['median_ms']:.1f}" for m in methods)
            + f"  e2former energy+forces {res['e2former:energy_forces']['median_ms']:.1f}"
            + f"  ({time.perf_counter() - t0:.0f} s)"
        )
    exponents = {}
    if len(atom_rows) >= 2:
        atoms = [r["atoms"] for r in atom_rows]
        exponents["neighbor_list"] = fit_exponent(atoms, [r["neighbor_list"]["median_ms"] for r in atom_rows])
        for m in FAST:
            for mode in ("forward", "forward_backward"):
                exponents[f"{m}:{mode}"] = fit_exponent(
                    atoms, [r["results"][m][mode]["median_ms"] for r in atom_rows]
                )
        exponents["e2former:energy_forces"] = fit_exponent(
            atoms, [r["results"]["e2former:energy_forces"]["median_ms"] for r in atom_rows]
        )
        print("fitted exponents t ~ atoms^p:", {k: round(v, 3) for k, v in exponents.items()})

    lmax_rows = _lmax_scan(args, dtype) if "lmax" in args.sections else []
    model_rows = _model_comparison(args, dtype) if "model" in args.sections else []
    precision = _precision(args) if "precision" in args.sections else {"rows": []}
    for row in precision["rows"]:
        print("precision", row)

    record = {
        "benchmark": "conv",
        "settings": {k: v for k, v in vars(args).items() if k not in ("func",)},
        "methods": {
            "wigner6j:structure": "wigner6j_conv, centring per structure (E2Former factorisation)",
            "wigner6j:target": "wigner6j_conv, centring per target node",
            "edge_reference": "one CG tensor product per edge and path (e3nn wigner_3j)",
            "e3nn_edge": "e3nn o3.TensorProduct 'uvu' per edge with per-edge channel weights, "
            "index_add_ (as a NequIP/MACE-style e3nn user writes it); equal output",
        },
        "vs_neighbors": neighbor_rows,
        "vs_lmax": lmax_rows,
        "vs_atoms": atom_rows,
        "exponents_in_atoms": exponents,
        "model": model_rows,
        "precision": precision,
    }
    out = Path(args.out or f"results/bench_conv_{device_slug(args.device)}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    full = write_record(out, record, device=args.device, started=started)
    if not args.no_plot:
        _plot(full, out.with_suffix(".png"))
    print(f"wrote {out}")
    return full


def _plot(record: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [k for k in ("vs_neighbors", "vs_lmax", "vs_atoms") if record.get(k)]
    if record.get("precision", {}).get("rows"):
        panels.append("precision")
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5.3 * len(panels), 4.5), squeeze=False)
    markers = dict(zip(METHODS, ("o", "s", "^", "v")))
    for ax, panel in zip(axes[0], panels):
        if panel == "vs_neighbors":
            rows = record["vs_neighbors"]
            ks = [r["mean_neighbors"] for r in rows]
            for m in (m for m in METHODS if m in rows[0]["results"]):
                for mode, ls in (("forward", ":"), ("forward_backward", "-")):
                    ax.plot(
                        ks,
                        [r["results"][m][mode]["median_ms"] for r in rows],
                        marker=markers[m],
                        linestyle=ls,
                        label=f"{m} {mode}",
                    )
            ax.set(
                xscale="log",
                yscale="log",
                xlabel="mean neighbours",
                ylabel="ms",
                title=f"{record['settings']['atoms']} atoms, L={record['settings']['lmax']}, "
                f"C={record['settings']['channels']}",
            )
        elif panel == "vs_lmax":
            rows = record["vs_lmax"]
            ls_ = [r["lmax"] for r in rows]
            for m in METHODS:
                ax.plot(
                    ls_,
                    [r["results"][m]["forward_backward"]["median_ms"] for r in rows],
                    marker=markers[m],
                    label=f"{m} fwd+bwd",
                )
            ax.set(
                yscale="log",
                xlabel="L (input, filter, output)",
                ylabel="ms",
                title=f"{rows[0]['atoms']} atoms, {record['settings']['lscan_neighbors']} neighbours, "
                f"C={record['settings']['lscan_channels']}",
            )
        elif panel == "vs_atoms":
            arows = record["vs_atoms"]
            n = [r["atoms"] for r in arows]
            ax.plot(n, [r["neighbor_list"]["median_ms"] for r in arows], "k*-", label="neighbour list")
            ax.plot(
                n,
                [r["results"]["e2former:energy_forces"]["median_ms"] for r in arows],
                "kd--",
                label="E2Former energy+forces",
            )
            for m in METHODS:
                pts = [
                    (r["atoms"], r["results"][m]["forward"]["median_ms"]) for r in arows if m in r["results"]
                ]
                if pts:
                    ax.plot(*zip(*pts), "o-", label=f"{m} forward")
            ax.set(
                xscale="log",
                yscale="log",
                xlabel="atoms",
                ylabel="ms",
                title=f"{record['settings']['scan_neighbors']} neighbours",
            )
        else:
            prow = [r for r in record["precision"]["rows"] if "shift_A" in r]
            for key in ("structure", "target", "none", "edge_reference"):
                ax.plot([max(r["shift_A"], 1.0) for r in prow], [r[key] for r in prow], "o-", label=key)
            ax.axhline(1e-4, color="grey", lw=0.5)
            ax.set(
                xscale="log",
                yscale="log",
                xlabel="shift from origin (A; 0 plotted at 1)",
                ylabel="float32 rel. error",
                title="float32 vs float64, 27-atom cluster",
            )
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
